"""What `raw_videos` does to a shard: fetch each manifest entry, probe it with a real decoder, parse its
subtitles, and keep one video per content (sha256).

Returns rows for the `videos`, `subtitles` and `quarantine` tables; never raises for bad input, so one
bad file cannot stop a shard.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from panda_dagster.lib.ingest import ManifestEntry
from panda_dagster.lib.probe import ProbeError, probe_video
from panda_dagster.lib.records import CUE_SOURCE_SUBTITLE, Cue, QuarantineRecord, VideoRecord
from panda_dagster.lib.fetch import FETCH_FAILED, FETCH_OK, DownloadFailed, FetchError, FetchPolicy, FetchRecord
from panda_dagster.lib.storage import fetch
from panda_dagster.lib.subtitles import SubtitleError, parse_subtitles

STAGE = "raw_videos"


@dataclass
class IntakeConfig:
    """Parameters of `raw_videos` (its Dagster config is generated from this)."""

    workers: int = field(default=2, metadata={"help": "Videos probed in parallel (decoding releases the GIL)"})
    max_quarantine_share: float | None = field(default=None, metadata={
        "help": "Warn (asset check) when a larger share of a shard's entries is dropped; "
                "null = $PANDA_MAX_QUARANTINE_SHARE, else 0.2"})


@dataclass
class IntakeResult:
    video: VideoRecord | None = None
    cues: list[Cue] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    fetches: list[FetchRecord] = field(default_factory=list)  # one per remote source fetched


def _subtitle_cues(entry: ManifestEntry, shard: str, fetch: Callable[[str], Path]) -> tuple[list[Cue], list[str]]:
    """Cues and problems; problems make a 'kept_partial' quarantine row, the video still lands."""
    if entry.subtitles_text is not None:
        origin, parsed = "inline", parse_subtitles(entry.subtitles_text, inline=True)
    elif entry.subtitles_uri is not None:
        origin, parsed = "file", parse_subtitles(fetch(entry.subtitles_uri))
    else:
        return [], []
    cues = [
        Cue(round(c.start_s, 3), round(c.end_s, 3), c.text, entry.video_id, shard, i, CUE_SOURCE_SUBTITLE, origin)
        for i, c in enumerate(parsed.cues)
    ]
    return cues, list(parsed.problems)


def intake_entry(entry: ManifestEntry, shard: str, cache_dir: Path, s3_client=None,
                 policy: FetchPolicy | None = None) -> IntakeResult:
    def quarantined(reason: str, detail: str | None = None, action: str = "dropped") -> QuarantineRecord:
        return QuarantineRecord(shard, entry.uri, STAGE, reason, entry.video_id, action, detail)

    if entry.ingest_error:
        return IntakeResult(quarantine=[quarantined(f"rejected at ingest: {entry.ingest_error}")])

    fetches: list[FetchRecord] = []

    def fetch_recorded(uri: str, kind: str) -> Path:
        now = dt.datetime.now(dt.timezone.utc)
        try:
            path, download = fetch(uri, cache_dir, s3_client=s3_client, policy=policy)
        except DownloadFailed as exc:
            fetches.append(FetchRecord(uri, shard, entry.video_id, kind, FETCH_FAILED, exc.attempts,
                                       str(exc), exc.http_status, exc.bytes_received, None, False, now))
            raise
        if download is not None:
            fetches.append(FetchRecord(uri, shard, entry.video_id, kind, FETCH_OK, download.attempts, None,
                                       download.http_status, download.bytes, download.sha256,
                                       download.resumed, now))
        return path

    try:
        local = fetch_recorded(entry.uri, "video")
        probe = probe_video(local)
    except (FetchError, ProbeError) as exc:
        return IntakeResult(quarantine=[quarantined(str(exc))], fetches=fetches)
    except Exception as exc:  # an unexpected decoder failure is still this file's problem only
        return IntakeResult(quarantine=[quarantined(f"unexpected error while probing: {exc}", repr(exc))],
                            fetches=fetches)

    result = IntakeResult(fetches=fetches)
    if probe.partial_reason:
        result.quarantine.append(quarantined(f"{probe.partial_reason}; keeping the decodable part", action="kept_partial"))
    try:
        result.cues, problems = _subtitle_cues(entry, shard, lambda uri: fetch_recorded(uri, "subtitles"))
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
        probe=probe,
        title=entry.title,
        description=entry.description,
        url=entry.url,
        metadata_json=json.dumps(metadata, ensure_ascii=False, sort_keys=True) if metadata else None,
        n_subtitle_cues=len(result.cues),
    )
    return result


@dataclass
class ShardIntake:
    """Rows of one shard for `videos`, `subtitles` (part `subtitle`) and `quarantine` (part STAGE)."""

    n_entries: int
    videos: list[VideoRecord] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    fetches: list[FetchRecord] = field(default_factory=list)  # table `fetches`: every remote source


def keep_unique_content(shard: str, entries: Sequence[ManifestEntry], results: Sequence[IntakeResult]) -> ShardIntake:
    """Combine per-entry results; a video whose bytes (sha256) equal an earlier one's is quarantined:
    the same bytes under two names would put the same clips in the dataset twice."""
    out = ShardIntake(n_entries=len(entries))
    first_by_sha: dict[str, str] = {}
    for entry, result in zip(entries, results, strict=True):
        out.quarantine.extend(result.quarantine)
        out.fetches.extend(result.fetches)
        video = result.video
        if video is None:
            continue
        if video.probe.sha256 in first_by_sha:
            reason = f"duplicate content: same bytes (sha256) as video {first_by_sha[video.probe.sha256]}"
            out.quarantine.append(QuarantineRecord(shard, entry.uri, STAGE, reason, video.video_id))
            continue
        first_by_sha[video.probe.sha256] = video.video_id
        out.videos.append(video)
        out.cues.extend(result.cues)
    return out


def intake_shard(shard: str, entries: Sequence[ManifestEntry], cache_dir: Path, *, workers: int = 2,
                 s3_client=None, policy: FetchPolicy | None = None) -> ShardIntake:
    """Every entry of the shard through `intake_entry` (`workers` at a time), duplicates removed.
    URLs are fetched with `policy` (default: FetchPolicy.from_env())."""
    policy = policy or FetchPolicy.from_env()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda e: intake_entry(e, shard, cache_dir, s3_client, policy), entries))
    return keep_unique_content(shard, entries, results)
