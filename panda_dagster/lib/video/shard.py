"""Split every video of a shard: clip rows, key frames (and optional clip files) in storage, quarantine rows.

The Dagster `clips` asset is a thin wrapper around `split_shard`; keeping the work here lets it be tested
and reused without Dagster. Idempotent: the shard's key frames and clip files are deleted before being
rewritten, and the caller replaces the shard's catalog rows.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.records import QuarantineRecord
from panda_dagster.lib.storage import Storage
from panda_dagster.lib.video.cutting import ClipCutError, cut_clip
from panda_dagster.lib.video.keyframes import encode_jpeg, keyframe_key
from panda_dagster.lib.video.records import ClipRecord
from panda_dagster.lib.video.split import EmbedImages, SplitConfig, SplitResult, split_video

STAGE = "clips"


@dataclass
class VideoToSplit:
    video_id: str
    uri: str
    local_path: str
    cues: list = field(default_factory=list)  # objects with start_s, end_s, text


@dataclass
class ShardSplit:
    rows: list[ClipRecord]
    quarantine: list[QuarantineRecord]
    results: dict[str, SplitResult]  # by video_id (frames dropped)
    seconds: float
    stats: dict = field(default_factory=dict)


def clip_file_key(shard: str, clip: str) -> str:
    return f"shards/{shard}/clips/{clip}.mp4"


def _dropped_reason_kind(reason: str) -> str:
    return reason.split(":")[0].split("(")[0].strip()


def split_shard(
    shard: str,
    videos: Sequence[VideoToSplit],
    storage: Storage,
    config: SplitConfig,
    *,
    embed_images: EmbedImages | None,
    models_label: str,
    write_clip_files: bool = False,
    cut_mode: str = "copy",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> ShardSplit:
    started = time.perf_counter()
    say = log or (lambda message: None)
    storage.delete_prefix(f"shards/{shard}/keyframes/")
    storage.delete_prefix(f"shards/{shard}/clips/")
    per_video = dataclasses.replace(config, threads=1) if workers > 1 else config

    def one(video: VideoToSplit) -> tuple[VideoToSplit, SplitResult | None, str | None]:
        if not Path(video.local_path).is_file():
            return video, None, f"source file missing: {video.local_path}"
        try:
            return video, split_video(video.local_path, per_video, embed_images=embed_images,
                                      models_label=models_label, cues=video.cues or None), None
        except Exception as exc:  # noqa: BLE001  one broken video must not stop the shard
            return video, None, f"splitting failed: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(one, videos))

    rows: list[ClipRecord] = []
    quarantine: list[QuarantineRecord] = []
    results: dict[str, SplitResult] = {}
    dropped = Counter()
    for video, result, error in outcomes:
        if result is None:
            quarantine.append(QuarantineRecord(shard, video.uri, STAGE, error or "unknown error", video.video_id,
                                               "dropped"))
            say(f"quarantine {video.video_id}: {error}")
            continue
        results[video.video_id] = result
        for item in result.dropped:
            dropped[_dropped_reason_kind(item.reason)] += 1
        if result.n_frames <= 1:
            quarantine.append(QuarantineRecord(shard, video.uri, STAGE,
                                               f"no clips: {result.no_clips_reason}", video.video_id, "dropped"))
            continue
        if result.partial_reason:
            quarantine.append(QuarantineRecord(
                shard, video.uri, STAGE,
                f"only the first {result.duration_s:.2f} s decode; clips cover that part ({result.partial_reason})",
                video.video_id, "kept_partial", detail="; ".join(result.decoded.decode_errors[:3]) or None))
        seen: set[str] = set()
        for clip in result.clips:
            cid = clip_id(video.video_id, clip.start_s, clip.end_s)
            if cid in seen:  # the same span from two methods ('both' mode): keep the first
                continue
            seen.add(cid)
            keyframe_uris = [
                storage.put_bytes(keyframe_key(shard, cid, k), encode_jpeg(result.decoded.samples[p].rgb))
                for k, p in enumerate(clip.keyframe_samples)
            ]
            clip_uri = None
            if write_clip_files:
                keyframe_times = result.decoded.times_s[result.decoded.keyframes].tolist()
                with tempfile.TemporaryDirectory(prefix="panda-clip-") as tmp:
                    try:
                        cut = cut_clip(video.local_path, Path(tmp) / f"{cid}.mp4", clip.start_s, clip.end_s,
                                       cut_mode, keyframe_times)
                        clip_uri = storage.put_file(clip_file_key(shard, cid), cut.path)
                    except ClipCutError as exc:
                        say(f"clip file for {cid} not written: {exc}")
            rows.append(ClipRecord(
                clip_id=cid, video_id=video.video_id, shard=shard, start_s=clip.start_s, end_s=clip.end_s,
                start_frame=clip.start_frame, end_frame=clip.end_frame, method=clip.method,
                n_shots_merged=clip.n_shots_merged, detector=result.detector, narration=clip.narration,
                keyframe_uris=keyframe_uris, clip_uri=clip_uri, split_quality=clip.split_quality,
                models_label=models_label if (clip.method == "stitched" or clip.split_quality is not None) else "none",
            ))
        # Frames are not needed past this point; keep the per-video results light.
        result.decoded.samples = []

    n_frames = sum(r.n_frames for r in results.values())
    decode_s = sum(r.timings.get("decode_s", 0.0) for r in results.values())
    stats = {
        "n_frames": n_frames,
        "decode_s": decode_s,
        "stitch_s": sum(r.timings.get("stitch_s", 0.0) + r.timings.get("quality_s", 0.0) for r in results.values()),
        "dropped": dict(dropped.most_common()),
        "videos_without_clips": sorted(v for v, r in results.items() if not r.clips),
    }
    return ShardSplit(rows, quarantine, results, time.perf_counter() - started, stats)
