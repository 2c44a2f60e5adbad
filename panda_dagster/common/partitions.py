from dagster import DynamicPartitionsDefinition

# One partition per shard of videos; keys are added by `panda ingest` and the inbox sensor.
video_shards = DynamicPartitionsDefinition(name="video_shards")
