"""Still images and slideshows: a picture that does not change, or changes only at rare jumps.

Consecutive small grey frames 0.25 s apart (`frames.MotionFrameSampler`) count as changed when more than
`changed_pixels` of their pixels differ by more than `pixel_delta` grey levels (above compression
noise). The score is the share of changed intervals; a still photo scores 0, a slideshow with a new
image every 2 s about 0.12; on the shared videos every clip scores 0.5-1 (a static camera with a person
talking included) except stretches of the static parking-lot camera where no car moves (0-0.19) and the
trailer's black end card (0.08): the bar is 0.2. Panda-70M's
audit counts still images as its largest defect class (6.8 %); its own filter drops events whose
start/end embeddings are nearly equal, which misses a still that is followed by a jump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs, FilterBase, at_most

STILL = "still"


@dataclass
class StillParams:
    max_changing_share: float = field(default=0.2, metadata={"help": "Drop when at most this share of 0.25 s "
                                      "intervals shows a change (still image, slideshow)"})
    pixel_delta: int = field(default=12, metadata={"help": "Grey-level difference that counts as a changed pixel"})
    changed_pixels: float = field(default=0.005, metadata={"help": "Share of changed pixels that makes an "
                                  "interval a change"})


class StillFilter(FilterBase, name="still", params_type=StillParams, score_names=("changing_share",),
                  needs_motion_frames=True):
    def score(self, clip: ClipInputs, params: StillParams) -> dict[str, float]:
        frames = clip.motion_frames
        if frames is None or len(frames) < 2:
            return self.no_scores()
        grey = frames.gray.astype(np.int16)
        changed = (np.abs(np.diff(grey, axis=0)) > params.pixel_delta).mean(axis=(1, 2))
        return {"changing_share": float((changed > params.changed_pixels).mean())}

    def decide(self, scores: Mapping[str, float], params: StillParams) -> list[str]:
        return [STILL] if at_most(scores, "changing_share", params.max_changing_share) else []
