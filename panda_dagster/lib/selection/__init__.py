"""Caption selection: score every teacher caption of a clip with a video-text retrieval model (open_clip
over key frames), keep the best, and fine-tune the scorer on human choices."""
