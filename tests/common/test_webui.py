"""The web UI as the user runs it: `make ui` (dagster dev with the project's dagster.yaml and
workspace.yaml) on 127.0.0.1, driven through its GraphQL API and through real headless Chromium
(DevTools protocol over a websocket), materializing one `video_shards` partition of a tiny corpus each.
The server is started once for the module and stopped by its PID."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance

from panda_dagster.common.jobs import SHARD_ASSETS
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.fixtures.synth import Scene, render_video

REPO = Path(__file__).resolve().parents[2]
PIPELINE = list(SHARD_ASSETS)
SHARDS = ["ui-00001", "ui-00002"]
LOCATION = "panda_dagster"  # workspace.yaml's location name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_signals() -> None:
    # A shell's background job inherits SIGINT ignored, and dagster maps SIGTERM onto SIGINT's handler:
    # restore both so the server honours SIGTERM however pytest itself was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterUI:
    def __init__(self, url: str, home: Path, process: subprocess.Popen, log: Path):
        self.url, self.home, self.process, self.log = url, home, process, log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def run_status(self, run_id: str) -> str:
        query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
        return self.graphql(query, {"id": run_id})["runOrError"]["status"]

    def wait_for_run(self, run_id: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} still {status} after {timeout} s; server log: {self.log}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("webui")
    home = root / "panda_home"
    videos = root / "videos"
    videos.mkdir()
    for i, shard_seed in enumerate((21, 22)):
        render_video(videos / f"clip{i}.mp4", [Scene(0.8, seed=shard_seed), Scene(0.8, seed=shard_seed + 5)], audio=False)
    env = {
        **os.environ,
        "PANDA_HOME": str(home),
        "DAGSTER_HOME": str(REPO),
        "PANDA_DAGSTER_STORAGE": str(home / "dagster" / "storage"),
        "PANDA_DAGSTER_ARTIFACTS": str(home / "dagster" / "artifacts"),
        "PANDA_DAGSTER_LOGS": str(home / "dagster" / "logs"),
        "PANDA_MODELS": "tiny",
        "PORT": str(_free_port()),
    }
    for name in ("PANDA_S3_BUCKET", "PANDA_S3_PREFIX", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("PANDA_HOME", "DAGSTER_HOME", "PANDA_DAGSTER_STORAGE", "PANDA_DAGSTER_ARTIFACTS", "PANDA_DAGSTER_LOGS"):
            mp.setenv(key, env[key])
        keys = ingest_source(videos, Catalog(home), LocalStorage(home / "artifacts"), shard_size=1, prefix="ui").keys
        assert keys == SHARDS
        with DagsterInstance.get() as instance:  # what `panda ingest` does: register the partitions
            instance.add_dynamic_partitions("video_shards", keys)

    log = root / "dagster-dev.log"
    # `-o setup`: the venv exists already (the test runs in it); never reinstall from a test.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", "setup", "ui"], cwd=REPO, env=env, start_new_session=True,
        preexec_fn=_default_signals, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    ui = DagsterUI(f"http://127.0.0.1:{env['PORT']}", home, process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"`make ui` exited with {process.returncode}:\n{ui.log_tail()}")
            try:
                with urllib.request.urlopen(f"{ui.url}/server_info", timeout=2) as r:
                    assert json.load(r)["dagster_webserver_version"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dagster dev did not answer within 120 s:\n{ui.log_tail()}")
                time.sleep(0.5)
        yield ui
    finally:
        # Stop by PID: SIGTERM to make, which passes it on to dagster dev; then the group if needed.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        try:  # children that outlived make (they share its process group)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _videos_in(home: Path, shard: str) -> list[str]:
    return list(Catalog(home).query("SELECT video_id FROM videos WHERE shard = ?", [shard])["video_id"])


@pytest.mark.slow
def test_graphql_lists_assets_and_partitions_and_materializes_one(dagster_ui):
    nodes = dagster_ui.graphql(
        "{ assetNodes { assetKey { path } partitionDefinition { name } partitionKeysByDimension { partitionKeys } } }"
    )["assetNodes"]
    by_name = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert set(PIPELINE) <= set(by_name)
    for name in PIPELINE:
        assert by_name[name]["partitionDefinition"]["name"] == "video_shards"
        assert by_name[name]["partitionKeysByDimension"][0]["partitionKeys"] == SHARDS

    automation = dagster_ui.graphql(
        """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
             schedules { name cronSchedule scheduleState { status } }
             sensors { name sensorState { status } } } } } }"""
    )["repositoriesOrError"]["nodes"]
    (repo,) = automation
    assert repo["location"]["name"] == LOCATION
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {"nightly_catch_up": "RUNNING"}
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}["inbox_sensor"] == "RUNNING"

    launched = dagster_ui.graphql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {"params": {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                         "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["raw_videos"]}]},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": SHARDS[0]}]},
        }},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert dagster_ui.wait_for_run(run_id) == "SUCCESS", dagster_ui.log_tail()

    stats = dagster_ui.graphql(
        """{ assetNodeOrError(assetKey: {path: ["raw_videos"]}) { ... on AssetNode {
             partitionStats { numMaterialized numPartitions } } } }"""
    )["assetNodeOrError"]["partitionStats"]
    assert stats["numPartitions"] == 2 and stats["numMaterialized"] >= 1
    assert len(_videos_in(dagster_ui.home, SHARDS[0])) == 1


# --- headless Chromium over the DevTools protocol -------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


class Chromium:
    """Just enough of the DevTools protocol: navigate, evaluate, real mouse clicks, screenshots."""

    def __init__(self, binary: str):
        from websockets.sync.client import connect

        self.profile = Path(tempfile.mkdtemp(prefix="panda-chromium-"))
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--disable-breakpad", "--disable-crash-reporter", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1600,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("headless Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.message_id = 0
        self.send("Page.enable")

    def send(self, method: str, **params) -> dict:
        self.message_id += 1
        self.ws.send(json.dumps({"id": self.message_id, "method": method, "params": params}))
        while True:  # skip events until our answer arrives
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", {}).get("description", result))
        return result["result"].get("value")

    def text(self) -> str:
        return self.js("document.body ? document.body.innerText : ''") or ""

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for_text(self, *fragments: str, timeout: float = 45) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if all(f in text for f in fragments):
                return text
            time.sleep(0.25)
        raise TimeoutError(f"page never showed {fragments}; it shows:\n{self.text()[-1500:]}")

    def click(self, text: str, tags: str = "*", timeout: float = 20) -> None:
        """A real mouse click on the visible element whose text is exactly `text` (innermost last)."""
        find = (f"[...document.querySelectorAll({json.dumps(tags)})].filter(e => e.offsetParent !== null"
                f" && (e.innerText || '').trim() === {json.dumps(text)}).pop()")
        deadline = time.monotonic() + timeout
        while not self.js(f"!!({find})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no visible element {text!r}; page shows:\n{self.text()[-1500:]}")
            time.sleep(0.2)
        x, y = self.js(f"(() => {{ const e = {find}; e.scrollIntoView({{block: 'center'}});"
                       " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        # The whole process group: /usr/bin/chromium is a wrapper script around the browser.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
            time.sleep(0.5)  # the browser's helpers exit with it
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever did not
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(5):  # the browser may still be flushing its profile for a moment
            shutil.rmtree(self.profile, ignore_errors=True)
            if not self.profile.exists():
                break
            time.sleep(0.5)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_chromium_sees_the_graph_and_materializes_a_partition(dagster_ui, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium binary (Debian package `chromium`; `make system-deps` installs it)")
    shots = Path(os.environ.get("PANDA_TEST_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser = Chromium(binary)
    try:
        # The asset graph: raw_videos and everything downstream of it.
        browser.goto(f"{dagster_ui.url}/assets/raw_videos?view=lineage&lineageScope=downstream&lineageDepth={len(PIPELINE)}")
        graph_text = browser.wait_for_text(*PIPELINE)
        assert "ingest" in graph_text and "captions" in graph_text  # group boxes
        browser.screenshot(shots / "asset_graph.png")

        # The partitions of raw_videos, then the launch dialog for one of them.
        browser.goto(f"{dagster_ui.url}/assets/raw_videos?view=partitions")
        browser.wait_for_text(*SHARDS, "Missing")
        browser.click("Materialize…", "button")
        browser.wait_for_text("Launch runs to materialize raw_videos")
        browser.click("Select a partition or create one")
        browser.click(SHARDS[1], "li,a,div,span")
        browser.click("Launch runs to materialize raw_videos")  # closes the partition drop-down
        browser.click("Launch 1 run", "button")
        browser.wait_for_text("Launched run")
        (run_href,) = json.loads(browser.js(
            "JSON.stringify([...new Set([...document.querySelectorAll('a')].map(a => a.getAttribute('href'))"
            ".filter(h => h && h.startsWith('/runs/')))])"))
        run_id = run_href.rsplit("/", 1)[-1]

        # The run page shows the run through to success.
        browser.goto(f"{dagster_ui.url}{run_href}")
        browser.wait_for_text("raw_videos", timeout=30)
        assert dagster_ui.wait_for_run(run_id) == "SUCCESS", dagster_ui.log_tail()
        browser.wait_for_text("Success", timeout=30)
        browser.screenshot(shots / "run_success.png")

        browser.goto(f"{dagster_ui.url}/assets/raw_videos?view=partitions")
        browser.wait_for_text(SHARDS[1])
        browser.click(SHARDS[1], "div,span,a")
        browser.wait_for_text("Latest materialization", "n_videos")
        final = browser.screenshot(shots / "raw_videos_partition.png")
    finally:
        browser.close()

    assert len(_videos_in(dagster_ui.home, SHARDS[1])) == 1
    width, height = _png_size(final)
    assert (width, height) == (1600, 1000) or width >= 800
    assert final.stat().st_size > 20_000  # a rendered page, not a blank image
