"""The one model cache and the one device resolver."""

from __future__ import annotations

import threading
import time

import pytest

from panda_dagster.lib.models import cache
from panda_dagster.lib.models.device import resolve_device, resolve_dtype


class _Closable:
    def __init__(self, name):
        self.name, self.closed = name, False

    def close(self):
        self.closed = True


def test_a_model_is_loaded_once_even_when_threads_ask_together():
    loads = []

    def load():
        loads.append(1)
        time.sleep(0.05)  # a slow load: the other threads must wait for it, not load their own
        return _Closable("a")

    key = ("test-cache", "once")
    results, barrier = [], threading.Barrier(4)

    def ask():
        barrier.wait()
        results.append(cache.cached_model(key, load))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(r) for r in results}) == 1
    assert cache.loaded_models()[key] is results[0]
    assert cache.evict(lambda k: k == key) == 1 and results[0].closed
    assert key not in cache.loaded_models()


def test_a_slot_keeps_only_the_newest_model():
    first = cache.cached_model(("test-slot", "v1"), lambda: _Closable("v1"), slot="test-slot")
    assert cache.cached_model(("test-slot", "v1"), lambda: _Closable("again"), slot="test-slot") is first
    second = cache.cached_model(("test-slot", "v2"), lambda: _Closable("v2"), slot="test-slot")
    assert first.closed and not second.closed
    loaded = cache.loaded_models()
    assert ("test-slot", "v1") not in loaded and loaded[("test-slot", "v2")] is second
    cache.evict(lambda k: k[0] == "test-slot")


def test_a_failed_load_is_not_cached():
    def broken():
        raise OSError("weights missing")

    with pytest.raises(OSError):
        cache.cached_model(("test-broken",), broken)
    assert cache.cached_model(("test-broken",), lambda: "fixed") == "fixed"
    cache.evict(lambda k: k == ("test-broken",))


def test_device_resolver(monkeypatch):
    import torch

    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device() == "cpu" and resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_dtype("bfloat16", "cpu") == torch.float32  # half precision only on CUDA
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8", "cpu")


def test_open_clip_and_teachers_share_the_one_cache(panda_home):
    from panda_dagster.lib.models.openclip import load_open_clip
    from panda_dagster.lib.teachers.registry import load_registry
    from panda_dagster.lib.teachers.runners import get_runner, loaded_runners

    model = load_open_clip("tiny", "cpu")
    runner = get_runner(load_registry("tiny").teacher("qwen25_text"), "cpu")
    loaded = list(cache.loaded_models().values())
    assert any(m is model for m in loaded) and any(m is runner for m in loaded)
    assert runner in loaded_runners() and model not in loaded_runners()
    assert model.spec.model_id == "tiny/open_clip-PandaTiny-ViT-16-64" and not model.spec.trained
    assert model.label == model.spec.label  # the tiny label


def test_cpu_batches_are_capped_and_cuda_keeps_the_callers():
    from panda_dagster.lib.models.base import CPU_IMAGE_BATCH, cpu_batch_size

    assert cpu_batch_size(64, "cpu", CPU_IMAGE_BATCH) == CPU_IMAGE_BATCH
    assert cpu_batch_size(2, "cpu", CPU_IMAGE_BATCH) == 2
    assert cpu_batch_size(64, "cuda:0", CPU_IMAGE_BATCH) == 64


def test_torch_threads_per_caller_reaches_threads_started_inside_and_is_restored():
    import torch

    from panda_dagster.lib.models.device import torch_threads_per_caller

    before = torch.get_num_threads()
    seen: list[int] = []

    def in_thread():
        torch.ones(4).sum()  # the thread's first torch op sets its thread count
        seen.append(torch.get_num_threads())

    with torch_threads_per_caller(1):
        inside = torch.get_num_threads()
        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
    assert inside == 1 and seen == [1]
    assert torch.get_num_threads() == before
