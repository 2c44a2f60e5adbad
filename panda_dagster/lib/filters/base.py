"""What every filter sees (`ClipInputs`) and the small protocol each filter module implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np


@dataclass
class MotionFrames:
    """Small grayscale frames of one clip on a regular time grid (see `frames.MotionFrameSampler`)."""

    gray: np.ndarray  # (n, h, w) uint8
    times_s: np.ndarray  # (n,) float64, seconds from the video start

    def __len__(self) -> int:
        return int(self.gray.shape[0])


@dataclass
class ClipInputs:
    """One clip and everything a filter may look at. Frames are loaded lazily and at most once."""

    clip_id: str
    video_id: str
    shard: str
    start_s: float
    end_s: float
    video_width: int  # of the source video (key frames are stored downscaled)
    video_height: int
    keyframe_uris: Sequence[str] = ()
    read_image: Callable[[str], np.ndarray] | None = None  # URI -> RGB uint8 array
    motion_frames: MotionFrames | None = None  # filled by the shard step for filters that need them
    embedding: np.ndarray | None = None  # unit-norm mean key-frame embedding (table keyframe_embeddings)
    notes: dict[str, str] = field(default_factory=dict)  # what a filter found besides scores (the text read)
    _keyframes: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def keyframes(self) -> list[np.ndarray]:
        """The stored key frames (RGB), read once."""
        if self._keyframes is None:
            if self.keyframe_uris and self.read_image is None:
                raise ValueError(f"clip {self.clip_id}: key frames given without a reader")
            self._keyframes = [self.read_image(uri) for uri in self.keyframe_uris] if self.keyframe_uris else []
        return self._keyframes

    def release_frames(self) -> None:
        """Forget the decoded frames (they are read again if asked for); scores stay."""
        if self.read_image is not None:
            self._keyframes = None
        self.motion_frames = None

    @keyframes.setter
    def keyframes(self, frames: list[np.ndarray]) -> None:
        self._keyframes = list(frames)


class ClipFilter(Protocol):
    """A filter: its name, its parameters dataclass (documented defaults) and two steps.

    `score` measures (floats; NaN when the clip has nothing to measure) and `decide` turns scores into
    reason codes (empty list = keep). Keeping them apart lets thresholds change without re-scoring.
    """

    name: ClassVar[str]
    params_type: ClassVar[type]
    needs_motion_frames: ClassVar[bool]  # the shard step provides `ClipInputs.motion_frames`
    score_names: ClassVar[tuple[str, ...]]  # the scores it returns (columns of table clip_filters)

    def score(self, clip: ClipInputs, params: Any) -> dict[str, float]: ...

    def decide(self, scores: Mapping[str, float], params: Any) -> list[str]: ...


class FilterBase:
    """What the per-clip filters share. A filter declares what `ClipFilter` asks for in its class line,
    `class StillFilter(FilterBase, name="still", params_type=StillParams, score_names=("changing_share",),
    needs_motion_frames=True)`, and writes `score` and `decide`."""

    name: ClassVar[str]
    params_type: ClassVar[type]
    needs_motion_frames: ClassVar[bool] = False
    score_names: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, *, name: str, params_type: type, score_names: tuple[str, ...],
                          needs_motion_frames: bool = False, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.params_type, cls.score_names = name, params_type, tuple(score_names)
        cls.needs_motion_frames = needs_motion_frames

    def no_scores(self) -> dict[str, float]:
        """Every score NaN: the clip has nothing to measure."""
        return dict.fromkeys(self.score_names, float("nan"))


def exceeds(scores: Mapping[str, float], name: str, bar: float) -> bool:
    """Score `name` was measured (finite) and is above `bar`."""
    value = scores.get(name, np.nan)
    return bool(np.isfinite(value) and value > bar)


def at_most(scores: Mapping[str, float], name: str, bar: float) -> bool:
    """Score `name` was measured (finite) and is at most `bar`."""
    value = scores.get(name, np.nan)
    return bool(np.isfinite(value) and value <= bar)


def below(scores: Mapping[str, float], name: str, bar: float) -> bool:
    """Score `name` was measured (finite) and is below `bar`."""
    value = scores.get(name, np.nan)
    return bool(np.isfinite(value) and value < bar)


def gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def finite_or_nan(value: float | None) -> float:
    return float(value) if value is not None and np.isfinite(value) else float("nan")
