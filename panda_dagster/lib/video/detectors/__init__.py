"""Shot-boundary detectors fed from the single decode pass, each one class behind `ShotDetector`.

Registered by name in `REGISTRY` below (the only place that lists them): `panda split --detector`, the
`clips` config and its parameter sections are derived from it. A new detector is one new module with one
class (a `DetectorBase`: name, summary, Params dataclass, frame scorer; its `detect`) plus one line here.
"""

from __future__ import annotations

import dataclasses
import importlib

from panda_dagster.lib.video.detectors.adaptive import AdaptiveDetector, AdaptiveParams, adaptive_cuts
from panda_dagster.lib.video.detectors.base import CUT, GRADUAL, Boundary, Detection, FrameScorer, ShotDetector
from panda_dagster.lib.video.detectors.content import (
    PANDA_CONTENT_THRESHOLD,
    PANDA_MIN_SCENE_LEN,
    ContentDetector,
    ContentParams,
    ContentScorer,
    content_cuts,
    flash_filter,
)
from panda_dagster.lib.video.detectors.transnetv2 import (
    TRANSNET_SIZE,
    TransNetV2Detector,
    load_transnetv2,
    transnet_cuts,
    transnet_probabilities,
)

# name -> "module:Class" inside this package (imported on first use).
REGISTRY: dict[str, str] = {
    "content": "content:ContentDetector",
    "adaptive": "adaptive:AdaptiveDetector",
    "transnetv2": "transnetv2:TransNetV2Detector",
    "hybrid": "hybrid:HybridDetector",
}
DETECTORS = tuple(REGISTRY)
DEFAULT_DETECTOR = "hybrid"


def detector_class(name: str) -> type[ShotDetector]:
    if name not in REGISTRY:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def _detector_params_type() -> type:
    """A dataclass with one field per registered detector holding its Params (the `detectors` section of
    the split config)."""
    fields = []
    for name in REGISTRY:
        cls = detector_class(name)
        fields.append((name, cls.Params, dataclasses.field(default_factory=cls.Params,
                                                             metadata={"help": f"{name}: {cls.summary}"})))
    params = dataclasses.make_dataclass("DetectorParams", fields)
    params.__module__ = __name__
    params.__doc__ = "Parameters of every detector (only the chosen one's are used)"
    return params


DetectorParams = _detector_params_type()


def make_detector(name: str, params=None) -> ShotDetector:
    """The detector `name` with its section of `params` (a `DetectorParams`), or its defaults."""
    cls = detector_class(name)
    own = getattr(params, name, None) if params is not None else None
    return cls(own if own is not None else cls.Params())


__all__ = [
    "CUT", "GRADUAL", "DEFAULT_DETECTOR", "DETECTORS", "PANDA_CONTENT_THRESHOLD", "PANDA_MIN_SCENE_LEN",
    "REGISTRY", "TRANSNET_SIZE", "AdaptiveDetector", "AdaptiveParams", "Boundary", "ContentDetector",
    "ContentParams", "ContentScorer", "Detection", "FrameScorer", "ShotDetector", "TransNetV2Detector",
    "DetectorParams", "adaptive_cuts", "content_cuts", "detector_class", "flash_filter",
    "load_transnetv2", "make_detector", "transnet_cuts", "transnet_probabilities",
]
