"""Nightly catch-up: a schedule launches one Dagster asset backfill covering every shard whose
per-shard assets are missing (no successful materialization yet) or stale (an upstream partition was
re-materialized after them), plus everything downstream of those.

Dagster schedules can only request runs, so the schedule starts the small `catch_up_backfill` job,
whose single op plans the work and submits the backfill; the backfill daemon then runs it under each
asset's `BackfillPolicy` (several shards per run, models loaded once per run) and the run queue's pools.

The op needs the code location's asset graph. This module sits below `definitions.py` and does not import
it: the code location hands the graph in as the resource `ASSET_GRAPH_RESOURCE`
(`asset_graph_resource(lambda: defs.get_repository_def().asset_graph)`), which also works where a job runs
outside a code location (`execute_in_process`), where Dagster sets no repository on the context.
"""
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from dagster import (
    AssetKey,
    Config,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    OpExecutionContext,
    ResourceDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    job,
    op,
    schedule,
)

# Dagster has no public constructor for a backfill of an arbitrary asset-partition subset (the UI and
# sensors build the same objects); these are the classes the sensor daemon uses for it.
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.partitions import video_shards

TRIGGER_TAG = "panda/trigger"
CATCH_UP = "catch_up"
PLANNED_BY_TAG = "panda/planned_by_run"
ACTIVE_STATUSES = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING]
ASSET_GRAPH_RESOURCE = "asset_graph"


def asset_graph_resource(load_asset_graph: Callable[[], object]) -> ResourceDefinition:
    """The resource the catch-up op plans with: the code location's asset graph, loaded when a run needs it
    (the loader refers to the code location's `Definitions`, which do not exist yet when this is built)."""
    return ResourceDefinition(resource_fn=lambda _: load_asset_graph(),
                              description="The code location's asset graph (what the catch-up job plans over)")


def shard_asset_keys(asset_graph) -> list[AssetKey]:
    """The materializable assets partitioned by `video_shards`, upstream first."""
    return [
        key
        for key in asset_graph.toposorted_asset_keys
        if asset_graph.has(key)
        and asset_graph.get(key).is_materializable
        and getattr(asset_graph.get(key).partitions_def, "name", None) == video_shards.name
    ]


def plan_catch_up(instance: DagsterInstance, asset_graph, shards: Iterable[str] | None = None) -> dict[str, list[str]]:
    """shard -> the asset names it needs, in dependency order; shards that are up to date are left out.

    An asset partition needs a run when it was never materialized, when an upstream partition was
    materialized after it, or when an upstream partition needs a run itself."""
    keys = shard_asset_keys(asset_graph)
    shards = list(instance.get_dynamic_partitions(video_shards.name) if shards is None else shards)
    # One query per asset: the storage id of each partition's latest materialization (ids increase).
    latest = {
        key: instance.event_log_storage.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION)
        for key in keys
    }
    plan: dict[str, list[str]] = {}
    for shard in shards:
        todo: list[AssetKey] = []
        for key in keys:
            own = latest[key].get(shard)
            parents = [p for p in asset_graph.get(key).parent_keys if p in latest]
            if (
                own is None
                or any(p in todo for p in parents)
                or any(latest[p].get(shard, -1) > own for p in parents)
            ):
                todo.append(key)
        if todo:
            plan[shard] = [k.to_user_string() for k in todo]
    return plan


def _backfills_tagged(instance: DagsterInstance, tags: Mapping[str, str], statuses=None) -> list[PartitionBackfill]:
    # Tags are compared here: storages without the backfill-tags index only find backfills by tag
    # once they have launched runs.
    recent = instance.get_backfills(filters=BulkActionsFilter(statuses=statuses), limit=200)
    return [b for b in recent if all(b.tags.get(k) == v for k, v in tags.items())]


def active_catch_up_backfills(instance: DagsterInstance) -> list[PartitionBackfill]:
    return _backfills_tagged(instance, {TRIGGER_TAG: CATCH_UP}, ACTIVE_STATUSES)


def submit_catch_up_backfill(
    instance: DagsterInstance, asset_graph, plan: Mapping[str, Sequence[str]], tags: Mapping[str, str], title: str
) -> str:
    """Submits one asset backfill for the plan; the backfill daemon runs it. Returns its id."""
    subset = AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(AssetKey.from_user_string(a), shard) for shard, assets in plan.items() for a in assets},
        asset_graph,
    )
    backfill_id = make_new_backfill_id()
    instance.add_backfill(
        PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id,
            backfill_timestamp=time.time(),
            tags={**tags, TRIGGER_TAG: CATCH_UP},
            dynamic_partitions_store=instance,
            asset_graph_subset=subset,
            title=title,
            description="Shards whose assets were missing or stale, planned by the catch_up_backfill job",
            run_config=None,
        )
    )
    return backfill_id


class CatchUpConfig(Config):
    dry_run: bool = False
    max_shards: int = 0  # 0 = every shard that needs work; otherwise the first N (in ingest order)


@op(description="Plan which shards are missing or stale downstream and submit one backfill for them",
    required_resource_keys={ASSET_GRAPH_RESOURCE})
def plan_and_submit_catch_up(context: OpExecutionContext, config: CatchUpConfig) -> None:
    instance, asset_graph = context.instance, getattr(context.resources, ASSET_GRAPH_RESOURCE)
    active = [b for b in active_catch_up_backfills(instance) if b.tags.get(PLANNED_BY_TAG) != context.run_id]
    if active:
        context.log.info(f"catch-up backfill {active[0].backfill_id} is still running; nothing submitted")
        return
    plan = plan_catch_up(instance, asset_graph)
    if config.max_shards:
        plan = dict(list(plan.items())[: config.max_shards])
    rows = [{"shard": shard, "assets": " → ".join(assets)} for shard, assets in plan.items()]
    context.log.info(f"catch-up: {len(plan)} shards need work\n{markdown_table(rows, limit=50)}")
    if not plan or config.dry_run:
        return
    # A retried op must not submit a second backfill for the same plan.
    mine = _backfills_tagged(instance, {PLANNED_BY_TAG: context.run_id})
    if mine:
        context.log.info(f"backfill {mine[0].backfill_id} was already submitted by this run")
        return
    tags = {k: v for k, v in context.run.tags.items() if k.startswith("panda/")}
    backfill_id = submit_catch_up_backfill(
        instance, asset_graph, plan, {**tags, PLANNED_BY_TAG: context.run_id},
        title=f"catch-up: {len(plan)} shards",
    )
    context.log.info(f"submitted backfill {backfill_id} for {len(plan)} shards")


@job(
    description="Submits one backfill of every shard that is missing or stale downstream (run nightly "
    "by the `nightly_catch_up` schedule; launch it by hand for an immediate catch-up)",
    tags={TRIGGER_TAG: CATCH_UP},
)
def catch_up_backfill():
    plan_and_submit_catch_up()


@schedule(
    job=catch_up_backfill,
    cron_schedule=os.environ.get("PANDA_CATCH_UP_CRON", "0 3 * * *"),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every night (03:00 UTC; PANDA_CATCH_UP_CRON overrides): backfill the shards whose "
    "assets are missing or stale",
)
def nightly_catch_up(context: ScheduleEvaluationContext) -> RunRequest:
    tick = context.scheduled_execution_time
    return RunRequest(
        run_key=tick.isoformat() if tick else None,
        tags={TRIGGER_TAG: CATCH_UP, "panda/schedule": "nightly_catch_up"},
    )
