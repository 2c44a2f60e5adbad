"""Figures and tables that describe a selection run (asset metadata, reports)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from panda_dagster.lib.selection.records import SelectedCaption


def score_histogram_png(selected: Sequence[SelectedCaption], min_score: float | None, title: str) -> bytes | None:
    """Histogram of selected-caption matching scores, accepted vs not, with the quality bar drawn."""
    if not selected:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scores = np.array([s.matching_score for s in selected])
    accepted = np.array([s.accepted for s in selected])
    low, high = float(scores.min()), float(scores.max())
    bins = np.linspace(low - 1e-6, high + 1e-6, 31) if high > low else 10
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.hist([scores[accepted], scores[~accepted]], bins=bins, stacked=True, label=["accepted", "not accepted"],
            color=["#2f7d32", "#c62828"])
    if min_score is not None:
        ax.axvline(min_score, color="black", linestyle="--", linewidth=1, label=f"quality bar {min_score:g}")
    ax.set_xlabel("matching score of the selected caption (cosine)")
    ax.set_ylabel("clips")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def sample_rows(selected: Sequence[SelectedCaption], limit: int = 10) -> list[dict]:
    """Best, middle and worst selections (by score) for a quick look."""
    ordered = sorted(selected, key=lambda s: (-s.matching_score, s.clip_id))
    if len(ordered) > limit:
        step = (len(ordered) - 1) / (limit - 1)
        ordered = [ordered[round(i * step)] for i in range(limit)]
    return [{"clip_id": s.clip_id[:8], "teacher": s.teacher, "score": s.matching_score,
             "margin": s.margin_to_second, "accepted": s.accepted, "caption": s.caption} for s in ordered]
