"""Secrets: S3 credentials come from the environment (the AWS chain), database credentials from `env:`
in the instance config; none ends up in logs, run metadata, the catalog, reports or exports.

A whole shard runs through every per-shard stage with artifacts on S3 (moto) and fake credentials, then
`panda report` and `panda export`; every file under PANDA_HOME (catalog, artifacts, the Dagster
instance's SQLite event logs and compute logs), every S3 object, and every command's output are
searched for the credential values (plain, URL-encoded and base64)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import boto3
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCESS_KEY = "AKIAPANDAFAKE7RELIAB"
SECRET_KEY = "panda-fake-secret/9f8e7d6c5b4a3f2e1d0c"
SESSION_TOKEN = "panda-fake-session-token-0a1b2c3d"


def _needles() -> list[bytes]:
    values = [ACCESS_KEY, SECRET_KEY, SESSION_TOKEN]
    return ([v.encode() for v in values] + [urllib.parse.quote(v, safe="").encode() for v in values]
            + [base64.b64encode(v.encode()) for v in values])


def _leaks(data: bytes, where: str) -> list[str]:
    return [f"{where}: {needle!r}" for needle in _needles() if needle in data]


def _shard_assets() -> list[str]:
    from panda_dagster.definitions import defs

    graph = defs.get_repository_def().asset_graph
    return [key.to_user_string() for key in graph.toposorted_asset_keys
            if getattr(graph.get(key).partitions_def, "name", None) == "video_shards"]


def test_instance_configs_take_database_credentials_from_the_environment():
    prod = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    database = prod["storage"]["postgres"]["postgres_db"]
    for field in ("username", "password", "hostname"):
        assert set(database[field]) == {"env"}, field  # never a literal value in the file
    local = (REPO / "dagster.yaml").read_text().lower()
    assert "password" not in local and "secret" not in local


@pytest.mark.slow
def test_no_credential_value_reaches_logs_metadata_catalog_reports_or_exports(panda_home, tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    from panda_dagster.fixtures.synth import Scene, render_video

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_SESSION_TOKEN": SESSION_TOKEN, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
           "PANDA_S3_BUCKET": "secret-test", "PANDA_S3_PREFIX": "p"}
    outputs: list[tuple[str, bytes]] = []
    try:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, aws_session_token=SESSION_TOKEN,
                              region_name="us-east-1")
        client.create_bucket(Bucket="secret-test")
        videos = tmp_path / "videos"
        render_video(videos / "a.mp4", [Scene(1.2, seed=41), Scene(1.2, seed=42)], audio=False)

        def run(*command: str, timeout: int = 600) -> subprocess.CompletedProcess:
            proc = subprocess.run(list(command), cwd=REPO, env=env, capture_output=True, timeout=timeout)
            outputs.append((" ".join(command[:3]), proc.stdout + proc.stderr))
            assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-3000:]).decode(errors="replace")
            return proc

        (shard,) = run(str(BIN / "panda"), "ingest", str(videos), "--prefix", "sec").stdout.decode().split()
        run(str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions",
            "--select", ",".join(_shard_assets()), "--partition", shard)
        run(str(BIN / "panda"), "report", "--out", str(panda_home / "reports" / "report.html"))
        run(str(BIN / "panda"), "export", "--format", "jsonl,panda70m-csv,parquet", "--out",
            str(panda_home / "exports" / "e1"))

        leaks = []
        searched = 0
        for path in panda_home.rglob("*"):
            if path.is_file():
                leaks += _leaks(path.read_bytes(), str(path.relative_to(panda_home)))
                searched += 1
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="secret-test")
                for o in page.get("Contents", [])]
        for key in keys:
            leaks += _leaks(client.get_object(Bucket="secret-test", Key=key)["Body"].read(), f"s3://secret-test/{key}")
        for name, output in outputs:
            leaks += _leaks(output, f"output of {name}")
    finally:
        server.stop()
    # What was searched really holds the run: the catalog, the instance's event log, S3 artifacts, the
    # report and the export.
    assert (panda_home / "catalog.duckdb").is_file() and list((panda_home / "dagster" / "storage").rglob("*.db"))
    assert (panda_home / "reports" / "report.html").is_file() and any((panda_home / "exports" / "e1").iterdir())
    assert any(k.startswith("p/manifests/") for k in keys) and len(keys) > 1 and searched > 10
    assert leaks == []
