"""docker/: the compose deployment is consistent with the production instance config and the images,
the compose files are accepted by the compose CLI (Debian's docker-compose 1.29 or `docker compose`),
and the production dagster.yaml runs for real against a local PostgreSQL (Debian package, started by
the `postgres_server` fixture) with compute logs in S3 (moto's S3 server) while a shard materializes.
Building the images and running the whole stack in containers is `make deploy-test`
(deploy/deploy_test.py), which needs root and a Docker daemon and takes minutes."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.fixtures.synth import Scene, render_video

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
BIN = Path(sys.executable).parent
DAGSTER_SERVICES = ("user_code", "webserver", "daemon")


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())


def _expand(value: str, env: dict[str, str] | None = None) -> str:
    """Compose-style ${VAR:-default} with an empty environment: the defaults a fresh checkout gets."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: (env or {}).get(m.group(1), m.group(2) or ""), str(value))


def _env_refs(node) -> set[str]:
    """Every `env: NAME` in a Dagster config tree."""
    if isinstance(node, dict):
        refs = {node["env"]} if set(node) == {"env"} else set()
        return refs.union(*(_env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node))
    return set()


def test_compose_file_wires_postgres_webserver_daemon_and_user_code():
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "webserver", "daemon", "user_code"} <= set(services)
    prod = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())

    # The workspace points at the user-code gRPC server, which serves the location of that name.
    (grpc,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    user_code = services["user_code"]
    assert grpc["host"] == "user_code"
    command = user_code["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(grpc["port"])
    assert command[command.index("--location-name") + 1] == grpc["location_name"] == "panda_dagster"
    assert command[command.index("-m") + 1] == "panda_dagster.definitions"
    for name in ("webserver", "daemon"):
        assert services[name]["command"][-2:] == ["-w", "/opt/dagster/home/workspace.yaml"]
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])

    # Every variable the production instance config reads is set for every Dagster service, and every
    # variable the run launcher forwards to run containers exists in the daemon that launches them.
    needed = _env_refs(prod)
    assert {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_COMPUTE_LOGS_BUCKET"} <= needed
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        assert needed <= set(env), (name, needed - set(env))
        assert _expand(env["DAGSTER_POSTGRES_HOST"]) == "postgres"
        assert _expand(env["DAGSTER_POSTGRES_USER"]) == _expand(services["postgres"]["environment"]["POSTGRES_USER"])
        assert _expand(env["DAGSTER_POSTGRES_DB"]) == _expand(services["postgres"]["environment"]["POSTGRES_DB"])
    launcher = prod["run_launcher"]
    assert launcher["class"] == "DockerRunLauncher"
    assert set(launcher["config"]["env_vars"]) <= set(services["daemon"]["environment"])
    # Run containers join the compose network and mount the shared data volume by their real names.
    network = _expand(services["daemon"]["environment"]["DAGSTER_DOCKER_NETWORK"])
    assert network in {n.get("name") for n in compose["networks"].values()}
    volume = launcher["config"]["container_kwargs"]["volumes"][0].split(":")[0]
    assert compose["volumes"][volume]["name"] == volume
    assert "DAGSTER_CURRENT_IMAGE" in user_code["environment"]

    # Images: build context and both Dockerfiles exist, and everything they COPY is in the context.
    context = (DOCKER / user_code["build"]["context"]).resolve()
    assert context == REPO
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.cuda"):
        text = (context / dockerfile).read_text()
        assert text.startswith("#") and "\nFROM " in text
        sources = [src for line in text.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
        assert "docker/dagster.yaml" in sources and "docker/workspace.yaml" in sources
        for src in sources:
            assert (context / src).exists(), f"{dockerfile}: COPY {src} does not exist"
        assert "dagster-docker==0.29.27" in text  # the run launcher's package, same release as dagster
    assert "download.pytorch.org/whl/${TORCH_CUDA}" in (DOCKER / "Dockerfile.cuda").read_text()


def _compose_cli() -> list[str]:
    """The compose CLI; installed from Debian (docker-compose) when missing and root, else skip saying so."""
    def found() -> list[str] | None:
        if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
            return ["docker", "compose"]
        return ["docker-compose"] if shutil.which("docker-compose") else None

    command = found()
    if command is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-compose"],
                       capture_output=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        command = found()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (and not root with apt-get to "
                    "install Debian's docker-compose)")
    return command


@pytest.mark.parametrize("compose_file", ["docker/docker-compose.yaml", "deploy/compose.yaml"])
def test_compose_cli_accepts_the_file(compose_file):
    proc = subprocess.run([*_compose_cli(), "-f", str(REPO / compose_file), "config", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_deploy_test_stack_stays_on_loopback():
    """The stack `make deploy-test` runs: host networking, every listener on 127.0.0.1, images built
    from packages (no registry image), and run containers on the host network too."""
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "s3", "user_code", "webserver", "daemon"} <= set(services)
    for name, service in services.items():
        assert service["network_mode"] == "host", name
        assert "ports" not in service, name
        assert service["image"].startswith("${PANDA_"), name  # built by deploy/deploy_test.py, never pulled
        command = service.get("command", [])
        if "-h" in command:
            assert command[command.index("-h") + 1] == "127.0.0.1", name
        if "-H" in command:
            assert command[command.index("-H") + 1] == "127.0.0.1", name
    assert services["postgres"]["environment"]["POSTGRES_LISTEN"] == "127.0.0.1"
    env = services["daemon"]["environment"]
    assert env["DAGSTER_DOCKER_NETWORK"] == "host" and env["DAGSTER_POSTGRES_HOST"] == "127.0.0.1"
    # Every variable the production instance config reads is set, and no service mounts the data volume:
    # the catalog reaches the run containers through S3 (PANDA_S3_BUCKET), not through a shared disk.
    prod = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    for name in ("user_code", "webserver", "daemon"):
        assert _env_refs(prod) <= set(services[name]["environment"]), name
        assert services[name]["environment"]["PANDA_S3_BUCKET"]
        assert not any("panda_data" in v for v in services[name].get("volumes", [])), name
    dockerfile = (DOCKER / "Dockerfile").read_text()
    targets = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M)
    assert targets == ["base", "postgres", "dagster", "user-code"]
    # The last stage is what a plain `docker build` (and docker-compose.yaml) gets: the user-code image.
    assert targets[-1] == "user-code"
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in dockerfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server over real HTTP (what the compute log manager and PandaResource talk to)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _shard_assets() -> list[str]:
    """The per-shard assets, in dependency order."""
    from panda_dagster.definitions import defs

    graph = defs.get_repository_def().asset_graph
    return [
        key.to_user_string()
        for key in graph.toposorted_asset_keys
        if getattr(graph.get(key).partitions_def, "name", None) == "video_shards"
    ]


@pytest.mark.slow
def test_production_instance_on_postgres_materializes_a_shard(panda_home, tmp_path, postgres_server, s3_server, monkeypatch):
    import boto3
    import psycopg2

    db = postgres_server.create_database("dagster_ops_test")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DOCKER / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_HOST": postgres_server.host,
        "DAGSTER_POSTGRES_PORT": str(postgres_server.port),
        "DAGSTER_POSTGRES_USER": postgres_server.user,
        "DAGSTER_POSTGRES_PASSWORD": postgres_server.password,
        "DAGSTER_POSTGRES_DB": db,
        "DAGSTER_DOCKER_NETWORK": "panda-dagster",
        "DAGSTER_COMPUTE_LOGS_BUCKET": "ops-logs",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="ops-logs")

    videos = tmp_path / "videos"
    render_video(videos / "a.mp4", [Scene(1.2, seed=31), Scene(1.2, seed=32)], audio=False)
    (shard,) = ingest_source(videos, Catalog(panda_home), LocalStorage(panda_home / "artifacts"), shard_size=10,
                             prefix="pg").keys

    with DagsterInstance.get() as instance:
        # The production config, loaded for real: Postgres storages, queue + pools, Docker launcher, S3 logs.
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure
        instance.add_dynamic_partitions("video_shards", [shard])

    assets = _shard_assets()
    assert assets[0] == "raw_videos"
    proc = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions",
         "--select", ",".join(assets), "--partition", shard],
        cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    with DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == shard
        for asset in assets:
            assert instance.get_materialized_partitions(AssetKey(asset)) == {shard}
    # The rows really are in PostgreSQL, and the step logs really are in S3.
    with psycopg2.connect(host=postgres_server.host, port=postgres_server.port, user=postgres_server.user,
                          dbname=db) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs")
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cursor.fetchone()[0] == len(assets)
    log_keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_server).list_objects_v2(
        Bucket="ops-logs").get("Contents", [])]
    assert any(k.startswith("dagster/compute-logs/storage/") for k in log_keys), log_keys
    assert list(Catalog(panda_home).query("SELECT shard FROM videos")["shard"]) == [shard]


def test_run_containers_get_every_variable_the_instance_reads():
    """A run container loads docker/dagster.yaml too: the launcher must forward every `env:` it reads
    (DAGSTER_DOCKER_NETWORK was missing once, and every run died before its first step)."""
    prod = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    forwarded = set(prod["run_launcher"]["config"]["env_vars"])
    assert _env_refs(prod) <= forwarded, _env_refs(prod) - forwarded
