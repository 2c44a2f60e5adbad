"""The one process-wide model cache: every loaded model (open_clip, teachers, ASR, shot detectors,
selection models) lives here, so a model is loaded once per process however many shards, assets or
runs the process executes.

Keys are tuples the caller builds from what changes the weights (model id, revision, dtype, device);
settings that only change how the model is called (prompt, batch size) must not be part of the key.
Loading happens outside the global lock, under a per-key lock: two threads asking for the same model
wait for one load; different models load in parallel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from panda_dagster.lib.processes import tune_malloc_for_tensors

log = logging.getLogger(__name__)

T = TypeVar("T")

_MODELS: dict[Hashable, object] = {}
_SLOTS: dict[str, Hashable] = {}  # slot name -> the key that currently holds it
_KEY_LOCKS: dict[Hashable, threading.Lock] = {}
_LOCK = threading.Lock()


def cached_model(key: Hashable, load: Callable[[], T], *, slot: str | None = None) -> T:
    """The model stored under `key`, calling `load()` the first time.

    `slot`: at most one model per slot stays loaded (e.g. only the newest fine-tuned selection model):
    loading a new key into a slot drops the slot's previous model.
    """
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]  # type: ignore[return-value]
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:
        with _LOCK:
            if key in _MODELS:
                return _MODELS[key]  # type: ignore[return-value]
        tune_malloc_for_tensors()  # a process that loads a model runs tensors through it
        model = load()
        with _LOCK:
            if slot is not None:
                previous = _SLOTS.get(slot)
                if previous is not None and previous != key:
                    _close(_MODELS.pop(previous, None))
                _SLOTS[slot] = key
            _MODELS[key] = model
        log.info("loaded model %s", key)
        return model


def loaded_models() -> dict[Hashable, object]:
    """A snapshot of what is loaded, by key."""
    with _LOCK:
        return dict(_MODELS)


def evict(predicate: Callable[[Hashable], bool] = lambda key: True) -> int:
    """Drop (and `close()` where they have one) the models whose key matches; returns how many."""
    with _LOCK:
        keys = [key for key in _MODELS if predicate(key)]
        dropped = [_MODELS.pop(key) for key in keys]
        for slot, key in list(_SLOTS.items()):
            if key in keys:
                del _SLOTS[slot]
    for model in dropped:
        _close(model)
    return len(dropped)


def _close(model: object) -> None:
    close = getattr(model, "close", None)
    if callable(close):
        close()
