"""Technical quality of the key frames: sharpness, exposure, resolution.

- Sharpness: variance of the Laplacian of the grey key frame (the usual OpenCV focus measure), median
  over the key frames. Key frames are stored at 224 px short side; there the shared videos score 44-2000
  (lowest: the static parking-lot camera 44-141, Sintel's fade-in 48, the flower macro 54), a generated
  clip blurred with a Gaussian of sigma 1.5 / 3 / 6 px (at 432x240) 19 / 7 / 4: the bar is 25.
- Exposure: mean luma (0-255) of the key frames; `dark` below 25 (about 10 %: near-black; the darkest
  shared clip that shows something, Sintel's fade-in, has 38; the trailer's black end card 2),
  `overexposed` when more than half of the pixels are blown out (luma >= 250; shared clips <= 0.1).
- Resolution: the source video's short side below 240 px (`low_resolution`): Panda-70M's sources are
  360p and above; 240p is the lowest rung most platforms still serve, and the shared 288p-480p clips pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs, FilterBase, below, exceeds, gray

BLURRY = "blurry"
DARK = "dark"
OVEREXPOSED = "overexposed"
LOW_RESOLUTION = "low_resolution"


@dataclass
class QualityParams:
    min_sharpness: float = field(default=25.0, metadata={"help": "Variance of the Laplacian of the key frames "
                                 "(224 px short side) below which a clip is blurry"})
    min_brightness: float = field(default=25.0, metadata={"help": "Mean luma (0-255) below which a clip is dark"})
    max_blown_share: float = field(default=0.5, metadata={"help": "Share of pixels at luma >= 250 above which a "
                                   "clip is overexposed"})
    min_short_side: int = field(default=240, metadata={"help": "Source video short side (pixels) below which "
                                "a clip is low_resolution"})


def sharpness(grey: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


class QualityFilter(FilterBase, name="quality", params_type=QualityParams,
                    score_names=("sharpness", "brightness", "blown_share", "short_side")):
    def score(self, clip: ClipInputs, params: QualityParams) -> dict[str, float]:
        short_side = float(min(clip.video_width, clip.video_height)) if clip.video_width else float("nan")
        greys = [gray(frame) for frame in clip.keyframes]
        if not greys:
            return {**self.no_scores(), "short_side": short_side}
        return {
            "sharpness": float(np.median([sharpness(g) for g in greys])),
            "brightness": float(np.mean([g.mean() for g in greys])),
            "blown_share": float(np.mean([(g >= 250).mean() for g in greys])),
            "short_side": short_side,
        }

    def decide(self, scores: Mapping[str, float], params: QualityParams) -> list[str]:
        reasons = []
        dark = below(scores, "brightness", params.min_brightness)
        if dark:
            reasons.append(DARK)
        # a near-black frame has no detail to be sharp: "dark" says it, "blurry" would double-count
        if not dark and below(scores, "sharpness", params.min_sharpness):
            reasons.append(BLURRY)
        if exceeds(scores, "blown_share", params.max_blown_share):
            reasons.append(OVEREXPOSED)
        if below(scores, "short_side", params.min_short_side):
            reasons.append(LOW_RESOLUTION)
        return reasons
