"""Pool threads helping a busy one (`run_with_helpers`) and the allocator tuning, on real threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from panda_dagster.lib.processes import run_with_helpers, tune_malloc_for_tensors


def test_every_item_runs_once_and_a_free_pool_thread_helps():
    seen: list[int] = []
    threads: set[str] = set()
    lock = threading.Lock()

    def work(item: int) -> None:
        time.sleep(0.02)
        with lock:
            seen.append(item)
            threads.add(threading.current_thread().name)

    with ThreadPoolExecutor(max_workers=2) as pool:
        run_with_helpers(pool, 1, work, range(20))
    assert sorted(seen) == list(range(20))
    assert len(threads) == 2  # the caller and one pool thread


def test_busy_pool_threads_calling_it_do_not_deadlock():
    """Both pool threads split a long item and wait: neither may wait for a helper that cannot start."""
    done: list[str] = []

    with ThreadPoolExecutor(max_workers=2) as pool:
        def video(name: str) -> None:
            run_with_helpers(pool, 1, lambda item: time.sleep(0.01), range(10))
            done.append(name)

        futures = [pool.submit(video, name) for name in ("a", "b", "c")]
        for future in futures:
            future.result(timeout=20)
    assert sorted(done) == ["a", "b", "c"]


def test_the_first_failure_is_raised_after_the_running_items_finish():
    finished: list[int] = []

    def work(item: int) -> None:
        if item == 3:
            raise ValueError("item 3 is broken")
        time.sleep(0.01)
        finished.append(item)

    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(ValueError, match="item 3"):
        run_with_helpers(pool, 1, work, range(10))
    assert 3 not in finished and len(finished) < 10  # no new items are taken after a failure
    run_with_helpers(None, 0, finished.append, [])  # nothing to do: returns at once


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_is_tuned_once_per_process_unless_asked_not_to():
    assert tune_malloc_for_tensors() is True
    assert tune_malloc_for_tensors() is True  # a second call changes nothing
    code = "from panda_dagster.lib.processes import tune_malloc_for_tensors as t; print(t())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PANDA_MALLOC_DEFAULTS": "1"})
    assert out.stdout.strip() == "False"
