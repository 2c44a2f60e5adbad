"""`make deploy-test`: build the Docker images, run the whole stack, push one shard through it, tear down.

Steps (each says what it does; a failure prints `deploy-test: FAILED (<reason>)` as the last line):
1. as root, install what is missing from Debian: docker.io, docker-compose, debootstrap;
2. start `dockerd` when no daemon answers (and stop exactly that one, by PID, at the end);
3. the base image: `python:3.11-slim-bookworm` where a registry is reachable, otherwise Debian
   bookworm built with `debootstrap --variant=minbase` from this machine's configured Debian mirror
   (/etc/apt/sources.list*) and `docker import`ed as `panda-base:bookworm` (built once, then reused);
4. the images from docker/Dockerfile (targets dagster, postgres, user-code), with torch from the CPU
   wheel this machine's pip finds (find-links of `pip config list` / PIP_FIND_LINKS), linked into
   docker/wheels/; Docker's layer cache makes a second run rebuild only what changed;
5. the stack of deploy/compose.yaml on host networking, every port on 127.0.0.1 and picked free:
   PostgreSQL, moto's S3 server, user-code gRPC server, webserver, daemon;
6. a few generated videos uploaded to S3 and ingested (`panda ingest` in the user-code container);
7. one `shard_pipeline` run (the whole per-shard graph) launched through the webserver's GraphQL API;
   the daemon's DockerRunLauncher runs it in a container of its own; wait for SUCCESS;
8. the catalog checked from the host with an empty PANDA_HOME of its own: it reads the lake from S3;
9. everything torn down (containers, the run container, volumes); the images stay for the next run.

Environment: PANDA_DEPLOY_CACHE (default /var/cache/panda-deploy: debootstrap tree, logs),
PANDA_BASE_IMAGE (force a base image), PANDA_DEPLOY_KEEP=1 (leave the stack up for a look),
PANDA_DEPLOY_TIMEOUT_S (the run's time limit, default 1500).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("PANDA_DEPLOY_CACHE", "/var/cache/panda-deploy"))
PROJECT = "panda-deploy-test"
COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
DEBIAN_PACKAGES = {"docker.io": "dockerd", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}
REGISTRY_BASE = "python:3.11-slim-bookworm"
DEBOOTSTRAP_BASE = "panda-base:bookworm"
IMAGES = {"postgres": "panda-dagster:postgres", "dagster": "panda-dagster:dagster", "user-code": "panda-dagster:latest"}
BUCKET = "panda"
TORCH_WHEEL = "torch-2.13.0+cpu-cp311-*.whl"


class Failed(Exception):
    """The reason deploy-test failed (printed as the last line)."""


def say(message: str) -> None:
    print(f"deploy-test: {message}", flush=True)


def run(cmd: list[str], *, timeout: float = 600, log: Path | None = None, check: bool = True,
        env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env,
                                  input=input)
        if check and proc.returncode != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
            raise Failed(f"`{' '.join(cmd[:4])} ...` exited {proc.returncode} (log {log}):\n{tail}")
        return proc
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and proc.returncode != 0:
        raise Failed(f"`{' '.join(cmd[:4])} ...` exited {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
    return proc


# ---- 1. packages ---------------------------------------------------------------------------------
def install_missing_packages() -> None:
    missing = [p for p in DEBIAN_PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Failed(f"missing Debian packages {' '.join(missing)} and not root with apt-get to install them")
    say(f"apt-get install {' '.join(missing)}")
    run(["apt-get", "update", "-qq"], log=CACHE / "logs" / "apt-update.log")
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        log=CACHE / "logs" / "apt-install.log", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


# ---- 2. docker daemon ----------------------------------------------------------------------------
def docker_cli() -> str:
    # Debian's client matches Debian's daemon (API 1.41); a newer client elsewhere on PATH may default
    # to BuildKit/buildx, which this daemon has not.
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def docker_answers() -> bool:
    return subprocess.run([docker_cli(), "info"], capture_output=True, timeout=30).returncode == 0


def start_dockerd() -> subprocess.Popen | None:
    """Start a daemon if none answers; returns the process this script started (None if one was up)."""
    if docker_answers():
        return None
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    log = CACHE / "logs" / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    say("starting dockerd")
    proc = subprocess.Popen([dockerd, "--host=unix:///var/run/docker.sock"], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"dockerd exited {proc.returncode}: {log.read_text()[-1500:]}")
        if docker_answers():
            return proc
        time.sleep(1)
    proc.terminate()
    raise Failed(f"dockerd did not answer within 60 s (log {log})")


def stop_dockerd(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()  # by PID: only the daemon this script started
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


# ---- 3. base image -------------------------------------------------------------------------------
def registry_reachable(timeout_s: float = 5.0) -> bool:
    try:
        urllib.request.urlopen("https://registry-1.docker.io/v2/", timeout=timeout_s)
    except urllib.error.HTTPError:
        return True  # 401: the registry answers (anonymous pulls get a token)
    except Exception:
        return False
    return True


def debian_mirror(texts: list[str] | None = None) -> str:
    """The machine's configured Debian mirror (one-line or deb822 sources), for debootstrap."""
    if texts is None:
        texts = []
        for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
            if path.is_file() and path.suffix in ("", ".list", ".sources"):
                texts.append(path.read_text(errors="replace"))
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
        for line in text.splitlines():
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def base_image() -> str:
    if os.environ.get("PANDA_BASE_IMAGE"):
        return os.environ["PANDA_BASE_IMAGE"]
    if registry_reachable():
        return REGISTRY_BASE
    docker = docker_cli()
    if run([docker, "image", "inspect", DEBOOTSTRAP_BASE], check=False).returncode == 0:
        return DEBOOTSTRAP_BASE
    mirror = debian_mirror()
    root = CACHE / "debootstrap-bookworm"
    say(f"no registry reachable: building {DEBOOTSTRAP_BASE} with debootstrap from {mirror}")
    shutil.rmtree(root, ignore_errors=True)
    run(["debootstrap", "--variant=minbase", "bookworm", str(root), mirror], timeout=1800,
        log=CACHE / "logs" / "debootstrap.log")
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} bookworm main\n")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / junk).glob("*"):
            if item.is_file():
                item.unlink()
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run([docker, "import", "-", DEBOOTSTRAP_BASE], stdin=tar.stdout, capture_output=True,
                              text=True, timeout=900)
    tar.wait()
    if imported.returncode != 0:
        raise Failed(f"docker import of the debootstrap tree failed: {imported.stderr[-1000:]}")
    shutil.rmtree(root, ignore_errors=True)
    return DEBOOTSTRAP_BASE


# ---- 4. images -----------------------------------------------------------------------------------
def pip_find_links() -> list[Path]:
    """Folders this machine's pip takes wheels from (`pip config list`, PIP_FIND_LINKS)."""
    found: list[str] = []
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            found += value.strip().strip("'\"").split()
    found += os.environ.get("PIP_FIND_LINKS", "").split()
    return [Path(f.removeprefix("file://")) for f in dict.fromkeys(found) if Path(f.removeprefix("file://")).is_dir()]


def stage_torch_wheel() -> bool:
    """Link the machine's torch CPU wheel into docker/wheels/ (the image installs it from there)."""
    wheels = REPO / "docker" / "wheels"
    for folder in pip_find_links():
        for wheel in sorted(folder.glob(TORCH_WHEEL)):
            dest = wheels / wheel.name
            if not dest.exists():
                try:
                    os.link(wheel, dest)
                except OSError:
                    shutil.copyfile(wheel, dest)
            return True
    say("no torch CPU wheel in pip's find-links: the image takes torch from the PyTorch CPU index")
    return False


def stage_ca_certificates() -> int:
    """Copy the machine's extra CA certificates into docker/certs/ (the build trusts what pip here trusts)."""
    dest = REPO / "docker" / "certs"
    copied = 0
    for cert in sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt")):
        target = dest / cert.name
        if not target.exists() or target.read_bytes() != cert.read_bytes():
            shutil.copyfile(cert, target)
        copied += 1
    return copied


def build_images(base: str) -> None:
    docker = docker_cli()
    stage_ca_certificates()
    stage_torch_wheel()
    for target, tag in IMAGES.items():
        started = time.monotonic()
        run([docker, "build", "--force-rm", "--network", "host", "-f", "docker/Dockerfile", "--target", target,
             "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(REPO)],
            timeout=3600, log=CACHE / "logs" / f"build-{target}.log")
        say(f"image {tag} ready ({time.monotonic() - started:.0f} s)")
    # A rebuilt image leaves its predecessor untagged: drop those (only images of this Dockerfile, by
    # label), so the cache holds one copy of each image rather than one per change of the lock.
    run([docker, "image", "prune", "-f", "--filter", "label=panda-dagster.image"], check=False)


# ---- 5. the stack --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self):
        self.ports = {name: free_port() for name in ("PG", "S3", "GRPC", "UI")}
        self.env = {**os.environ, "PANDA_S3_BUCKET": BUCKET, "PANDA_S3_PREFIX": "panda", "PANDA_MODELS": "tiny",
                    **{f"PANDA_DEPLOY_{k}_PORT": str(v) for k, v in self.ports.items()}}
        self.compose = [shutil.which("docker-compose") or "docker-compose", "-p", PROJECT, "-f", str(COMPOSE_FILE)]
        # Webserver and daemon load the code location by name from the user-code server's port.
        workspace = CACHE / "deploy-workspace.yaml"
        workspace.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {self.ports['GRPC']}\n"
                             "      location_name: panda_dagster\n")
        self.env["PANDA_DEPLOY_WORKSPACE"] = str(workspace)
        self.run_container: str | None = None
        # Run containers mount the `panda_data` volume of docker/dagster.yaml; Docker creates it on the
        # first run. It goes at teardown unless it was there before (someone's compose deployment).
        self.volume_existed = run([docker_cli(), "volume", "inspect", "panda_data"], check=False).returncode == 0

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['S3']}"

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['UI']}/graphql"

    def up(self) -> None:
        run([*self.compose, "up", "-d", "--no-build"], env=self.env, timeout=300, log=CACHE / "logs" / "compose-up.log")

    def container(self, service: str) -> str:
        ids = run([*self.compose, "ps", "-q", service], env=self.env).stdout.split()
        if not ids:
            raise Failed(f"service {service} has no container")
        return ids[0]

    def logs(self) -> str:
        return run([*self.compose, "logs", "--no-color", "--tail", "40"], env=self.env, check=False).stdout

    def down(self) -> None:
        docker = docker_cli()
        if self.run_container:
            logs = run([docker, "logs", self.run_container], check=False)
            (CACHE / "logs" / "run-container.log").write_text(logs.stdout + logs.stderr)
            run([docker, "rm", "-f", self.run_container], check=False)
        run([*self.compose, "down", "-v", "--remove-orphans", "-t", "20"], env=self.env, check=False, timeout=300)
        if not self.volume_existed:
            run([docker, "volume", "rm", "panda_data"], check=False)

    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.graphql_url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            payload = json.loads(resp.read())
        if payload.get("errors"):
            raise Failed(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def wait_ready(self, timeout_s: float = 300) -> None:
        """PostgreSQL, S3 and the webserver answer, and the webserver has loaded the code location."""
        deadline = time.monotonic() + timeout_s
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }"
        last = "nothing answered yet"
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.s3_endpoint, timeout=5)
                entries = self.graphql(query, timeout_s=10)["workspaceOrError"]["locationEntries"]
                kinds = {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
                if kinds.get("panda_dagster") == "RepositoryLocation":
                    return
                last = f"code location: {kinds}"
            except Exception as exc:  # still starting
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(3)
        raise Failed(f"stack not ready after {timeout_s:.0f} s ({last}); logs:\n{self.logs()[-3000:]}")


# ---- 6.-8. data, run, catalog --------------------------------------------------------------------
def s3_client(stack: Stack):
    import boto3

    return boto3.client("s3", endpoint_url=stack.s3_endpoint, aws_access_key_id="panda",
                        aws_secret_access_key="panda-secret", region_name="us-east-1")


def ingest_videos(stack: Stack, work: Path) -> tuple[str, int]:
    from panda_dagster.fixtures.synth import Scene, render_video

    client = s3_client(stack)
    client.create_bucket(Bucket=BUCKET)
    lines = []
    for i, seeds in enumerate(((3, 4, 5), (6, 7))):
        # Shots longer than the splitter's min_clip_s (2.5 s), so every stage has clips to work on.
        video = render_video(work / f"deploy-{i}.mp4", [Scene(3.5, seed=s) for s in seeds], audio=False)
        key = f"incoming/deploy-{i}.mp4"
        client.upload_file(str(video.path), BUCKET, key)
        lines.append(json.dumps({"path": f"s3://{BUCKET}/{key}", "video_id": f"deploy-{i}", "title": f"video {i}"}))
    user_code = stack.container("user_code")
    docker = docker_cli()
    run([docker, "exec", "-i", user_code, "sh", "-c", "cat > /tmp/deploy-manifest.jsonl"], input="\n".join(lines) + "\n")
    out = run([docker, "exec", user_code, "panda", "ingest", "/tmp/deploy-manifest.jsonl", "--prefix", "deploy",
               "--shard-size", "10"], timeout=300).stdout.split()
    if len(out) != 1:
        raise Failed(f"expected one new shard from `panda ingest`, got {out}")
    return out[0], len(lines)


# Synthetic flat-colour shots fail the clip quality filters by design, so the teachers caption every
# clip (caption_all) and the model stages have work to do.
RUN_CONFIG = {"ops": {"teacher_captions": {"config": {"caption_all": True}}}}
LAUNCH = """mutation($shard: String!, $config: RunConfigData) { launchRun(executionParams: {
  selector: {repositoryLocationName: "panda_dagster", repositoryName: "__repository__", jobName: "shard_pipeline"},
  executionMetadata: {tags: [{key: "dagster/partition", value: $shard}]},
  runConfigData: $config
}) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on InvalidSubsetError { message }
     ... on RunConfigValidationInvalid { errors { message } } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"""


def launch_and_wait(stack: Stack, shard: str, timeout_s: float) -> str:
    launched = stack.graphql(LAUNCH, {"shard": shard, "config": RUN_CONFIG})["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise Failed(f"launchRun: {launched}")
    run_id = launched["run"]["runId"]
    say(f"run {run_id} launched for {shard}")
    deadline = time.monotonic() + timeout_s
    status = "?"
    while time.monotonic() < deadline:
        result = stack.graphql(STATUS, {"id": run_id})["runOrError"]
        status = result["status"]
        tags = {t["key"]: t["value"] for t in result["tags"]}
        stack.run_container = tags.get("docker/container_id") or stack.run_container
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(5)
    if status != "SUCCESS":
        tail = ""
        if stack.run_container:
            tail = run([docker_cli(), "logs", "--tail", "60", stack.run_container], check=False).stdout[-4000:]
        raise Failed(f"run {run_id} ended {status} (timeout {timeout_s:.0f} s); run container log:\n{tail}")
    if not stack.run_container:
        raise Failed(f"run {run_id} succeeded but not in a container of its own (no docker/container_id tag)")
    return run_id


def check_catalog_and_events(stack: Stack, shard: str, n_videos: int, run_id: str) -> int:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=stack.ports["PG"], user="dagster", password="dagster",
                          dbname="dagster") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s AND "
                       "dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,))
        materialized = sorted(row[0] for row in cursor.fetchall())
    expected = shard_pipeline_assets()
    if len(materialized) != len(expected):
        raise Failed(f"the run materialized {len(materialized)} assets, the shard graph has {len(expected)}: "
                     f"{materialized}")
    # A process of its own with an empty PANDA_HOME: everything it sees comes from the bucket.
    with tempfile.TemporaryDirectory(prefix="deploy-reader-") as home:
        env = {**os.environ, "PANDA_HOME": home, "PANDA_S3_BUCKET": BUCKET, "PANDA_S3_PREFIX": "panda",
               "AWS_ENDPOINT_URL": stack.s3_endpoint, "AWS_ACCESS_KEY_ID": "panda",
               "AWS_SECRET_ACCESS_KEY": "panda-secret", "AWS_DEFAULT_REGION": "us-east-1"}
        reader = (
            "import json, sys\n"
            "from panda_dagster.lib.catalog import Catalog\n"
            "c = Catalog(sys.argv[1]); s = sys.argv[2]\n"
            "q = lambda t: int(c.query(f'SELECT count(*) AS n FROM {t} WHERE shard = ?', [s])['n'][0])\n"
            "counts = {t: q(t) for t in ('videos', 'clips', 'teacher_captions', 'selected_captions', 'eval_metrics')}\n"
            "bad = c.query('SELECT stage, reason FROM quarantine WHERE shard = ?', [s]).to_dict('records')\n"
            "print(json.dumps({'counts': counts, 'quarantine': bad}))\n"
        )
        proc = run([sys.executable, "-c", reader, home, shard], env=env, timeout=300)
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    counts = seen["counts"]
    say(f"catalog from S3: {counts}")
    if counts["videos"] != n_videos or not all(counts.values()):
        raise Failed(f"catalog read from S3 is incomplete for {shard}: {counts}; quarantine: {seen['quarantine'][:5]} "
                     f"(run container log: {CACHE / 'logs' / 'run-container.log'})")
    return len(materialized)


def shard_pipeline_assets() -> list[str]:
    import warnings

    with warnings.catch_warnings():  # Dagster's beta/preview notices on import say nothing about this test
        warnings.simplefilter("ignore")
        from panda_dagster.definitions import defs

        job = defs.resolve_job_def("shard_pipeline")
    return sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)


class Stopped(Exception):
    """SIGTERM/SIGINT (a CI timeout, Ctrl-C): stop, but tear down first."""


def _stop(signum, frame):
    raise Stopped(f"stopped by signal {signum}")


def main() -> int:
    started = time.monotonic()
    # Background jobs start with SIGINT ignored and CI timeouts send SIGTERM: both end in the teardown.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    dockerd = None
    stack: Stack | None = None
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        install_missing_packages()
        dockerd = start_dockerd()
        base = base_image()
        say(f"base image {base}")
        build_images(base)
        stack = Stack()
        stack.up()
        stack.wait_ready()
        say(f"stack up: {', '.join(f'{k.lower()} 127.0.0.1:{v}' for k, v in stack.ports.items())}")
        with tempfile.TemporaryDirectory(prefix="deploy-videos-") as work:
            shard, n_videos = ingest_videos(stack, Path(work))
        run_id = launch_and_wait(stack, shard, float(os.environ.get("PANDA_DEPLOY_TIMEOUT_S", 1500)))
        n_assets = check_catalog_and_events(stack, shard, n_videos, run_id)
    except (Failed, Stopped) as exc:
        print(f"deploy-test: FAILED ({exc})", flush=True)
        return 1
    except Exception as exc:  # anything unexpected still ends with the one-line verdict
        print(f"deploy-test: FAILED ({type(exc).__name__}: {exc})", flush=True)
        return 1
    finally:
        if stack is not None and not os.environ.get("PANDA_DEPLOY_KEEP"):
            stack.down()
        if not os.environ.get("PANDA_DEPLOY_KEEP"):
            stop_dockerd(dockerd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"deploy-test: ok ({n_assets} assets, {time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--images-only":  # build (or refresh) the images, nothing else
        CACHE.mkdir(parents=True, exist_ok=True)
        install_missing_packages()
        daemon = start_dockerd()
        try:
            build_images(base_image())
        finally:
            stop_dockerd(daemon)
        sys.exit(0)
    sys.exit(main())
