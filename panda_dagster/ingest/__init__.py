"""Stage 1: ingest sources into shards and probe every video (`raw_videos`)."""
