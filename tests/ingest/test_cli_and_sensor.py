"""The user's path: `panda ingest` then `dagster asset materialize`, and the inbox sensor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, build_sensor_context

from panda_dagster.common.resources import PandaResource
from panda_dagster.ingest.sensors import inbox_sensor
from panda_dagster.lib.catalog import Catalog
from panda_dagster.fixtures.synth import Scene, render_video

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    render_video(d / "a.mp4", [Scene(1.0, seed=1), Scene(1.0, seed=2)], subtitles=[(0.0, 0.8, "hello")])
    render_video(d / "sub" / "b.mp4", [Scene(1.2, seed=3)], audio=False)
    (d / "c.mp4").write_bytes(b"")
    return d


def _run(args, **kw):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300, **kw)


@pytest.mark.slow
def test_panda_ingest_then_dagster_asset_materialize(panda_home, folder):
    first = _run([str(BIN / "panda"), "ingest", str(folder), "--shard-size", "2", "--prefix", "cli"])
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["cli-00001", "cli-00002"]
    again = _run([str(BIN / "panda"), "ingest", str(folder), "--shard-size", "2", "--prefix", "cli"])
    assert again.returncode == 0 and again.stdout.split() == [] and "3 already ingested" in again.stderr

    with DagsterInstance.get() as instance:  # the instance of the top-level dagster.yaml
        assert instance.get_dynamic_partitions("video_shards") == ["cli-00001", "cli-00002"]
    for key in ("cli-00001", "cli-00002"):
        proc = _run([str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions",
                     "--select", "raw_videos", "--partition", key])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    catalog = Catalog(panda_home)
    assert sorted(catalog.query("SELECT video_id FROM videos")["video_id"].str.split("-").str[0]) == ["a", "b"]
    assert catalog.query("SELECT count(*) AS n FROM subtitles")["n"][0] == 1
    assert "empty" in catalog.query("SELECT reason FROM quarantine")["reason"][0]
    assert (panda_home / "dagster" / "storage").is_dir()  # SQLite instance storage under PANDA_HOME


def test_cli_errors_are_clear(panda_home, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"file": "a.mp4"}]).to_csv(bad, index=False)
    proc = _run([str(BIN / "panda"), "ingest", str(bad)])
    assert proc.returncode == 2 and "no `path` column" in proc.stderr and proc.stdout == ""
    proc = _run([str(BIN / "panda"), "ingest", str(tmp_path / "nope")])
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr


def test_inbox_sensor_ingests_dropped_manifests(panda_home, folder):
    inbox = panda_home / "inbox"
    inbox.mkdir()
    pd.DataFrame([{"path": str(folder / "a.mp4")}, {"path": str(folder / "sub" / "b.mp4")}]).to_csv(
        inbox / "Batch 1.csv", index=False
    )
    (inbox / "broken.csv").write_text("nopath\nx\n")
    instance = DagsterInstance.ephemeral()
    panda = PandaResource(home=str(panda_home))
    result = inbox_sensor(build_sensor_context(instance=instance, resources={"panda": panda}))
    keys = [r.partition_key for r in result.run_requests]
    assert keys == ["batch-1-00001"]
    assert result.dynamic_partitions_requests[0].partition_keys == keys
    assert (inbox / "processed" / "Batch 1.csv").exists() and not (inbox / "Batch 1.csv").exists()
    assert "no `path` column" in (inbox / "failed" / "broken.csv.error.txt").read_text()
    assert Catalog(panda_home).query("SELECT count(*) AS n FROM ingested")["n"][0] == 2

    instance.add_dynamic_partitions("video_shards", keys)  # what the daemon does with the request
    again = inbox_sensor(build_sensor_context(instance=instance, resources={"panda": panda}))
    assert again.run_requests == [] and again.dynamic_partitions_requests == []


def test_definitions_validate_and_graph_shape(panda_home):
    proc = _run([str(BIN / "dagster"), "definitions", "validate", "-m", "panda_dagster.definitions"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    from dagster import AssetKey

    from panda_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    chain = ["raw_videos", "clips", "teacher_captions", "selected_captions", "eval_metrics"]
    for upstream, downstream in zip(chain, chain[1:]):
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys, (upstream, downstream)
    for name in chain:
        partitions = graph.get(AssetKey(name)).partitions_def
        assert partitions is not None and partitions.name == "video_shards", name
