"""Shot boundaries on hard footage (issue 12), on generated videos: gradual transitions must be found as
`gradual` boundaries with their span, and in-shot traps (flashes, fast pans) must not become boundaries.

Each case fails with the old default (`content`: hard cuts only, fooled by flashes and fast motion); the
last test pins that, so these tests cannot pass by accident."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from panda_dagster.lib.video.detectors import DetectorParams
from panda_dagster.lib.video.detectors.hybrid import HybridParams
from panda_dagster.lib.video.split import SplitConfig, split_video

FPS = 25.0
SIZE = (320, 180)
DETECTOR = "hybrid"


def _texture(seed: int, width: int, height: int) -> np.ndarray:
    """A colourful blocky texture (a stand-in for real footage), larger than the frame so it can pan."""
    import cv2

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    small = np.clip(base + rng.normal(0, 60, size=(height // 12, width // 12, 3)), 0, 255).astype(np.uint8)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):  # a few sharp shapes on top
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.circle(big, (x + 20, y + 20), int(rng.integers(8, 20)), colour, -1)
    return big


def _shot(seed: int, n: int, pan_px: float = 1.5, fast: tuple[int, int, float] | None = None) -> list[np.ndarray]:
    """n frames of one shot: a texture panning slowly; `fast` = (first frame, frames, px per frame) of a
    fast pan inside the shot."""
    w, h = SIZE
    texture = _texture(seed, w * 3, h + 20)
    frames, x = [], 0.0
    for k in range(n):
        if fast and fast[0] <= k < fast[0] + fast[1]:
            x += fast[2]
        else:
            x += pan_px
        frames.append(texture[10:10 + h, int(x): int(x) + w].copy())
    return frames


def _write(path, frames: list[np.ndarray]) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{FPS:g}", "-i", "-", "-c:v", "libx264", "-preset",
           "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)


def _mix(a: np.ndarray, b: np.ndarray, weight_b) -> np.ndarray:
    return (a.astype(np.float32) * (1 - weight_b) + b.astype(np.float32) * weight_b).astype(np.uint8)


def _join(kind: str, first: list[np.ndarray], second: list[np.ndarray], length: int) -> tuple[list, tuple[int, int]]:
    """first's last `length` frames and second's first `length` frames mixed by `kind`; returns the
    frames and the span [start, end) of the mixed frames."""
    tail, head = first[-length:], second[:length]
    w = SIZE[0]
    mixed = []
    for k in range(length):
        p = (k + 1) / (length + 1)
        if kind == "dissolve":
            mixed.append(_mix(tail[k], head[k], p))
        elif kind == "wipe":
            mask = (np.arange(w) < p * w).astype(np.float32)[None, :, None]
            mixed.append(_mix(tail[k], head[k], mask))
        elif kind == "fade_black":
            black = np.zeros_like(tail[k])
            mixed.append(_mix(tail[k], black, 2 * p) if p < 0.5 else _mix(black, head[k], 2 * p - 1))
        else:
            raise ValueError(kind)
    start = len(first) - length
    return first[:-length] + mixed + second[length:], (start, start + length)


@pytest.fixture(scope="module")
def hard_videos(tmp_path_factory):
    """name -> (path, expected gradual span or None). Each video is 5 s: one transition, or one trap."""
    folder = tmp_path_factory.mktemp("hard_boundaries")
    out = {}
    for name, kind, length in (("dissolve", "dissolve", 20), ("wipe", "wipe", 16), ("fade_black", "fade_black", 24)):
        frames, span = _join(kind, _shot(1, 65), _shot(2, 65), length)
        _write(folder / f"{name}.mp4", frames)
        out[name] = (folder / f"{name}.mp4", span)
    flash = _shot(3, 110)
    for k in (52, 53):  # a two-frame camera flash
        flash[k] = _mix(flash[k], np.full_like(flash[k], 255), 0.8)
    _write(folder / "flash.mp4", flash)
    out["flash"] = (folder / "flash.mp4", None)
    _write(folder / "fast_pan.mp4", _shot(4, 110, fast=(50, 8, 40.0)))  # 8 frames at 40 px per frame
    out["fast_pan"] = (folder / "fast_pan.mp4", None)
    return out


@pytest.mark.parametrize("name", ["dissolve", "wipe", "fade_black"])
def test_gradual_transitions_are_found_with_their_span(hard_videos, name):
    path, (start, end) = hard_videos[name]
    result = split_video(path, SplitConfig(detector=DETECTOR, stitch=False))
    assert len(result.boundaries) == 1, result.boundaries
    (boundary,) = result.boundaries
    assert boundary.kind == "gradual"
    # The span covers the mixed frames (give or take two) and no clip contains it.
    assert abs(boundary.start - start) <= 3 and abs(boundary.end - end) <= 3, (boundary, start, end)
    assert start - 2 <= boundary.frame < end + 2
    transition = [s for s in result.shots if s.transition]
    assert [(s.start_frame, s.end_frame) for s in transition] == [(boundary.start, boundary.end)]
    for clip in result.clips:
        assert clip.end_frame <= boundary.start or clip.start_frame >= boundary.end


@pytest.mark.parametrize("name", ["flash", "fast_pan"])
def test_flashes_and_fast_pans_are_not_boundaries(hard_videos, name):
    path, _ = hard_videos[name]
    result = split_video(path, SplitConfig(detector=DETECTOR, stitch=False))
    assert result.boundaries == [], result.boundaries
    assert len(result.shots) == 1


def test_a_shot_relit_without_going_black_is_not_a_boundary(tmp_path):
    """Light falling off across a nearly static shot (as when a lamp dims) changes most pixels a lot, and
    slowly: only the brightness-normalised structure shows it is the same picture."""
    frames = _shot(5, 110, pan_px=0.3)
    ramp = 0.4 + 0.6 * np.arange(SIZE[0]) / SIZE[0]  # the right side darkens most
    for k, frame in enumerate(frames):
        progress = min(1.0, max(0.0, (k - 40) / 25))
        gain = (1 - 0.6 * progress * ramp)[None, :, None]
        frames[k] = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    _write(tmp_path / "relit.mp4", frames)
    result = split_video(tmp_path / "relit.mp4", SplitConfig(detector=DETECTOR, stitch=False))
    assert result.boundaries == [], result.boundaries
    # Without the structure test the same video gets a false gradual transition.
    params = DetectorParams()
    params.hybrid = HybridParams(gradual_min_structure=0.0)
    loose = split_video(tmp_path / "relit.mp4", SplitConfig(detector=DETECTOR, stitch=False, detectors=params))
    assert [b.kind for b in loose.boundaries] == ["gradual"]


def test_the_old_content_detector_fails_every_case(hard_videos):
    """Why these tests exist: `content` finds no gradual span and is fooled by the traps."""
    for name, (path, span) in hard_videos.items():
        result = split_video(path, SplitConfig(detector="content", stitch=False))
        if span is None:
            assert result.boundaries, f"{name}: content should report a false cut here"
        else:
            assert not any(b.kind == "gradual" for b in result.boundaries), name
