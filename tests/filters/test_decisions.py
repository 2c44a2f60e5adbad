"""Thresholds turn scores into reason codes (the decide step, without models or video)."""

from __future__ import annotations

import math

from panda_dagster.lib.filters.registry import CLIP_FILTERS, FILTER_NAMES, REASONS, FiltersParams


def test_nsfw_decides_on_the_mean_probability():
    nsfw, params = CLIP_FILTERS["nsfw"], FiltersParams().nsfw
    assert nsfw.decide({"nsfw": 0.95}, params) == ["nsfw"]
    assert nsfw.decide({"nsfw": 0.5}, params) == []
    assert nsfw.decide({"nsfw": math.nan}, params) == []  # nothing measured: keep


def test_quality_codes():
    quality, params = CLIP_FILTERS["quality"], FiltersParams().quality
    assert quality.decide({"sharpness": 500, "brightness": 120, "blown_share": 0.0, "short_side": 720}, params) == []
    assert quality.decide({"sharpness": 5, "brightness": 10, "blown_share": 0.0, "short_side": 720}, params) == ["dark"]
    assert quality.decide({"sharpness": 500, "brightness": 240, "blown_share": 0.8, "short_side": 144},
                          params) == ["overexposed", "low_resolution"]


def test_every_code_is_registered_and_params_validate():
    assert set(FILTER_NAMES) == {"quality", "still", "motion", "text", "nsfw", "duplicates"}
    assert len(set(REASONS)) == len(REASONS) == 10
    try:
        FiltersParams(enabled=["motion", "aesthetics"])
    except ValueError as exc:
        assert "aesthetics" in str(exc)
    else:
        raise AssertionError("an unknown filter name must be refused")


def test_dagster_config_mirrors_the_library_defaults():
    from panda_dagster.filters.assets import ClipFiltersConfig

    config = ClipFiltersConfig(motion={"object_min": 0.05}, enabled=["motion"])
    params = config.to_lib()
    assert params.motion.object_min == 0.05 and params.motion.camera_min == FiltersParams().motion.camera_min
    assert params.text == FiltersParams().text and params.enabled == ["motion"]


def test_every_score_a_filter_returns_is_a_column_of_the_table():
    from panda_dagster.lib.filters.records import SCORE_COLUMNS

    returned = {name for f in CLIP_FILTERS.values() for name in f.score_names}
    assert returned | {"duplicate_distance", "duplicate_cosine"} == set(SCORE_COLUMNS)
