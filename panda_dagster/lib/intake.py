"""What `raw_videos` does to one manifest entry: fetch, probe with a real decoder, parse subtitles.

Returns rows for the `videos`, `subtitles` and `quarantine` tables; never raises for bad input, so one
bad file cannot stop a shard.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from panda_dagster.lib.ingest import ManifestEntry
from panda_dagster.lib.probe import ProbeError, probe_video
from panda_dagster.lib.records import QuarantineRecord, SubtitleCue, VideoRecord
from panda_dagster.lib.storage import FetchError, fetch_source
from panda_dagster.lib.subtitles import SubtitleError, parse_subtitles

STAGE = "raw_videos"


@dataclass
class IntakeResult:
    video: VideoRecord | None = None
    cues: list[SubtitleCue] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)


def _subtitle_cues(entry: ManifestEntry, shard: str, fetch: Callable[[str], Path]) -> tuple[list, list[str]]:
    """Cues and problems; problems make a 'kept_partial' quarantine row, the video still lands."""
    if entry.subtitles_text is not None:
        source, parsed = "inline", parse_subtitles(entry.subtitles_text, inline=True)
    elif entry.subtitles_uri is not None:
        source, parsed = "file", parse_subtitles(fetch(entry.subtitles_uri))
    else:
        return [], []
    cues = [
        SubtitleCue(entry.video_id, shard, i, round(c.start_s, 3), round(c.end_s, 3), c.text, source)
        for i, c in enumerate(parsed.cues)
    ]
    return cues, list(parsed.problems)


def intake_entry(entry: ManifestEntry, shard: str, cache_dir: Path, s3_client=None) -> IntakeResult:
    def quarantined(reason: str, detail: str | None = None, action: str = "dropped") -> QuarantineRecord:
        return QuarantineRecord(shard, entry.uri, STAGE, reason, entry.video_id, action, detail)

    if entry.ingest_error:
        return IntakeResult(quarantine=[quarantined(f"rejected at ingest: {entry.ingest_error}")])

    def fetch(uri: str) -> Path:
        return fetch_source(uri, cache_dir, s3_client=s3_client)

    try:
        local = fetch(entry.uri)
        probe = probe_video(local)
    except (FetchError, ProbeError) as exc:
        return IntakeResult(quarantine=[quarantined(str(exc))])
    except Exception as exc:  # an unexpected decoder failure is still this file's problem only
        return IntakeResult(quarantine=[quarantined(f"unexpected error while probing: {exc}", repr(exc))])

    result = IntakeResult()
    if probe.partial_reason:
        result.quarantine.append(quarantined(f"{probe.partial_reason}; keeping the decodable part", action="kept_partial"))
    try:
        result.cues, problems = _subtitle_cues(entry, shard, fetch)
        if problems:
            result.quarantine.append(
                quarantined(f"subtitles partly unusable: {'; '.join(problems)}", action="kept_partial")
            )
    except (SubtitleError, FetchError) as exc:
        result.quarantine.append(quarantined(f"subtitles unusable, video kept without them: {exc}", action="kept_partial"))
    metadata = dict(entry.metadata)
    if entry.references:
        metadata["references"] = entry.references
    result.video = VideoRecord(
        video_id=entry.video_id,
        shard=shard,
        uri=entry.uri,
        local_path=str(local),
        container=probe.container,
        codec=probe.codec,
        pix_fmt=probe.pix_fmt,
        duration_s=probe.duration_s,
        fps=probe.fps,
        n_frames=probe.n_frames,
        width=probe.width,
        height=probe.height,
        is_vfr=probe.is_vfr,
        has_audio=probe.has_audio,
        n_audio_streams=probe.n_audio_streams,
        audio_codec=probe.audio_codec,
        size_bytes=probe.size_bytes,
        sha256=probe.sha256,
        decodable_s=probe.decodable_s,
        title=entry.title,
        description=entry.description,
        url=entry.url,
        metadata_json=json.dumps(metadata, ensure_ascii=False, sort_keys=True) if metadata else None,
        n_subtitle_cues=len(result.cues),
    )
    return result
