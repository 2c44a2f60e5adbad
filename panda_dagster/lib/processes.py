"""Processes and cores, one answer each for the project: is a process alive (dead-run detection in
`instance/dead_runs.py`, the tests that prove helper processes such as METEOR's JVM are gone) and how
many cores this process may use. Standard library only."""

from __future__ import annotations

import os
from pathlib import Path

# A process named by an event started before the event was written; /proc start times have a
# resolution of one clock tick and boot time of one second.
START_TIME_SLACK_S = 2.0


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(pid: int, not_started_after: float | None = None) -> bool:
    """True when `pid` is a live (non-zombie) process that started no later than `not_started_after`."""
    stat_path = Path(f"/proc/{pid}/stat")
    try:
        stat = stat_path.read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state is field 3
    if fields[0] in ("Z", "X"):
        return False
    if not_started_after is not None:
        boot = _boot_time()
        if boot is not None:
            started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
            if started > not_started_after + START_TIME_SLACK_S:
                return False  # the pid was recycled
    return True


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
