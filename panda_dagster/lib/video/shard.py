"""Split every video of a shard: clip rows, key frames (and optional clip files) in storage, quarantine rows,
key-frame embeddings.

The Dagster `clips` asset is a thin wrapper around `clips_for_shard`; keeping the work here lets it be
tested and reused without Dagster. The one decode pass also samples each clip's small grey frames for
clip_filters (`shards/<shard>/motion_frames/<clip>.npz`), so that stage need not decode the video again.
Idempotent: the shard's key frames, motion frames and clip files are deleted before being rewritten, and
the caller replaces the shard's catalog rows.
"""

from __future__ import annotations

import contextlib
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
from panda_dagster.lib.models.device import torch_threads_per_caller
from panda_dagster.lib.processes import run_with_helpers
from panda_dagster.lib.records import Cue, QuarantineRecord
from panda_dagster.lib.storage import Storage
from panda_dagster.lib.video.cutting import ClipCutError, cut_clip
from panda_dagster.lib.video.keyframes import encode_jpeg, keyframe_key
from panda_dagster.lib.video.records import ClipRecord
from panda_dagster.lib.video.segmented import MIN_SEGMENT_S
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
    duration_s: float | None = None  # probed at ingest: plans the order and the long videos' decode stretches


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
    return [VideoToSplit(v.video_id, v.uri, v.local_path, cues.get(v.video_id, []), given_spans(v.metadata_json),
                         v.probe.decodable_s or v.probe.duration_s)
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


def longest_first(videos: Sequence[VideoToSplit]) -> list[VideoToSplit]:
    """The order the split threads take the videos in: the longest first, so that no thread is left
    working through a long video alone at the end (unknown durations count as short)."""
    return sorted(videos, key=lambda v: v.duration_s or 0.0, reverse=True)


def decode_plan(videos: Sequence[VideoToSplit], workers: int, config: SplitConfig,
                min_segment_s: float) -> dict[str, int]:
    """Decode stretches per video when `workers` threads split the shard (empty: leave it to each video's
    own choice). A video longer than the shard's share of one thread would finish last whatever the order,
    so it is decoded as ceil(duration * workers / total) parallel stretches (at most `workers`, each at
    least `min_segment_s`); every other video sequentially, since the threads already fill the cores."""
    if workers <= 1 or config.decode_segments != 0:
        return {}
    durations = {v.video_id: min(v.duration_s or 0.0, config.max_video_s or math.inf) for v in videos}
    total = sum(durations.values())
    plan = {}
    for video_id, duration in durations.items():
        wanted = math.ceil(duration * workers / total - 1e-9) if total > 0 else 1
        plan[video_id] = max(1, min(wanted, workers, int(duration // min_segment_s)))
    return plan


def clip_file_key(shard: str, clip: str) -> str:
    return f"shards/{shard}/clips/{clip}.mp4"


@dataclass
class _VideoDone:
    """One video split and stored (by a split thread)."""

    video: VideoToSplit
    result: SplitResult | None = None  # None: quarantined, `error` says why
    error: str | None = None
    rows: list[ClipRecord] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    jpegs: dict[str, bytes] = field(default_factory=dict)
    n_motion_stored: int = 0

    @classmethod
    def failed(cls, shard: str, video: VideoToSplit, error: str) -> "_VideoDone":
        return cls(video, error=error,
                   quarantine=[QuarantineRecord(shard, video.uri, STAGE, error, video.video_id, "dropped")])


def _store_video(shard: str, video: VideoToSplit, result: SplitResult, storage: Storage, models_label: str,
                 write_clip_files: bool, cut_mode: str, say: Callable[[str], None]) -> _VideoDone:
    """The video's clip rows, with key frames (and motion frames, clip files) in storage; its quarantine
    rows. The decoded frames are released afterwards."""
    done = _VideoDone(video, result)
    if result.n_frames <= 1:
        done.quarantine.append(QuarantineRecord(shard, video.uri, STAGE, f"no clips: {result.no_clips_reason}",
                                                video.video_id, "dropped"))
        return done
    if result.partial_reason:
        done.quarantine.append(QuarantineRecord(
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
            done.jpegs[keyframe_uris[-1]] = jpeg
        if motion is not None:  # clip_filters (motion, still) reads these instead of decoding again
            storage.put_bytes(motion_frames_key(shard, cid),
                              encode_motion_frames(motion_frames_between(motion, clip.start_s, clip.end_s)))
            done.n_motion_stored += 1
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
        done.rows.append(ClipRecord(
            clip_id=cid, video_id=video.video_id, shard=shard, start_s=clip.start_s, end_s=clip.end_s,
            start_frame=clip.start_frame, end_frame=clip.end_frame, method=clip.method,
            n_shots_merged=clip.n_shots_merged, detector=result.detector, narration=clip.narration,
            keyframe_uris=keyframe_uris, clip_uri=clip_uri, split_quality=clip.split_quality,
            models_label=models_label if (clip.method == "stitched" or clip.split_quality is not None) else "none",
        ))
    # Frames are not needed past this point; keep the per-video results light.
    result.decoded.samples = []
    result.companions = []
    return done


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
    segments = decode_plan(videos, workers, config, MIN_SEGMENT_S)
    per_video = dataclasses.replace(config, threads=1) if workers > 1 else config

    def one(video: VideoToSplit) -> _VideoDone:
        if not Path(video.local_path).is_file():
            return _VideoDone.failed(shard, video, f"source file missing: {video.local_path}")
        cfg = dataclasses.replace(per_video, decode_segments=segments[video.video_id]) if segments else per_video
        try:
            result = split_video(video.local_path, cfg, embed_images=embed_images, models_label=models_label,
                                 cues=video.cues or None, given_spans=video.given_spans or None,
                                 make_companion=MotionFrameSampler, run_parallel=share_out)
        except Exception as exc:  # noqa: BLE001  one broken video must not stop the shard
            return _VideoDone.failed(shard, video, f"splitting failed: {type(exc).__name__}: {exc}")
        # Stored in this thread too (JPEG encoding releases the GIL), and the frames let go at once.
        return _store_video(shard, video, result, storage, models_label, write_clip_files, cut_mode, say)

    pool = ThreadPoolExecutor(max_workers=max(1, workers))

    def share_out(work, items) -> None:
        # A long video's frames to embed, shared with the threads that have no video left to split.
        run_with_helpers(pool, workers - 1, work, items)

    # The split threads fill the cores: torch work in each runs single-threaded (and so does a helper's).
    with pool, torch_threads_per_caller(1) if workers > 1 else contextlib.nullcontext():
        futures = {id(video): pool.submit(one, video) for video in longest_first(videos)}
        outcomes = [futures[id(video)].result() for video in videos]  # the shard's order again

    rows: list[ClipRecord] = []
    quarantine: list[QuarantineRecord] = []
    results: dict[str, SplitResult] = {}
    jpegs: dict[str, bytes] = {}
    dropped = Counter()
    n_motion_stored = 0
    for done in outcomes:
        if done.result is None:
            say(f"quarantine {done.video.video_id}: {done.error}")
        else:
            results[done.video.video_id] = done.result
            dropped.update(_dropped_reason_kind(item.reason) for item in done.result.dropped)
        rows += done.rows
        quarantine += done.quarantine
        jpegs.update(done.jpegs)
        n_motion_stored += done.n_motion_stored

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
