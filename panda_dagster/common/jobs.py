"""Jobs over the per-shard assets, and the execution policies every stage shares (retries, pools,
backfill policies), so operations behave the same across stages."""
from dagster import (
    AssetSelection,
    BackfillPolicy,
    Backoff,
    Field,
    Jitter,
    RetryPolicy,
    define_asset_job,
    multi_or_in_process_executor,
)

from panda_dagster.common.partitions import video_shards

# Every run executes its steps in its own process unless its run config says
# `execution: {config: {multiprocess: {max_concurrent: N}}}`. Why: the per-shard graph is a chain, so a
# subprocess per step buys no parallelism, while each one re-imports the code location and torch and
# sets up its model resources again (measured: ~5-10 s per step on 2 cores, 30-40 % of a 19-video shard's
# wall time; benchmarks/pipeline_bench.py). In one process the models load once per run (lib/models/cache.py)
# and pools (`gpu`, `catalog`) and retries apply as before. This is Dagster's own default executor with
# only the default mode switched.
IN_PROCESS_UNLESS_CONFIGURED = multi_or_in_process_executor.configured(
    lambda config: config,
    name="in_process_unless_configured",
    config_schema=Field(multi_or_in_process_executor.config_schema.as_field().config_type,
                        default_value={"in_process": {}}),
)

SHARD_ASSETS = ("raw_videos", "transcripts", "clips", "clip_filters", "teacher_captions", "selected_captions", "eval_metrics")

# Every per-shard asset, in dependency order: what a new shard needs.
shard_pipeline_job = define_asset_job(
    name="shard_pipeline",
    selection=AssetSelection.all().roots().downstream() & AssetSelection.assets(*SHARD_ASSETS),
    partitions_def=video_shards,
    description="raw_videos → transcripts → clips → clip_filters → teacher_captions → selected_captions → "
    "eval_metrics for one shard",
)

# Concurrency pools (limits in dagster.yaml: one slot each by default). A step in pool `gpu` holds a
# GPU for its whole duration; on a machine with N GPUs: `dagster instance concurrency set gpu N`.
GPU_POOL = "gpu"
# Steps that must not write the same catalog files at the same time (e.g. cross-shard tables).
CATALOG_POOL = "catalog"

# Transient failures (object storage hiccups, a busy GPU, a CUDA OOM that survived the in-asset
# batch-size back-off) are retried with exponential back-off; `Failure(allow_retries=False)` opts out
# for errors that a retry cannot fix. 10 s, 20 s, 40 s (± jitter).
TRANSIENT_RETRY = RetryPolicy(max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

# Cheap per-shard assets (probing, splitting): a whole range of shards runs in one run, which is also
# what `dagster asset materialize --partition-range A...B` requires. Such assets loop over
# `context.partition_keys`, writing each shard on its own.
RANGE_IN_ONE_RUN = BackfillPolicy.single_run()

# Model assets: a backfill run takes up to this many shards so each model is loaded once per run,
# while a large backfill still spreads over several runs (pods, GPUs) and a failed run only holds
# back its own shards.
SHARDS_PER_MODEL_RUN = 8
MODEL_BACKFILL = BackfillPolicy.multi_run(max_partitions_per_run=SHARDS_PER_MODEL_RUN)


class Group:
    """Asset groups in the web UI, one per stage folder."""

    INGEST = "ingest"
    TRANSCRIPTS = "transcripts"
    CLIPS = "clips"
    FILTERS = "filters"
    CAPTIONS = "captions"
    SELECTION = "selection"
    EVALUATION = "evaluation"
    EXPORT = "export"
