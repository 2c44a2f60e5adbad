"""URL sources under network faults: 429/503 with Retry-After, stalls, bodies cut mid-way, servers with
and without Range support; every URL recorded in `fetches`; `panda ingest --retry-failed` re-queues
the failed ones. A local server on 127.0.0.1 counts every request, so the retry counts are exact."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_faults import FaultyHTTPServer

from panda_dagster.lib.fetch import DownloadFailed, FetchPolicy, download_url

FAST = FetchPolicy(attempts=5, timeout_s=1.0, backoff_s=0.01, max_backoff_s=0.05)
BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


def test_429_503_and_a_cut_body_are_retried_and_resumed_with_range(tmp_path):
    with FaultyHTTPServer() as server:
        url = server.add("/v.mp4", BODY, ["429", "503", "cut", "ok"])
        got = download_url(url, tmp_path / "v.mp4", FAST)
        ranges = server.requests["/v.mp4"]
    assert got.path.read_bytes() == BODY and got.sha256 == SHA and got.bytes == len(BODY)
    assert got.attempts == 4 and got.resumed and got.http_status == 206
    assert ranges[:3] == [None, None, None] and ranges[3] == f"bytes={len(BODY) // 2}-"
    assert not (tmp_path / "v.mp4.part").exists()
    # Downloaded once: a second call is served from the cache without a request.
    with FaultyHTTPServer() as server:
        again = download_url(server.add("/v.mp4", BODY, ["404"]), tmp_path / "v.mp4", FAST)
        assert again.attempts == 0 and again.sha256 == SHA and server.requests["/v.mp4"] == []


def test_a_stalled_body_times_out_and_resumes(tmp_path):
    with FaultyHTTPServer(stall_s=3.0) as server:
        url = server.add("/s.mp4", BODY, ["stall", "ok"])
        got = download_url(url, tmp_path / "s.mp4", FetchPolicy(attempts=3, timeout_s=0.5, backoff_s=0.01))
        assert server.requests["/s.mp4"] == [None, "bytes=100-"]
    assert got.path.read_bytes() == BODY and got.resumed


def test_a_server_without_ranges_restarts_the_body(tmp_path):
    with FaultyHTTPServer() as server:
        url = server.add("/n.mp4", BODY, ["cut", "norange"])
        got = download_url(url, tmp_path / "n.mp4", FAST)
        assert len(server.requests["/n.mp4"]) == 2
    assert got.path.read_bytes() == BODY and not got.resumed and got.http_status == 200


def test_permanent_and_persistent_errors_fail_with_a_clear_message(tmp_path):
    with FaultyHTTPServer() as server:
        with pytest.raises(DownloadFailed, match=r"after 1 attempt\(s\): HTTP 404") as missing:
            download_url(server.base + "/missing.mp4", tmp_path / "m.mp4", FAST)
        assert len(server.requests["/missing.mp4"]) == 1 and missing.value.http_status == 404
        url = server.add("/busy.mp4", BODY, ["503"])
        with pytest.raises(DownloadFailed, match=r"after 5 attempt\(s\): HTTP 503") as busy:
            download_url(url, tmp_path / "b.mp4", FAST)
        assert len(server.requests["/busy.mp4"]) == 5 and busy.value.attempts == 5
        # Credentials or tokens in a URL never reach the message.
        with pytest.raises(DownloadFailed) as secret:
            download_url(server.base.replace("//", "//user:hunter2@") + "/missing.mp4?token=s3cr3t",
                         tmp_path / "x.mp4", FAST)
        assert "hunter2" not in str(secret.value) and "s3cr3t" not in str(secret.value)
    assert not (tmp_path / "b.mp4").exists()  # nothing half-written appears under the final name


def test_refused_connections_are_retried_then_fail(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadFailed, match=r"after 3 attempt\(s\)"):
        download_url(f"http://127.0.0.1:{port}/v.mp4", tmp_path / "v.mp4",
                     FetchPolicy(attempts=3, timeout_s=0.5, backoff_s=0.01))


def test_fetches_table_and_retry_failed_requeue(panda_home, tmp_path, monkeypatch):
    from dagster import DagsterInstance, materialize

    from panda_dagster.common.partitions import video_shards
    from panda_dagster.common.resources import PandaResource
    from panda_dagster.fixtures.synth import Scene, render_video
    from panda_dagster.ingest.assets import raw_videos
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.storage import LocalStorage

    monkeypatch.setenv("PANDA_FETCH_ATTEMPTS", "3")
    monkeypatch.setenv("PANDA_FETCH_BACKOFF_S", "0.01")
    monkeypatch.setenv("PANDA_FETCH_TIMEOUT_S", "2")
    videos = {}
    for i in range(3):
        render_video(tmp_path / f"u{i}.mp4", [Scene(0.6, seed=70 + i)], audio=False)
        videos[i] = (tmp_path / f"u{i}.mp4").read_bytes()
    catalog = Catalog(panda_home)
    resources = {"panda": PandaResource(home=str(panda_home))}
    with FaultyHTTPServer() as server:
        urls = [server.add("/flaky.mp4", videos[0], ["503", "cut", "ok"]),
                server.add("/dead.mp4", videos[1], ["503"]),
                server.add("/fine.mp4", videos[2], ["ok"])]
        manifest = tmp_path / "m.jsonl"
        manifest.write_text("".join(json.dumps({"path": u, "video_id": f"v{i}"}) + "\n" for i, u in enumerate(urls)))
        (shard,) = ingest_source(manifest, catalog, LocalStorage(panda_home / "artifacts"), shard_size=10).keys
        instance = DagsterInstance.get()
        instance.add_dynamic_partitions(video_shards.name, [shard])
        assert materialize([raw_videos], instance=instance, resources=resources, partition_key=shard).success
        fetches = {r.video_id: r for r in catalog.rows("fetches", shard)}
        assert {v: (r.status, r.attempts) for v, r in fetches.items()} == {
            "v0": ("ok", 3), "v1": ("failed", 3), "v2": ("ok", 1)}
        assert fetches["v0"].resumed and fetches["v0"].sha256 == hashlib.sha256(videos[0]).hexdigest()
        assert "HTTP 503" in fetches["v1"].last_error and fetches["v1"].http_status == 503
        assert sorted(v.video_id for v in catalog.rows("videos", shard)) == ["v0", "v2"]
        (dropped,) = [q for q in catalog.rows("quarantine", shard) if q.video_id == "v1"]
        assert "after 3 attempt(s): HTTP 503" in dropped.reason
        assert len(server.requests["/dead.mp4"]) == 3

        server.scripts["/dead.mp4"] = ["ok"]  # the host recovers
        env = os.environ.copy()
        cli = [str(Path(sys.executable).parent / "panda"), "ingest", "--retry-failed"]
        first = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert first.stdout.split() == ["retry-00001"] and "re-queued 1 videos" in first.stderr
        second = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0 and second.stdout.split() == []  # already re-queued
        assert materialize([raw_videos], instance=instance, resources=resources, partition_key="retry-00001").success
        assert [v.video_id for v in catalog.rows("videos", "retry-00001")] == ["v1"]
        assert [(r.status, r.attempts) for r in catalog.rows("fetches", "retry-00001")] == [("ok", 1)]
        # Nothing fetched twice: the other videos were not requested again.
        assert len(server.requests["/fine.mp4"]) == 1 and len(server.requests["/flaky.mp4"]) == 3
    every = catalog.query("SELECT video_id, count(*) AS n FROM videos GROUP BY video_id ORDER BY video_id")
    assert every.to_dict("records") == [{"video_id": v, "n": 1} for v in ("v0", "v1", "v2")]
