"""Run the filters over one shard's clips: scores, decisions, rows for `clip_filters`, stats per step."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs
from panda_dagster.lib.filters.duplicates import DUPLICATE, Fingerprint, find_duplicates, phash
from panda_dagster.lib.filters.frames import ClipSpan, decode_motion_frames, motion_frames_key, sample_videos
from panda_dagster.lib.filters.records import SCORE_COLUMNS, ClipFilterRecord
from panda_dagster.lib.filters.registry import CLIP_FILTERS, DUPLICATES, FiltersParams
from panda_dagster.lib.processes import run_with_helpers, usable_cores


@dataclass
class ShardFilterResult:
    rows: list[ClipFilterRecord]
    cpu_s: dict[str, float]  # CPU seconds per step (frames, each filter, duplicates)
    reasons: dict[str, int]  # clips per reason code
    notes: list[str] = field(default_factory=list)  # what the metadata must say (extra decodes, phash only)
    n_duplicates_kept_elsewhere: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # clip_id -> what failed (its scores stay None)

    @property
    def n_kept(self) -> int:
        return sum(r.keep for r in self.rows)


class _Timer:
    """CPU seconds per step, summed over the scoring threads (each thread's own CPU time)."""

    def __init__(self) -> None:
        self.cpu: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, step: str, fn: Callable, *args):
        started = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.cpu[step] += spent


def attach_motion_frames(clips: Sequence[ClipInputs], video_paths: dict[str, str],
                         read_stored: Callable[[str], bytes | None] | None) -> tuple[int, int, dict[str, str]]:
    """Give every clip its small grey frames: stored by `clips` where present (`read_stored(key)`, None
    when absent), else one low-resolution decode per video here. Returns (clips with stored frames,
    videos decoded here, video_id -> decode error)."""
    missing: dict[str, list[ClipSpan]] = {}
    n_stored = 0
    for clip in clips:
        data = read_stored(motion_frames_key(clip.shard, clip.clip_id)) if read_stored else None
        if data is not None:
            clip.motion_frames = decode_motion_frames(data)
            n_stored += 1
        else:
            missing.setdefault(clip.video_id, []).append(ClipSpan(clip.clip_id, clip.start_s, clip.end_s))
    todo = {v: (video_paths[v], spans) for v, spans in missing.items() if v in video_paths}
    errors = {v: "source video not found for decoding" for v in missing if v not in video_paths}
    frames, decode_errors, n_decoded = sample_videos(todo)
    errors.update(decode_errors)
    for clip in clips:
        if clip.clip_id in frames:
            clip.motion_frames = frames[clip.clip_id]
    return n_stored, n_decoded, errors


def _clean(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


class FrameSource(Protocol):
    """Attaches `motion_frames` to a group of clips (one video's); `notes()` says what it had to do."""

    def __call__(self, clips: Sequence[ClipInputs]) -> None: ...

    def notes(self) -> list[str]: ...


def filter_shard(clips: Sequence[ClipInputs], params: FiltersParams, *,
                 other_shards: Sequence[Fingerprint] = (), frames: FrameSource | None = None) -> ShardFilterResult:
    """Score and decide every clip, one video at a time per thread, the videos with most clips first (a
    video's frames are released before the thread takes the next one: memory stays at `params.workers`
    videos' clips); a thread with no video left helps with the clips of one still running. Those threads
    (0 = one per usable core) score at once: the OCR and NSFW models (ONNX Runtime, one thread each),
    OpenCV and NumPy release the GIL. `frames` attaches the small frames and runs only when an
    enabled filter needs them; `other_shards`: kept clips of other shards, for duplicates."""
    timer = _Timer()
    scores: dict[str, dict[str, float]] = {c.clip_id: {} for c in clips}
    reasons: dict[str, list[str]] = {c.clip_id: [] for c in clips}
    hashes: dict[str, list[int]] = {}
    errors: dict[str, str] = {}
    enabled = [n for n in params.enabled if n in CLIP_FILTERS]
    by_video: dict[str, list[ClipInputs]] = {}
    for clip in clips:
        by_video.setdefault(clip.video_id, []).append(clip)

    def score_video(group: list[ClipInputs]) -> None:
        if frames is not None and params.needs_motion_frames():
            timer("frames", frames, group)
        run_with_helpers(pool, threads - 1, score_clip, group)

    def score_clip(clip: ClipInputs) -> None:
        try:
            timer("read key frames", lambda: clip.keyframes)
        except Exception as exc:  # noqa: BLE001  an unreadable key frame must not stop the shard
            errors[clip.clip_id] = f"key frames: {type(exc).__name__}: {exc}"
        for name in enabled:
            clip_filter, filter_params = CLIP_FILTERS[name], params.params_for(name)
            try:
                found = timer(name, clip_filter.score, clip, filter_params)
            except Exception as exc:  # noqa: BLE001  as above: this filter leaves the clip unscored
                errors.setdefault(clip.clip_id, f"{name}: {type(exc).__name__}: {exc}")
                continue
            scores[clip.clip_id].update(found)
            reasons[clip.clip_id] += clip_filter.decide(found, filter_params)
        if DUPLICATES in params.enabled:
            try:
                hashes[clip.clip_id] = timer(DUPLICATES, lambda: [phash(frame) for frame in clip.keyframes])
            except Exception as exc:  # noqa: BLE001  compared with nothing, kept
                errors.setdefault(clip.clip_id, f"{DUPLICATES}: {type(exc).__name__}: {exc}")
        clip.release_frames()

    groups = sorted(by_video.values(), key=len, reverse=True)
    threads = max(1, min(params.workers or usable_cores(), len(clips)))
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clip-filters") if threads > 1 else None
    if pool is None:
        for group in groups:
            score_video(group)
    else:
        with pool:
            list(pool.map(score_video, groups))
    notes = frames.notes() if frames is not None and params.needs_motion_frames() else []
    duplicate_of: dict[str, str | None] = {}
    n_elsewhere = 0
    if DUPLICATES in params.enabled:
        fingerprints = [Fingerprint(c.clip_id, c.shard, c.duration_s, scores[c.clip_id].get("sharpness", float("nan")),
                                    hashes.get(c.clip_id, []), c.embedding, dropped_by_others=bool(reasons[c.clip_id]))
                        for c in clips]
        matches = timer(DUPLICATES, find_duplicates, fingerprints,
                        list(other_shards) if params.duplicates.across_shards else [], params.duplicates)
        for clip in clips:
            match = matches[clip.clip_id]
            scores[clip.clip_id]["duplicate_distance"] = match.distance
            scores[clip.clip_id]["duplicate_cosine"] = match.cosine
            duplicate_of[clip.clip_id] = match.duplicate_of
            n_elsewhere += match.kept_elsewhere
            if match.duplicate_of is not None:
                reasons[clip.clip_id].append(DUPLICATE)
        if not any(c.embedding is not None for c in clips):
            notes.append("duplicates: perceptual hash only (no trained key-frame embeddings in the catalog)")

    rows = []
    for clip in clips:
        found = scores[clip.clip_id]
        rows.append(ClipFilterRecord(
            clip_id=clip.clip_id, video_id=clip.video_id, shard=clip.shard, keep=not reasons[clip.clip_id],
            reasons=list(dict.fromkeys(reasons[clip.clip_id])), duplicate_of=duplicate_of.get(clip.clip_id),
            text=clip.notes.get("text") or None, duration_s=float(clip.duration_s),
            **{column: _clean(found.get(column)) for column in SCORE_COLUMNS},
            phashes=hashes.get(clip.clip_id, []), filters=list(params.enabled)))
    counts = Counter(reason for row in rows for reason in row.reasons)
    return ShardFilterResult(rows, {k: round(v, 3) for k, v in timer.cpu.items()}, dict(counts.most_common()),
                             notes, n_elsewhere, errors)


class MotionFrameSource:
    """The `frames` step of `filter_shard`: stored frames where `clips` wrote them, else one decode per
    video; `notes()` tells the asset metadata which (and what failed)."""

    def __init__(self, video_paths: dict[str, str], read_stored: Callable[[str], bytes | None] | None) -> None:
        self.video_paths, self.read_stored = video_paths, read_stored
        self.n_stored = self.n_decoded = 0
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, clips: Sequence[ClipInputs]) -> None:
        n_stored, n_decoded, errors = attach_motion_frames(clips, self.video_paths, self.read_stored)
        with self._lock:  # called from the scoring threads
            self.n_stored += n_stored
            self.n_decoded += n_decoded
            self.errors.update(errors)

    def notes(self) -> list[str]:
        notes = []
        if self.n_decoded:
            notes.append(f"motion/still: decoded {self.n_decoded} videos again at low resolution (one pass per "
                         f"video; {self.n_stored} clips had frames stored by clips)")
        notes += [f"motion/still: no frames for video {v}: {e}" for v, e in self.errors.items()]
        return notes


def score_histograms(rows: Sequence[ClipFilterRecord]) -> dict[str, list[float]]:
    """Finite values per score column (for the metadata plots)."""
    out = {}
    for column in SCORE_COLUMNS:
        values = [getattr(r, column) for r in rows if getattr(r, column) is not None]
        values = [v for v in values if np.isfinite(v)]
        if values:
            out[column] = values
    return out
