"""Frames for the teachers: stored key frames (image captioners) and frames sampled from the video file
inside the clip span (video-LLMs). Decoding runs in a worker thread while the model generates."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from panda_dagster.lib.storage import read_artifact

T = TypeVar("T")
R = TypeVar("R")


class FrameError(Exception):
    """Frames for a clip could not be read; the message goes into the failure record."""


def pick_evenly(items: list[T], n: int) -> list[T]:
    """`n` items spread over the list (the middle one for n=1)."""
    if n <= 0 or not items:
        return []
    if n >= len(items):
        return list(items)
    return [items[int((i + 0.5) * len(items) / n)] for i in range(n)]


def load_keyframes(uris: Iterable[str], num_frames: int, s3_client=None) -> list:
    """PIL RGB images of `num_frames` key frames spread over the clip's stored ones."""
    from PIL import Image

    chosen = pick_evenly(list(uris), num_frames)
    if not chosen:
        raise FrameError("clip has no stored key frames")
    images = []
    for uri in chosen:
        try:
            with Image.open(io.BytesIO(read_artifact(uri, s3_client=s3_client))) as img:
                images.append(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise FrameError(f"key frame {uri} unreadable: {type(exc).__name__}: {exc}") from exc
    return images


_decord_lock = threading.Lock()


def sample_video_frames(path: str, timestamps_s: list[float], max_side: int = 768) -> list:
    """PIL RGB frames at the given times (nearest frame), read with PyAV, decord as the fallback.
    Frames are downscaled to `max_side` on decode: processors resize them smaller anyway. Opens the
    file for this call only; `VideoFrameSampler` keeps it open for all clips of a video."""
    with VideoFrameSampler(max_side) as sampler:
        return sampler.sample(path, timestamps_s)


SEEK_AHEAD_S = 3.0  # a time further ahead than this is reached by seeking, not by decoding up to it


class VideoFrameSampler:
    """Frames of one video at a time: the clips of a video, asked for one after another, are all served by
    a single open of that video, decoded forward (PyAV, `_ForwardReader`); decord where PyAV fails.
    Asking for another video closes the previous one. Not thread-safe: one sampler per prefetch thread
    (`ThreadSamplers`)."""

    def __init__(self, max_side: int = 768):
        self.max_side = max_side
        self._path: str | None = None
        self._reader = None  # decord.VideoReader
        self._forward: _ForwardReader | None = None
        self._fps = 25.0
        self._pyav_refused: set[str] = set()  # videos PyAV failed on: straight to decord
        self.opens = 0  # files opened by this sampler (PyAV or decord)

    def __enter__(self) -> "VideoFrameSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._forward is not None:
            self._forward.close()
        self._reader, self._forward, self._path = None, None, None

    def sample(self, path: str, timestamps_s: list[float]) -> list:
        if not timestamps_s:
            return []
        try:
            if path in self._pyav_refused:
                raise RuntimeError("PyAV could not read this video before")
            return self._forward_reader(path).frames_at(timestamps_s)
        except Exception as exc:  # e.g. a stream PyAV decodes no frame of: decord has its own demuxers
            self.close()
            self._pyav_refused.add(path)
            try:
                return _sample_decord(self, path, timestamps_s)
            except Exception as exc2:
                raise FrameError(f"cannot decode frames of {path}: PyAV: {exc}; decord: {exc2}") from exc2

    def _forward_reader(self, path: str) -> "_ForwardReader":
        if self._path != path or self._forward is None:
            self.close()
            self.opens += 1
            self._forward, self._path = _ForwardReader(path, self.max_side), path
        return self._forward

    def _open(self, path: str):
        if self._path != path or self._reader is None:
            import decord

            self.close()
            with _decord_lock:  # decord's bridge setup is process-global
                self.opens += 1
                reader = decord.VideoReader(path, num_threads=1)
            if not len(reader):
                raise FrameError(f"{path}: no decodable frames")
            self._reader, self._path = reader, path
            self._fps = float(reader.get_avg_fps()) or 25.0
        return self._reader

    def frame_indices(self, path: str, timestamps_s: list[float]) -> tuple[object, list[int]]:
        """The open decord reader of `path` and the frame index nearest each time."""
        reader = self._open(path)
        n = len(reader)
        return reader, [min(n - 1, max(0, int(round(t * self._fps)))) for t in timestamps_s]


class ThreadSamplers:
    """One `VideoFrameSampler` per prefetch thread (several threads decode different chunks at once);
    `close()` closes them all at the end of a pass."""

    def __init__(self, max_side: int = 768):
        self.max_side = max_side
        self._local = threading.local()
        self._all: list[VideoFrameSampler] = []
        self._lock = threading.Lock()

    def get(self) -> VideoFrameSampler:
        sampler = getattr(self._local, "sampler", None)
        if sampler is None:
            sampler = self._local.sampler = VideoFrameSampler(self.max_side)
            with self._lock:
                self._all.append(sampler)
        return sampler

    def close(self) -> None:
        with self._lock:
            for sampler in self._all:
                sampler.close()


class _ForwardReader:
    """One open video decoded forward with PyAV for frames at increasing times. Only reference frames are
    decoded (`skip_frame` NONREF: about half the frames of a typical H.264 stream, the rest needs no
    decoding), so a returned frame is the decoded frame nearest the asked time, at most a frame or two
    off: nothing a caption of a multi-second clip can see. FFmpeg's frame threads use every core. A time
    before the last frame passed, or more than SEEK_AHEAD_S after the last one decoded, seeks to the
    keyframe before it."""

    def __init__(self, path: str, max_side: int):
        import av

        self.max_side = max_side
        self.container = av.open(path, metadata_errors="ignore")
        if not self.container.streams.video:
            self.container.close()
            raise FrameError(f"{path}: no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.skip_frame = "NONREF"
        rate = self.stream.average_rate or self.stream.guessed_rate
        self._step = 1.0 / float(rate) if rate and float(rate) > 0 else 0.04  # for frames without a time
        self._decoded = None  # the frame iterator
        self._after_seek = False
        self._previous: tuple[float, object] | None = None  # (time, frame) of the last frame passed
        self._pending: tuple[float, object] | None = None  # decoded at or after the last asked time

    def close(self) -> None:
        self.container.close()

    def _seek(self, t: float) -> None:
        """Decode from the keyframe before `t` (from the start when `t` is near it; a fresh open near the
        start does not seek at all: seeking is unreliable in some files)."""
        time_base = self.stream.time_base
        if time_base and t > SEEK_AHEAD_S:
            self.container.seek(max(0, int((t - 1.0) / time_base)), stream=self.stream, backward=True,
                                any_frame=False)
        elif self._decoded is not None:
            self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        self._decoded = self.container.decode(self.stream)
        self._previous = self._pending = None
        self._after_seek = True

    def _next(self) -> tuple[float, object] | None:
        if self._pending is not None:
            found, self._pending = self._pending, None
            return found
        for frame in self._decoded:
            if self._after_seek and not frame.key_frame:
                continue  # frames of an open GOP before the keyframe seeked to may be broken
            self._after_seek = False
            if frame.time is not None:
                return float(frame.time), frame
            return (self._previous[0] + self._step if self._previous else 0.0), frame
        return None

    def _needs_seek(self, t: float) -> bool:
        if self._decoded is None:
            return True
        known = [x[0] for x in (self._previous, self._pending) if x is not None]
        if not known:
            return False
        return t < min(known) - self._step or t > max(known) + SEEK_AHEAD_S

    def frames_at(self, timestamps_s: list[float]) -> list:
        images = []
        for t in timestamps_s:
            if self._needs_seek(t):
                self._seek(t)
            chosen = None
            while True:
                found = self._next()
                if found is None:  # past the end: the last frame
                    chosen = self._previous[1] if self._previous else None
                    break
                frame_t, frame = found
                if frame_t >= t:
                    previous = self._previous
                    chosen = frame if previous is None or frame_t - t <= t - previous[0] else previous[1]
                    self._pending = found
                    break
                self._previous = found
            if chosen is None:
                raise FrameError("no decodable frames")
            w, h = _target_size(chosen.width, chosen.height, self.max_side)
            images.append(chosen.to_image(width=w, height=h))
        return images


def _sample_decord(sampler: VideoFrameSampler, path: str, timestamps_s: list[float]) -> list:
    from PIL import Image

    reader, indices = sampler.frame_indices(path, timestamps_s)
    images = []
    for frame in reader.get_batch(indices).asnumpy():
        image = Image.fromarray(frame[..., :3])
        size = _target_size(image.width, image.height, sampler.max_side)
        images.append(image if size == image.size else image.resize(size, Image.BILINEAR))
    return images


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = 1,
             workers: int = 1) -> Iterator[tuple[T, R | BaseException]]:
    """Yield (item, load(item)) in order, computing loads ahead in background threads so frame decoding
    overlaps with generation: up to `depth` items ahead with one thread. With `workers` threads, up to
    max(depth, workers) ahead and item i always on thread i % workers, so a caller that interleaves its
    items (`interleave_runs`) gives each thread a run of its own to decode forward. A failing load yields
    its exception instead of raising."""

    def safe(item):
        try:
            return load(item)
        except BaseException as exc:  # handed to the caller, which records it per clip
            return exc

    workers = max(1, workers)
    ahead = max(depth, workers) if depth > 0 else 0
    lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"teacher-prefetch-{k}") for k in range(workers)]
    pending: list[tuple[T, Future]] = []
    try:
        for position, item in enumerate(items):
            pending.append((item, lanes[position % workers].submit(safe, item)))
            if len(pending) > ahead:
                head, fut = pending.pop(0)
                yield head, fut.result()
        while pending:
            head, fut = pending.pop(0)
            yield head, fut.result()
    finally:
        for lane in lanes:
            lane.shutdown(wait=True, cancel_futures=True)


def interleave_runs(items: Sequence[T], runs: int) -> list[T]:
    """`items` cut into `runs` contiguous runs of equal length (give or take one), interleaved: [a0, b0, a1, b1,
    ...]. Through `prefetch(..., workers=runs)` each thread gets one run: a stretch of a video's clips it
    decodes forward, instead of every other chunk with a seek before each."""
    if runs <= 1 or len(items) <= 1:
        return list(items)
    # The longer runs first: every round but the last is complete, so item i stays on thread i % runs.
    short, extra = divmod(len(items), runs)
    parts, start = [], 0
    for k in range(runs):
        size = short + (1 if k < extra else 0)
        parts.append(items[start: start + size])
        start += size
    return [part[i] for i in range(short + (1 if extra else 0)) for part in parts if i < len(part)]
