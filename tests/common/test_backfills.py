"""Backfills: raw_videos processes a range of shards in one run (CLI `--partition-range`), a failed
shard does not stop the others, and the nightly catch-up plans and submits a backfill of exactly the
shards that are missing or stale downstream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, build_schedule_context, materialize
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from panda_dagster.common.jobs import SHARD_ASSETS
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.schedules import CATCH_UP, TRIGGER_TAG, nightly_catch_up, plan_catch_up
from panda_dagster.ingest.assets import raw_videos
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source, manifest_key
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.fixtures.synth import Scene, render_video

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PIPELINE = list(SHARD_ASSETS)  # every per-shard asset, upstream first
UP_TO_CLIPS = PIPELINE[1:PIPELINE.index("clips") + 1]  # what a shard with raw_videos needs up to its clips
AFTER_CLIPS = PIPELINE[PIPELINE.index("clips") + 1:]  # what re-materialized clips make stale


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    for i in range(3):
        render_video(d / f"v{i}.mp4", [Scene(0.8, seed=10 + i)], audio=False)
    return d


def _ingest(home: Path, folder: Path) -> list[str]:
    return ingest_source(folder, Catalog(home), LocalStorage(home / "artifacts"), shard_size=1, prefix="bf").keys


def _materialize_range(home: Path, instance: DagsterInstance, first: str, last: str):
    return materialize(
        [raw_videos],
        instance=instance,
        resources={"panda": PandaResource(home=str(home))},
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
    )


@pytest.mark.slow
def test_cli_partition_range_materializes_every_shard_in_one_run(panda_home, videos):
    shards = _ingest(panda_home, videos)
    assert shards == ["bf-00001", "bf-00002", "bf-00003"]
    with DagsterInstance.get() as instance:  # the instance of the top-level dagster.yaml
        instance.add_dynamic_partitions(video_shards.name, shards)
    proc = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions", "--select", "raw_videos",
         "--partition-range", "bf-00001...bf-00003"],
        cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    per_shard = Catalog(panda_home).query("SELECT shard, count(*) AS n FROM videos GROUP BY shard ORDER BY shard")
    assert per_shard.to_dict("records") == [{"shard": s, "n": 1} for s in shards]
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 1  # one run, three shards
        assert instance.get_materialized_partitions(AssetKey("raw_videos")) == set(shards)


def test_a_failed_shard_does_not_stop_the_others(panda_home, videos):
    shards = _ingest(panda_home, videos)
    LocalStorage(panda_home / "artifacts").delete_prefix(manifest_key(shards[1]))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    result = _materialize_range(panda_home, instance, shards[0], shards[-1])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert f"failed for 1 of 3 shards: {shards[1]}" in failure.error.message
    assert "no manifest" in failure.user_failure_data.metadata["failed_shards"].value[shards[1]]
    # A missing manifest is permanent: no retries were spent on it.
    assert not any(e.is_step_up_for_retry for e in result.all_events)
    written = set(Catalog(panda_home).query("SELECT shard FROM videos")["shard"])
    assert written == {shards[0], shards[2]}


def _report(instance: DagsterInstance, asset: str, shard: str) -> None:
    instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=shard))


def test_catch_up_plans_missing_and_stale_shards_and_submits_one_backfill(panda_home, videos):
    from panda_dagster.definitions import defs

    repo = defs.get_repository_def()
    shards = _ingest(panda_home, videos)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    assert plan_catch_up(instance, repo.asset_graph) == {s: PIPELINE for s in shards}

    # Shards 1 and 2 get raw_videos for real (one run); shard 1 then looks complete downstream.
    assert _materialize_range(panda_home, instance, shards[0], shards[1]).success
    for asset in PIPELINE[1:]:
        _report(instance, asset, shards[0])
    plan = plan_catch_up(instance, repo.asset_graph)
    assert plan == {shards[1]: PIPELINE[1:], shards[2]: PIPELINE}

    # Re-materializing shard 1's clips makes everything below it stale, not what is above it.
    _report(instance, "clips", shards[0])
    assert plan_catch_up(instance, repo.asset_graph)[shards[0]] == AFTER_CLIPS

    job = defs.get_job_def("catch_up_backfill")
    run = job.execute_in_process(instance=instance, tags={"panda/schedule": "nightly_catch_up"})
    assert run.success
    (backfill,) = instance.get_backfills()
    assert backfill.status == BulkActionStatus.REQUESTED
    assert backfill.tags[TRIGGER_TAG] == CATCH_UP and backfill.tags["panda/schedule"] == "nightly_catch_up"
    target = backfill.asset_backfill_data.target_subset
    by_asset = {key.to_user_string(): set(target.get_partitions_subset(key).get_partition_keys())
                for key in target.asset_keys}
    assert by_asset == {
        "raw_videos": {shards[2]},
        **{a: {shards[1], shards[2]} for a in UP_TO_CLIPS},
        **{a: set(shards) for a in AFTER_CLIPS},
    }
    # While that backfill is pending, the next night submits nothing on top of it.
    assert job.execute_in_process(instance=instance).success
    assert len(instance.get_backfills()) == 1


def test_nightly_schedule_requests_the_catch_up_job():
    from datetime import datetime, timezone

    assert nightly_catch_up.cron_schedule == "0 3 * * *" and nightly_catch_up.execution_timezone == "UTC"
    assert nightly_catch_up.job_name == "catch_up_backfill"
    tick = datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc)
    request = nightly_catch_up.evaluate_tick(build_schedule_context(scheduled_execution_time=tick)).run_requests[0]
    assert request.tags[TRIGGER_TAG] == CATCH_UP and request.run_key == tick.isoformat()


def test_the_catch_up_job_plans_over_the_graph_its_code_location_hands_in():
    """common/schedules.py sits below definitions.py: it does not import it, it is handed the asset graph."""
    from dagster import Definitions, asset

    from panda_dagster.common.schedules import ASSET_GRAPH_RESOURCE, asset_graph_resource, catch_up_backfill

    code = "import sys, panda_dagster.common.schedules; print('panda_dagster.definitions' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert loaded.stdout.strip() == "False", loaded.stderr[-2000:]

    @asset(partitions_def=video_shards)
    def first() -> None: ...

    @asset(partitions_def=video_shards, deps=[first])
    def second() -> None: ...

    location = Definitions(assets=[first, second])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, ["s1", "s2"])
    _report(instance, "first", "s2")
    resources = {ASSET_GRAPH_RESOURCE: asset_graph_resource(lambda: location.get_repository_def().asset_graph)}
    assert catch_up_backfill.execute_in_process(instance=instance, resources=resources).success
    (backfill,) = instance.get_backfills()
    target = backfill.asset_backfill_data.target_subset
    assert {key.to_user_string(): set(target.get_partitions_subset(key).get_partition_keys())
            for key in target.asset_keys} == {"first": {"s1"}, "second": {"s1", "s2"}}
