
import json
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
            (processed / f"{path.name}.shards.json").write_text(json.dumps(plan.keys))
            write_plan(plan, catalog, storage)
            shutil.move(path, processed / path.name)
    # Partitions come from the `.shards.json` records rather than from this tick's plan, so shards
    # written by a tick that died before returning are still added (and run) by the next one.
    known = set(context.instance.get_dynamic_partitions(video_shards.name))
    recorded = [k for f in sorted((inbox / "processed").glob("*.shards.json")) for k in json.loads(f.read_text())]
    new_keys = list(dict.fromkeys(k for k in recorded if k not in known))
    return SensorResult(
        run_requests=[RunRequest(partition_key=k, run_key=f"shard:{k}") for k in new_keys],
        dynamic_partitions_requests=[video_shards.build_add_request(new_keys)] if new_keys else [],
    )
