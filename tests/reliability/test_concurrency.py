"""Concurrency: shards written by four processes at once while a reader polls the catalog.

Zero DuckDB lock errors, the reader never fails, and every row of every shard is there at the end.
First at the catalog level (four writer processes replacing their shards of several tables over and
over, tables and views created while they race), then with Dagster: four `dagster asset materialize`
runs of raw_videos, one shard each, at the same time against one instance."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.records import IngestedVideo, QuarantineRecord

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROUNDS = 25
ROWS = 40


def _writer(home: str, shard: str, errors) -> None:
    catalog = Catalog(home)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        for r in range(ROUNDS):
            catalog.replace_shard("ingested", shard, [IngestedVideo(f"{shard}-v{i}", shard, f"/{i}.mp4", "src", None, now)
                                                      for i in range(ROWS)])
            catalog.replace_shard("quarantine", shard, [QuarantineRecord(shard, f"/{i}.mp4", f"stage{r % 3}", "why", f"v{i}")
                                                        for i in range(ROWS)], part=f"stage{r % 3}")
    except Exception as exc:  # reported to the test
        errors.put(f"{shard}: {type(exc).__name__}: {exc}")


def _view_creator(home: str, errors) -> None:
    """New tables one after another: each creates its view, opening the DuckDB file read-write."""
    from panda_dagster.lib.schema import Table

    now = dt.datetime.now(dt.timezone.utc)
    try:
        for i in range(20):
            catalog = Catalog(home, tables=[Table(f"extra_{i}", IngestedVideo)])
            catalog.replace_shard(f"extra_{i}", "x", [IngestedVideo("v", "x", "/v.mp4", "src", None, now)])
    except Exception as exc:
        errors.put(f"view creator: {type(exc).__name__}: {exc}")


class Poller(threading.Thread):
    """Reads the catalog in a loop (SQL over the views and per-shard Parquet) and records every failure."""

    def __init__(self, home: Path, tables: tuple[str, ...]):
        super().__init__(daemon=True)
        self.catalog, self.tables = Catalog(home), tables
        self.stop, self.reads, self.errors = threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            for table in self.tables:
                try:
                    if self.catalog.shards(table):
                        self.catalog.query(f'SELECT count(*) AS n FROM "{table}"')
                        for shard in self.catalog.shards(table):
                            self.catalog.rows(table, shard)
                    self.reads += 1
                except Exception as exc:  # noqa: BLE001  the point of the test
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)


def test_four_writer_processes_and_a_polling_reader(tmp_path):
    home = tmp_path / "home"
    reader = Poller(home, ("ingested", "quarantine"))
    reader.start()
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    shards = [f"c-{i}" for i in range(4)]
    writers = [context.Process(target=_writer, args=(str(home), s, errors)) for s in shards]
    writers.append(context.Process(target=_view_creator, args=(str(home), errors)))
    for w in writers:
        w.start()
    for w in writers:
        w.join(300)
    reader.stop.set()
    reader.join(30)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == [] and all(w.exitcode == 0 for w in writers)
    assert reader.errors == [] and reader.reads > 10
    catalog = Catalog(home)
    counts = catalog.query("SELECT shard, count(*) AS n FROM ingested GROUP BY shard ORDER BY shard")
    assert counts.to_dict("records") == [{"shard": s, "n": ROWS} for s in shards]
    parts = catalog.query("SELECT shard, stage, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY ALL")
    assert len(parts) == 4 * 3 and set(parts["n"]) == {ROWS}


@pytest.mark.slow
def test_four_concurrent_dagster_runs_one_shard_each(panda_home, tmp_path):
    from dagster import DagsterInstance, DagsterRunStatus

    from panda_dagster.common.partitions import video_shards
    from panda_dagster.fixtures.synth import Scene, render_video
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.storage import LocalStorage

    videos = tmp_path / "videos"
    for i in range(4):
        render_video(videos / f"v{i}.mp4", [Scene(0.6, seed=90 + i)], audio=False)
    shards = ingest_source(videos, Catalog(panda_home), LocalStorage(panda_home / "artifacts"), shard_size=1,
                           prefix="cc").keys
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(video_shards.name, shards)
    reader = Poller(panda_home, ("videos", "quarantine", "fetches"))
    reader.start()
    procs = [subprocess.Popen([str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions",
                               "--select", "raw_videos", "--partition", shard], cwd=REPO, env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for shard in shards]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    reader.stop.set()
    reader.join(30)
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert "Could not set lock" not in out
    assert reader.errors == [] and reader.reads > 0
    videos_per_shard = Catalog(panda_home).query("SELECT shard, count(*) AS n FROM videos GROUP BY shard ORDER BY shard")
    assert videos_per_shard.to_dict("records") == [{"shard": s, "n": 1} for s in shards]
    with DagsterInstance.get() as instance:
        assert [r.status for r in instance.get_runs()] == [DagsterRunStatus.SUCCESS] * 4
