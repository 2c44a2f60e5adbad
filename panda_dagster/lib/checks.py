"""Data-quality checks over catalog tables (pandas DataFrames from `Catalog.read_shard`).

Each check returns a `CheckOutcome`: passed or not, how many rows were checked and failed, failures
counted by kind, and a few offending rows with their reason. The Dagster asset checks
(`panda_dagster/<stage>/checks.py`) turn outcomes into `AssetCheckResult`s; nothing here imports Dagster.

What the checks guard (a failure means the next stage would be wrong):
- clips lie inside the decodable part of their video, and visual clips respect min/max clip length;
- clips of one video do not overlap (visual clips among themselves, narration clips among themselves:
  mode `both` deliberately puts a narration clip over the visual ones);
- every clip with candidate captions has exactly one selected caption, and it is one of its candidates;
- no caption is empty; scores are finite;
- the share of a shard's videos dropped into quarantine stays below a bar (a warning, not an error).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

MAX_EXAMPLES = 10
# Methods of clips cut from the picture (shots, stitched events); narration clips follow subtitle cues.
VISUAL_METHODS = ("stitched", "shot")
NARRATION_METHOD = "narration"
GIVEN_METHOD = "given"  # spans given at ingest (clips mode given): their length is what was given
# Snapping a boundary to a frame moves it by less than one frame; pts rounding adds a little more.
DEFAULT_FPS = 25.0
TIME_EPS_S = 1e-3
# Share of a shard's videos that may be dropped at raw_videos before the check warns.
QUARANTINE_SHARE_ENV = "PANDA_MAX_QUARANTINE_SHARE"
DEFAULT_MAX_QUARANTINE_SHARE = 0.2


@dataclass
class Violation:
    key: str  # what is wrong: a clip id, video id or URI
    kind: str  # short, stable category (counted in `CheckOutcome.counts`)
    reason: str  # human-readable, with the numbers

    def as_dict(self) -> dict:
        return {"key": self.key, "kind": self.kind, "reason": self.reason}


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    n_checked: int
    n_failed: int
    counts: dict[str, int] = field(default_factory=dict)  # failures by kind
    examples: list[Violation] = field(default_factory=list)  # the first MAX_EXAMPLES failures
    stats: dict[str, float | int | str] = field(default_factory=dict)  # numbers worth showing either way
    summary: str = ""

    @classmethod
    def from_violations(cls, name: str, n_checked: int, violations: Sequence[Violation], what: str,
                        stats: dict | None = None) -> CheckOutcome:
        counts = dict(Counter(v.kind for v in violations).most_common())
        failed_keys = {v.key for v in violations}
        if violations:
            kinds = ", ".join(f"{n} {k}" for k, n in counts.items())
            summary = f"{len(failed_keys)} of {n_checked} {what} fail: {kinds}"
        else:
            summary = f"all {n_checked} {what} pass"
        return cls(name, not violations, n_checked, len(failed_keys), counts, list(violations[:MAX_EXAMPLES]),
                   dict(stats or {}), summary)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _number(value: object) -> float | None:
    """None for a missing value (Parquet nulls come back as NaN or None)."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- clips


def frame_tolerance_s(fps: object) -> float:
    rate = _number(fps)
    return (1.0 / rate if rate and rate > 0 and math.isfinite(rate) else 1.0 / DEFAULT_FPS) + TIME_EPS_S


def usable_end_s(video: dict) -> float | None:
    """Where a video's decodable part ends: `decodable_s` (< duration for partial files), else duration."""
    for name in ("decodable_s", "duration_s"):
        value = _number(video.get(name))
        if value is not None and math.isfinite(value) and value > 0:
            return value
    return None


def check_clip_bounds(clips: pd.DataFrame, videos: pd.DataFrame, *, min_clip_s: float, max_clip_s: float,
                      max_video_s: float | None = None) -> CheckOutcome:
    """Every clip starts at or after 0 and ends inside the decodable part of its video (and inside the
    first `max_video_s` seconds when only those were split); visual clips last between `min_clip_s` and
    `max_clip_s`. Narration clips follow their cues (merged until long or wordy enough) and given clips
    their ingested spans, so they only need a positive length. Boundaries snap to frames: each may move
    by up to one frame (+1 ms), and the end bound allows two (the probe and the splitter each find the
    last frame's end)."""
    by_video = {str(v["video_id"]): v for v in videos.to_dict("records")}
    violations: list[Violation] = []
    lengths = []
    for clip in clips.to_dict("records"):
        cid, vid = str(clip["clip_id"]), str(clip["video_id"])
        start, end = _number(clip["start_s"]), _number(clip["end_s"])
        video = by_video.get(vid)
        if video is None:
            violations.append(Violation(cid, "unknown_video", f"video {vid} is not in the shard's videos"))
            continue
        if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
            violations.append(Violation(cid, "bad_times", f"start_s {start}, end_s {end} are not finite numbers"))
            continue
        frame_s = frame_tolerance_s(video.get("fps"))
        length = end - start
        lengths.append(length)
        if length <= 0 or int(clip["end_frame"]) <= int(clip["start_frame"]):
            violations.append(Violation(cid, "non_positive_length", f"{start:.3f}-{end:.3f} s, frames "
                                        f"{clip['start_frame']}-{clip['end_frame']}"))
            continue
        if start < -TIME_EPS_S or int(clip["start_frame"]) < 0:
            violations.append(Violation(cid, "before_start", f"starts at {start:.3f} s (frame {clip['start_frame']})"))
        bound = usable_end_s(video)
        if bound is not None and end > bound + 2 * frame_s:
            violations.append(Violation(cid, "beyond_video_end", f"ends at {end:.3f} s, the video decodes up to "
                                        f"{bound:.3f} s (duration {_number(video.get('duration_s'))} s)"))
        if max_video_s is not None and end > max_video_s + 2 * frame_s:
            violations.append(Violation(cid, "beyond_max_video_s", f"ends at {end:.3f} s > max_video_s {max_video_s}"))
        if str(clip["method"]) in VISUAL_METHODS:
            if length < min_clip_s - frame_s:
                violations.append(Violation(cid, "too_short", f"{clip['method']} clip of {length:.3f} s < "
                                            f"min_clip_s {min_clip_s}"))
            elif length > max_clip_s + frame_s:
                violations.append(Violation(cid, "too_long", f"{clip['method']} clip of {length:.3f} s > "
                                            f"max_clip_s {max_clip_s}"))
        elif str(clip["method"]) not in (NARRATION_METHOD, GIVEN_METHOD):
            violations.append(Violation(cid, "unknown_method", f"method {clip['method']!r}"))
    stats = {"min_clip_s": min_clip_s, "max_clip_s": max_clip_s}
    if lengths:
        stats.update(shortest_s=round(min(lengths), 3), longest_s=round(max(lengths), 3))
    return CheckOutcome.from_violations("clips_within_video_and_length", len(clips), violations, "clips", stats)


def check_clip_overlaps(clips: pd.DataFrame) -> CheckOutcome:
    """No clip shares frames with another clip of its video and family (visual or narration); no clip id
    appears twice. Adjacent clips may touch (end frame is exclusive)."""
    violations: list[Violation] = []
    for cid, n in Counter(str(c) for c in clips["clip_id"]).items():
        if n > 1:
            violations.append(Violation(cid, "duplicate_clip_id", f"clip id appears {n} times"))
    rows = clips.to_dict("records")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        family = NARRATION_METHOD if str(row["method"]) == NARRATION_METHOD else "visual"
        groups.setdefault((str(row["video_id"]), family), []).append(row)
    for (vid, family), members in groups.items():
        members.sort(key=lambda r: (int(r["start_frame"]), int(r["end_frame"]), str(r["clip_id"])))
        reach = None  # the clip reaching furthest so far
        for row in members:
            if reach is not None and int(row["start_frame"]) < int(reach["end_frame"]):
                violations.append(Violation(
                    str(row["clip_id"]), "overlap",
                    f"{family} clip {float(row['start_s']):.3f}-{float(row['end_s']):.3f} s (frames "
                    f"{row['start_frame']}-{row['end_frame']}) overlaps clip {str(reach['clip_id'])[:8]} "
                    f"{float(reach['start_s']):.3f}-{float(reach['end_s']):.3f} s of video {vid}"))
            if reach is None or int(row["end_frame"]) > int(reach["end_frame"]):
                reach = row
    return CheckOutcome.from_violations("clips_do_not_overlap", len(rows), violations, "clips",
                                        {"n_videos": len({k[0] for k in groups})})


# ------------------------------------------------------------------------------------------- captions


def check_captions_not_empty(captions: pd.DataFrame, column: str = "caption",
                             key_columns: Sequence[str] = ("clip_id", "teacher")) -> CheckOutcome:
    """No caption is missing, empty or whitespace only (teacher_captions, selected_captions)."""
    violations = []
    for row in captions.to_dict("records"):
        text = _text(row.get(column))
        if text is None or not text.strip():
            key = "/".join(str(row.get(k)) for k in key_columns if k in row)
            shown = "missing" if text is None else repr(text)
            violations.append(Violation(key, "empty_caption", f"{column} is {shown}"))
    return CheckOutcome.from_violations("captions_not_empty", len(captions), violations, "captions")


def check_scores_finite(frames: Iterable[tuple[str, pd.DataFrame, Sequence[str], str]],
                        nullable: Iterable[str] = ()) -> CheckOutcome:
    """Every score is a finite number. `frames`: (table name, DataFrame, score columns, key column).
    Columns in `nullable` may be missing (null/NaN reads back as NaN) but never ±inf."""
    nullable = set(nullable)
    violations, n_checked, stats = [], 0, {}
    for table, frame, columns, key in frames:
        keys = frame[key].tolist() if key in frame else [str(i) for i in range(len(frame))]
        for column in columns:
            if column not in frame:
                violations.append(Violation(table, "missing_column", f"{table} has no column {column!r}"))
                continue
            values = frame[column].tolist()
            n_checked += len(values)
            for row_key, value in zip(keys, values):
                number = _number(value)
                missing = number is None or math.isnan(number)
                if missing and f"{table}.{column}" in nullable:
                    continue
                if number is None or not math.isfinite(number):
                    violations.append(Violation(str(row_key), f"{table}.{column}_not_finite",
                                                f"{table}.{column} = {value!r}"))
            stats[f"{table}.{column}_checked"] = len(values)
    return CheckOutcome.from_violations("scores_finite", n_checked, violations, "scores", stats)


def candidate_sets(teacher_captions: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """clip_id -> {(teacher, caption)} as selection sees them: stripped, empty captions left out."""
    out: dict[str, set[tuple[str, str]]] = {}
    for row in teacher_captions[["clip_id", "teacher", "caption"]].to_dict("records"):
        text = _text(row["caption"])
        if text is not None and text.strip():
            out.setdefault(str(row["clip_id"]), set()).add((str(row["teacher"]), text.strip()))
    return out


def check_selected_captions(selected: pd.DataFrame, teacher_captions: pd.DataFrame, clips: pd.DataFrame,
                            quarantined_clip_ids: Iterable[str] = ()) -> CheckOutcome:
    """Every clip of the shard that has candidate captions has exactly one selected caption, and that
    caption (with its teacher) is one of the clip's candidates. Clips that selection quarantined (key
    frames unreadable) are exempt; a selection for a clip without candidates or unknown to `clips` fails."""
    candidates = candidate_sets(teacher_captions)
    clip_ids = {str(c) for c in clips["clip_id"]}
    exempt = {str(c) for c in quarantined_clip_ids}
    with_candidates = {c for c in clip_ids if c in candidates}
    per_clip = Counter(str(c) for c in selected["clip_id"])
    violations: list[Violation] = []
    for cid in sorted(with_candidates - exempt):
        n = per_clip.get(cid, 0)
        if n == 0:
            violations.append(Violation(cid, "no_selection", f"no selected caption for a clip with "
                                        f"{len(candidates[cid])} candidate(s)"))
        elif n > 1:
            violations.append(Violation(cid, "several_selections", f"{n} selected captions for one clip"))
    for row in selected.to_dict("records"):
        cid = str(row["clip_id"])
        caption = _text(row["caption"])
        if cid not in clip_ids:
            violations.append(Violation(cid, "unknown_clip", "selected caption for a clip not in the shard's clips"))
        elif cid not in candidates:
            violations.append(Violation(cid, "no_candidates", "selected caption for a clip without candidate captions"))
        elif (str(row["teacher"]), (caption or "").strip()) not in candidates[cid]:
            violations.append(Violation(cid, "not_a_candidate", f"{row['teacher']}: {caption!r} is not one of the "
                                        f"clip's {len(candidates[cid])} candidates"))
    stats = {"n_clips": len(clip_ids), "n_with_candidates": len(with_candidates),
             "n_exempt_quarantined": len(with_candidates & exempt), "n_selected": len(selected)}
    return CheckOutcome.from_violations("one_selected_caption_from_candidates", len(with_candidates | set(per_clip)),
                                        violations, "clips", stats)


# ------------------------------------------------------------------------------------------ quarantine


def max_quarantine_share(configured: float | None = None) -> float:
    """The bar: the configured value, else $PANDA_MAX_QUARANTINE_SHARE, else 20 %."""
    if configured is not None:
        value = float(configured)
    else:
        raw = os.environ.get(QUARANTINE_SHARE_ENV, "").strip()
        try:
            value = float(raw) if raw else DEFAULT_MAX_QUARANTINE_SHARE
        except ValueError as exc:
            raise ValueError(f"{QUARANTINE_SHARE_ENV} must be a number in [0, 1], got {raw!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the quarantine share bar must be in [0, 1], got {value}")
    return value


def check_quarantine_share(videos: pd.DataFrame, quarantine: pd.DataFrame, stage: str,
                           max_share: float) -> CheckOutcome:
    """Share of the shard's entries that `stage` dropped (kept videos + dropped entries = all entries)
    stays at or below `max_share`. Videos kept partially are counted and shown, not held against the bar."""
    rows = quarantine[quarantine["stage"] == stage] if len(quarantine) else quarantine
    dropped = rows[rows["action"] == "dropped"] if len(rows) else rows
    kept_partial = rows[rows["action"] == "kept_partial"] if len(rows) else rows
    n_dropped = int(dropped["uri"].nunique()) if len(dropped) else 0
    n_entries = len(videos) + n_dropped
    share = n_dropped / n_entries if n_entries else 0.0
    reasons = Counter(str(r).split(":")[0][:80] for r in dropped["reason"]) if len(dropped) else Counter()
    violations = []
    if share > max_share:
        violations = [Violation(str(r["uri"]), "dropped", str(r["reason"])) for r in dropped.to_dict("records")]
    stats = {"share_dropped": round(share, 4), "max_share": max_share, "n_entries": n_entries,
             "n_dropped": n_dropped, "n_kept_partial": int(kept_partial["uri"].nunique()) if len(kept_partial) else 0,
             "top_reasons": "; ".join(f"{n}× {r}" for r, n in reasons.most_common(5))}
    outcome = CheckOutcome.from_violations("quarantine_share_below_bar", n_entries, violations, "entries", stats)
    outcome.summary = (f"{n_dropped} of {n_entries} entries dropped ({share:.1%}); bar {max_share:.1%}"
                       + (" — above the bar" if violations else ""))
    return outcome
