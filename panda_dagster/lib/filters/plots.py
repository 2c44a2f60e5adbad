"""The score histograms of one shard (PNG), each with its drop threshold, for the asset metadata."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from panda_dagster.lib.filters.registry import FiltersParams


def thresholds(params: FiltersParams) -> dict[str, float]:
    """Score column -> the bar its filter drops at (for the plot lines)."""
    return {
        "motion_camera": params.motion.camera_min, "motion_object": params.motion.object_min,
        "changing_share": params.still.max_changing_share, "text_area": params.text.max_text_area,
        "nsfw": params.nsfw.max_nsfw, "sharpness": params.quality.min_sharpness,
        "brightness": params.quality.min_brightness, "blown_share": params.quality.max_blown_share,
        "short_side": float(params.quality.min_short_side),
        "duplicate_distance": params.duplicates.max_hash_distance, "duplicate_cosine": params.duplicates.min_cosine,
    }


def _hist_range(values: Sequence[float]) -> tuple[float, float] | None:
    """A range numpy can cut into 20 bins: scores that are (nearly) all equal — e.g. one clip copied many
    times — would otherwise raise "Too many bins for data range"."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):
        return lo - 0.5, hi + 0.5
    return lo, hi


def score_histograms_png(values: Mapping[str, Sequence[float]], bars: Mapping[str, float], title: str) -> bytes | None:
    if not values:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = list(values)
    columns = 4
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        ax.hist(values[name], bins=20, range=_hist_range(values[name]), color="#3b6ea5", edgecolor="white")
        if name in bars:
            ax.axvline(bars[name], color="#c0392b", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
