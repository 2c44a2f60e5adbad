from dagster import AssetSelection, define_asset_job

from panda_dagster.common.partitions import video_shards

# Every per-shard asset, in dependency order: what a new shard needs.
shard_pipeline_job = define_asset_job(
    name="shard_pipeline",
    selection=AssetSelection.all().roots().downstream() & AssetSelection.assets(
        "raw_videos", "clips", "teacher_captions", "selected_captions", "eval_metrics"
    ),
    partitions_def=video_shards,
    description="raw_videos → clips → teacher_captions → selected_captions → eval_metrics for one shard",
)
