"""One long video on several cores: decode stretches between keyframes in parallel, then join them.

Why: one H.264 decoder plus the per-frame scoring runs on one core (frame threading barely helps once the
consuming Python loop is the bottleneck), so a 2-core machine ran at half speed. The video is cut at
keyframes near equal fractions of its length; the first stretch is decoded in this process, the others
in spawned worker processes (one decoder thread each). Each stretch scores its own frames; the stretch
before a join also scores the first frame after it (against its true predecessor) and fingerprints a few
frames past it, which must equal what the next stretch decoded after its seek, bit for bit. The joined
score array, times, keyframe flags and samples are therefore exactly those of the sequential decode, and
cut decisions (min_scene_len, flash filter) still run once over the whole array.

Anything unexpected (seek off target, open-GOP frames that differ, decode errors, pts repairs, a worker
failing) makes `decode_scores_segmented` return None with a reason: the caller then decodes sequentially.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from panda_dagster.lib.video.decode import (
    DecodedSegment,
    DecodedVideo,
    auto_decoder_threads,
    decode_segment,
    select_samples,
)
from panda_dagster.lib.processes import usable_cores
from panda_dagster.lib.video.detectors import FrameScorer

MIN_SEGMENTED_S = 60.0  # shorter videos: process start-up would eat most of the gain
MIN_SEGMENT_S = 30.0  # each stretch at least this long
MAX_SEGMENTS = 8
EDGE_FRAMES = 16  # frames compared at every join
# The stretch decoded in this process is made this much longer (relative) than the others: a worker
# starts ~0.2 s late and ships its samples back (~0.6 s for 600 samples of a 10-minute film).
IN_PROCESS_EXTRA_SHARE = 0.1


@dataclass
class SegmentJob:
    path: str
    make_scorer: Callable[[], FrameScorer]  # the detector's `frame_scorer` (picklable)
    start_pts: int | None
    stop_pts: int | None
    decode_kwargs: dict
    # A second frame consumer fed the same frames (e.g. the motion-frame sampler of clip_filters), returned
    # with the stretch's result; picklable, like make_scorer.
    make_companion: Callable[[], Any] | None = None


def free_cores(window_s: float = 0.1) -> float | None:
    """Idle cores right now (from /proc/stat over `window_s`), None where unavailable. An instantaneous
    figure on purpose: the load average still counts this process's previous video for a minute."""
    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = snapshot()
        time.sleep(window_s)
        idle1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return usable_cores() * (idle1 - idle0) / (total1 - total0)


def auto_segment_count(duration_s: float | None, cores: int | None = None) -> int:
    """How many stretches for a video of `duration_s` on this machine (1 = sequential): one per idle core,
    each at least MIN_SEGMENT_S, none for videos under MIN_SEGMENTED_S or when under two cores are idle."""
    cores = cores or usable_cores()
    if cores < 2 or not duration_s or duration_s < MIN_SEGMENTED_S:
        return 1
    idle = free_cores()
    if idle is None:  # no /proc/stat: fall back on the load average
        idle = 1.0 if auto_decoder_threads() == 1 else float(cores)
    usable = min(cores, int(idle + 0.5))
    if usable < 2:
        return 1
    return max(1, min(usable, MAX_SEGMENTS, int(duration_s // MIN_SEGMENT_S)))


def probe_duration(path: str) -> float | None:
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
    except Exception:  # noqa: BLE001 - the sequential decode reports unreadable files properly
        return None
    return None


def keyframe_boundaries(path: str, n_segments: int, end_s: float) -> list[int]:
    """Pts (stream time base) of keyframes near k / n of `end_s` (the first stretch a little longer),
    strictly increasing, the stream start excluded."""
    import av

    boundaries: list[int] = []
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        if stream.time_base is None:
            return []
        time_base = float(stream.time_base)
        start = stream.start_time or 0
        shares = [1.0 + IN_PROCESS_EXTRA_SHARE] + [1.0] * (n_segments - 1)
        for k in range(1, n_segments):
            fraction = sum(shares[:k]) / sum(shares)
            target = start + int(fraction * end_s / time_base)
            container.seek(target, backward=True, any_frame=False, stream=stream)
            found = None
            for i, packet in enumerate(container.demux(stream)):
                if packet.is_keyframe and packet.pts is not None:
                    found = int(packet.pts)
                    break
                if i > 2000:
                    break
            if found is not None and (not boundaries or found > boundaries[-1]) and found > start:
                boundaries.append(found)
    return boundaries


def _run_segment(job: SegmentJob) -> tuple[DecodedSegment, np.ndarray, Any]:
    import cv2

    scorer = job.make_scorer()
    companion = job.make_companion() if job.make_companion is not None else None
    consumers = [scorer] if companion is None else [scorer, companion]
    # The per-frame resizes and colour conversions are tiny: OpenCV's thread pool only spins against the
    # other stretches' processes (~5 % more CPU per frame on 2 cores).
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        segment = decode_segment(job.path, consumers, start_pts=job.start_pts, stop_pts=job.stop_pts,
                                 edge_frames=EDGE_FRAMES, **job.decode_kwargs)
    finally:
        cv2.setNumThreads(threads)
    return segment, scorer.scores, companion


def _run_segment_in_worker(job: SegmentJob) -> tuple[DecodedSegment, np.ndarray, str | None, Any]:
    """`_run_segment` in a worker process: the RGB samples travel back through one temporary file (in
    /dev/shm where there is one) instead of the result pipe; pickling ~160 MB of samples through the
    pipe took ~0.6 s, the file ~0.1 s."""
    segment, scores, companion = _run_segment(job)
    samples = segment.decoded.samples
    if not samples or len({s.rgb.shape for s in samples}) != 1:
        return segment, scores, None, companion
    shape = samples[0].rgb.shape
    for folder in ("/dev/shm", None):  # /dev/shm can be small (64 MB in containers): then the temp dir
        if folder is not None and not os.path.isdir(folder):
            continue
        fd, name = tempfile.mkstemp(prefix="panda_segment_", suffix=".rgb", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                for sample in samples:
                    fh.write(np.ascontiguousarray(sample.rgb).data)
        except OSError:
            os.unlink(name)
            continue
        for sample in samples:
            sample.rgb = None
        return segment, scores, name + "|" + ",".join(str(d) for d in shape), companion
    return segment, scores, None, companion  # no room anywhere: through the pipe after all


def _collect_samples(segment: DecodedSegment, shipped: str | None) -> None:
    """Put back the samples a worker wrote to a file (and delete the file)."""
    if shipped is None:
        return
    name, shape_text = shipped.split("|")
    try:
        shape = tuple(int(x) for x in shape_text.split(","))
        block = np.fromfile(name, dtype=np.uint8).reshape(-1, *shape)
    finally:
        os.unlink(name)
    for sample, rgb in zip(segment.decoded.samples, block):
        sample.rgb = rgb


def decode_scores_segmented(
    path: str,
    make_scorer: Callable[[], FrameScorer],
    n_segments: int,
    *,
    sample_fps: float,
    sample_short_side: int,
    max_samples: int,
    max_seconds: float | None,
    skip_loop_filter: str | None,
    threads_per_segment: int = 1,
    make_companion: Callable[[], Any] | None = None,
    companions: list | None = None,
) -> tuple[DecodedVideo | None, np.ndarray | None, str]:
    """Decode `path` as `n_segments` parallel stretches and score every frame (`make_scorer()`; its
    scores have one entry per frame, which depends only on the frame and its predecessor).

    Returns (decoded, scores, "") exactly equal to a sequential `decode_video` with that scorer, or
    (None, None, reason) when the video cannot be joined exactly (the caller decodes sequentially).
    `make_companion`: a second consumer per stretch, fed the same frames (absolute times; the frame past a
    stretch's end gets time NaN); on success `companions` receives them, one per stretch, in order.
    """
    import multiprocessing

    started = time.perf_counter()
    duration = probe_duration(path)
    if duration is None:
        return None, None, "no duration in the header"
    end_s = min(duration, max_seconds) if max_seconds else duration
    try:
        boundaries = keyframe_boundaries(path, n_segments, end_s)
    except Exception as exc:  # noqa: BLE001
        return None, None, f"cannot seek: {exc}"
    if not boundaries:
        return None, None, "no keyframe to split at"
    edges = [None, *boundaries, None]
    decode_kwargs = dict(sample_fps=sample_fps, sample_short_side=sample_short_side,
                         max_samples=max_samples,
                         # A stretch may hold one candidate more than the whole video keeps (its first
                         # frame), so its grid never gets coarser than the joined one: candidates stay a superset.
                         sample_capacity=max_samples + 1,
                         max_seconds=max_seconds, threads=threads_per_segment, skip_loop_filter=skip_loop_filter)
    jobs = [SegmentJob(path, make_scorer, edges[k], edges[k + 1], decode_kwargs, make_companion)
            for k in range(len(edges) - 1)]
    # spawn: forked children would inherit FFmpeg/OpenCV thread pools in an undefined state.
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=len(jobs) - 1, mp_context=context) as pool:
            futures = [pool.submit(_run_segment_in_worker, job) for job in jobs[1:]]
            try:
                segment, scores, companion = _run_segment(jobs[0])
                parts, found_companions = [(segment, scores)], [companion]
                for future in futures:
                    segment, scores, shipped, companion = future.result()
                    _collect_samples(segment, shipped)
                    parts.append((segment, scores))
                    found_companions.append(companion)
            finally:  # after a failure part-way: delete the sample files no one collected
                wait(futures)  # leaving the pool waits for them anyway
                for future in futures:
                    if not future.cancelled() and future.exception() is None:
                        shipped = future.result()[2]
                        if shipped is not None and os.path.exists(shipped.split("|")[0]):
                            os.unlink(shipped.split("|")[0])
    except Exception as exc:  # noqa: BLE001 - any failure: the sequential path decides what is wrong
        return None, None, f"segment failed: {type(exc).__name__}: {exc}"
    decoded, scores, reason = join_segments(parts, max_samples)
    if decoded is not None:
        decoded.decode_wall_s = time.perf_counter() - started
        if companions is not None and make_companion is not None:
            companions.extend(found_companions)
    return decoded, scores, reason


def join_segments(parts: list[tuple[DecodedSegment, np.ndarray]],
                  max_samples: int) -> tuple[DecodedVideo | None, np.ndarray | None, str]:
    """Concatenate decoded stretches, or say why they do not join into the sequential result."""
    for k, (segment, _) in enumerate(parts):
        d = segment.decoded
        last = k == len(parts) - 1
        if d.decode_errors or d.truncated_reason:
            return None, None, f"segment {k}: decode errors"
        if d.pts_repairs:
            return None, None, f"segment {k}: pts repairs"
        if not last and (d.stopped_at_max_s or not segment.tail):
            return None, None, f"segment {k} ended before its join"
        if d.n_frames == 0:
            return None, None, f"segment {k} is empty"
        if k > 0:
            if not segment.origin_known:
                return None, None, "no container start time"
            previous = parts[k - 1][0]
            if previous.tail != segment.head[:len(previous.tail)] or len(segment.head) < len(previous.tail):
                return None, None, f"join {k}: frames after the seek differ from the sequential ones"
            if (d.width, d.height, d.analysis_size) != (parts[0][0].decoded.width, parts[0][0].decoded.height,
                                                        parts[0][0].decoded.analysis_size):
                return None, None, f"segment {k}: frame size changes"
    first = parts[0][0].decoded
    times = np.concatenate([seg.decoded.times_s for seg, _ in parts])
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        return None, None, "times do not increase across a join"
    score_parts = []
    join_scores = []  # (index, score) of each stretch's first frame, scored against its true predecessor
    candidates = []
    offset = 0
    for k, (segment, scores) in enumerate(parts):
        n = segment.decoded.n_frames
        score_parts.append(scores[:n])
        if k > 0:
            previous_segment, previous_scores = parts[k - 1]
            join_scores.append((offset, previous_scores[previous_segment.decoded.n_frames]))
        for s in segment.decoded.samples:
            s.index += offset
            candidates.append(s)
        offset += n
    scores = np.concatenate(score_parts)  # one copy (the hybrid scores carry a 4 KB thumbnail per frame)
    for index, score in join_scores:
        scores[index] = score
    samples = select_samples(candidates, times, parts[0][0].sample_step, max_samples) \
        if parts[0][0].sample_step < math.inf else []
    last = parts[-1][0].decoded
    fps = parts[0][0].nominal_fps
    if fps <= 0 and len(times) > 1:  # as decode_video derives it, over the whole video
        fps = (len(times) - 1) / max(1e-9, times[-1] - times[0])
    joined = DecodedVideo(
        path=first.path, codec=first.codec, width=first.width, height=first.height, fps=fps, times_s=times,
        keyframes=np.concatenate([seg.decoded.keyframes for seg, _ in parts]), end_s=last.end_s,
        header_duration_s=first.header_duration_s, samples=samples, decode_errors=[], truncated_reason=None,
        stopped_at_max_s=last.stopped_at_max_s, analysis_size=first.analysis_size, decode_wall_s=0.0,
        pts_repairs=0)
    return joined, scores, ""
