"""Teacher captioners (Panda-70M's cross-modality teachers): the registry (teachers.yaml), one module per
teacher kind (kinds/), runners, tiny offline twins, prompt building, caption cleaning, the per-shard
captioning engine and the shard step of `teacher_captions` (shard.py). No Dagster imports."""
