from __future__ import annotations

import http.server
import threading
from functools import partial

import boto3
import pytest

from panda_dagster.lib.storage import FetchError, LocalStorage, S3Storage, artifact_reader, fetch_source, read_artifact


@pytest.fixture(scope="module")
def moto_endpoint():
    """A real S3 API over HTTP on localhost (moto's server), like MinIO would be."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="panda-test")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="panda-test"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket="panda-test", Key=obj["Key"])
    client.delete_bucket(Bucket="panda-test")


def _exercise(storage, tmp_path):
    uri = storage.put_bytes("shards/s1/a.txt", b"hello")
    assert uri.endswith("shards/s1/a.txt")
    src = tmp_path / "b.bin"
    src.write_bytes(b"\x00\x01" * 1000)
    storage.put_file("shards/s1/sub/b.bin", src)
    storage.put_bytes("shards/s2/c.txt", b"c")
    assert storage.get_bytes("shards/s1/a.txt") == b"hello"
    assert storage.exists("shards/s1/a.txt") and not storage.exists("shards/s1/missing")
    assert storage.list("shards/s1") == ["shards/s1/a.txt", "shards/s1/sub/b.bin"]
    assert storage.local_copy("shards/s1/sub/b.bin").read_bytes() == src.read_bytes()
    storage.put_bytes("shards/s1/a.txt", b"replaced")
    assert storage.get_bytes("shards/s1/a.txt") == b"replaced"
    assert storage.delete_prefix("shards/s1") == 2
    assert storage.list("shards/s1") == [] and storage.list("shards") == ["shards/s2/c.txt"]
    with pytest.raises(ValueError):
        storage.put_bytes("../outside", b"x")


def test_local_storage(tmp_path):
    _exercise(LocalStorage(tmp_path / "artifacts"), tmp_path)


def test_s3_storage_over_http(s3_client, tmp_path):
    storage = S3Storage(s3_client, "panda-test", "prefix/x", cache_dir=tmp_path / "cache")
    _exercise(storage, tmp_path)
    assert storage.uri("k") == "s3://panda-test/prefix/x/k"
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket="panda-test")["Contents"]]
    assert keys == ["prefix/x/shards/s2/c.txt"]


def test_fetch_source_local_s3_http_and_errors(s3_client, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video but bytes are bytes")
    assert fetch_source(str(video), tmp_path / "cache") == video
    s3_client.put_object(Bucket="panda-test", Key="in/v.mp4", Body=video.read_bytes())
    got = fetch_source("s3://panda-test/in/v.mp4", tmp_path / "cache", s3_client=s3_client)
    assert got.read_bytes() == video.read_bytes() and got.suffix == ".mp4"

    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert fetch_source(f"{base}/v.mp4", tmp_path / "cache").read_bytes() == video.read_bytes()
        with pytest.raises(FetchError, match="404"):
            fetch_source(f"{base}/missing.mp4", tmp_path / "cache")
    finally:
        server.shutdown()
    with pytest.raises(FetchError, match="file not found"):
        fetch_source(str(tmp_path / "nope.mp4"), tmp_path / "cache")
    with pytest.raises(FetchError, match="directory"):
        fetch_source(str(tmp_path), tmp_path / "cache")
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        fetch_source("ftp://example.invalid/v.mp4", tmp_path / "cache")
    with pytest.raises(FetchError, match="could not download"):
        fetch_source("s3://panda-test/in/missing.mp4", tmp_path / "cache", s3_client=s3_client)


def test_one_reader_for_artifact_uris(s3_client, tmp_path):
    """Key frames and other artifacts are read back by the URI a stage stored, whatever its kind."""
    local = LocalStorage(tmp_path / "artifacts")
    s3 = S3Storage(s3_client, "panda-test", prefix="runs/1", cache_dir=tmp_path / "cache")
    local_uri = local.put_bytes("shards/s1/keyframes/a.jpg", b"local bytes")
    s3_uri = s3.put_bytes("shards/s1/keyframes/b.jpg", b"s3 bytes")
    assert s3_uri == "s3://panda-test/runs/1/shards/s1/keyframes/b.jpg"
    plain = tmp_path / "loose file.jpg"
    plain.write_bytes(b"plain")

    assert read_artifact(local_uri, local) == b"local bytes"
    assert read_artifact(local_uri) == b"local bytes"  # a local storage's URIs are plain paths
    assert read_artifact(plain.as_uri()) == b"plain"  # file:// with an escaped space
    assert read_artifact(s3_uri, s3) == b"s3 bytes"  # through the storage's client and prefix
    assert read_artifact(s3_uri, s3_client=s3_client) == b"s3 bytes"  # any s3:// URI, given a client
    assert read_artifact(s3_uri, local, s3_client=s3_client) == b"s3 bytes"  # not this storage's: by scheme
    read = artifact_reader(s3)
    assert read(s3_uri) == b"s3 bytes" and read(str(plain)) == b"plain"
    with pytest.raises(FileNotFoundError, match="artifact not found"):
        read_artifact(str(tmp_path / "missing.jpg"), local)
    with pytest.raises(FileNotFoundError, match="unsupported URI scheme 'http'"):
        read_artifact("http://example.org/a.jpg")
