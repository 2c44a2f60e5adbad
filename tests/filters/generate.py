"""Small videos with a known answer for the filter tests: a synthetic "photo" held still, zoomed into
(Ken Burns) or panned over, moving objects, burned-in subtitles, a logo and ticker, darkness and blur.

Frames are numpy arrays piped to ffmpeg (H.264, yuv420p); everything is seeded, so every run renders
the same pixels.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

FPS = 25.0


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured, photo-like RGB image: smooth multi-scale noise plus coloured shapes and edges."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for octave, weight in ((8, 0.5), (32, 0.3), (128, 0.2)):
        small = rng.random((max(2, height * octave // width), octave, 3)).astype(np.float32)
        image += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image * 255, 0, 255).astype(np.uint8)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            axes = (int(rng.integers(8, width // 8)), int(rng.integers(8, height // 6)))
            cv2.ellipse(image, centre, axes, float(rng.integers(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:
            end = (centre[0] + int(rng.integers(-width // 4, width // 4)), centre[1] + int(rng.integers(-height // 4, height // 4)))
            cv2.line(image, centre, end, colour, int(rng.integers(2, 6)), cv2.LINE_AA)
    return image


def write_video(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float = FPS,
                crf: int = 20) -> Path:
    """Encode RGB frames of `size` (width, height) as H.264."""
    import imageio_ffmpeg

    width, height = size
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", "libx264",
               "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-g", str(int(fps * 2)), str(path)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    for frame in frames:
        process.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
    process.stdin.close()
    if process.wait() != 0:
        raise RuntimeError(process.stderr.read().decode())
    return path


def _n(seconds: float, fps: float = FPS) -> int:
    return int(round(seconds * fps))


def still_photo(path: Path, seconds: float = 6.0, size=(320, 180), seed: int = 1) -> Path:
    image = photo(size[1], size[0], seed)
    return write_video(path, (image for _ in range(_n(seconds))), size)


def ken_burns(path: Path, seconds: float = 6.0, size=(320, 180), zoom: float = 1.35, seed: int = 2) -> Path:
    """A slow zoom into a still photo (crop shrinks around a point off-centre)."""
    import cv2

    w, h = size
    image = photo(h * 2, w * 2, seed)
    n = _n(seconds)

    def frames():
        for i in range(n):
            scale = zoom ** (i / max(1, n - 1))
            cw, ch = 2 * w / scale, 2 * h / scale
            cx, cy = w * 1.1, h * 0.9
            crop = cv2.getRectSubPix(image, (int(cw), int(ch)), (cx, cy))
            yield cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return write_video(path, frames(), size)


def pan(path: Path, seconds: float = 6.0, size=(320, 180), speed_px_s: float = 40.0, seed: int = 3) -> Path:
    """A horizontal pan over a still photo (sub-pixel shifts, as a camera would see them)."""
    import cv2

    w, h = size
    image = photo(h, int(w + speed_px_s * seconds + 8), seed)
    n = _n(seconds)
    return write_video(path, (cv2.getRectSubPix(image, size, (w / 2 + 2 + speed_px_s * i / FPS, h / 2))
                              for i in range(n)), size)


def moving_objects(path: Path, seconds: float = 6.0, size=(320, 180), seed: int = 4, blur: float = 0.0,
                   brightness: float = 1.0, overlay: Callable[[np.ndarray, int], None] | None = None,
                   pan_px_s: float = 0.0) -> Path:
    """Shapes moving independently over a textured background (the camera optionally panning):
    object motion. `blur` (Gaussian sigma), `brightness` (gain) and `overlay(frame, i)` alter it."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    background = photo(h, int(w + abs(pan_px_s) * seconds + 8), seed)
    movers = [(rng.integers(0, w), rng.integers(0, h), rng.uniform(-60, 60), rng.uniform(-40, 40),
               int(rng.integers(12, 30)), tuple(int(c) for c in rng.integers(0, 256, 3))) for _ in range(6)]
    n = _n(seconds)

    def frames():
        for i in range(n):
            t = i / FPS
            frame = cv2.getRectSubPix(background, size, (w / 2 + 2 + pan_px_s * t, h / 2)).copy()
            for x, y, vx, vy, r, colour in movers:
                centre = (int((x + vx * t) % w), int((y + vy * t) % h))
                cv2.circle(frame, centre, r, colour, -1, cv2.LINE_AA)
                cv2.circle(frame, centre, r // 2, (255 - colour[0], 255 - colour[1], 255 - colour[2]), -1)
            if overlay is not None:
                overlay(frame, i)
            if blur > 0:
                frame = cv2.GaussianBlur(frame, (0, 0), blur)
            if brightness != 1.0:
                frame = np.clip(frame.astype(np.float32) * brightness, 0, 255).astype(np.uint8)
            yield frame
    return write_video(path, frames(), size)


SUBTITLES = ["and then we went down", "to the river to look", "for the old boat again", "it was gone by then"]


def subtitles_overlay(frame: np.ndarray, i: int) -> None:
    """Burned-in subtitles: white text with a dark outline at the bottom, a new line every 1.5 s."""
    import cv2

    h, w = frame.shape[:2]
    text = SUBTITLES[int(i / FPS / 1.5) % len(SUBTITLES)]
    scale = w / 420
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
    origin = ((w - tw) // 2, h - int(0.08 * h))
    cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_DUPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_DUPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def logo_ticker_overlay(frame: np.ndarray, i: int) -> None:
    """A large channel logo in a corner and a news ticker scrolling along the bottom."""
    import cv2

    h, w = frame.shape[:2]
    cv2.rectangle(frame, (8, 8), (int(0.34 * w), int(0.2 * h)), (200, 20, 20), -1)
    cv2.putText(frame, "NEWS 24", (14, int(0.17 * h)), cv2.FONT_HERSHEY_DUPLEX, w / 400, (255, 255, 255), 2,
                cv2.LINE_AA)
    cv2.rectangle(frame, (0, int(0.84 * h)), (w, h), (30, 30, 120), -1)
    ticker = "BREAKING: markets close higher  +++  weather: sunny tomorrow  +++  sports results at ten"
    x = w - int(i * 3) % (w * 4)
    cv2.putText(frame, ticker, (x, h - int(0.05 * h)), cv2.FONT_HERSHEY_SIMPLEX, w / 560, (255, 255, 255), 1,
                cv2.LINE_AA)


def reencode_half(source: Path, dest: Path) -> Path:
    """The same video at half the resolution, re-encoded (a re-upload)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
                    "-vf", "scale=iw/2:ih/2", "-c:v", "libx264", "-crf", "26", "-preset", "veryfast", str(dest)],
                   check=True)
    return dest
