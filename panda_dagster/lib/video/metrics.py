"""Shot-boundary accuracy: predicted cut frames against hard cuts and gradual transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class CutScore:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        # No boundaries and no predictions is a perfect answer; otherwise the usual harmonic mean.
        if self.tp + self.fp + self.fn == 0:
            return 1.0
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    def __add__(self, other: CutScore) -> CutScore:
        return CutScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def score_cuts(predicted: Sequence[float], hard_cuts: Sequence[float], gradual: Sequence[tuple[float, float]] = (),
               tolerance: float = 2, gradual_required: bool = False) -> CutScore:
    """One-to-one matching: a hard cut matches a prediction within `tolerance` (frames, or seconds when
    everything is in seconds); a gradual transition [start, end) matches a prediction that lands inside
    it (widened by `tolerance`; half-open, so the same call works in frames and in seconds). Each
    prediction and boundary is used at most once, nearest pairs first.

    Hard-cut F1 (default): a cut inside a gradual transition is a true positive, a gradual transition
    without one is not a miss. `gradual_required=True` counts missed gradual transitions as misses."""
    boundaries = [(c - tolerance, c + tolerance, float(c), True) for c in hard_cuts]
    boundaries += [(a - tolerance, b + tolerance, (a + b) / 2.0, False) for a, b in gradual]
    pairs = sorted(
        (abs(p - centre), i, j)
        for i, (lo, hi, centre, closed) in enumerate(boundaries)
        for j, p in enumerate(predicted)
        if lo <= p and (p <= hi if closed else p < hi)
    )
    used_b: set[int] = set()
    used_p: set[int] = set()
    for _, i, j in pairs:
        if i not in used_b and j not in used_p:
            used_b.add(i)
            used_p.add(j)
    tp = len(used_b)
    missed = [i for i in range(len(boundaries)) if i not in used_b]
    if not gradual_required:
        missed = [i for i in missed if i < len(hard_cuts)]
    return CutScore(tp=tp, fp=len(predicted) - len(used_p), fn=len(missed))


@dataclass
class TruthBoundary:
    """A known boundary: a hard cut at `frame` (start == end == frame) or a gradual transition [start, end)."""

    kind: str  # 'cut' or the kind of gradual transition (dissolve, fade, wipe, ...)
    start: int
    end: int
    frame: int

    @property
    def is_cut(self) -> bool:
        return self.kind == "cut"


def match_boundaries(predicted: Sequence[int], truth: Sequence[TruthBoundary],
                     tolerance: int = 2) -> tuple[dict[int, int], list[int]]:
    """One-to-one matching in frames, nearest pairs first: a cut matches a prediction within `tolerance`
    frames, a gradual transition one inside [start - tolerance, end + tolerance). Returns ({truth index:
    prediction index}, indices of the unmatched predictions)."""
    pairs = []
    for i, t in enumerate(truth):
        lo, hi = t.start - tolerance, (t.end + tolerance if t.is_cut else t.end + tolerance - 1)
        for j, p in enumerate(predicted):
            if lo <= p <= hi:
                pairs.append((abs(p - t.frame), i, j))
    matched: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in matched and j not in used:
            matched[i] = j
            used.add(j)
    return matched, [j for j in range(len(predicted)) if j not in used]
