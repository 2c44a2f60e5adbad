"""Where the wall time of one `dagster asset materialize` run goes, from the run's own event log.

Stage code = the `seconds` metadata each per-shard asset records (`common/runner.py` times every
`process_shard` call). Everything else is overhead, split into the phases the event log can tell apart:

- `cli start`: the CLI process starting, importing the code location and creating the run (process start
  until the run's first event);
- `step launch`: the multiprocess executor spawning a step subprocess that imports Dagster, the code
  location and then torch etc. (STEP_WORKER_STARTING -> STEP_WORKER_STARTED, then until resource init);
- `resource init`: RESOURCE_INIT_STARTED -> RESOURCE_INIT_SUCCESS (model resources set up per process);
- `in step, outside stage code`: STEP_START -> STEP_SUCCESS minus the asset's `seconds` (config, model
  loading before the shard loop, catalog reads, checks, metadata, plots);
- `between steps`: a step's end until the next step's first event (subprocess exit, executor polling);
- `run end`: the last step's end until the CLI process has exited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PHASES = ("cli start", "step launch", "resource init", "in step, outside stage code", "between steps", "run end")


@dataclass
class StepTiming:
    step: str
    first_event: float
    worker_starting: float | None = None
    worker_started: float | None = None
    resource_init: float = 0.0
    resource_init_start: float | None = None
    start: float | None = None
    end: float | None = None
    stage_seconds: float = 0.0  # the asset's `seconds` metadata
    metadata: dict = field(default_factory=dict)


@dataclass
class RunTiming:
    run_id: str
    executor: str
    wall_s: float
    stage_s: float
    steps: list[StepTiming]
    phases: dict[str, float]

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.stage_s

    @property
    def overhead_pct(self) -> float:
        return 100.0 * self.overhead_s / self.wall_s if self.wall_s else 0.0


def _plain(value):
    return getattr(value, "value", value)


def markdown_rows(text: str) -> list[dict[str, str]]:
    """Rows of a markdown table an asset put in its metadata (e.g. teacher_captions' `per_teacher`)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        return []
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows.append(dict(zip(header, cells, strict=False)))
    return rows


def run_timing(instance, run_id: str, process_started: float, process_ended: float) -> RunTiming:
    """Phases of one run. `process_started`/`process_ended` are `time.time()` around the CLI process."""
    from dagster import DagsterEventType as T

    steps: dict[str, StepTiming] = {}
    executor = "?"
    run_events: list[float] = []
    run_resource_start: float | None = None
    run_resource_init = 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        run_events.append(entry.timestamp)
        if event is None:
            continue
        if event.event_type == T.ENGINE_EVENT and "Executing steps" in (entry.user_message or ""):
            executor = "in_process" if "in process" in entry.user_message else "multiprocess"
        key = event.step_key
        kind = event.event_type
        if key is None and kind == T.RESOURCE_INIT_STARTED:  # in-process executor: resources once per run
            run_resource_start = entry.timestamp
        elif key is None and kind == T.RESOURCE_INIT_SUCCESS and run_resource_start is not None:
            run_resource_init += entry.timestamp - run_resource_start
        # Planning events name every step at run start; a step's own timeline starts with its first other event.
        if key is None or kind.value.endswith("_PLANNED"):
            continue
        step = steps.setdefault(key, StepTiming(key, entry.timestamp))
        if kind == T.STEP_WORKER_STARTING:
            step.worker_starting = entry.timestamp
        elif kind == T.STEP_WORKER_STARTED:
            step.worker_started = entry.timestamp
        elif kind == T.RESOURCE_INIT_STARTED:
            step.resource_init_start = entry.timestamp
        elif kind == T.RESOURCE_INIT_SUCCESS and step.resource_init_start is not None:
            step.resource_init += entry.timestamp - step.resource_init_start
        elif kind == T.STEP_START:
            step.start = step.start or entry.timestamp
        elif kind in (T.STEP_SUCCESS, T.STEP_FAILURE):
            step.end = entry.timestamp
        elif kind == T.ASSET_MATERIALIZATION:
            metadata = {k: _plain(v) for k, v in event.event_specific_data.materialization.metadata.items()}
            step.metadata = metadata
            if isinstance(metadata.get("seconds"), int | float):
                step.stage_seconds = float(metadata["seconds"])
    ordered = sorted(steps.values(), key=lambda s: s.first_event)
    stage_s = sum(s.stage_seconds for s in ordered)
    phases = dict.fromkeys(PHASES, 0.0)
    phases["cli start"] = (min(run_events) - process_started) if run_events else 0.0
    previous_end: float | None = None
    for step in ordered:
        if step.start is None or step.end is None:
            continue
        if previous_end is not None:
            phases["between steps"] += max(0.0, step.first_event - previous_end)
        launch = step.start - step.first_event - step.resource_init
        phases["step launch"] += max(0.0, launch)
        phases["resource init"] += step.resource_init
        phases["in step, outside stage code"] += max(0.0, step.end - step.start - step.stage_seconds)
        previous_end = step.end
    first = ordered[0].first_event if ordered else process_started
    # Run-level events before the first step (run start, planning) count with `cli start`.
    phases["cli start"] += max(0.0, first - min(run_events)) if run_events else 0.0
    # Resources set up once for the whole run (in-process executor) happen before the first step.
    phases["cli start"] -= run_resource_init
    phases["resource init"] += run_resource_init
    phases["run end"] = max(0.0, process_ended - (previous_end or process_ended))
    return RunTiming(run_id, executor, process_ended - process_started, stage_s, ordered, phases)
