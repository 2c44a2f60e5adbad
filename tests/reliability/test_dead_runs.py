"""Dead runs: a SIGKILLed run holding the `gpu` pool slot must not wedge the pool.

Without a daemon, the next CLI run's blocked slot claim finds the owner's processes gone, fails the dead
run and takes the slot; under `dagster-daemon run`, run monitoring fails the killed run and run retries
re-launch it to success. Both use the project's dagster.yaml (run_monitoring, PandaSqliteStorage)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from panda_dagster.instance.dead_runs import process_alive, release_dead_owners, run_worker_state

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFS = Path(__file__).with_name("dead_run_defs.py")


def _wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None,
              log: Path | None = None):
    def output() -> str:
        if log is not None:
            return log.read_text(errors="replace")[-6000:]
        return proc.stdout.read()[-4000:] if proc is not None and proc.stdout and proc.poll() is not None else ""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited ({proc.returncode}) while waiting for {what}:\n{output()}")
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}:\n{output()}")


def _started_run_ids(control: Path) -> list[str]:
    return [p.name.removeprefix("started-") for p in control.glob("started-*")]


def _gpu_claims(instance) -> int:
    return len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots)


def _materialize() -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-f", str(DEFS), "--select", "gpu_work"]


@pytest.fixture
def control(panda_home, monkeypatch, tmp_path) -> Path:
    path = tmp_path / "control"
    path.mkdir()
    monkeypatch.setenv("PANDA_RELIABILITY_DIR", str(path))
    return path


def test_zombie_and_recycled_pids_are_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while process_alive(child.pid) and time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        time.sleep(0.05)
    assert not process_alive(child.pid)
    child.wait()
    assert process_alive(os.getpid())
    # Our own process was started before now, but not before the epoch: a pid seen "earlier" than its
    # process started is a recycled pid.
    assert not process_alive(os.getpid(), not_started_after=0.0)


def test_killed_cli_run_does_not_block_the_gpu_pool(control):
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    env = os.environ.copy()
    first = subprocess.Popen(_materialize(), cwd=REPO, env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        (dead_run_id,) = _wait_for(lambda: _started_run_ids(control), 180, "the first run's step", first)
        with DagsterInstance.get() as instance:
            assert _gpu_claims(instance) == 1
            assert run_worker_state(instance, dead_run_id) == "alive"
            assert release_dead_owners(instance) == []  # a live owner keeps its slot
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    with DagsterInstance.get() as instance:  # the killed run still says STARTED and holds the slot
        assert instance.get_run_by_id(dead_run_id).status == DagsterRunStatus.STARTED
        assert _gpu_claims(instance) == 1

    (control / "go").write_text("")
    second = subprocess.run(_materialize(), cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    with DagsterInstance.get() as instance:
        dead = instance.get_run_by_id(dead_run_id)
        assert dead.status == DagsterRunStatus.FAILURE
        failure = instance.get_records_for_run(dead_run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert "Run worker is gone" in failure.records[-1].event_log_entry.dagster_event.message
        runs = instance.get_runs()
        assert [r.status for r in runs if r.run_id != dead_run_id] == [DagsterRunStatus.SUCCESS]
        assert _gpu_claims(instance) == 0


@pytest.mark.slow
def test_daemon_fails_a_killed_run_and_retries_it_to_success(control, tmp_path, monkeypatch):
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.storage.tags import PARENT_RUN_ID_TAG

    # The project's dagster.yaml in a fresh DAGSTER_HOME, polled every second instead of every 30 s.
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": {"relative_path": str(DEFS),
                                                                        "location_name": "dead_runs"}}]}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = os.environ.copy()
    with DagsterInstance.get():  # create the SQLite databases once, before two processes race to
        pass
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=tmp_path, env=env,
                              start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        launch = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "gpu_job"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
        (run_id,) = _wait_for(lambda: _started_run_ids(control), 240, "the launched run's step", daemon, log)
        with DagsterInstance.get() as instance:
            from panda_dagster.instance.dead_runs import worker_processes

            step_pid = int((control / f"started-{run_id}").read_text())
            pids = {p.pid for p in worker_processes(instance, run_id)}
            assert step_pid in pids and len(pids) >= 2  # the run worker and its step process
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _wait_for(lambda: instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE, 120,
                      "run monitoring to fail the killed run", daemon, log)
            (control / "go").write_text("")

            def retry_succeeded():
                retries = [r for r in instance.get_runs() if r.tags.get(PARENT_RUN_ID_TAG) == run_id]
                return retries and retries[0].status == DagsterRunStatus.SUCCESS

            _wait_for(retry_succeeded, 240, "the run retry to succeed", daemon, log)
            assert _gpu_claims(instance) == 0
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
