"""DATASET_CARD.md, written beside every export: what is in it, how it was selected, which models made
it (with a loud warning when those were random-weight tiny models), licences and the exact config.
Deterministic: the same rows and options give the same card."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict

from panda_dagster.lib.export.base import ExportOptions, FormatOutput
from panda_dagster.lib.export.rows import DatasetRow, DatasetSelection

CARD_NAME = "DATASET_CARD.md"
TINY_WARNING = ("**WARNING: TINY MODELS.** Some captions, scores or clip boundaries in this export come "
                "from offline random-weight models (profile `tiny`): they are NOT meaningful. Re-run the "
                "pipeline with PANDA_MODELS=default before training on this data.")
OFFLINE_NOTE = ("**Note: OFFLINE profile.** Captions and scores come from the small packaged models of the "
                "`offline` profile; expect lower quality than the default models.")


def _is_tiny(label: str | None) -> bool:
    return bool(label) and ("TINY" in label.upper() or label.startswith("tiny/") or label == "tiny")


def models_were_random(rows: Sequence[DatasetRow]) -> bool:
    for row in rows:
        if _is_tiny(row.models_label) or _is_tiny(row.clip_models_label):
            return True
        if any(_is_tiny(c.model_id) or _is_tiny(c.profile) for c in row.candidates):
            return True
    return False


def _stats(values: Sequence[float], digits: int = 2) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    return {k: round(v, digits) for k, v in (("min", ordered[0]), ("p10", pct(0.1)),
                                              ("median", statistics.median(ordered)),
                                              ("mean", statistics.fmean(ordered)), ("p90", pct(0.9)),
                                              ("max", ordered[-1]))}


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return lines if rows else ["_(none)_"]


def teacher_win_rates(rows: Sequence[DatasetRow]) -> list[tuple[str, int, int, float]]:
    """(teacher, clips it captioned, clips it won, win rate) over the exported clips."""
    seen, wins = Counter(), Counter()
    for row in rows:
        for teacher in {c.teacher for c in row.candidates}:
            seen[teacher] += 1
        wins[row.teacher] += 1
    return [(t, seen[t], wins[t], round(wins[t] / seen[t], 3) if seen[t] else 0.0) for t in sorted(seen | wins)]


def card_text(selection: DatasetSelection, options: ExportOptions, outputs: Sequence[FormatOutput],
              title: str) -> str:
    rows = selection.rows
    n_accepted = sum(r.accepted for r in rows)
    videos = {(r.shard, r.video_id): r.source for r in rows}
    lines = [f"# Dataset card: {title}", ""]
    if models_were_random(rows):
        lines += [f"> {TINY_WARNING}", ""]
    if any(c.profile == "offline" for r in rows for c in r.candidates):
        lines += [f"> {OFFLINE_NOTE}", ""]
    lines += ["Curated with panda-dagster (Panda-70M-style splitting, multi-teacher captioning and caption "
              "selection).", "", "## Contents", ""]
    lines += _table(["what", "value"], [
        ("clips", len(rows)),
        ("source videos", len(videos)),
        ("shards", ", ".join(selection.shards) or "none"),
        ("hours of clips", round(sum(r.duration_s for r in rows) / 3600, 4)),
        ("hours of source video", round(sum((v.duration_s or 0.0) for v in videos.values()) / 3600, 4)),
        ("accepted clips", f"{n_accepted} ({n_accepted / len(rows):.1%})" if rows else "0"),
    ])
    lines += ["", "### Files", ""]
    lines += _table(["format", "files", "rows", "bytes", "notes"],
                    [(o.format, len(o.files), o.n_rows, o.n_bytes, "; ".join(o.notes)) for o in outputs])

    lines += ["", "## Selection", ""]
    scope = "clips whose caption was accepted" if options.accepted_only else \
        "every clip with a selected caption (see the `accepted` flag)"
    if options.min_score is not None:
        scope += f", with matching_score >= {options.min_score}"
    lines.append(f"- Holds: {scope}. Quarantined clips and clips dropped by clip filters are never exported.")
    lines.append(f"- Clips with a selected caption in these shards: {selection.n_selected}.")
    for reason, count in sorted(selection.excluded.items()):
        lines.append(f"- Left out: {count} ({reason}).")
    lines.append(f"- Accepted share: {n_accepted / len(rows):.1%} of the exported clips." if rows else
                 "- Accepted share: no clips.")
    lines.append("- Quality bar: a clip is accepted when its matching score passes the selection bar "
                 f"and the per-video cap. {_bar_text(selection)}")

    lines += ["", "## Clip length (seconds)", ""]
    clip_stats = _stats([r.duration_s for r in rows])
    lines += _table(list(clip_stats), [list(clip_stats.values())]) if clip_stats else ["_(no clips)_"]
    lines += ["", "## Caption length (words)", ""]
    cap_stats = _stats([float(len(r.caption.split())) for r in rows], 1)
    lines += _table(list(cap_stats), [list(cap_stats.values())]) if cap_stats else ["_(no clips)_"]

    lines += ["", "## Teacher win rates", "", "Share of the exported clips a teacher captioned whose selected "
              "caption is that teacher's.", ""]
    lines += _table(["teacher", "clips captioned", "wins", "win rate"], teacher_win_rates(rows))
    lines += ["", "## How clips were cut", ""]
    lines += _table(["method", "detector", "clips"],
                    [(m, d, n) for (m, d), n in sorted(Counter((r.method, r.detector) for r in rows).items())])

    lines += ["", "## Licences", "", "From the input manifest's `license` column or the video's NAME.json "
              "sidecar; `unknown` = none was given: check before redistributing.", ""]
    by_license: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for source in videos.values():
        by_license[source.license or "unknown"][0] += 1
    for row in rows:
        by_license[row.source.license or "unknown"][1] += 1
    lines += _table(["licence", "videos", "clips"], [(k, v[0], v[1]) for k, v in sorted(by_license.items())])

    lines += ["", "## Models", ""]
    models = set()
    for row in rows:
        for c in row.candidates:
            if c.model_id:
                models.add((f"teacher `{c.teacher}` ({c.kind})", c.model_id, c.revision or "", c.profile or ""))
        models.add(("caption scorer", row.scorer, row.selection_model_version or "base", row.models_label))
        if row.clip_models_label and row.clip_models_label != "none":
            models.add(("clip embedder (stitching, split quality)", row.clip_models_label, "", ""))
    lines += _table(["role", "model", "revision / version", "profile / label"], sorted(models))

    lines += ["", "## Export config", "", "```json", json.dumps(asdict(options), indent=2, sort_keys=True),
              "```", "", "## Reading it", ""]
    lines += _reading_hints(outputs)
    return "\n".join(lines) + "\n"


def _bar_text(selection: DatasetSelection) -> str:
    hints = selection.bar_hints
    parts = []
    try:
        from panda_dagster.lib.selection.scorer import DEFAULT_MIN_SCORE

        parts.append(f"Default bar (selected_captions config `min_score`): {DEFAULT_MIN_SCORE}.")
    except ImportError:  # scorer module moved: the hints below still bound the bar
        pass
    low, high = hints.get("lowest_accepted_score"), hints.get("highest_below_bar_score")
    if low is not None:
        parts.append(f"Lowest accepted matching score: {low:.4f}.")
    if high is not None:
        parts.append(f"Highest score rejected below the bar: {high:.4f}.")
    return " ".join(parts)


def _reading_hints(outputs: Sequence[FormatOutput]) -> list[str]:
    hints = {
        "panda70m-csv": "`panda70m.csv`: Panda-70M's layout; `ast.literal_eval(row['timestamp'])` gives "
                        "`[['H:MM:SS.mmm', 'H:MM:SS.mmm'], ...]`; `panda ingest panda70m.csv` re-ingests it.",
        "webdataset": "`webdataset/**/*.tar`: `webdataset.WebDataset(urls)` yields `mp4`, `txt`, `json` per key.",
        "parquet": "`parquet/<shard>.parquet`: `datasets.load_dataset('parquet', data_files='parquet/*.parquet')` or "
                   "DuckDB `SELECT * FROM 'parquet/*.parquet'`.",
        "jsonl": "`clips.jsonl`: one JSON object per clip (same record as the WebDataset `KEY.json`).",
    }
    return [f"- {hints[o.format]}" for o in outputs if o.format in hints]
