"""Every model of the project in one home.

- `base`: the interface (`ModelSpec`: model id, revision, trained or random; `Model`; the
  `ImageEmbedder` / `TextEmbedder` protocols; batched no-grad helpers);
- `cache`: the one process-wide cache every model is loaded through (`cached_model`);
- `device`: the one device / dtype resolver (`resolve_device`, `resolve_dtype`);
- `profiles`: which models profile a run uses (tiny / default / large / offline); `roles`: which model
  fills which role of a profile, trained or random;
- `openclip`: the open_clip wrapper; `efficientnet`, `minilm`: packaged trained models (`packaged`:
  their pinned, checksummed weights); `embedders`: image embedders by name;
- `keyframes` (+ `records`): per-clip key-frame embeddings, computed once per clip and model and stored
  in table `keyframe_embeddings`.
Teacher captioners load through the same cache and resolver (lib/teachers/runners.py), as does ASR
(lib/transcripts/whisper.py).
"""
