"""The protocol every shot detector implements, and what a detection returns.

A detector works in two steps so that the single decode pass can feed it, also when one long video is
decoded as parallel stretches (lib/video/segmented.py): `frame_scorer()` makes a per-frame consumer whose
`scores` (one entry per frame, first axis = frames; a structured array where a detector keeps several
values per frame) depend only on a frame and its predecessor, so stretches scored apart join exactly;
`detect(scores, fps)` then decides once over the whole video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

CUT = "cut"
GRADUAL = "gradual"


@dataclass(frozen=True)
class Boundary:
    """One shot boundary. `frame` is the first frame of the next shot (for a gradual transition: its
    middle); a gradual transition covers frames [start, end), which belong to neither shot."""

    kind: str  # CUT or GRADUAL
    frame: int
    start: int
    end: int  # exclusive; for a cut start == end == frame
    kind_detail: str = ""  # what the detector thinks it is, e.g. "dissolve" (informational)

    @classmethod
    def cut(cls, frame: int) -> Boundary:
        return cls(CUT, int(frame), int(frame), int(frame))

    @classmethod
    def gradual(cls, start: int, end: int, detail: str = "") -> Boundary:
        start, end = int(start), int(end)
        return cls(GRADUAL, (start + end) // 2, start, end, detail)

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "frame": self.frame}
        if self.kind == GRADUAL:
            out.update(start=self.start, end=self.end)
        return out


@dataclass
class Detection:
    detector: str
    boundaries: list[Boundary]
    scores: np.ndarray = field(repr=False)  # what the decision was made on (diagnostics)

    @property
    def cuts(self) -> list[int]:
        """The boundary frames (hard cuts and the middles of gradual transitions)."""
        return [b.frame for b in self.boundaries]

    @property
    def gradual(self) -> list[tuple[int, int]]:
        return [(b.start, b.end) for b in self.boundaries if b.kind == GRADUAL]


class FrameScorer(Protocol):
    """Fed every decoded analysis frame (BGR, ~256 px wide) in order."""

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None: ...

    @property
    def scores(self) -> np.ndarray: ...


@runtime_checkable
class ShotDetector(Protocol):
    """One detector = one class with a `name`, a `Params` dataclass (defaults and help texts, which the
    Dagster config and `panda split` expose) and the two steps below. Register it in `detectors/__init__.py`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for help texts
    Params: ClassVar[type]

    def __init__(self, params) -> None: ...

    def frame_scorer(self) -> FrameScorer:
        """A fresh per-frame consumer (must be picklable with the detector: stretches score in workers)."""
        ...

    def detect(self, scores: np.ndarray, fps: float) -> Detection: ...


class DetectorBase:
    """What every detector does alike: it holds its `Params` (their defaults when none are given) and makes a
    fresh `Scorer` per decode pass. A detector names these in its class line,
    `class ContentDetector(DetectorBase, name="content", params=ContentParams, scorer=ContentScorer, summary=...)`,
    and writes `detect`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type]
    Scorer: ClassVar[type]

    def __init_subclass__(cls, *, name: str, summary: str, params: type, scorer: type, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.summary, cls.Params, cls.Scorer = name, summary, params, scorer

    def __init__(self, params=None) -> None:
        self.params = params or self.Params()

    def frame_scorer(self):
        return self.Scorer()


def cuts_to_boundaries(cuts: Sequence[int]) -> list[Boundary]:
    return [Boundary.cut(c) for c in cuts]
