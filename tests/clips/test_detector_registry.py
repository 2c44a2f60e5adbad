"""Detectors are classes behind one protocol, registered by name; the clips config is derived from the
library's SplitConfig (each parameter declared once)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from panda_dagster.lib.video.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    REGISTRY,
    Boundary,
    DetectorParams,
    ShotDetector,
    detector_class,
    make_detector,
)
from panda_dagster.lib.video.split import SplitConfig


def test_every_registered_detector_follows_the_protocol():
    assert DEFAULT_DETECTOR in DETECTORS and set(DETECTORS) >= {"content", "adaptive", "transnetv2", "hybrid"}
    params = DetectorParams()
    for name in DETECTORS:
        cls = detector_class(name)
        assert cls.name == name and cls.summary and dataclasses.is_dataclass(cls.Params)
        detector = make_detector(name, params)
        assert isinstance(detector, ShotDetector)
        assert getattr(params, name) == cls.Params()  # one parameters section per detector, its defaults
        scorer = pickle.loads(pickle.dumps(detector)).frame_scorer()  # segmented decoding pickles it
        for k in range(3):
            scorer(k, k / 25.0, np.full((36, 64, 3), 40 * k, np.uint8))
        assert len(scorer.scores) == 3
        for f in dataclasses.fields(cls.Params):
            assert f.metadata.get("help"), f"{name}.{f.name} has no help text"


def test_a_new_detector_is_one_class_and_one_registry_line(monkeypatch, cuts_video):
    """Registering a class by name makes it selectable in SplitConfig (and so in `clips` and `panda split`)."""
    from panda_dagster.lib.video.detectors.content import ContentScorer
    from panda_dagster.lib.video.split import split_video

    @dataclasses.dataclass
    class EveryTenParams:
        step: int = dataclasses.field(default=10, metadata={"help": "a cut every this many frames"})

    class EveryTen:
        name, summary, Params = "every_ten", "a cut every ten frames", EveryTenParams

        def __init__(self, params=None):
            self.params = params or EveryTenParams()

        def frame_scorer(self):
            return ContentScorer()

        def detect(self, scores, fps):
            from panda_dagster.lib.video.detectors import Detection

            return Detection(self.name, [Boundary.cut(f) for f in range(10, len(scores), self.params.step)], scores)

    import sys
    import types

    module = types.ModuleType("panda_dagster.lib.video.detectors.every_ten")
    module.EveryTen = EveryTen
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(REGISTRY, "every_ten", "every_ten:EveryTen")
    result = split_video(cuts_video.path, SplitConfig(detector="every_ten", stitch=False, decode_segments=1))
    assert result.detector == "every_ten" and result.cuts == list(range(10, result.n_frames, 10))
    with pytest.raises(ValueError, match="unknown detector"):
        SplitConfig(detector="nope")


def test_clips_config_is_generated_from_split_config():
    from panda_dagster.clips.assets import ClipsConfig

    lib = SplitConfig()
    fields = ClipsConfig.model_fields
    for f in dataclasses.fields(SplitConfig):
        if f.name == "threads":
            continue  # the stage decides decoder threads (workers)
        assert f.name in fields, f.name
        assert fields[f.name].description == f.metadata["help"]
    assert {"write_clip_files", "cut_mode", "workers"} <= set(fields)
    config = ClipsConfig(detector="adaptive", detectors={"adaptive": {"threshold": 2.5}},
                         stitching={"min_clip_s": 1.5}, narration={"min_words": 5}, write_clip_files=True)
    split = config.to_lib()
    assert isinstance(split, SplitConfig) and split.detector == "adaptive"
    assert split.detectors.adaptive.threshold == 2.5 and split.detectors.content == lib.detectors.content
    assert split.stitching.min_clip_s == 1.5 and split.stitching.max_clip_s == lib.stitching.max_clip_s
    assert split.narration.min_words == 5
    with pytest.raises(ValueError):
        ClipsConfig(stitching={"trim_frac": 0.7}).to_lib()
