"""Stage: clip_filters (drop clips not worth a caption, with reasons)."""
