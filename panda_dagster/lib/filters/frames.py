"""Small grayscale frames on a regular time grid, for the filters that need more than the key frames
(motion, still).

`MotionFrameSampler` is a frame consumer of `lib.video.decode.decode_video`: it receives the small BGR
analysis frames the shot detectors already get (about 256 px wide) and keeps one grayscale frame, scaled
to `width`, every `1 / fps` seconds. Two places can feed it:
- the `clips` decode pass (no extra decode): the clips stage then stores each clip's frames under
  `motion_frames_key(shard, clip_id)` (`encode_motion_frames`), and `clip_filters` reads them;
- the fallback here (`sample_videos`): one low-resolution decode per video for all its clips, used when
  those stored frames are absent (reported as `motion_frames_decoded_here` in the asset metadata).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from panda_dagster.lib.filters.base import MotionFrames

# 4 frames/s: consecutive frames 0.25 s apart move a few pixels under a slow zoom (measurable) and
# stay within the dense flow's search range under a fast pan; 160 px wide is enough for a global fit.
MOTION_FPS = 4.0
MOTION_WIDTH = 160
MAX_FRAMES_PER_VIDEO = 4 * 60 * 30  # 30 min at 4 fps (about 50 MB at 160x90); later frames are dropped


def motion_frames_key(shard: str, clip_id: str) -> str:
    return f"shards/{shard}/motion_frames/{clip_id}.npz"


@dataclass
class MotionFrameSampler:
    """Frame consumer `(index, time_s, bgr)` keeping grayscale frames on a `1 / fps` grid."""

    fps: float = MOTION_FPS
    width: int = MOTION_WIDTH
    max_frames: int = MAX_FRAMES_PER_VIDEO

    def __post_init__(self) -> None:
        self._frames: list[np.ndarray] = []
        self._times: list[float] = []
        self._next_t = 0.0

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        import cv2

        if not math.isfinite(time_s) or time_s + 1e-6 < self._next_t or len(self._frames) >= self.max_frames:
            return
        h, w = bgr.shape[:2]
        height = max(2, int(round(h * self.width / w / 2)) * 2)
        small = cv2.resize(bgr, (self.width, height), interpolation=cv2.INTER_AREA)
        self._frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        self._times.append(float(time_s))
        # The next grid point after this frame (a gap in the stream does not make a burst of samples).
        self._next_t = (math.floor(time_s * self.fps + 1e-6) + 1) / self.fps

    def clip(self, start_s: float, end_s: float) -> MotionFrames:
        """The kept frames with start_s <= t < end_s."""
        times = np.asarray(self._times, dtype=np.float64)
        inside = np.flatnonzero((times >= start_s - 1e-6) & (times < end_s))
        if len(inside) == 0:
            return MotionFrames(np.zeros((0, 2, 2), np.uint8), np.zeros(0))
        return MotionFrames(np.stack([self._frames[i] for i in inside]), times[inside])


def encode_motion_frames(frames: MotionFrames) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, gray=frames.gray, times_s=frames.times_s)
    return buffer.getvalue()


def decode_motion_frames(data: bytes) -> MotionFrames:
    with np.load(io.BytesIO(data)) as npz:
        return MotionFrames(npz["gray"], npz["times_s"])


@dataclass
class ClipSpan:
    clip_id: str
    start_s: float
    end_s: float


def sample_videos(spans_by_video: dict[str, tuple[str, Sequence[ClipSpan]]], *, fps: float = MOTION_FPS,
                  width: int = MOTION_WIDTH) -> tuple[dict[str, MotionFrames], dict[str, str], int]:
    """Decode each video once (up to its last clip) and cut out every clip's frames.

    `spans_by_video`: video_id -> (local path, clips). Returns (clip_id -> frames, video_id -> error for
    videos that could not be decoded, number of videos decoded).
    """
    from panda_dagster.lib.video.decode import VideoDecodeError, decode_video

    out: dict[str, MotionFrames] = {}
    errors: dict[str, str] = {}
    decoded = 0
    for video_id, (path, spans) in spans_by_video.items():
        spans = list(spans)
        if not spans:
            continue
        sampler = MotionFrameSampler(fps=fps, width=width)
        try:
            # Key-frame RGB samples are not needed: one sample per hour keeps that part idle.
            decode_video(path, [sampler], sample_fps=1 / 3600, max_samples=1,
                         max_seconds=max(s.end_s for s in spans) + 1.0 / fps, threads=1)
        except (VideoDecodeError, OSError) as exc:
            errors[video_id] = f"{type(exc).__name__}: {exc}"
            continue
        decoded += 1
        for span in spans:
            out[span.clip_id] = sampler.clip(span.start_s, span.end_s)
    return out, errors, decoded


def grid_pairs(frames: MotionFrames, max_pairs: int) -> Iterable[tuple[np.ndarray, np.ndarray, float]]:
    """Up to `max_pairs` pairs of consecutive frames, spread evenly over the clip: (a, b, dt seconds)."""
    n = len(frames)
    if n < 2:
        return []
    starts = np.unique(np.linspace(0, n - 2, num=min(max_pairs, n - 1)).round().astype(int))
    return [(frames.gray[i], frames.gray[i + 1], float(frames.times_s[i + 1] - frames.times_s[i]))
            for i in starts]
