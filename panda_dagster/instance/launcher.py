"""The local run launcher: Dagster's default launcher (runs in the code server's subprocesses) plus a
run-worker health check, so the daemon's run monitoring sees a killed run and fails it (then run
retries re-launch it). Resuming a run in place is not supported by this launcher: a dead run is failed
and retried, which re-executes only the steps that had not succeeded."""

from __future__ import annotations

from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from panda_dagster.instance.dead_runs import dead_run_message, run_worker_state, worker_processes


class PandaRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        state = run_worker_state(self._instance, run.run_id)
        if state == "dead":
            message = dead_run_message(worker_processes(self._instance, run.run_id))
            return CheckRunHealthResult(WorkerStatus.FAILED, message)
        # No pid recorded yet: the worker is starting (start_timeout_seconds covers one that never does).
        return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker process alive" if state == "alive" else None)
