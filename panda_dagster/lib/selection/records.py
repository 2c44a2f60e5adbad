"""Typed rows of the selection tables: `selected_captions`, `caption_scores`, `caption_preferences`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.records import utcnow

# Why a scored clip is not `accepted` into the curated subset.
REJECT_BELOW_BAR = "below_quality_bar"
REJECT_PER_VIDEO_CAP = "over_per_video_cap"
REJECT_FILTERED = "dropped_by_clip_filters"  # table clip_filters: keep = false


@dataclass
class SelectedCaption:
    clip_id: str
    shard: str
    caption: str
    teacher: str  # the teacher that wrote the winning caption
    matching_score: float  # cosine(clip embedding, caption embedding) of the scorer
    margin_to_second: float  # winner minus runner-up (0.0 when the clip has one candidate)
    video_id: str
    n_candidates: int
    accepted: bool  # passes the quality bar and the per-video cap
    reject_reason: str | None  # REJECT_* when not accepted
    scorer: str  # which model scored: base open_clip spec or `selection_model <version>`
    selection_model_version: str | None  # fine-tuned checkpoint version, None = base model
    models_label: str  # TINY_LABEL for the offline tiny profile, else the profile name
    scored_at: dt.datetime = field(default_factory=utcnow)


@dataclass
class CaptionScore:
    clip_id: str
    shard: str
    teacher: str
    caption: str
    score: float
    rank: int  # 1 = selected
    video_id: str
    selection_model_version: str | None


@dataclass
class CaptionPreference:
    """One human judgement: which candidate caption fits the clip best (or that all are bad)."""

    label_id: str  # deterministic: (batch, clip, annotator)
    shard: str
    label_batch: str  # one imported file = one batch; re-importing the same file replaces it
    clip_id: str
    video_id: str
    chosen_caption: str | None  # None when all_bad
    chosen_teacher: str | None
    all_bad: bool
    candidates: list[str]  # the candidate set the person saw (kept so training survives re-captioning)
    candidate_teachers: list[str]
    keyframe_uris: list[str]
    annotator: str
    source_file: str
    labelled_at: dt.datetime | None
    imported_at: dt.datetime = field(default_factory=utcnow)

