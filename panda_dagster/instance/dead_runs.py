"""Dead runs: a run whose processes are gone is marked failed and its pool slots are freed.

Why: a SIGKILLed `dagster asset materialize` (OOM killer, Ctrl-\\, a closed laptop) never reports its end,
so it stays STARTED and keeps its `gpu` slot; every later run in that pool waits for ever. Dagster's run
monitoring (daemon) only asks the run launcher whether a run worker lives, and the default launcher
cannot tell. Every run worker logs its pid in ENGINE_EVENTs ("Started process for run (pid: N)", the
multiprocess executor's parent and step processes), so on the host of a SQLite instance a run is alive
while one of those processes is: same pid, started no later than the event that named it (a recycled
pid belongs to a younger process), not a zombie.

Three places use it:
- `SlotClaimsFreeDeadOwners` (mixed into the event log storage): when a step's claim on a pool slot is
  blocked, the runs holding slots of that pool are checked (at most every SWEEP_INTERVAL_S) and the dead
  ones are failed and their slots freed, so a CLI run with no daemon is not blocked by a dead owner;
- the same mixin, when a run starts: runs left STARTED by dead processes are failed (the UI and
  backfills stop waiting for them);
- `launcher.PandaRunLauncher.check_run_worker_health`: run monitoring in the daemon fails dead runs
  (run retries then re-launch them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from panda_dagster.lib.processes import process_alive

SWEEP_INTERVAL_S = 3.0


@dataclass(frozen=True)
class WorkerProcess:
    pid: int
    seen_at: float  # timestamp of the event that named it


def worker_processes(instance, run_id: str) -> list[WorkerProcess]:
    """Processes the run's events name: run worker and executor parent (ENGINE_EVENT), step processes
    (STEP_WORKER_STARTED)."""
    from dagster import DagsterEventType

    found: dict[int, float] = {}
    kinds = {DagsterEventType.ENGINE_EVENT, DagsterEventType.STEP_WORKER_STARTED}
    for record in instance.get_records_for_run(run_id, of_type=kinds, limit=10_000).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        data = event.event_specific_data if event is not None else None
        pid_value = (getattr(data, "metadata", None) or {}).get("pid")
        if pid_value is None:
            continue
        try:
            pid = int(getattr(pid_value, "value", pid_value))
        except (TypeError, ValueError):
            continue
        found.setdefault(pid, entry.timestamp)
    return [WorkerProcess(pid, ts) for pid, ts in found.items()]


def run_worker_state(instance, run_id: str) -> str:
    """'alive', 'dead' (every recorded process is gone) or 'unknown' (no process recorded yet)."""
    processes = worker_processes(instance, run_id)
    if not processes:
        return "unknown"
    if any(process_alive(p.pid, p.seen_at) for p in processes):
        return "alive"
    return "dead"


def dead_run_message(processes: list[WorkerProcess]) -> str:
    pids = ", ".join(str(p.pid) for p in processes) or "none recorded"
    return (f"Run worker is gone (processes {pids} no longer exist on this host; killed or crashed): "
            "marked failed and its pool slots freed")


def fail_dead_run(instance, run) -> bool:
    """Mark `run` failed (unexpected termination, so run retries apply) and free its slots."""
    from dagster._core.events import JobFailureData, RunFailureReason

    processes = worker_processes(instance, run.run_id)
    instance.report_run_failed(
        run, dead_run_message(processes),
        job_failure_data=JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return True


def release_dead_owners(instance, exclude_run_id: str | None = None) -> list[str]:
    """Fail runs that hold pool slots (or queue for them) while their processes are gone, and free the
    slots of runs that already ended. Returns the run ids whose slots were freed."""
    from dagster._core.storage.dagster_run import FINISHED_STATUSES, DagsterRunStatus

    storage = instance.event_log_storage
    freed = []
    for run_id in storage.get_concurrency_run_ids():
        if run_id == exclude_run_id:
            continue
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in FINISHED_STATUSES:
            storage.free_concurrency_slots_for_run(run_id)
            freed.append(run_id)
        elif run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING):
            if run_worker_state(instance, run_id) == "dead":
                fail_dead_run(instance, run)
                freed.append(run_id)
    return freed


def fail_dead_runs(instance, exclude_run_id: str | None = None, limit: int = 200) -> list[str]:
    """Fail every STARTED/STARTING/CANCELING run whose processes are all gone (slots freed too)."""
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING]
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=statuses), limit=limit):
        if run.run_id != exclude_run_id and run_worker_state(instance, run.run_id) == "dead":
            fail_dead_run(instance, run)
            failed.append(run.run_id)
    return failed


class SlotClaimsFreeDeadOwners:
    """Mixin for an event log storage: a blocked pool-slot claim first frees slots of dead runs, and
    every run start fails the runs left STARTED by dead processes (so no daemon is needed for either)."""

    _last_sweep: float = 0.0

    def store_event(self, event) -> None:
        super().store_event(event)
        dagster_event = getattr(event, "dagster_event", None)
        if dagster_event is None or not self.has_instance:
            return
        from dagster import DagsterEventType

        if dagster_event.event_type == DagsterEventType.RUN_START:
            try:
                fail_dead_runs(self._instance, exclude_run_id=event.run_id)
            except Exception:  # noqa: BLE001  housekeeping must never break the run that starts
                import logging

                logging.getLogger(__name__).exception("could not check for dead runs")

    def claim_concurrency_slot(self, concurrency_key, run_id, step_key, priority=None):
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        if status.is_claimed or not self.has_instance:
            return status
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_INTERVAL_S:
            return status
        self._last_sweep = now
        if release_dead_owners(self._instance, exclude_run_id=run_id):
            status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        return status
