"""Matplotlib figures (PNG bytes) for the evaluation metrics; Agg backend, no display needed.

Plots are drawn from the `eval_metrics` rows themselves (histograms travel in `detail_json`), so the
report can redraw any shard's figures from the catalog without re-reading its clips.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

_STYLE = {"color": "#3b6ea5", "edgecolor": "white"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def histogram_png(counts: Sequence[float], edges: Sequence[float], title: str, xlabel: str,
                  reference: float | None = None, reference_label: str | None = None,
                  mean: float | None = None) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    edges = np.asarray(edges, dtype=float)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", **_STYLE)
    if mean is not None:
        ax.axvline(mean, color="#222222", linestyle="-", linewidth=1.2, label=f"mean {mean:.2f}")
    if reference is not None:
        ax.axvline(reference, color="#c0392b", linestyle="--", linewidth=1.2, label=reference_label or f"reference {reference}")
    if mean is not None or reference is not None:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _png(fig)


def bar_png(labels: Sequence[str], values: Sequence[float], title: str, ylabel: str, horizontal: bool = False,
            value_format: str = "{:.2f}") -> bytes:
    plt = _pyplot()
    height = max(2.5, 0.35 * len(labels) + 1.2) if horizontal else 3.2
    fig, ax = plt.subplots(figsize=(6.5, height))
    pos = np.arange(len(labels))
    if horizontal:
        bars = ax.barh(pos, values, **_STYLE)
        ax.set_yticks(pos, [_short(label, 60) for label in labels], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        bars = ax.bar(pos, values, **_STYLE)
        ax.set_xticks(pos, [_short(label, 24) for label in labels], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
    ax.bar_label(bars, labels=[value_format.format(v) for v in values], fontsize=7, padding=2)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def grouped_bar_png(table: pd.DataFrame, title: str, ylabel: str) -> bytes:
    """One group per column (metric), one bar per row (source/model)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    n_rows, n_cols = table.shape
    width = 0.8 / max(1, n_rows)
    pos = np.arange(n_cols)
    cmap = plt.get_cmap("tab10")
    for i, (name, row) in enumerate(table.iterrows()):
        ax.bar(pos + i * width - 0.4 + width / 2, row.to_numpy(dtype=float), width, label=_short(str(name), 40),
               color=cmap(i % 10))
    ax.set_xticks(pos, list(table.columns), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncols=min(3, n_rows))
    return _png(fig)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _details(rows: pd.DataFrame | Mapping[str, tuple[float | None, object]]) -> dict[str, tuple[float | None, object]]:
    """metric -> (value, parsed detail) from eval_metrics rows of one shard (or such a mapping)."""
    if isinstance(rows, Mapping):
        return dict(rows)
    out = {}
    for metric, value, detail in zip(rows["metric"], rows["value"], rows["detail_json"]):
        parsed = json.loads(detail) if isinstance(detail, str) and detail else None
        out[metric] = (None if value is None or (isinstance(value, float) and np.isnan(value)) else value, parsed)
    return out


def _hist_from(details, metric: str, title: str, xlabel: str, reference_label: str | None = None) -> bytes | None:
    value, detail = details.get(metric, (None, None))
    if not detail or "histogram" not in detail:
        return None
    h = detail["histogram"]
    return histogram_png(h["counts"], h["edges"], title, xlabel, detail.get("reference"), reference_label, value)


def shard_plots(rows: pd.DataFrame | Mapping, shard: str) -> dict[str, bytes]:
    """Every figure of one shard's eval_metrics rows: name -> PNG bytes (only those with data)."""
    d = _details(rows)
    figures: dict[str, bytes | None] = {
        "clip_durations": _hist_from(d, "clips.duration_s.mean", f"Clip duration — {shard}", "seconds",
                                     "Panda-70M mean 8.5 s"),
        "caption_lengths": _hist_from(d, "captions.selected.length_words.mean", f"Selected caption length — {shard}",
                                      "words", "Panda-70M mean 13.2 words"),
        "matching_scores": _hist_from(d, "matching_score.mean", f"Matching score of selected captions — {shard}",
                                      "video-text matching score"),
        "split_consistency": _hist_from(d, "split.max_running_distance.mean",
                                        f"Max running embedding distance per clip — {shard}", "distance"),
    }
    wins = {m[len("teacher."):-len(".win_rate")]: v for m, (v, _) in d.items() if m.startswith("teacher.") and m.endswith(".win_rate")
            and v is not None}
    if wins:
        names = sorted(wins, key=lambda k: -wins[k])
        figures["teacher_win_rates"] = bar_png(names, [100 * wins[n] for n in names],
                                               f"Teacher win rate — {shard}", "% of clips", value_format="{:.1f}")
    _, q = d.get("quarantine.count", (None, None))
    if q and q.get("by_reason"):
        by = q["by_reason"][:15]
        figures["quarantine_reasons"] = bar_png([f"{r['stage']}: {r['reason']} ({r['action']})" for r in by],
                                                [r["count"] for r in by], f"Quarantine by reason — {shard}", "items",
                                                horizontal=True, value_format="{:.0f}")
    _, best = d.get("references.best.CIDEr", (None, None))
    if best and best.get("table"):
        figures["reference_metrics"] = caption_metrics_png(pd.DataFrame(best["table"]).set_index("source"),
                                                           f"Captions vs references — {shard}")
    return {k: v for k, v in figures.items() if v}


def caption_metrics_png(table: pd.DataFrame, title: str) -> bytes:
    from panda_dagster.lib.evaluation.captions import METRICS

    scaled = table[list(METRICS)].astype(float) * 100.0  # papers print every metric x100
    return grouped_bar_png(scaled, title, "score x100")


def retrieval_png(results: pd.DataFrame, title: str, eval_set: str = "heldout") -> bytes | None:
    """R@1/5/10 per training text (text->video), on own-text queries or the given evaluation set."""
    sub = results[(results["direction"] == "t2v") & (results["eval_set"] == eval_set)]
    if eval_set == "heldout":
        sub = sub[sub["train_text"] == sub["eval_text"]]
    if sub.empty:
        return None
    table = sub.set_index("train_text")[["r1", "r5", "r10"]].rename(columns={"r1": "R@1", "r5": "R@5", "r10": "R@10"})
    return grouped_bar_png(table, title, "recall %")
