
import os
import shutil

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from panda_dagster.common.jobs import shard_pipeline_job
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.ids import slug
from panda_dagster.lib.ingest import MANIFEST_EXTENSIONS, IngestError, plan_ingest, read_source, write_plan


@sensor(
    job=shard_pipeline_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests manifests dropped into PANDA_HOME/inbox/ (.csv, .jsonl, .parquet): new shards "
    "become `video_shards` partitions and get a run each. Processed files move to inbox/processed/, "
    "rejected ones to inbox/failed/ with a .error.txt beside them.",
)
def inbox_sensor(context: SensorEvaluationContext, panda: PandaResource) -> SensorResult:
    inbox = panda.home_path / "inbox"
    catalog, storage = panda.catalog(), panda.storage()
    shard_size = int(os.environ.get("PANDA_INBOX_SHARD_SIZE", "100"))
    if inbox.is_dir():
        for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS):
            processed = inbox / "processed"
            try:
                plan = plan_ingest(read_source(path), catalog, storage, shard_size, prefix=slug(path.stem))
            except IngestError as exc:
                context.log.error(f"inbox: {path.name} rejected: {exc}")
                (inbox / "failed").mkdir(exist_ok=True)
                shutil.move(path, inbox / "failed" / path.name)
                (inbox / "failed" / f"{path.name}.error.txt").write_text(f"{exc}\n")
                continue
            context.log.info(f"inbox: {path.name} -> shards {plan.keys} ({plan.skipped_existing} already ingested)")
            processed.mkdir(exist_ok=True)
            write_plan(plan, catalog, storage)
            shutil.move(path, processed / path.name)
    # The shards are the `ingested` table's (the one registry besides the partitions themselves), not
    # this tick's plan: shards written by a tick that died before returning are added by the next one.
    known = set(context.instance.get_dynamic_partitions(video_shards.name))
    new_keys = [k for k in catalog.shards("ingested") if k not in known]
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=f"shard:{k}") for k in new_keys],
        dynamic_partitions_requests=[video_shards.build_add_request(new_keys)] if new_keys else [],
    )
