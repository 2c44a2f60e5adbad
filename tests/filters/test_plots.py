"""Score histograms of a shard must render whatever the spread of the scores."""

import numpy as np

from panda_dagster.lib.filters.plots import score_histograms_png


def test_histograms_render_for_equal_nearly_equal_and_missing_scores():
    base = 0.4123456789
    values = {
        "equal": [base] * 30,
        "nearly_equal": list(base + np.arange(30) * 1e-17),  # numpy alone: "Too many bins for data range"
        "spread": list(np.linspace(0.0, 1.0, 30)),
        "with_nan": [float("nan"), 0.2, 0.3],
    }
    png = score_histograms_png(values, {"spread": 0.5}, "shard")
    assert png is not None and png.startswith(b"\x89PNG")
