"""Typed rows of the foundation tables (`videos`, `subtitles`, `quarantine`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.catalog import register_table


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class VideoRecord:
    video_id: str
    shard: str
    uri: str  # where the video came from (local path, s3:// or http(s):// URL)
    local_path: str  # where it was read from (the URI itself for local files, else a cache path)
    container: str
    codec: str
    pix_fmt: str
    duration_s: float
    fps: float  # average frame rate
    n_frames: int  # counted by demuxing, not taken from the header
    width: int
    height: int
    is_vfr: bool
    has_audio: bool
    n_audio_streams: int
    audio_codec: str | None
    size_bytes: int
    sha256: str
    decodable_s: float  # seconds that actually decode; < duration_s for a partially decodable file
    title: str | None
    description: str | None
    url: str | None
    metadata_json: str | None  # everything else from the sidecar JSON / manifest row
    n_subtitle_cues: int
    probed_at: dt.datetime = field(default_factory=utcnow)


@dataclass
class SubtitleCue:
    video_id: str
    shard: str
    cue_index: int
    start_s: float
    end_s: float
    text: str
    source: str  # 'file' (sidecar or manifest path), 'inline' (manifest text) or 'asr'


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


VIDEOS = register_table("videos", VideoRecord)
SUBTITLES = register_table("subtitles", SubtitleCue)
QUARANTINE = register_table("quarantine", QuarantineRecord, part_column="stage")
