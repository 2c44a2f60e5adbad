"""Teacher captioners (Panda-70M's cross-modality teachers): registry, tiny offline twins, runners,
prompt building, caption cleaning, ASR, and the per-shard captioning engine. No Dagster imports."""
