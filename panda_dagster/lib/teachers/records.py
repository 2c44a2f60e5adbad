"""Catalog tables of the teacher stage.

- `teacher_captions`: one row per (clip, teacher) that produced a caption.
- `teacher_failures`: one row per (clip, teacher) that did not, with the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.records import utcnow


@dataclass
class TeacherCaption:
    clip_id: str
    shard: str
    video_id: str
    teacher: str  # registry name
    kind: str  # image | video_llm | text_llm | narration
    model_id: str  # Hugging Face id, or tiny/<family> for offline random-weight twins
    revision: str  # commit actually loaded when known, else the configured revision
    prompt_sha: str  # hash of settings + rendered prompt + frames: the cache key
    caption: str
    n_tokens: int  # generated tokens (words for narration)
    latency_ms: float  # batch wall time shared out over the batch's clips
    profile: str  # models profile: tiny | default | large
    created_at: dt.datetime = field(default_factory=utcnow)


@dataclass
class TeacherFailure:
    clip_id: str
    shard: str
    video_id: str
    teacher: str
    kind: str
    model_id: str
    revision: str
    prompt_sha: str
    reason: str  # human-readable: what went wrong for this clip
    detail: str | None = None  # raw output or exception text
    profile: str = ""
    created_at: dt.datetime = field(default_factory=utcnow)
