"""One decode pass per video: small analysis frames for the shot detectors, sparse samples for stitching.

Why this shape: decoding dominates the cost of shot detection. The stock PySceneDetect CLI converts every
full-resolution frame to BGR and only then downscales it. Here the YUV planes are downscaled straight to
the detector's working size (about 256 px wide, the size PySceneDetect itself analyses) and only then
converted to colour; deblocking is skipped on frames that no other frame references (`noref`: saves
cycles without drift; skipping it on reference frames too lets blocking accumulate over a GOP and caused
false cuts on 4:4:4 and Baseline H.264 samples); FFmpeg decodes with frame threads. Frames that
stitching, key frames and the split-quality figure need are kept as RGB samples at `sample_fps` in the
same pass, so nothing is decoded twice.

Timestamps come from each frame's pts (VFR-safe), relative to the container start as players and
`ffmpeg -ss` count them; a frame without a pts, or one that does not advance, gets the previous time plus
one nominal frame duration.
"""

from __future__ import annotations

import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# PySceneDetect analyses frames downscaled to (at least) this width; the same size keeps scores comparable.
ANALYSIS_WIDTH = 256
MAX_DECODE_ERRORS = 50  # corrupt packets tolerated before the rest of the file is given up on

FrameConsumer = Callable[[int, float, np.ndarray], None]  # (frame index, time_s, BGR analysis frame)


class VideoDecodeError(Exception):
    """The file cannot be opened or has no decodable video stream."""


@dataclass
class FrameSample:
    index: int  # frame index in decode order (= presentation order)
    time_s: float
    rgb: np.ndarray  # HxWx3 uint8, short side about `sample_short_side`


@dataclass
class DecodedVideo:
    path: str
    codec: str
    width: int
    height: int
    fps: float  # nominal (average) frame rate; timestamps never depend on it
    times_s: np.ndarray  # (n_frames,) float64 presentation time of every decoded frame
    keyframes: np.ndarray  # (n_frames,) bool: the frame is a keyframe (clean stream-copy start)
    end_s: float  # end of the last decoded frame (its pts + duration)
    header_duration_s: float | None  # what the container claims
    samples: list[FrameSample] = field(default_factory=list)
    decode_errors: list[str] = field(default_factory=list)
    truncated_reason: str | None = None  # why decoding ended before the end of the stream, if it did
    stopped_at_max_s: bool = False  # decoding stopped on purpose at `max_seconds`
    analysis_size: tuple[int, int] = (0, 0)
    decode_wall_s: float = 0.0
    pts_repairs: int = 0  # frames whose pts was missing or went backwards

    @property
    def n_frames(self) -> int:
        return int(len(self.times_s))

    @property
    def is_partial(self) -> bool:
        """Decoding failed part-way: only [0, end_s) of the video is usable."""
        if self.stopped_at_max_s:
            return False
        if self.truncated_reason is not None:
            return True
        if self.header_duration_s and self.n_frames:
            # A file whose frames stop well before the duration the container announces is truncated.
            missing = self.header_duration_s - self.end_s
            return missing > max(1.0, 0.1 * self.header_duration_s)
        return False

    def partial_reason(self) -> str | None:
        if not self.is_partial:
            return None
        if self.truncated_reason:
            return self.truncated_reason
        return (f"frames stop at {self.end_s:.2f} s but the container says {self.header_duration_s:.2f} s "
                "(truncated file?)")


def analysis_size(width: int, height: int, effective_width: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """PySceneDetect's auto-downscale size, rounded to even numbers (the planes are 4:2:0)."""
    factor = width / effective_width if width >= effective_width else 1.0
    w = max(2, int(round(width / factor)))
    h = max(2, int(round(height / factor)))
    return w - w % 2, h - h % 2


def sample_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size with the short side at `short_side` (never upscaled), even dimensions."""
    scale = min(1.0, short_side / max(1, min(width, height)))
    w = max(2, int(round(width * scale)))
    h = max(2, int(round(height * scale)))
    return w - w % 2, h - h % 2


def _plane_view(plane, rows: int, cols: int) -> np.ndarray:
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows, :cols]


def _resize_into(src: np.ndarray, dst: np.ndarray, antialias: bool) -> None:
    """Resize a plane into `dst`. antialias: halve with area averaging (OpenCV's fast power-of-two path)
    while still twice the target size, then bilinear; plain bilinear otherwise (PySceneDetect's choice)."""
    import cv2

    dh, dw = dst.shape
    if antialias:
        while src.shape[1] >= 2 * dw and src.shape[0] >= 2 * dh:
            src = cv2.resize(src, (src.shape[1] // 2, src.shape[0] // 2), interpolation=cv2.INTER_AREA)
    else:
        factor = _odd_integer_factor(src.shape, dst.shape)
        if factor:
            # Bilinear at an odd integer factor samples exactly source pixel factor * x + factor // 2 with
            # weight 1 (e.g. 1280x720 -> 256x144): a strided copy gives the same bytes in a third of the time.
            np.copyto(dst, src[factor // 2::factor, factor // 2::factor][:dh, :dw])
            return
    cv2.resize(src, (dw, dh), dst=dst, interpolation=cv2.INTER_LINEAR)


def _odd_integer_factor(src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> int:
    """k when `src` is exactly k times `dst` in both directions and k is odd and > 1, else 0."""
    (sh, sw), (dh, dw) = src_shape[:2], dst_shape[:2]
    if dh and dw and sh % dh == 0 and sw % dw == 0 and sh // dh == sw // dw:
        k = sh // dh
        return k if k > 1 and k % 2 == 1 else 0
    return 0


def _small_i420(frame, size: tuple[int, int], antialias: bool) -> np.ndarray:
    """The frame's YUV 4:2:0 planes resized into one small I420 buffer (h * 3 / 2 rows of width w)."""
    w, h = size
    fw, fh = frame.width, frame.height
    cw, ch = (fw + 1) // 2, (fh + 1) // 2
    planes = frame.planes
    i420 = np.empty((h * 3 // 2, w), np.uint8)
    chroma = i420[h:].reshape(2, h // 2, w // 2)  # U then V, each (h/2, w/2), contiguous
    if (fw, fh) == (w, h):
        i420[:h] = _plane_view(planes[0], fh, fw)
        chroma[0] = _plane_view(planes[1], ch, cw)
        chroma[1] = _plane_view(planes[2], ch, cw)
    else:
        _resize_into(_plane_view(planes[0], fh, fw), i420[:h], antialias)
        _resize_into(_plane_view(planes[1], ch, cw), chroma[0], antialias)
        _resize_into(_plane_view(planes[2], ch, cw), chroma[1], antialias)
    return i420


def _sample_rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """RGB sample for embeddings and key frames: planes halved by area averaging then bilinear (little
    aliasing), converted small; several times cheaper than swscale's scale-and-convert of the full frame."""
    import cv2

    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
    return cv2.cvtColor(_small_i420(frame, size, antialias=True), cv2.COLOR_YUV2RGB_I420)


def _analysis_bgr(frame, size: tuple[int, int]) -> np.ndarray:
    """Small BGR frame: downscale the YUV 4:2:0 planes bilinearly (as PySceneDetect downscales its BGR
    frames), straight into one I420 buffer, then convert only the small image to colour."""
    import cv2

    w, h = size
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        # Other layouts (4:4:4, 4:2:2, 10-bit, RGB...): let swscale produce small 4:2:0 directly.
        frame = frame.reformat(width=w, height=h, format="yuv420p", interpolation="AREA")
    return cv2.cvtColor(_small_i420(frame, size, antialias=False), cv2.COLOR_YUV2BGR_I420)


def auto_decoder_threads() -> int:
    """Decoder threads for `threads=0`: FFmpeg's own choice (0 = one per core, plus one) while cores are
    free, a single thread when the machine is already saturated (load average >= cores - 0.5): frame
    threading then only adds its ~15 % synchronisation overhead without finding an idle core."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 0
    return 1 if cores == 1 or load >= cores - 0.5 else 0


def probe_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 0.0


def on_sample_grid(t: float, t_previous: float | None, step: float) -> bool:
    """Whether a frame at `t` (previous frame at `t_previous`) is the first at or after a multiple of `step`.

    The grid is anchored at time 0, not at the first frame, so whether a frame is sampled depends only on
    its own and its predecessor's time: segments decoded in parallel pick exactly the sequential samples.
    A coarser grid (step doubled) selects a subset of the finer one's frames.
    """
    return t_previous is None or math.floor(t / step) > math.floor(t_previous / step)


def base_sample_step(header_duration: float | None, max_seconds: float | None, sample_fps: float,
                     max_samples: int) -> float:
    """Sampling period: 1 / sample_fps, stretched so that `max_samples` cover the expected length."""
    if sample_fps <= 0 or max_samples <= 0:
        return math.inf
    step = 1.0 / sample_fps
    expected = min(header_duration or 0.0, max_seconds or math.inf)
    if expected and expected * sample_fps > max_samples:
        step = expected / max_samples
    return step


def select_samples(candidates: Sequence[FrameSample], times_s: np.ndarray, step: float,
                   max_samples: int) -> list[FrameSample]:
    """The candidates on the sample grid (previous frame from `times_s`), the grid doubled until at most
    `max_samples` remain: the sequential decoder's rule, applied to a whole video at once."""
    chosen = list(candidates)
    while True:
        chosen = [s for s in chosen
                  if on_sample_grid(s.time_s, float(times_s[s.index - 1]) if s.index > 0 else None, step)]
        if len(chosen) <= max_samples:
            return chosen
        step *= 2


@dataclass
class FrameFingerprint:
    """Identity of one decoded frame: two decodes agree on a frame only if all of this is equal."""

    pts: int | None
    key_frame: bool
    planes_crc: int  # CRC-32 of the visible pixels of every plane (full resolution)
    analysis: bytes  # the small BGR analysis frame


def _fingerprint(frame, analysis_bgr: np.ndarray) -> FrameFingerprint:
    # to_ndarray copies only the visible pixels (line padding is undefined); a few frames per join only.
    pixels = np.ascontiguousarray(frame.to_ndarray())
    return FrameFingerprint(frame.pts, bool(frame.key_frame), zlib.crc32(pixels.tobytes()), analysis_bgr.tobytes())


@dataclass
class DecodedSegment:
    """One stretch of a video decoded on its own (see `decode_segment`)."""

    decoded: DecodedVideo  # the segment's own frames, indices from 0
    sample_step: float  # base sampling period (before any doubling)
    head: list[FrameFingerprint]  # the segment's first frames
    tail: list[FrameFingerprint]  # the frames after its end (they belong to the next segment)
    time_base: float | None = None
    origin_known: bool = True  # the container gives a start time (segments share the time origin)
    nominal_fps: float = 0.0  # the stream's frame rate (0 = unknown: fps then comes from the times)


def decode_video(path: str | Path, consumers: Sequence[FrameConsumer] = (), **options) -> DecodedVideo:
    """Decode the first video stream once, calling every consumer with each small BGR frame.

    `options` are `decode_segment`'s keywords (sample_fps, sample_short_side, max_samples, max_seconds,
    threads, skip_loop_filter, effective_width; not the segment bounds). RGB samples are kept on a `1 / sample_fps` grid (the first frame at or after each multiple of the
    period; at most `max_samples`, the period stretched over the header duration, doubled if the video
    turns out longer); `threads=0` decides from the machine's load (`auto_decoder_threads`), N > 0 uses N
    decoder threads (1 = no frame threading, e.g. inside a process pool).
    Corrupt packets are skipped and recorded; after MAX_DECODE_ERRORS the rest of the file is abandoned
    and `truncated_reason` says so. Raises VideoDecodeError only when nothing can be decoded at all.
    """
    segment_only = {"start_pts", "stop_pts", "edge_frames", "sample_capacity"} & set(options)
    if segment_only:
        raise TypeError(f"decode_video decodes the whole video; use decode_segment for {sorted(segment_only)}")
    return decode_segment(path, consumers, **options).decoded


def decode_segment(
    path: str | Path,
    consumers: Sequence[FrameConsumer] = (),
    *,
    sample_fps: float = 2.0,
    sample_short_side: int = 224,
    max_samples: int = 2400,
    max_seconds: float | None = None,
    threads: int = 0,
    skip_loop_filter: str | None = "noref",
    effective_width: int = ANALYSIS_WIDTH,
    start_pts: int | None = None,
    stop_pts: int | None = None,
    edge_frames: int = 0,
    sample_capacity: int | None = None,
) -> DecodedSegment:
    """`decode_video` restricted to the frames with start_pts <= pts < stop_pts (stream time base).

    With `start_pts`, decoding seeks to the keyframe at or before it and drops the earlier frames; the
    first frame then has no predecessor (score 0, always a sample candidate). With `stop_pts`, the first
    frame at or past it is still passed to the consumers (so a scorer scores the next segment's first frame
    against its true predecessor) and `edge_frames` frames from there are fingerprinted in `tail`; the
    first `edge_frames` own frames are fingerprinted in `head`. A caller joining segments compares one's
    tail with the next one's head to prove that the seek produced exactly the sequential frames.
    `sample_capacity` (default `max_samples`): samples kept before the grid is doubled; the period itself
    always follows `max_samples`.
    """
    import av

    path = str(path)
    started = time.perf_counter()
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoDecodeError(f"cannot open {path}: {exc}") from exc
    try:
        stream = _open_video_stream(container, path, threads, skip_loop_filter)
        decoder = _SegmentDecoder(
            container, stream, consumers, sample_fps=sample_fps, sample_short_side=sample_short_side,
            max_samples=max_samples, max_seconds=max_seconds, effective_width=effective_width,
            start_pts=start_pts, stop_pts=stop_pts, edge_frames=edge_frames, sample_capacity=sample_capacity)
        if start_pts is not None:
            container.seek(int(start_pts), backward=True, any_frame=False, stream=stream)
        decoder.decode_packets(container.demux(stream))
    finally:
        container.close()
    return decoder.result(path, started)


def _open_video_stream(container, path: str, threads: int, skip_loop_filter: str | None):
    """The first video stream, set up for threaded decoding (and skipped deblocking, see module doc)."""
    if not container.streams.video:
        raise VideoDecodeError(f"{path} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = int(threads) if threads > 0 else auto_decoder_threads()
    if skip_loop_filter and skip_loop_filter != "none":
        stream.codec_context.options = {"skip_loop_filter": skip_loop_filter}
    return stream


def _header_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _time_origin(container, stream) -> float | None:
    """The container's start time (players and `ffmpeg -ss` count from it), else the stream's."""
    if container.start_time is not None:
        return container.start_time / 1_000_000
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return None


class _SegmentDecoder:
    """The state of one `decode_segment` pass: frames are handed in one at a time (`handle`)."""

    def __init__(self, container, stream, consumers: Sequence[FrameConsumer], *, sample_fps: float,
                 sample_short_side: int, max_samples: int, max_seconds: float | None, effective_width: int,
                 start_pts: int | None, stop_pts: int | None, edge_frames: int, sample_capacity: int | None):
        self.stream = stream
        self.consumers = consumers
        self.sample_short_side = sample_short_side
        self.max_seconds = max_seconds
        self.effective_width = effective_width
        self.start_pts, self.stop_pts, self.edge_frames = start_pts, stop_pts, edge_frames
        self.fps = probe_fps(stream)
        self.nominal_fps = self.fps
        self.nominal_step = 1.0 / self.fps if self.fps > 0 else 1.0 / 25.0
        self.width = int(stream.codec_context.width or 0)
        self.height = int(stream.codec_context.height or 0)
        self.header_duration = _header_duration(container, stream)
        self.origin = _time_origin(container, stream)
        self.origin_known = self.origin is not None
        self.base_step = base_sample_step(self.header_duration, max_seconds, sample_fps, max_samples)
        self.capacity = max_samples if sample_capacity is None else sample_capacity
        self.sample_step = self.base_step
        self.time_base = float(stream.time_base) if stream.time_base is not None else None

        self.times: list[float] = []
        self.keys: list[bool] = []
        self.samples: list[FrameSample] = []
        self.sample_previous: list[float | None] = []  # time of the frame before each sample (grid re-checks)
        self.head: list[FrameFingerprint] = []
        self.tail: list[FrameFingerprint] = []
        self.errors: list[str] = []
        self.truncated: str | None = None
        self.stopped_at_max = False
        self.repairs = 0
        self.size: tuple[int, int] | None = None
        self.s_size: tuple[int, int] | None = None
        self.last_duration = self.nominal_step
        self.started_segment = start_pts is None
        self.past_stop = False

    def decode_packets(self, packets) -> None:
        """Decode until the stream ends, the demuxer fails, too many packets are corrupt, or `handle` stops."""
        import av

        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # the demuxer itself failed: nothing further is readable
                self.truncated = f"demuxing failed after {len(self.times)} frames: {exc}"
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self.errors.append(f"packet at pts {packet.pts}: {exc}")
                if len(self.errors) >= MAX_DECODE_ERRORS:
                    self.truncated = f"gave up after {len(self.errors)} corrupt packets (last: {exc})"
                    break
                continue
            if not all(self.handle(frame) for frame in frames):
                self.stopped_at_max = not self.past_stop
                break

    def handle(self, frame) -> bool:
        """Take one decoded frame; False once decoding should stop."""
        if not self.started_segment:
            if frame.pts is None or frame.pts < self.start_pts:
                return True  # before this segment (or undecodable leading frames of an open GOP)
            self.started_segment = True
        if self.past_stop or (self.stop_pts is not None and frame.pts is not None and frame.pts >= self.stop_pts):
            return self._handle_next_segment_frame(frame)
        if self.size is None:
            self.width, self.height = frame.width, frame.height
            self.size = analysis_size(self.width, self.height, self.effective_width)
            self.s_size = sample_size(self.width, self.height, self.sample_short_side)
        t = self._frame_time(frame)
        if self.max_seconds is not None and t >= self.max_seconds:
            return False
        if frame.duration and self.time_base is not None:
            self.last_duration = frame.duration * self.time_base
        self._keep_frame(frame, t)
        return True

    def _handle_next_segment_frame(self, frame) -> bool:
        """The next segment's frames: the first is still scored here, the edge is fingerprinted."""
        if self.size is None:
            self.past_stop = True
            return False
        small = _analysis_bgr(frame, self.size)
        if not self.past_stop:
            for consume in self.consumers:
                consume(len(self.times), math.nan, small)
        self.past_stop = True
        self.tail.append(_fingerprint(frame, small))
        return len(self.tail) < self.edge_frames

    def _frame_time(self, frame) -> float:
        """Seconds from the time origin; a missing or non-advancing pts gets the previous time plus one
        nominal frame (counted in `repairs`)."""
        times = self.times
        if frame.pts is not None and self.time_base is not None:
            t_abs = frame.pts * self.time_base
            if self.origin is None:
                self.origin = t_abs
            t = t_abs - self.origin
        else:
            t = None
        if times and (t is None or t <= times[-1]):
            t = times[-1] + self.nominal_step
            self.repairs += 1
        elif t is None:
            t = 0.0
            self.repairs += 1
        return t

    def _keep_frame(self, frame, t: float) -> None:
        index = len(self.times)
        previous_t = self.times[-1] if self.times else None
        self.times.append(t)
        self.keys.append(bool(frame.key_frame))
        small = None
        if self.consumers or len(self.head) < self.edge_frames:
            small = _analysis_bgr(frame, self.size)
            for consume in self.consumers:
                consume(index, t, small)
        if len(self.head) < self.edge_frames:
            self.head.append(_fingerprint(frame, small))
        if self.sample_step < math.inf and on_sample_grid(t, previous_t, self.sample_step):
            self._keep_sample(FrameSample(index, t, _sample_rgb(frame, self.s_size)), previous_t)

    def _keep_sample(self, sample: FrameSample, previous_t: float | None) -> None:
        samples, previous = self.samples, self.sample_previous
        samples.append(sample)
        previous.append(previous_t)
        while len(samples) > self.capacity:  # longer than the header said: coarser grid
            self.sample_step *= 2
            keep = [i for i, (s, p) in enumerate(zip(samples, previous)) if on_sample_grid(s.time_s, p, self.sample_step)]
            samples[:] = [samples[i] for i in keep]
            previous[:] = [previous[i] for i in keep]

    def result(self, path: str, started: float) -> DecodedSegment:
        times_arr = np.asarray(self.times, dtype=np.float64)
        end_s = float(times_arr[-1] + self.last_duration) if len(times_arr) else 0.0
        fps = self.fps
        if fps <= 0 and len(times_arr) > 1:
            fps = (len(times_arr) - 1) / max(1e-9, times_arr[-1] - times_arr[0])
        decoded = DecodedVideo(
            path=path,
            codec=self.stream.codec_context.name,
            width=self.width,
            height=self.height,
            fps=float(fps),
            times_s=times_arr,
            keyframes=np.asarray(self.keys, dtype=bool),
            end_s=end_s,
            header_duration_s=self.header_duration,
            samples=self.samples,
            decode_errors=self.errors,
            truncated_reason=self.truncated,
            stopped_at_max_s=self.stopped_at_max,
            analysis_size=self.size or (0, 0),
            decode_wall_s=time.perf_counter() - started,
            pts_repairs=self.repairs,
        )
        return DecodedSegment(decoded, self.base_step, self.head, self.tail, self.time_base, self.origin_known,
                              self.nominal_fps)
