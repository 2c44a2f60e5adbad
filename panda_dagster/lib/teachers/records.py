"""Catalog tables of the teacher stage.

- `teacher_captions`: one row per (clip, teacher) that produced a caption.
- `teacher_failures`: one row per (clip, teacher) that did not, with the reason.
- `asr_subtitles`: speech-recognition cues, same columns as `subtitles` (source = 'asr'). The `subtitles`
  table belongs to raw_videos; read both (`UNION ALL`) to get every cue of a video.
- `asr_transcripts`: one row per video that went through ASR (also when it found no speech), so a
  re-run knows which model already transcribed it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.catalog import register_table
from panda_dagster.lib.records import SubtitleCue, utcnow


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


@dataclass
class AsrTranscript:
    video_id: str
    shard: str
    model_id: str
    revision: str
    n_cues: int
    status: str  # 'ok', 'no_speech' or 'failed'
    reason: str | None = None
    audio_s: float = 0.0
    latency_ms: float = 0.0
    created_at: dt.datetime = field(default_factory=utcnow)


TEACHER_CAPTIONS = register_table("teacher_captions", TeacherCaption)
TEACHER_FAILURES = register_table("teacher_failures", TeacherFailure)
ASR_SUBTITLES = register_table("asr_subtitles", SubtitleCue)
ASR_TRANSCRIPTS = register_table("asr_transcripts", AsrTranscript)


def rows_from_frame(df, row_type: type) -> list:
    """Catalog rows (a DataFrame from `Catalog.read_shard`) back as dataclass instances."""
    import dataclasses
    import math

    import pandas as pd

    names = [f.name for f in dataclasses.fields(row_type)]
    rows = []
    for record in df.to_dict("records"):
        values = {}
        for name in names:
            value = record.get(name)
            if isinstance(value, float) and math.isnan(value) and name not in ("latency_ms", "audio_s", "start_s", "end_s"):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.to_pydatetime()
            elif value is pd.NaT:
                value = None
            values[name] = value
        rows.append(row_type(**values))
    return rows
