"""Batched generation with out-of-memory back-off.

A batch that runs out of GPU memory is retried in halves (the smaller size is kept for the rest of the
run); a single item that still does not fit fails alone with the reason. Any other exception in a batch
is narrowed down the same way, so one bad clip cannot take its batch-mates with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA (or MPS / CPU allocator) out-of-memory, however the framework spells it."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and ("out of memory" in text or isinstance(exc, MemoryError))


def release_cached_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


@dataclass
class BatchOutcome(Generic[T, R]):
    results: list[tuple[T, R]] = field(default_factory=list)
    failures: list[tuple[T, str, str]] = field(default_factory=list)  # (item, reason, detail)
    oom_events: int = 0
    batch_size: int = 0  # size in use at the end (after any back-off)


class AdaptiveBatcher(Generic[T, R]):
    """Runs `step(items) -> results` (one result per item, same order) over batches of at most
    `batch_size` items, halving the size on out-of-memory. Keeps the reduced size across calls."""

    def __init__(self, step: Callable[[list[T]], Sequence[R]], batch_size: int,
                 oom_check: Callable[[BaseException], bool] = is_out_of_memory,
                 on_oom: Callable[[int, int], None] | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.step = step
        self.batch_size = batch_size
        self.oom_check = oom_check
        self.on_oom = on_oom
        self.oom_events = 0

    def run(self, items: Sequence[T], on_results: Callable[[list[tuple[T, R]]], None] | None = None) -> BatchOutcome[T, R]:
        outcome: BatchOutcome[T, R] = BatchOutcome()
        queue = list(items)
        while queue:
            batch, queue = queue[: self.batch_size], queue[self.batch_size:]
            self._run_batch(batch, outcome, on_results)
        outcome.oom_events = self.oom_events
        outcome.batch_size = self.batch_size
        return outcome

    def _run_batch(self, batch: list[T], outcome: BatchOutcome, on_results) -> None:
        if len(batch) > self.batch_size:  # the size came down (OOM) since this batch was cut
            for i in range(0, len(batch), self.batch_size):
                self._run_batch(batch[i: i + self.batch_size], outcome, on_results)
            return
        try:
            results = list(self.step(batch))
            if len(results) != len(batch):
                raise RuntimeError(f"step returned {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if self.oom_check(exc):
                self.oom_events += 1
                release_cached_memory()
                if len(batch) == 1:
                    outcome.failures.append((batch[0], "out of memory at batch size 1", str(exc)[:500]))
                    return
                new_size = (len(batch) + 1) // 2
                if self.on_oom:
                    self.on_oom(len(batch), new_size)
                log.warning("out of memory at batch size %d; retrying with %d", len(batch), new_size)
                self.batch_size = min(self.batch_size, new_size)
            elif len(batch) == 1:
                outcome.failures.append((batch[0], f"generation failed: {type(exc).__name__}: {str(exc)[:200]}",
                                         repr(exc)[:1000]))
                return
            else:
                log.warning("batch of %d failed (%s: %s); retrying its items in halves", len(batch),
                            type(exc).__name__, exc)
            half = (len(batch) + 1) // 2
            self._run_batch(batch[:half], outcome, on_results)
            self._run_batch(batch[half:], outcome, on_results)
            return
        pairs = list(zip(batch, results))
        outcome.results.extend(pairs)
        if on_results:
            on_results(pairs)
