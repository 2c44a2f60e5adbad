"""Typed rows of the foundation tables (`ingested`, `videos`, `subtitles`, `quarantine`).

Tables are declared in `lib/schema.py`; this module stays light (no heavy imports) so any module can
use the row types.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.probe import ProbeResult

# Where a cue's text came from; also the part of the `subtitles` table it is stored in.
CUE_SOURCE_SUBTITLE = "subtitle"  # a subtitle file or inline manifest text (raw_videos)
CUE_SOURCE_ASR = "asr"  # speech recognition (the `transcripts` asset)
CUE_SOURCES = (CUE_SOURCE_SUBTITLE, CUE_SOURCE_ASR)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class IngestedVideo:
    """Row of the `ingested` table: which shard each video was assigned to, and from where."""

    video_id: str
    shard: str
    uri: str
    source: str
    ingest_error: str | None  # flagged entries are recorded too, so re-ingesting skips them
    ingested_at: dt.datetime


@dataclass
class VideoRecord:
    video_id: str
    shard: str
    uri: str  # where the video came from (local path, s3:// or http(s):// URL)
    local_path: str  # where it was read from (the URI itself for local files, else a cache path)
    probe: ProbeResult  # what the decoder found; stored as flat columns (codec, duration_s, ...)
    title: str | None
    description: str | None
    url: str | None
    metadata_json: str | None  # everything else from the sidecar JSON / manifest row
    n_subtitle_cues: int
    probed_at: dt.datetime = field(default_factory=utcnow)


@dataclass
class Cue:
    """One timed line of text of a video: a subtitle cue or an ASR segment (the `subtitles` table's row).

    The subtitle parser makes bare cues (`Cue(start_s, end_s, text)`); the stages fill in which video,
    shard and position they belong to.
    """

    start_s: float
    end_s: float
    text: str
    video_id: str = ""
    shard: str = ""
    cue_index: int = 0  # position among the video's cues of the same source
    source: str = CUE_SOURCE_SUBTITLE  # CUE_SOURCES; the table is split into parts by it
    origin: str | None = None  # 'file' (sidecar or manifest path), 'inline' (manifest text), or the ASR model


@dataclass
class QuarantineRecord:
    shard: str
    uri: str
    stage: str  # which stage rejected it: ingest, raw_videos, clips, ...
    reason: str  # human-readable, says what is wrong and what was done
    video_id: str | None = None
    action: str = "dropped"  # 'dropped', or 'kept_partial' when the usable part was kept
    detail: str | None = None  # the underlying error, for debugging
    created_at: dt.datetime = field(default_factory=utcnow)
