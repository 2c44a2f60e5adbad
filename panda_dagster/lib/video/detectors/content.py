"""`content`: PySceneDetect's ContentDetector decisions (Panda-70M's shot detector).

Same HSV frame score, threshold, `min_scene_len` and flash-filter semantics as PySceneDetect, but each
small frame is scored with two OpenCV calls instead of PySceneDetect's per-channel Python work, and the
cut logic runs on the score array afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.video.detectors.base import Detection, DetectorBase, cuts_to_boundaries

# Panda-70M's shot detection settings (ContentDetector, threshold 25, shots of at least 15 frames).
PANDA_CONTENT_THRESHOLD = 25.0
PANDA_MIN_SCENE_LEN = 15
FLASH_FILTER_MODES = ("merge", "suppress")


class ContentScorer:
    """Per-frame HSV difference to the previous frame, as PySceneDetect's `content_val`."""

    def __init__(self, weights=(1.0, 1.0, 1.0)):
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != 3:
            raise ValueError(f"need three weights (hue, saturation, luma), got {len(self.weights)}")
        if sum(abs(w) for w in self.weights) == 0:
            raise ValueError("at least one of the hue/saturation/luma weights must be non-zero")
        self._previous: np.ndarray | None = None
        self._scores: list[float] = []

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        import cv2

        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        self._scores.append(self.score(hsv))
        self._previous = hsv

    def score(self, hsv: np.ndarray) -> float:
        import cv2

        if self._previous is None:
            return 0.0  # PySceneDetect scores the first frame 0
        sums = cv2.sumElems(cv2.absdiff(hsv, self._previous))[:3]
        n_pixels = float(hsv.shape[0] * hsv.shape[1])
        return sum(w * s / n_pixels for w, s in zip(self.weights, sums)) / sum(abs(w) for w in self.weights)

    @property
    def scores(self) -> np.ndarray:
        return np.asarray(self._scores, dtype=np.float64)


def flash_filter(above: np.ndarray, min_len: int, mode: str = "merge") -> list[int]:
    """Turn per-frame 'score above threshold' flags into cuts with PySceneDetect's FlashFilter rules.

    suppress: a cut needs `min_len` frames since the previous above-threshold frame that was emitted.
    merge: a burst of above-threshold frames closer than `min_len` is merged into one cut at its last
    frame, emitted once the burst has lasted `min_len` frames and a quiet frame follows; merging only
    starts after the first regular cut (a cut right after the video start is not merged).
    """
    flags = np.asarray(above, dtype=bool)
    if min_len <= 0:
        return [int(i) for i in np.flatnonzero(flags)]
    cuts: list[int] = []
    if mode == "suppress":
        last = 0
        for i in np.flatnonzero(flags):
            if i - last >= min_len:
                cuts.append(int(i))
                last = int(i)
        return cuts
    last_above = 0
    merge_enabled = False
    merging = False
    merge_start = 0
    for i, is_above in enumerate(flags):
        long_enough = (i - last_above) >= min_len
        if is_above:
            last_above = i
        if merging:
            if long_enough and not is_above and (last_above - merge_start) >= min_len:
                merging = False
                cuts.append(last_above)
            continue
        if not is_above:
            continue
        if long_enough:
            merge_enabled = True
            cuts.append(i)
        elif merge_enabled:
            merging = True
            merge_start = i
    return cuts


def content_cuts(scores: np.ndarray, threshold: float, min_scene_len: int, mode: str = "merge") -> list[int]:
    return flash_filter(np.asarray(scores) >= threshold, min_scene_len, mode)


@dataclass
class ContentParams:
    """PySceneDetect ContentDetector settings (Panda-70M: threshold 25, 15 frames)."""

    threshold: float = field(default=PANDA_CONTENT_THRESHOLD, metadata={"help": "HSV frame-difference threshold"})
    min_scene_len: int = field(default=PANDA_MIN_SCENE_LEN, metadata={"help": "Shortest shot, in frames"})
    flash_filter: str = field(default="merge", metadata={
        "help": "merge or suppress: PySceneDetect's FlashFilter mode for bursts closer than min_scene_len"})
    weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0], metadata={
        "help": "Weights of hue, saturation and luma in the frame score"})

    def __post_init__(self) -> None:
        if self.flash_filter not in FLASH_FILTER_MODES:
            raise ValueError(f"flash_filter must be 'merge' or 'suppress', got {self.flash_filter!r}")
        ContentScorer(self.weights)  # validates the weights


class ContentDetector(DetectorBase, name="content", params=ContentParams, scorer=ContentScorer,
                      summary="PySceneDetect ContentDetector decisions (HSV frame differences; Panda-70M's settings)"):

    def frame_scorer(self) -> ContentScorer:
        return self.Scorer(self.params.weights)

    def detect(self, scores: np.ndarray, fps: float) -> Detection:
        scores = np.asarray(scores, dtype=np.float64)
        cuts = content_cuts(scores, self.params.threshold, self.params.min_scene_len, self.params.flash_filter)
        return Detection(self.name, cuts_to_boundaries(cuts), scores)
