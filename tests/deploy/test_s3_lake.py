"""The shared-nothing catalog: with PANDA_S3_BUCKET set the lake lives in the bucket, and processes
with different PANDA_HOME folders (no shared disk) see one catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.lake import LocalLake, S3Lake, lake_from_env
from panda_dagster.lib.records import QuarantineRecord

REPO = Path(__file__).resolve().parents[2]

# One worker: render its own video, ingest it as a new shard, materialize raw_videos for that shard.
WORKER = r"""
import json, sys
from pathlib import Path
from dagster import DagsterInstance, materialize
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import panda_resource_from_env
from panda_dagster.fixtures.synth import Scene, render_video
from panda_dagster.ingest.assets import raw_videos
from panda_dagster.lib.ingest import ingest_source

name, seed, work = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
video = render_video(work / "videos" / f"{name}.mp4", [Scene(1.0, seed=seed), Scene(1.0, seed=seed + 1)], audio=False)
panda = panda_resource_from_env()
(shard,) = ingest_source(work / "videos", panda.catalog(), panda.storage(), shard_size=10, prefix=name).keys
instance = DagsterInstance.ephemeral()
instance.add_dynamic_partitions(video_shards.name, [shard])
assert materialize([raw_videos], partition_key=shard, instance=instance, resources={"panda": panda}).success
(row,) = panda.catalog().rows("videos", shard)
print(json.dumps({"shard": shard, "video_id": row.video_id, "n_frames": video.n_frames}))
"""

READER = r"""
import json
from panda_dagster.common.resources import panda_resource_from_env
catalog = panda_resource_from_env().catalog()
videos = catalog.query("SELECT shard, video_id, n_frames FROM videos ORDER BY shard").to_dict("records")
shards = catalog.shards("ingested")
rows = {s: [(v.video_id, v.probe.n_frames) for v in catalog.rows("videos", s)] for s in shards}
print(json.dumps({"videos": videos, "ingested": shards, "rows": rows}))
"""


def _env(home: Path, endpoint: str, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANDA_", "DAGSTER_"))}
    env.update(PANDA_HOME=str(home), DAGSTER_HOME=str(REPO), PANDA_S3_BUCKET=bucket, PANDA_S3_PREFIX="p",
               AWS_ENDPOINT_URL=endpoint, PANDA_MODELS="tiny",
               PANDA_DAGSTER_STORAGE=str(home / "dagster" / "storage"),
               PANDA_DAGSTER_ARTIFACTS=str(home / "dagster" / "artifacts"),
               PANDA_DAGSTER_LOGS=str(home / "dagster" / "logs"))
    return env


@pytest.mark.slow
def test_two_homes_write_shards_in_parallel_and_a_third_sees_one_catalog(tmp_path, s3_endpoint):
    bucket = "lake"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    homes = [tmp_path / f"home{i}" for i in (1, 2, 3)]
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, name, str(seed), str(tmp_path / f"work-{name}")],
                         env=_env(home, s3_endpoint, bucket), cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for home, name, seed in ((homes[0], "alpha", 11), (homes[1], "beta", 21))
    ]
    results = []
    for proc in workers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["shard"] != results[1]["shard"]

    # Each worker's shard is in the bucket, one object per table/part/shard.
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
        Bucket=bucket, Prefix="p/lake/videos/")["Contents"]]
    assert sorted(keys) == sorted(f"p/lake/videos/all/{r['shard']}.parquet" for r in results)
    for home, mine in zip(homes, results):  # each writer also keeps its own file in its mirror
        assert (home / "lake" / "videos" / "all" / f"{mine['shard']}.parquet").exists()

    # A third process with an empty home of its own sees both shards: SQL, typed rows, the shard registry.
    assert not homes[2].exists()
    proc = subprocess.run([sys.executable, "-c", READER], env=_env(homes[2], s3_endpoint, bucket), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = sorted(results, key=lambda r: r["shard"])
    assert seen["videos"] == [{"shard": r["shard"], "video_id": r["video_id"], "n_frames": r["n_frames"]}
                              for r in expected]
    assert seen["ingested"] == [r["shard"] for r in expected]
    assert seen["rows"] == {r["shard"]: [[r["video_id"], r["n_frames"]]] for r in expected}

    # The `panda` command line reads the same catalog: the report covers both shards.
    report = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "panda_dagster.cli", "report", "--out", str(report)],
                          env=_env(homes[2], s3_endpoint, bucket), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text(encoding="utf-8")
    assert all(r["shard"] in html for r in results)


def _quarantine(shard: str, reason: str) -> QuarantineRecord:
    return QuarantineRecord(shard=shard, uri=f"/videos/{reason}.mp4", stage="test", reason=reason)


def test_rewrites_and_deletes_reach_other_homes_by_etag(tmp_path, s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="lake")
    writer = Catalog(tmp_path / "a", lake=S3Lake(tmp_path / "a" / "lake", client, "lake", "x"))
    reader = Catalog(tmp_path / "b", lake=S3Lake(tmp_path / "b" / "lake", client, "lake", "x"))

    writer.replace_shard("quarantine", "s1", [_quarantine("s1", "first")], part="test")
    assert [r.reason for r in reader.rows("quarantine", "s1")] == ["first"]
    writer.replace_shard("quarantine", "s1", [_quarantine("s1", "second"), _quarantine("s1", "third")], part="test")
    assert [r.reason for r in reader.rows("quarantine", "s1")] == ["second", "third"]
    assert list(reader.query("SELECT reason FROM quarantine ORDER BY reason")["reason"]) == ["second", "third"]

    # A shard deleted by one home disappears from another home's mirror on its next read.
    writer.delete_shard("quarantine", "s1")
    assert reader.rows("quarantine", "s1") == [] and reader.shards("quarantine") == []
    assert len(reader.query("SELECT * FROM quarantine")) == 0
    assert not list((tmp_path / "b" / "lake" / "quarantine").glob("*/s1.parquet"))


def test_a_failed_upload_leaves_no_local_shard(tmp_path, s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)  # the bucket does not exist: every PUT fails
    catalog = Catalog(tmp_path / "a", lake=S3Lake(tmp_path / "a" / "lake", client, "missing-bucket"))
    with pytest.raises(Exception, match="NoSuchBucket"):
        catalog.replace_shard("quarantine", "s1", [_quarantine("s1", "never stored")], part="test")
    assert not list((tmp_path / "a" / "lake").glob("quarantine/*/s1.parquet"))


def test_the_environment_picks_the_lake(tmp_path):
    assert isinstance(lake_from_env(tmp_path, {}), LocalLake)
    assert isinstance(lake_from_env(tmp_path, {"PANDA_S3_BUCKET": "b", "PANDA_LAKE": "local"}), LocalLake)
    lake = lake_from_env(tmp_path, {"PANDA_S3_BUCKET": "b", "PANDA_S3_PREFIX": "team/x",
                                    "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert isinstance(lake, S3Lake) and lake.describe() == "s3://b/team/x/lake"
