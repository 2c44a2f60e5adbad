"""Per-shard statistics of the curated data, as named metrics (rows of the `eval_metrics` table).

Inputs are the catalog tables as pandas DataFrames (`clips`, `teacher_captions`, `selected_captions`,
`quarantine`, `videos`); any of them may be empty (a shard whose videos were all quarantined still gets
its quarantine counts). Reference points from Panda-70M are kept next to the numbers they compare to.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from panda_dagster.lib.evaluation.records import EvalMetricRecord

# Panda-70M (Chen et al., 2024), dataset statistics table: mean clip length and mean caption length.
PANDA70M_MEAN_CLIP_S = 8.5
PANDA70M_MEAN_CAPTION_WORDS = 13.2

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Metric:
    name: str
    value: float | None
    detail: object = None  # JSON-serialisable structure behind the number

    def record(self, shard: str) -> EvalMetricRecord:
        detail = None if self.detail is None else json.dumps(self.detail, sort_keys=True, default=_json_default)
        value = None if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)) else float(self.value)
        return EvalMetricRecord(shard=shard, metric=self.name, value=value, detail_json=detail)


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def to_records(shard: str, metrics: Iterable[Metric]) -> list[EvalMetricRecord]:
    records = [m.record(shard) for m in metrics]
    names = [r.metric for r in records]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ValueError(f"metric names must be unique per shard, duplicated: {dupes}")
    return records


def words(text: str | None) -> list[str]:
    """Lower-case word tokens (letters/digits, with an apostrophe suffix kept: "don't", "man's")."""
    return _WORD_RE.findall((text or "").lower())


def _distribution(prefix: str, values: Sequence[float] | np.ndarray, bins: int | Sequence[float] = 20,
                  reference: float | None = None) -> list[Metric]:
    """mean/median/std/p10/p90/min/max of `values`; the histogram rides on the `.mean` metric."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return [Metric(f"{prefix}.mean", None, {"n": 0})]
    counts, edges = np.histogram(arr, bins=bins)
    detail = {"n": int(arr.size), "histogram": {"counts": counts.tolist(), "edges": edges.tolist()}}
    if reference is not None:
        detail["reference"] = reference
        detail["ratio_to_reference"] = float(arr.mean() / reference) if reference else None
    return [
        Metric(f"{prefix}.mean", float(arr.mean()), detail),
        Metric(f"{prefix}.median", float(np.median(arr))),
        Metric(f"{prefix}.std", float(arr.std())),
        Metric(f"{prefix}.p10", float(np.percentile(arr, 10))),
        Metric(f"{prefix}.p90", float(np.percentile(arr, 90))),
        Metric(f"{prefix}.min", float(arr.min())),
        Metric(f"{prefix}.max", float(arr.max())),
    ]


def clip_statistics(clips: pd.DataFrame) -> list[Metric]:
    """Clip count, videos, total hours and the clip-duration distribution (vs Panda-70M's 8.5 s)."""
    n = len(clips)
    out = [Metric("clips.count", float(n))]
    if n == 0:
        return out
    durations = (clips["end_s"].astype(float) - clips["start_s"].astype(float)).to_numpy()
    n_videos = clips["video_id"].nunique()
    out += [
        Metric("clips.videos", float(n_videos)),
        Metric("clips.per_video.mean", n / n_videos if n_videos else None),
        Metric("clips.total_duration_h", float(durations.sum() / 3600.0)),
    ]
    upper = max(20.0, float(np.ceil(durations.max())))
    out += _distribution("clips.duration_s", durations, bins=np.linspace(0.0, upper, 21), reference=PANDA70M_MEAN_CLIP_S)
    return out


def _caption_texts(df: pd.DataFrame) -> list[str]:
    if df.empty or "caption" not in df:
        return []
    return [str(c) for c in df["caption"].fillna("")]


def text_statistics(prefix: str, captions: Sequence[str], reference_words: float | None = None) -> list[Metric]:
    """Caption length in words, vocabulary size, and how many captions are distinct."""
    tokenized = [words(c) for c in captions]
    nonempty = [t for t in tokenized if t]
    vocab = Counter(w for t in tokenized for w in t)
    out = [Metric(f"{prefix}.count", float(len(captions))),
           Metric(f"{prefix}.empty", float(len(captions) - len(nonempty)))]
    if not nonempty:
        return out
    lengths = [len(t) for t in nonempty]
    out += _distribution(f"{prefix}.length_words", lengths, bins=np.arange(0, max(lengths) + 2) - 0.5,
                         reference=reference_words)
    out += [
        Metric(f"{prefix}.vocabulary_size", float(len(vocab)), {"most_common": vocab.most_common(30)}),
        Metric(f"{prefix}.distinct_rate", len({" ".join(t) for t in nonempty}) / len(nonempty)),
    ]
    return out


def caption_statistics(selected: pd.DataFrame) -> list[Metric]:
    """Selected captions: acceptance, length (vs Panda-70M's 13.2 words) and vocabulary."""
    out = text_statistics("captions.selected", _caption_texts(selected), PANDA70M_MEAN_CAPTION_WORDS)
    if not selected.empty and "accepted" in selected:
        accepted = selected["accepted"].fillna(False).astype(bool)
        out.append(Metric("captions.accepted.rate", float(accepted.mean())))
        out += text_statistics("captions.accepted", _caption_texts(selected[accepted]), PANDA70M_MEAN_CAPTION_WORDS)
    return out


def teacher_statistics(teacher_captions: pd.DataFrame, selected: pd.DataFrame) -> list[Metric]:
    """Win rate of each teacher (share of clips whose selected caption is that teacher's) and its text stats."""
    teachers = sorted(set(teacher_captions["teacher"].dropna()) if not teacher_captions.empty else set())
    if not selected.empty and "teacher" in selected:
        teachers = sorted(set(teachers) | set(selected["teacher"].dropna()))
    out: list[Metric] = []
    n_selected = len(selected)
    wins = Counter(selected["teacher"].dropna()) if n_selected else Counter()
    accepted = selected[selected["accepted"].fillna(False).astype(bool)] if n_selected and "accepted" in selected else selected
    wins_accepted = Counter(accepted["teacher"].dropna()) if len(accepted) else Counter()
    out.append(Metric("teacher.count", float(len(teachers)), {"teachers": teachers}))
    for name in teachers:
        detail = {"wins": wins.get(name, 0), "clips": n_selected,
                  "wins_accepted": wins_accepted.get(name, 0), "accepted_clips": len(accepted)}
        out.append(Metric(f"teacher.{name}.win_rate", wins.get(name, 0) / n_selected if n_selected else None, detail))
        if not teacher_captions.empty:
            own = teacher_captions[teacher_captions["teacher"] == name]
            model_ids = sorted(set(own["model_id"].dropna())) if "model_id" in own else []
            stats = text_statistics(f"teacher.{name}.captions", _caption_texts(own))
            out += [m if m.name != f"teacher.{name}.captions.count" else Metric(m.name, m.value, {"model_ids": model_ids})
                    for m in stats if m.name.endswith((".count", ".empty", ".length_words.mean", ".vocabulary_size", ".distinct_rate"))]
    return out


def matching_statistics(selected: pd.DataFrame) -> list[Metric]:
    """Distribution of the video-text matching score of the selected captions and their margin to the runner-up."""
    if selected.empty or "matching_score" not in selected:
        return [Metric("matching_score.mean", None, {"n": 0})]
    out = _distribution("matching_score", selected["matching_score"].astype(float).to_numpy(), bins=20)
    if "margin_to_second" in selected:
        out += [m for m in _distribution("margin_to_second", selected["margin_to_second"].astype(float).to_numpy(), bins=20)
                if m.name.endswith((".mean", ".median", ".p10"))]
    return out


def split_quality_values(clips: pd.DataFrame) -> np.ndarray:
    """Per-clip split consistency: the maximum running embedding distance inside the clip.

    The clips stage stores it as a number, or as a JSON object with a `max_running_distance` key.
    """
    if clips.empty or "split_quality" not in clips:
        return np.empty(0)
    values = []
    for v in clips["split_quality"]:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, str):
            try:
                parsed = json.loads(v)
            except json.JSONDecodeError:
                continue
            v = parsed.get("max_running_distance") if isinstance(parsed, dict) else parsed
        try:
            values.append(float(v))
        except (TypeError, ValueError):
            continue
    return np.asarray(values, dtype=np.float64)


def split_statistics(clips: pd.DataFrame) -> list[Metric]:
    values = split_quality_values(clips)
    return [m for m in _distribution("split.max_running_distance", values, bins=20)
            if m.name.endswith((".mean", ".median", ".p90", ".max"))]


_REASON_NOISE = re.compile(r"([a-z][a-z0-9+.-]*://\S*[^\s:]|/[^\s:;,]+|\b\d+(\.\d+)?\b)")


def reason_kind(reason: str) -> str:
    """A reason without its specifics (URLs, paths, numbers, the detail after ": "), so equal problems
    count together."""
    text = _REASON_NOISE.sub("…", str(reason))
    head = text.split(": ", 1)[0]
    return " ".join(head.split())[:120] or "unspecified"


def quarantine_statistics(quarantine: pd.DataFrame) -> list[Metric]:
    """Quarantined items by stage and by kind of reason, split into dropped and kept-partial."""
    if quarantine.empty:
        return [Metric("quarantine.count", 0.0, {"by_reason": []})]
    q = quarantine.copy()
    q["reason_kind"] = q["reason"].map(reason_kind)
    if "action" not in q:
        q["action"] = "dropped"
    grouped = (q.groupby(["stage", "reason_kind", "action"]).size().reset_index(name="count")
               .sort_values("count", ascending=False))
    by_reason = [{"stage": r.stage, "reason": r.reason_kind, "action": r.action, "count": int(r.count),
                  "example": str(q[(q.stage == r.stage) & (q.reason_kind == r.reason_kind)]["reason"].iloc[0])}
                 for r in grouped.itertuples()]
    out = [Metric("quarantine.count", float(len(q)), {"by_reason": by_reason})]
    for action, n in sorted(Counter(q["action"]).items()):
        out.append(Metric(f"quarantine.action.{action}", float(n)))
    for stage, n in sorted(Counter(q["stage"]).items()):
        out.append(Metric(f"quarantine.stage.{stage}", float(n)))
    return out


def filter_reasons(clip_filters: pd.DataFrame) -> Counter:
    """Dropped clips per reason code (a clip dropped for two reasons counts under both)."""
    dropped = clip_filters[~clip_filters["keep"].fillna(True).astype(bool)]
    return Counter(str(r) for reasons in dropped["reasons"] if reasons is not None for r in reasons)


def filter_statistics(clip_filters: pd.DataFrame) -> list[Metric]:
    """What the clip filters kept, and why they dropped the rest. No `clip_filters` rows: the filters did not
    run on this shard (every clip kept), and nothing is reported."""
    if clip_filters.empty:
        return []
    keep = clip_filters["keep"].fillna(True).astype(bool)
    by_reason = filter_reasons(clip_filters)
    out = [Metric("filters.kept.count", float(keep.sum())),
           Metric("filters.kept.share", float(keep.mean()),
                  {"n_clips": len(keep), "by_reason": [{"reason": r, "count": n} for r, n in by_reason.most_common()]}),
           Metric("filters.dropped.count", float((~keep).sum()))]
    out += [Metric(f"filters.dropped.{reason}.count", float(n)) for reason, n in sorted(by_reason.items())]
    return out


def video_statistics(videos: pd.DataFrame) -> list[Metric]:
    if videos.empty:
        return [Metric("videos.count", 0.0)]
    out = [Metric("videos.count", float(len(videos)))]
    if "duration_s" in videos:
        out.append(Metric("videos.total_duration_h", float(videos["duration_s"].astype(float).sum() / 3600.0)))
    if "n_subtitle_cues" in videos:
        out.append(Metric("videos.with_subtitles.rate", float((videos["n_subtitle_cues"].fillna(0) > 0).mean())))
    return out


def shard_statistics(clips: pd.DataFrame, selected: pd.DataFrame, teacher_captions: pd.DataFrame,
                     quarantine: pd.DataFrame, videos: pd.DataFrame | None = None) -> list[Metric]:
    """Every statistic of one shard (no reference captions needed)."""
    out: list[Metric] = []
    if videos is not None:
        out += video_statistics(videos)
    out += clip_statistics(clips)
    out += caption_statistics(selected)
    out += teacher_statistics(teacher_captions, selected)
    out += matching_statistics(selected)
    out += split_statistics(clips)
    out += quarantine_statistics(quarantine)
    return out


def metrics_frame(records: Iterable[EvalMetricRecord]) -> pd.DataFrame:
    return pd.DataFrame([{"shard": r.shard, "metric": r.metric, "value": r.value, "detail_json": r.detail_json}
                         for r in records])


def metric_value(metrics: Iterable[Metric] | Mapping[str, float | None], name: str) -> float | None:
    if isinstance(metrics, Mapping):
        return metrics.get(name)
    for m in metrics:
        if m.name == name:
            return m.value
    raise KeyError(name)
