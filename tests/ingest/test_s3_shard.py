"""raw_videos with artifact storage on S3 (moto server over real HTTP) and an s3:// source video."""

from __future__ import annotations

import boto3
import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.ingest.assets import raw_videos
from panda_dagster.lib.ingest import ingest_source, manifest_key
from panda_dagster.fixtures.synth import Scene, render_video


@pytest.fixture
def s3_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_raw_videos_with_s3_storage_and_s3_source(panda_home, tmp_path, s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="media")
    client.create_bucket(Bucket="artifacts")
    video = render_video(tmp_path / "clip.mp4", [Scene(1.0, seed=7), Scene(1.0, seed=8)], audio=False)
    client.upload_file(str(video.path), "media", "raw/clip.mp4")
    local = render_video(tmp_path / "local.mp4", [Scene(1.0, seed=9)], audio=False)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"path": "s3://media/raw/clip.mp4", "video_id": "remote"}\n'
        f'{{"path": "{local.path}", "video_id": "local"}}\n'
        '{"path": "s3://media/raw/missing.mp4", "video_id": "gone"}\n'
    )
    panda = PandaResource(home=str(panda_home), s3_bucket="artifacts", s3_prefix="p", s3_endpoint_url=s3_endpoint)
    (shard,) = ingest_source(manifest, panda.catalog(), panda.storage(), shard_size=10, prefix="s3").keys
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="artifacts")["Contents"]]
    assert keys == [f"p/{manifest_key(shard)}"]  # the manifest lives in the bucket, not on local disk
    assert not (panda_home / "artifacts").exists()

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    assert materialize([raw_videos], partition_key=shard, instance=instance, resources={"panda": panda}).success
    videos = panda.catalog().query("SELECT video_id, uri, n_frames FROM videos ORDER BY video_id")
    assert videos.to_dict("records") == [
        {"video_id": "local", "uri": str(local.path), "n_frames": local.n_frames},
        {"video_id": "remote", "uri": "s3://media/raw/clip.mp4", "n_frames": video.n_frames},
    ]
    reason = panda.catalog().query("SELECT reason FROM quarantine WHERE video_id = 'gone'")["reason"][0]
    assert "could not download s3://media/raw/missing.mp4" in reason
