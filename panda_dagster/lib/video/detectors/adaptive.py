"""`adaptive`: PySceneDetect's AdaptiveDetector decisions over the same HSV frame scores as `content`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.video.detectors.base import Detection, DetectorBase, cuts_to_boundaries
from panda_dagster.lib.video.detectors.content import PANDA_MIN_SCENE_LEN, ContentScorer


def adaptive_cuts(
    scores: np.ndarray,
    adaptive_threshold: float = 3.0,
    min_scene_len: int = PANDA_MIN_SCENE_LEN,
    window: int = 2,
    min_content_val: float = 15.0,
) -> list[int]:
    """AdaptiveDetector: a frame is a cut when its score is `adaptive_threshold` times the mean score of
    the `window` frames on either side (and at least `min_content_val`), `min_scene_len` after the last."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    span = 2 * window + 1
    if n < span:
        return []
    sums = np.convolve(scores, np.ones(span), mode="valid")  # sums[k] covers frames k .. k+2w
    targets = np.arange(window, n - window)
    target_scores = scores[targets]
    neighbour_mean = (sums - target_scores) / (2.0 * window)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(neighbour_mean) < 1e-5,
                         np.where(target_scores >= min_content_val, 255.0, 0.0),
                         np.minimum(target_scores / neighbour_mean, 255.0))
    candidates = targets[(ratio >= adaptive_threshold) & (target_scores >= min_content_val)]
    cuts: list[int] = []
    last_cut = 0
    for frame in candidates:
        if frame - last_cut >= min_scene_len:
            cuts.append(int(frame))
            last_cut = int(frame)
    return cuts


@dataclass
class AdaptiveParams:
    """PySceneDetect AdaptiveDetector settings."""

    threshold: float = field(default=3.0, metadata={"help": "Score / neighbourhood-mean ratio of a cut"})
    window: int = field(default=2, metadata={"help": "Frames on each side of the neighbourhood"})
    min_content_val: float = field(default=15.0, metadata={"help": "Smallest HSV score of a cut"})
    min_scene_len: int = field(default=PANDA_MIN_SCENE_LEN, metadata={"help": "Shortest shot, in frames"})

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("adaptive window must be at least 1")


class AdaptiveDetector(DetectorBase, name="adaptive", params=AdaptiveParams, scorer=ContentScorer,
                       summary="PySceneDetect AdaptiveDetector decisions (HSV score against its neighbourhood)"):

    def detect(self, scores: np.ndarray, fps: float) -> Detection:
        p = self.params
        scores = np.asarray(scores, dtype=np.float64)
        cuts = adaptive_cuts(scores, p.threshold, p.min_scene_len, p.window, p.min_content_val)
        return Detection(self.name, cuts_to_boundaries(cuts), scores)
