"""Frames for the teachers: stored key frames (image captioners) and frames sampled from the video file
inside the clip span (video-LLMs). Decoding runs in a worker thread while the model generates."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
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
    """PIL RGB frames at the given times (nearest frame), read with decord, PyAV as the fallback.
    Frames are downscaled to `max_side` on decode: processors resize them smaller anyway. Opens the
    file for this call only; `VideoFrameSampler` keeps it open for all clips of a video."""
    with VideoFrameSampler(max_side) as sampler:
        return sampler.sample(path, timestamps_s)


class VideoFrameSampler:
    """Frames of one video at a time, from one open decord reader: the clips of a video, asked for one
    after another, are all served by a single open (and decode) of that video. Asking for another video
    closes the previous one. Not thread-safe: one sampler per prefetch thread."""

    def __init__(self, max_side: int = 768):
        self.max_side = max_side
        self._path: str | None = None
        self._reader = None
        self._fps = 25.0
        self._decord_refused: set[str] = set()  # videos decord cannot read: straight to PyAV
        self.opens = 0  # files opened by this sampler (decord or PyAV)

    def __enter__(self) -> "VideoFrameSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader, self._path = None, None

    def sample(self, path: str, timestamps_s: list[float]) -> list:
        if not timestamps_s:
            return []
        try:
            if path in self._decord_refused:
                raise RuntimeError("decord could not read this video before")
            return _sample_decord(self, path, timestamps_s)
        except FrameError:
            raise
        except Exception as exc:  # decord refuses some containers; PyAV reads nearly everything
            self.close()
            self._decord_refused.add(path)
            try:
                self.opens += 1
                return _sample_pyav(path, timestamps_s, self.max_side)
            except Exception as exc2:
                raise FrameError(f"cannot decode frames of {path}: decord: {exc}; PyAV: {exc2}") from exc2

    def _open(self, path: str):
        if self._path != path:
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
        """The open reader of `path` and the frame index nearest each time."""
        reader = self._open(path)
        n = len(reader)
        return reader, [min(n - 1, max(0, int(round(t * self._fps)))) for t in timestamps_s]


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


def _sample_pyav(path: str, timestamps_s: list[float], max_side: int) -> list:
    import av

    wanted = sorted(set(timestamps_s))
    found: dict[float, object] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # One sequential pass from the first wanted time: seeking is unreliable in some files.
        container.seek(max(0, int((wanted[0] - 1.0) / stream.time_base)) if stream.time_base else 0,
                       stream=stream, backward=True, any_frame=False)
        remaining = list(wanted)
        last = None
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            while remaining and t >= remaining[0] - 1e-3:
                found[remaining.pop(0)] = frame
            last = frame
            if not remaining:
                break
        for t in remaining:  # past the end: use the last frame
            if last is None:
                raise FrameError(f"{path}: no decodable frames")
            found[t] = last
        images = []
        for t in timestamps_s:
            frame = found[t]
            w, h = _target_size(frame.width, frame.height, max_side)
            images.append(frame.to_image(width=w, height=h))
    return images


def prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = 1) -> Iterator[tuple[T, R | BaseException]]:
    """Yield (item, load(item)) in order, computing up to `depth` loads ahead in a background thread so
    frame decoding overlaps with generation. A failing load yields its exception instead of raising."""

    def safe(item):
        try:
            return load(item)
        except BaseException as exc:  # handed to the caller, which records it per clip
            return exc

    pending: list[tuple[T, Future]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="teacher-prefetch") as pool:
        iterator = iter(items)
        for item in iterator:
            pending.append((item, pool.submit(safe, item)))
            if len(pending) > depth:
                head, fut = pending.pop(0)
                yield head, fut.result()
        while pending:
            head, fut = pending.pop(0)
            yield head, fut.result()
