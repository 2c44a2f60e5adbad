"""S3 under faults: a proxy on 127.0.0.1 in front of a moto server answers 500/503 or stalls. The
project's S3 client (lib.storage.s3_client: botocore 'standard' retries, bounded timeouts) gets every
operation through; an object that keeps failing fails only its shard, with a message naming it."""

from __future__ import annotations

import itertools

import boto3
import pytest
from reliability_faults import FaultyS3Proxy

from panda_dagster.lib.storage import S3Storage, StorageError, s3_client


@pytest.fixture
def moto_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("PANDA_S3_READ_TIMEOUT_S", "1")
    monkeypatch.setenv("PANDA_S3_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("PANDA_S3_ATTEMPTS", "5")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="artifacts")
    yield endpoint
    server.stop()


def _cycling(actions):
    cycle = itertools.cycle(actions)
    return lambda method, path, query: next(cycle)


def test_every_storage_operation_survives_500_503_and_stalls(moto_endpoint, tmp_path):
    # Three faults before every success: 500, 503, a stall longer than the read timeout.
    with FaultyS3Proxy(moto_endpoint, _cycling([500, 503, "stall", None]), stall_s=2.5) as proxy:
        storage = S3Storage(s3_client(proxy.endpoint), "artifacts", "p", cache_dir=tmp_path / "cache")
        storage.put_bytes("shards/a/x.json", b'{"a": 1}')
        source = tmp_path / "clip.bin"
        source.write_bytes(b"\0" * 10_000)
        storage.put_file("shards/a/clip.bin", source)
        assert storage.get_bytes("shards/a/x.json") == b'{"a": 1}'
        assert storage.exists("shards/a/x.json") and not storage.exists("shards/a/none.json")
        assert storage.list("shards/a") == ["shards/a/clip.bin", "shards/a/x.json"]
        assert storage.local_copy("shards/a/clip.bin").read_bytes() == source.read_bytes()
        assert storage.delete_prefix("shards/a") == 2
        assert storage.list("shards") == []
    kinds = [action for _, _, action in proxy.faults]
    assert kinds.count(500) >= 8 and kinds.count(503) >= 8 and kinds.count("stall") >= 8
    assert len(proxy.requests) == 4 * (len(proxy.requests) // 4)  # every operation needed all four tries


def test_a_persistently_failing_object_fails_only_its_shard_and_is_named(panda_home, tmp_path, moto_endpoint):
    from dagster import DagsterInstance, Failure, PartitionKeyRange, build_asset_context

    from panda_dagster.common.partitions import video_shards
    from panda_dagster.common.resources import PandaResource
    from panda_dagster.fixtures.synth import Scene, render_video
    from panda_dagster.ingest.assets import RawVideosConfig, raw_videos
    from panda_dagster.lib.ingest import ingest_source

    broken = {"on": False}

    def rule(method, path, query):
        if broken["on"] and path.endswith("/manifests/s3f-00002.jsonl"):
            return 503
        return None

    videos = tmp_path / "videos"
    for i in range(2):
        render_video(videos / f"v{i}.mp4", [Scene(0.6, seed=80 + i)], audio=False)
    with FaultyS3Proxy(moto_endpoint, rule) as proxy:
        panda = PandaResource(home=str(panda_home), s3_bucket="artifacts", s3_prefix="p",
                              s3_endpoint_url=proxy.endpoint)
        shards = ingest_source(videos, panda.catalog(), panda.storage(), shard_size=1, prefix="s3f").keys
        assert shards == ["s3f-00001", "s3f-00002"]
        broken["on"] = True
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(video_shards.name, shards)
        # Invoked directly (one step attempt: TRANSIENT_RETRY's minutes of backoff would only repeat it).
        context = build_asset_context(instance=instance, partition_key_range=PartitionKeyRange(*shards))
        with pytest.raises(Failure) as failure:
            list(raw_videos(context, config=RawVideosConfig(), panda=panda))
        assert "raw_videos failed for 1 of 2 shards: s3f-00002" in failure.value.description
        text = failure.value.metadata["failed_shards"].value
        assert list(text) == ["s3f-00002"]
        assert "s3://artifacts/p/manifests/s3f-00002.jsonl" in text["s3f-00002"]
        assert "503" in text["s3f-00002"] or "SlowDown" in text["s3f-00002"]
        # The other shard was written; the broken object was tried the client's 5 times per attempt.
        assert [v.video_id for v in panda.catalog().rows("videos", "s3f-00001")]
        assert panda.catalog().rows("videos", "s3f-00002") == []
        assert sum(1 for _, p, _ in proxy.faults if p.endswith("s3f-00002.jsonl")) == 5


def test_storage_errors_name_the_object(moto_endpoint, tmp_path):
    with FaultyS3Proxy(moto_endpoint, lambda m, p, q: 500) as proxy:
        storage = S3Storage(s3_client(proxy.endpoint), "artifacts", "p")
        with pytest.raises(StorageError, match=r"S3 read of s3://artifacts/p/shards/x.jpg failed"):
            storage.get_bytes("shards/x.jpg")
        assert len(proxy.requests) == 5
