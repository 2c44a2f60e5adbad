"""Split every video of a shard: clip rows, key frames (and optional clip files) in storage, quarantine rows,
key-frame embeddings.

The Dagster `clips` asset is a thin wrapper around `clips_for_shard`; keeping the work here lets it be
tested and reused without Dagster. The one decode pass also samples each clip's small grey frames for
clip_filters (`shards/<shard>/motion_frames/<clip>.npz`), so that stage need not decode the video again.
Idempotent: the shard's key frames, motion frames and clip files are deleted before being rewritten, and
the caller replaces the shard's catalog rows.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from panda_dagster.lib.filters.base import MotionFrames
from panda_dagster.lib.filters.frames import MotionFrameSampler, encode_motion_frames, motion_frames_key
from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.records import Cue, QuarantineRecord
from panda_dagster.lib.storage import Storage
from panda_dagster.lib.video.cutting import ClipCutError, cut_clip
from panda_dagster.lib.video.keyframes import encode_jpeg, keyframe_key
from panda_dagster.lib.video.records import ClipRecord
from panda_dagster.lib.video.split import (
    TINY_STILL_NOTE,
    EmbedImages,
    SplitConfig,
    SplitResult,
    for_tiny_embeddings,
    split_video,
)

STAGE = "clips"


@dataclass
class VideoToSplit:
    video_id: str
    uri: str
    local_path: str
    cues: list[Cue] = field(default_factory=list)  # the video's cues (`subtitles.cues_by_video`)
    given_spans: list = field(default_factory=list)  # (start_s, end_s) ingested with the video (mode given)


@dataclass
class ShardSplit:
    rows: list[ClipRecord]
    quarantine: list[QuarantineRecord]
    results: dict[str, SplitResult]  # by video_id (frames dropped)
    seconds: float
    stats: dict = field(default_factory=dict)
    keyframe_jpegs: dict[str, bytes] = field(default_factory=dict, repr=False)  # key-frame URI -> what was stored


@dataclass
class ClipsOutcome:
    """What `clips_for_shard` made; the caller writes `split.rows` (table clips), `split.quarantine` and
    `keyframe_rows` (table keyframe_embeddings, part `embedding_model_id`)."""

    split: ShardSplit
    keyframe_rows: list
    n_keyframes_embedded: int
    embedding_model_id: str | None
    models_label: str
    notes: list[str]
    videos: int


def videos_to_split(catalog, shard: str) -> list[VideoToSplit]:
    """The shard's videos with their cues from the one `subtitles` table, whatever their source (subtitle
    files or ASR from the `transcripts` stage; a video's subtitle cues win over its ASR cues)."""
    from panda_dagster.lib.subtitles import cues_by_video

    cues = cues_by_video(catalog.rows("subtitles", shard))
    return [VideoToSplit(v.video_id, v.uri, v.local_path, cues.get(v.video_id, []), given_spans(v.metadata_json))
            for v in catalog.rows("videos", shard)]


def given_spans(metadata_json: str | None) -> list[tuple[float, float]]:
    """The clip spans a manifest gave for a video (a Panda-70M CSV's `timestamp`), kept in its metadata."""
    import json

    from panda_dagster.lib.export.panda70m_csv import GIVEN_SPANS_KEY

    try:
        spans = json.loads(metadata_json).get(GIVEN_SPANS_KEY) if metadata_json else None
    except (ValueError, AttributeError):
        return []
    return [(float(s), float(e)) for s, e in spans or []]


def _decode_jpeg(data: bytes):
    import cv2
    import numpy as np

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("undecodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clips_for_shard(
    catalog,
    storage: Storage,
    shard: str,
    config: SplitConfig,
    *,
    embedder=None,
    embedder_is_tiny: bool = False,
    write_clip_files: bool = False,
    cut_mode: str = "copy",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> ClipsOutcome:
    """Split the shard's videos (`split_shard`) and embed every clip's stored key frames once with
    `embedder` (an `ImageEmbedder`, also the stitching model; None = no embeddings, shots as clips).

    Key-frame embeddings are computed from the JPEG bytes just stored (what later stages would read), not
    reused from earlier rows: this run has just replaced the key frames.
    """
    from panda_dagster.lib.models.keyframes import keyframe_embeddings

    say = log or (lambda message: None)
    videos = videos_to_split(catalog, shard)
    needs_embeddings = embedder is not None and config.stitch and config.mode != "narration"
    notes: list[str] = []
    label = embedder.label if needs_embeddings else "none"
    if needs_embeddings and embedder_is_tiny:
        config = for_tiny_embeddings(config)
        notes.append(TINY_STILL_NOTE)
        say(f"stitching with {label}: clip boundaries are not meaningful; {TINY_STILL_NOTE}")
    split = split_shard(shard, videos, storage, config,
                        embed_images=embedder.embed_images if needs_embeddings else None, models_label=label,
                        write_clip_files=write_clip_files, cut_mode=cut_mode, workers=workers, log=say)
    keyframe_rows, n_embedded, model_id = [], 0, None
    if embedder is not None and split.rows:
        keyframe_rows, n_embedded = keyframe_embeddings(
            split.rows, embedder, [], lambda uri: _decode_jpeg(split.keyframe_jpegs[uri]),
            on_error=lambda clip, exc: say(f"key frames of clip {clip} not embedded: {exc}"))
        model_id = embedder.spec.model_id
    return ClipsOutcome(split, keyframe_rows, n_embedded, model_id, label, notes, len(videos))


def joined_motion_frames(samplers: Sequence[MotionFrameSampler]) -> MotionFrames | None:
    """The small grey frames of one decode pass (clip_filters' motion/still input): the one sampler's, or
    the parallel stretches' joined. Each stretch keeps its first frame, so where it shares a 1/fps grid
    cell with the previous stretch's last kept frame it is dropped: what a sequential sampler keeps."""
    if not samplers:
        return None
    parts = [s.clip(-math.inf, math.inf) for s in samplers]
    fps, max_frames = samplers[0].fps, samplers[0].max_frames
    gray, times, next_t = [], [], -math.inf
    for part in parts:
        for frame, t in zip(part.gray, part.times_s):
            if t + 1e-6 < next_t or len(gray) >= max_frames:  # the sequential sampler's cap too
                continue
            gray.append(frame)
            times.append(float(t))
            next_t = (math.floor(t * fps + 1e-6) + 1) / fps
    if not gray:
        return MotionFrames(np.zeros((0, 2, 2), np.uint8), np.zeros(0))
    return MotionFrames(np.stack(gray), np.asarray(times, dtype=np.float64))


def motion_frames_between(frames: MotionFrames, start_s: float, end_s: float) -> MotionFrames:
    """The frames with start_s <= t < end_s (as `MotionFrameSampler.clip`)."""
    inside = np.flatnonzero((frames.times_s >= start_s - 1e-6) & (frames.times_s < end_s))
    if len(inside) == 0:
        return MotionFrames(np.zeros((0, 2, 2), np.uint8), np.zeros(0))
    return MotionFrames(frames.gray[inside], frames.times_s[inside])


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
    storage.delete_prefix(f"shards/{shard}/motion_frames/")
    storage.delete_prefix(f"shards/{shard}/clips/")
    per_video = dataclasses.replace(config, threads=1) if workers > 1 else config

    def one(video: VideoToSplit) -> tuple[VideoToSplit, SplitResult | None, str | None]:
        if not Path(video.local_path).is_file():
            return video, None, f"source file missing: {video.local_path}"
        try:
            return video, split_video(video.local_path, per_video, embed_images=embed_images,
                                      models_label=models_label, cues=video.cues or None,
                                      given_spans=video.given_spans or None,
                                      make_companion=MotionFrameSampler), None
        except Exception as exc:  # noqa: BLE001  one broken video must not stop the shard
            return video, None, f"splitting failed: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(one, videos))

    rows: list[ClipRecord] = []
    quarantine: list[QuarantineRecord] = []
    results: dict[str, SplitResult] = {}
    jpegs: dict[str, bytes] = {}
    dropped = Counter()
    n_motion_stored = 0
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
        motion = joined_motion_frames(result.companions)
        for clip in result.clips:
            cid = clip_id(video.video_id, clip.start_s, clip.end_s)
            if cid in seen:  # the same span from two methods ('both' mode): keep the first
                continue
            seen.add(cid)
            keyframe_uris = []
            for k, p in enumerate(clip.keyframe_samples):
                jpeg = encode_jpeg(result.decoded.samples[p].rgb)
                keyframe_uris.append(storage.put_bytes(keyframe_key(shard, cid, k), jpeg))
                jpegs[keyframe_uris[-1]] = jpeg
            if motion is not None:  # clip_filters (motion, still) reads these instead of decoding again
                storage.put_bytes(motion_frames_key(shard, cid),
                                  encode_motion_frames(motion_frames_between(motion, clip.start_s, clip.end_s)))
                n_motion_stored += 1
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
        result.companions = []

    n_frames = sum(r.n_frames for r in results.values())
    decode_s = sum(r.timings.get("decode_s", 0.0) for r in results.values())
    stats = {
        "n_frames": n_frames,
        "n_gradual": sum(len(r.gradual) for r in results.values()),
        "n_motion_frames_stored": n_motion_stored,
        "decode_s": decode_s,
        "stitch_s": sum(r.timings.get("stitch_s", 0.0) + r.timings.get("quality_s", 0.0) for r in results.values()),
        "dropped": dict(dropped.most_common()),
        "videos_without_clips": sorted(v for v, r in results.items() if not r.clips),
    }
    return ShardSplit(rows, quarantine, results, time.perf_counter() - started, stats, jpegs)
