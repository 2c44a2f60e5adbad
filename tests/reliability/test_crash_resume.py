"""Crash and resume, stage by stage: SIGKILL a `dagster asset materialize` of one per-shard stage right
after it made its first durable output (a catalog file or an artifact), check that nothing half-written
is visible, run the same command again with no clean-up (the dead run's pool slot and STARTED status
are dealt with by the instance), and finally compare the whole catalog with an uninterrupted run of
the pipeline over the same shard: same rows, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Columns that legitimately differ between two runs of the same input.
VOLATILE = {"probed_at", "ingested_at", "created_at", "fetched_at", "computed_at", "captioned_at", "scored_at",
            "evaluated_at", "seconds", "elapsed_s", "run_id"}


def _outputs(home: Path) -> set[Path]:
    return {p for root in (home / "lake", home / "artifacts") if root.exists() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def _assert_nothing_half_written(home: Path) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    for path in _outputs(home):
        if path.suffix == ".parquet":
            pq.read_table(path)  # raises on a truncated file
        elif path.suffix in (".jpg", ".jpeg", ".png"):
            with Image.open(path) as image:
                image.load()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                if line.strip():
                    json.loads(line)


def _materialize(select: str, shard: str) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions", "--select", select,
            "--partition", shard]


def _kill_after_first_output(home: Path, command: list[str], log: Path, timeout_s: float = 400) -> bool:
    """Run `command`; SIGKILL its process group as soon as a new catalog file or artifact appears.
    False when the run finished before writing anything new (nothing to kill)."""
    before = {p: p.stat().st_mtime_ns for p in _outputs(home)}
    proc = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), start_new_session=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            now = _outputs(home)
            if any(p not in before or p.stat().st_mtime_ns != before[p] for p in now if p.exists()):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return True
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    return False


def _snapshot(home: Path) -> dict[str, list[tuple]]:
    from panda_dagster.lib.catalog import Catalog

    catalog = Catalog(home)
    out = {}
    for table in sorted(catalog.tables):
        rows = []
        for shard in catalog.shards(table):
            frame = catalog.read_shard(table, shard)
            frame = frame[[c for c in frame.columns if c not in VOLATILE]]
            rows += [tuple(json.dumps(v, default=str, sort_keys=True) for v in r) for r in frame.itertuples(index=False)]
        out[table] = sorted(rows)
    return out


@pytest.mark.slow
def test_sigkill_mid_stage_then_resume_equals_an_uninterrupted_run(panda_home, tmp_path):
    from dagster import DagsterInstance, DagsterRunStatus

    from panda_dagster.common.jobs import SHARD_ASSETS
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.fixtures.synth import Scene, render_video
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.storage import LocalStorage

    videos = tmp_path / "videos"
    # Two shots of 3 s at 240p: long and large enough for clips (min_clip_s 2.5) and the clip filters.
    render_video(videos / "a.mp4", [Scene(3.0, seed=51), Scene(3.0, seed=52)], audio=False, size=(426, 240))
    (shard,) = ingest_source(videos, Catalog(panda_home), LocalStorage(panda_home / "artifacts"), shard_size=10,
                             prefix="cr").keys
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(video_shards.name, [shard])

    killed, not_killed = [], {}
    for stage in SHARD_ASSETS:
        log = tmp_path / f"killed-{stage}.log"
        if _kill_after_first_output(panda_home, _materialize(stage, shard), log):
            killed.append(stage)
            _assert_nothing_half_written(panda_home)
        else:
            not_killed[stage] = log.read_text(errors="replace")[-1500:]
        resumed = subprocess.run(_materialize(stage, shard), cwd=REPO, env=os.environ.copy(), capture_output=True,
                                 text=True, timeout=600)
        assert resumed.returncode == 0, f"{stage} after a kill:\n{resumed.stdout[-3000:]}{resumed.stderr[-3000:]}"
    assert len(killed) >= len(SHARD_ASSETS) - 1, not_killed  # (a stage may finish before the poll sees it)
    after_crashes = _snapshot(panda_home)
    sizes = {table: len(rows) for table, rows in after_crashes.items()}
    assert sizes["videos"] == 1 and sizes["clips"] and sizes["teacher_captions"], sizes

    reference = subprocess.run(_materialize(",".join(SHARD_ASSETS), shard), cwd=REPO, env=os.environ.copy(),
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    uninterrupted = _snapshot(panda_home)
    differing = [t for t in uninterrupted if uninterrupted[t] != after_crashes[t]]
    assert differing == [], {t: (len(after_crashes[t]), len(uninterrupted[t])) for t in differing}
    with DagsterInstance.get() as instance:
        statuses = {r.run_id: r.status for r in instance.get_runs()}
        # Every killed run was found dead and failed; none is left STARTED.
        assert DagsterRunStatus.STARTED not in statuses.values()
        assert len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots) == 0
