"""Processes and cores, one answer each for the project: is a process alive (dead-run detection in
`instance/dead_runs.py`, the tests that prove helper processes such as METEOR's JVM are gone), how
many cores this process may use, idle pool threads helping a busy one, and the process's allocator
tuned for tensor work. Standard library only."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

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


def run_with_helpers(pool: Executor | None, helpers: int, work: Callable[[T], None], items: Sequence[T]) -> None:
    """`work(item)` for every item, by the calling thread and by up to `helpers` threads of `pool` that
    are free to help. The caller never waits for a helper to start, only for the items a helper has
    taken: a pool thread calling this (one long video among many) cannot deadlock the pool, and its
    threads help once their queued tasks are done. The first exception is raised here."""
    items = list(items)
    if not items:
        return
    lock, done = threading.Lock(), threading.Condition()
    state = {"next": 0, "running": 0}
    errors: list[BaseException] = []

    def drain() -> None:
        while True:
            with lock:
                if errors or state["next"] >= len(items):
                    return
                item = items[state["next"]]
                state["next"] += 1
                state["running"] += 1
            try:
                work(item)
            except BaseException as exc:  # noqa: BLE001  re-raised by the caller
                with lock:
                    errors.append(exc)
            finally:
                with done:
                    with lock:
                        state["running"] -= 1
                    done.notify_all()

    if pool is not None:
        for _ in range(min(helpers, len(items) - 1)):
            pool.submit(drain)
    drain()
    with done:
        done.wait_for(lambda: state["running"] == 0)
    if errors:
        raise errors[0]


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: every block below it comes from the reusable heap
TRIM_THRESHOLD = 128 << 20  # freed memory kept for reuse before it goes back to the system
_malloc_tuned: bool | None = None
_malloc_lock = threading.Lock()


def tune_malloc_for_tensors() -> bool:
    """Keep the memory of freed tensors for the next ones (glibc only; once per process; True if set).

    Why: by default glibc hands every block over its adaptive threshold (often ~1 MB) straight back to
    the system, so each forward pass maps its activations afresh and the kernel zeroes every page again.
    Measured on the 2-core VM (EfficientNet-Lite0, 1,024 images, 2 threads): 12 M page faults and more
    system than user time; with these settings and image batches of at most `CPU_IMAGE_BATCH`
    (lib/models/base.py) 80 k faults and 2.3x faster. The cost: up to TRIM_THRESHOLD of freed memory
    stays with the process. PANDA_MALLOC_DEFAULTS=1 leaves glibc as it is (for comparisons).
    """
    global _malloc_tuned
    with _malloc_lock:
        if _malloc_tuned is None:
            _malloc_tuned = False
            try:
                mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library linked into Python
                if mallopt is not None and os.environ.get("PANDA_MALLOC_DEFAULTS") != "1":
                    _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            except OSError:  # no loadable C library (not glibc): the allocator stays as it is
                pass
        return _malloc_tuned
