"""Synthetic test/demo videos with known ground truth.

Every scene is drawn in numpy: a coloured, textured background (optionally panned like a moving
camera) with one or more coloured shapes moving across it, so no scene is a still and consecutive
scenes differ strongly. Frames are piped as rawvideo rgb24 into the ffmpeg bundled with
imageio-ffmpeg. The returned `SynthVideo` records exactly where the hard cuts and gradual
transitions (dissolve, fade through black) are, and which label belongs to which frames.

Timeline conventions (all frame indices are 0-based, intervals end-exclusive):
  * scene i nominally covers `round(sum(d[:i]) * fps)` .. `round(sum(d[:i+1]) * fps)`; the scenes
    partition the video, so the video is exactly `round(sum(d) * fps)` frames long;
  * a hard cut between scenes i and i+1 is reported as the first frame of scene i+1;
  * a gradual transition of k frames straddles the nominal boundary b: it covers
    `[b - k // 2, b - k // 2 + k)` and both scenes keep moving while it plays.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

# Named colours, so labels can say what is visible.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 70, 205),
    "yellow": (240, 215, 35),
    "cyan": (40, 205, 220),
    "magenta": (205, 45, 195),
    "orange": (245, 135, 25),
    "purple": (110, 45, 165),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "brown": (120, 72, 35),
    "pink": (250, 165, 195),
}
SHAPE_KINDS = ("circle", "square", "triangle", "diamond", "ring", "cross")
TEXTURES = ("plain", "striped", "checkered", "gradient", "polka-dot", "wavy")
TRANSITION_KINDS = ("cut", "dissolve", "fade")
DEFAULT_GRADUAL_S = 1.0  # used when a dissolve/fade is given without a duration

_DIRECTIONS: dict[str, tuple[int, int]] = {  # screen space: +y is down
    "right": (1, 0),
    "left": (-1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up and to the right": (1, -1),
    "down and to the left": (-1, 1),
    "up and to the left": (-1, -1),
    "down and to the right": (1, 1),
}


@dataclass
class Shape:
    kind: str  # one of SHAPE_KINDS
    colour: str  # a PALETTE name
    size: float  # diameter as a fraction of the frame height
    start_xy: tuple[float, float]  # centre at scene start, fractions of (width, height)
    end_xy: tuple[float, float]  # centre at scene end; motion is linear in between (and beyond)

    @property
    def direction(self) -> str:
        dx = self.end_xy[0] - self.start_xy[0]
        dy = self.end_xy[1] - self.start_xy[1]
        sx = 0 if abs(dx) < 0.05 else int(math.copysign(1, dx))
        sy = 0 if abs(dy) < 0.05 else int(math.copysign(1, dy))
        for name, vector in _DIRECTIONS.items():
            if vector == (sx, sy):
                return name
        return "in place"

    def describe(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        motion = "staying in place" if self.direction == "in place" else f"moving {self.direction}"
        return f"{article} {self.colour} {self.kind} {motion}"


@dataclass
class Scene:
    """One shot. Leave `shapes` as None to get content derived from `seed` and the label."""

    duration_s: float
    label: str = ""  # a short caption of what is visible; generated from the content when empty
    background: str = "blue"  # a PALETTE name
    texture: str = "plain"  # one of TEXTURES
    shapes: list[Shape] | None = None
    pan_px: tuple[float, float] = (0.0, 0.0)  # camera pan over the whole scene, in output pixels
    seed: int = 0

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"scene duration must be > 0, got {self.duration_s}")
        if self.background not in PALETTE:
            raise ValueError(f"unknown background colour {self.background!r}; use one of {sorted(PALETTE)}")
        if self.texture not in TEXTURES:
            raise ValueError(f"unknown texture {self.texture!r}; use one of {TEXTURES}")
        if self.shapes is None:
            rng = np.random.default_rng([self.seed, zlib.crc32(self.label.encode())])
            self.shapes = _random_shapes(rng, self.background, int(rng.integers(1, 3)))
        for shape in self.shapes:
            if shape.kind not in SHAPE_KINDS:
                raise ValueError(f"unknown shape kind {shape.kind!r}; use one of {SHAPE_KINDS}")
            if shape.colour not in PALETTE:
                raise ValueError(f"unknown shape colour {shape.colour!r}; use one of {sorted(PALETTE)}")
        if not self.label:
            self.label = describe_scene(self)


@dataclass
class Transition:
    kind: str = "cut"  # "cut" | "dissolve" | "fade" (fade through black)
    duration_s: float = 0.0  # ignored for cuts; 0 means DEFAULT_GRADUAL_S for dissolve/fade

    def __post_init__(self) -> None:
        if self.kind not in TRANSITION_KINDS:
            raise ValueError(f"unknown transition kind {self.kind!r}; use one of {TRANSITION_KINDS}")
        if self.duration_s < 0:
            raise ValueError(f"transition duration must be >= 0, got {self.duration_s}")


@dataclass
class SynthVideo:
    path: Path
    fps: float
    n_frames: int
    width: int
    height: int
    cut_frames: list[int]  # first frame of each new scene after a hard cut
    gradual: list[tuple[int, int]]  # [start_frame, end_frame) of each dissolve/fade
    scenes: list[tuple[int, int, str]]  # (start_frame, end_frame_exclusive, label); a partition
    subtitles_path: Path | None
    metadata_path: Path | None
    codec: str = "libx264"
    has_audio: bool = False
    gradual_kinds: list[str] = field(default_factory=list)  # "dissolve"/"fade", parallel to `gradual`

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def boundaries(self) -> list[int]:
        """Nominal first frame of every scene after the first (cuts and gradual midpoints)."""
        return [start for start, _, _ in self.scenes[1:]]

    def scenes_s(self) -> list[tuple[float, float, str]]:
        return [(start / self.fps, end / self.fps, label) for start, end, label in self.scenes]

    def clean_scenes(self) -> list[tuple[int, int, str]]:
        """Scenes with the frames of gradual transitions cut away (what a perfect splitter keeps)."""
        result = []
        for start, end, label in self.scenes:
            for g0, g1 in self.gradual:
                if g0 < end and g1 > start:  # overlap: trim the side that touches the transition
                    if g0 <= start:
                        start = max(start, g1)
                    else:
                        end = min(end, g0)
            result.append((start, end, label))
        return result


# ------------------------------------------------------------------------------------ descriptions


def describe_scene(scene: Scene) -> str:
    texture = "" if scene.texture == "plain" else f" {scene.texture}"
    shapes = " and ".join(shape.describe() for shape in scene.shapes or [])
    article = "an" if scene.background[0] in "aeiou" else "a"
    text = f"{shapes} on {article} {scene.background}{texture} background".strip()
    dx, dy = scene.pan_px
    if abs(dx) >= 1 or abs(dy) >= 1:
        if abs(dx) >= abs(dy):
            pan = "right" if dx > 0 else "left"
        else:
            pan = "down" if dy > 0 else "up"
        text += f", camera panning {pan}"
    return text


# --------------------------------------------------------------------------------- random content


def _colour_distance(a: str, b: str) -> float:
    return float(np.linalg.norm(np.subtract(PALETTE[a], PALETTE[b], dtype=float)))


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _random_shapes(rng: np.random.Generator, background: str, count: int) -> list[Shape]:
    contrasting = [c for c in PALETTE if _colour_distance(c, background) > 170]
    colours = list(rng.choice(contrasting, size=count, replace=False))
    kinds = list(rng.choice(SHAPE_KINDS, size=count, replace=False))
    directions = list(rng.choice(list(_DIRECTIONS), size=count, replace=False))
    shapes = []
    for index in range(count):
        ux, uy = _DIRECTIONS[str(directions[index])]
        # Two shapes keep to different halves so they stay apart and both stay visible.
        lane = 0.5 if count == 1 else (0.3 if index == 0 else 0.7)
        travel = float(rng.uniform(0.22, 0.3))
        cx = 0.5 + float(rng.uniform(-0.08, 0.08))
        cy = lane + float(rng.uniform(-0.05, 0.05))
        start = (cx - ux * travel, cy - uy * travel * 0.6)
        end = (cx + ux * travel, cy + uy * travel * 0.6)
        shapes.append(
            Shape(
                kind=str(kinds[index]),
                colour=str(colours[index]),
                size=float(rng.uniform(0.22, 0.32)) if count == 1 else float(rng.uniform(0.18, 0.25)),
                start_xy=start,
                end_xy=end,
            )
        )
    return shapes


def random_scenes(
    n: int,
    rng: np.random.Generator | int | None = None,
    min_s: float = 2.0,
    max_s: float = 6.0,
) -> list[Scene]:
    """`n` visually distinct scenes with distinct labels; consecutive scenes differ strongly
    (far-apart background colours, different textures), about half have a camera pan."""
    rng = _as_rng(rng)
    scenes: list[Scene] = []
    labels: set[str] = set()
    while len(scenes) < n:
        previous = scenes[-1] if scenes else None
        backgrounds = [
            c for c in PALETTE if previous is None or _colour_distance(c, previous.background) > 160
        ]
        textures = [t for t in TEXTURES if previous is None or t != previous.texture]
        background = str(rng.choice(backgrounds))
        pan = (0.0, 0.0)
        if rng.random() < 0.5:
            amount = float(rng.uniform(25, 45)) * float(rng.choice([-1, 1]))
            pan = (amount, 0.0) if rng.random() < 0.7 else (0.0, amount * 0.6)
        scene = Scene(
            duration_s=round(float(rng.uniform(min_s, max_s)), 2),
            background=background,
            texture=str(rng.choice(textures)),
            shapes=_random_shapes(rng, background, 1 if rng.random() < 0.6 else 2),
            pan_px=pan,
            seed=int(rng.integers(0, 2**31 - 1)),
        )
        if scene.label in labels:
            continue
        labels.add(scene.label)
        scenes.append(scene)
    return scenes


# ---------------------------------------------------------------------------------------- drawing


def _shape_mask(kind: str, diameter: int) -> np.ndarray:
    r = diameter / 2.0
    coords = np.arange(diameter) + 0.5 - r
    x, y = np.meshgrid(coords, coords)
    if kind == "circle":
        return x * x + y * y <= r * r
    if kind == "square":
        return np.ones((diameter, diameter), bool) & (np.abs(x) <= r * 0.85) & (np.abs(y) <= r * 0.85)
    if kind == "triangle":  # apex up
        return (y <= r * 0.8) & (y >= -r) & (np.abs(x) <= (y + r) * 0.55)
    if kind == "diamond":
        return np.abs(x) + np.abs(y) <= r
    if kind == "ring":
        d2 = x * x + y * y
        return (d2 <= r * r) & (d2 >= (r * 0.55) ** 2)
    if kind == "cross":
        return ((np.abs(x) <= r * 0.3) | (np.abs(y) <= r * 0.3)) & (np.abs(x) <= r) & (np.abs(y) <= r)
    raise ValueError(kind)


def _texture_pattern(texture: str, height: int, width: int, seed: int) -> np.ndarray:
    """Values in [0, 1]; the background colour is modulated by it."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    if texture == "plain":
        rng = np.random.default_rng(seed)
        # Low-amplitude blotches so a pan is visible even on a "plain" background.
        coarse = rng.random((height // 24 + 2, width // 24 + 2)).astype(np.float32)
        pattern = np.kron(coarse, np.ones((24, 24), np.float32))[:height, :width]
        return 0.5 + (pattern - 0.5) * 0.25
    if texture == "striped":
        return (((x + y) // 14) % 2).astype(np.float32)
    if texture == "checkered":
        return (((x // 20) + (y // 20)) % 2).astype(np.float32)
    if texture == "gradient":
        return (x / max(width - 1, 1) * 0.6 + y / max(height - 1, 1) * 0.4).astype(np.float32)
    if texture == "polka-dot":
        gx, gy = (x % 22) - 11, (y % 22) - 11
        return (gx * gx + gy * gy <= 25).astype(np.float32)
    if texture == "wavy":
        return (0.5 + 0.5 * np.sin(x / 9.0 + 2.0 * np.sin(y / 13.0))).astype(np.float32)
    raise ValueError(texture)


class _SceneRenderer:
    """Precomputes a scene's background canvas and shape masks; draws frames at any local time."""

    def __init__(self, scene: Scene, width: int, height: int, nominal_frames: int, fps: float):
        self.scene = scene
        self.width, self.height = width, height
        self.duration = nominal_frames / fps
        pan = np.abs(np.asarray(scene.pan_px, dtype=float))
        self.margin = int(math.ceil(pan.max() * 1.5)) + 2
        canvas_h, canvas_w = height + 2 * self.margin, width + 2 * self.margin
        pattern = _texture_pattern(scene.texture, canvas_h, canvas_w, scene.seed)
        colour = np.asarray(PALETTE[scene.background], dtype=np.float32)
        # Modulate around the named colour so the background still reads as that colour.
        canvas = colour[None, None, :] + (pattern[..., None] - 0.5) * 90.0
        self.canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        self.shapes = []
        for shape in scene.shapes or []:
            diameter = max(4, int(round(shape.size * height)))
            self.shapes.append((shape, _shape_mask(shape.kind, diameter), np.asarray(PALETTE[shape.colour], np.uint8)))

    def frame(self, t: float) -> np.ndarray:
        progress = t / self.duration
        m = self.margin
        ox = int(round(np.clip(m + self.scene.pan_px[0] * (progress - 0.5), 0, 2 * m)))
        oy = int(round(np.clip(m + self.scene.pan_px[1] * (progress - 0.5), 0, 2 * m)))
        image = self.canvas[oy : oy + self.height, ox : ox + self.width].copy()
        for shape, mask, colour in self.shapes:
            cx = (shape.start_xy[0] + (shape.end_xy[0] - shape.start_xy[0]) * progress) * self.width
            cy = (shape.start_xy[1] + (shape.end_xy[1] - shape.start_xy[1]) * progress) * self.height
            size = mask.shape[0]
            x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
            fx0, fy0 = max(x0, 0), max(y0, 0)
            fx1, fy1 = min(x0 + size, self.width), min(y0 + size, self.height)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            sub_mask = mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
            image[fy0:fy1, fx0:fx1][sub_mask] = colour
        return image


def _blend(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    w = int(round(np.clip(weight_b, 0.0, 1.0) * 256))
    mixed = (a.astype(np.uint16) * (256 - w) + b.astype(np.uint16) * w) >> 8
    return mixed.astype(np.uint8)


# -------------------------------------------------------------------------------------- timeline


@dataclass
class _Timeline:
    starts: list[int]  # nominal first frame of each scene
    ends: list[int]
    gradual: list[tuple[int, int, int, str]]  # (g0, g1, index of the outgoing scene, kind)
    cut_frames: list[int]


def _plan(scenes: list[Scene], transitions: list[Transition], fps: float) -> _Timeline:
    cumulative = np.cumsum([0.0] + [s.duration_s for s in scenes])
    bounds = [int(round(t * fps)) for t in cumulative]
    starts, ends = bounds[:-1], bounds[1:]
    for index, (start, end) in enumerate(zip(starts, ends)):
        if end - start < 2:
            raise ValueError(f"scene {index} is shorter than 2 frames at {fps} fps")
    gradual, cuts = [], []
    claimed = [[0, 0] for _ in scenes]  # frames taken by transitions at [start side, end side]
    for index, transition in enumerate(transitions):
        boundary = starts[index + 1]
        if transition.kind == "cut":
            cuts.append(boundary)
            continue
        seconds = transition.duration_s or DEFAULT_GRADUAL_S
        k = max(2, int(round(seconds * fps)))
        g0 = boundary - k // 2
        g1 = g0 + k
        claimed[index][1] = boundary - g0
        claimed[index + 1][0] = g1 - boundary
        gradual.append((g0, g1, index, transition.kind))
    for index, (start, end) in enumerate(zip(starts, ends)):
        if claimed[index][0] + claimed[index][1] >= end - start:
            raise ValueError(
                f"scene {index} ({end - start} frames) is too short for the transitions around it"
            )
    return _Timeline(starts, ends, gradual, cuts)


def _frames(renderers: list[_SceneRenderer], timeline: _Timeline, fps: float) -> Iterator[np.ndarray]:
    gradual_at = {}
    for g0, g1, index, kind in timeline.gradual:
        for f in range(g0, g1):
            gradual_at[f] = (g0, g1, index, kind)
    scene_index = 0
    for f in range(timeline.ends[-1]):
        while f >= timeline.ends[scene_index]:
            scene_index += 1
        if f in gradual_at:
            g0, g1, index, kind = gradual_at[f]
            alpha = (f - g0 + 0.5) / (g1 - g0)
            outgoing = renderers[index].frame((f - timeline.starts[index]) / fps)
            incoming = renderers[index + 1].frame((f - timeline.starts[index + 1]) / fps)
            if kind == "dissolve":
                yield _blend(outgoing, incoming, alpha)
            elif alpha < 0.5:  # fade through black
                yield _blend(np.zeros_like(outgoing), outgoing, 1.0 - 2.0 * alpha)
            else:
                yield _blend(np.zeros_like(incoming), incoming, 2.0 * alpha - 1.0)
        else:
            yield renderers[scene_index].frame((f - timeline.starts[scene_index]) / fps)


# ---------------------------------------------------------------------------------------- encoding


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _video_codec_args(codec: str, fps: float, pix_fmt: str | None) -> list[str]:
    gop = str(max(1, int(round(fps * 2))))  # a keyframe every ~2 s: seekable, still compact
    if codec == "libx264":
        args = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", gop]
        default_pix = "yuv420p"
    elif codec == "libvpx-vp9":
        args = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                "-b:v", "0", "-crf", "32", "-g", gop]
        default_pix = "yuv420p"
    elif codec == "libvpx":
        args = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-g", gop]
        default_pix = "yuv420p"
    elif codec == "mpeg4":
        args = ["-c:v", "mpeg4", "-q:v", "3", "-g", gop]
        default_pix = "yuv420p"
    elif codec == "mjpeg":
        args = ["-c:v", "mjpeg", "-q:v", "3"]
        default_pix = "yuvj420p"
    elif codec == "libsvtav1":
        args = ["-c:v", "libsvtav1", "-preset", "12", "-crf", "40", "-g", gop]
        default_pix = "yuv420p"
    else:  # any other ffmpeg encoder, with its defaults
        args = ["-c:v", codec, "-g", gop]
        default_pix = "yuv420p"
    return args + ["-pix_fmt", pix_fmt or default_pix]


def _audio_codec_args(suffix: str) -> list[str]:
    if suffix == ".webm":
        return ["-c:a", "libopus", "-b:a", "64k"]
    if suffix in (".ogg", ".ogv"):
        return ["-c:a", "libvorbis"]
    if suffix == ".avi":
        return ["-c:a", "libmp3lame", "-b:a", "96k"]
    return ["-c:a", "aac", "-b:a", "96k"]


def render_video(
    path: str | Path,
    scenes: list[Scene],
    transitions: list[Transition] | None = None,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 180),
    codec: str = "libx264",
    audio: bool = True,
    subtitles: list[tuple[float, float, str]] | None = None,
    subtitle_format: str = "srt",
    metadata: dict | None = None,
    pix_fmt: str | None = None,
    faststart: bool = False,
    audio_frequency_hz: float = 440.0,
) -> SynthVideo:
    """Render `scenes` joined by `transitions` (len(scenes) - 1 of them; default all cuts) to
    `path` (container from the suffix). Subtitles/metadata sidecars go next to it as
    NAME.srt|NAME.vtt and NAME.json. The file appears atomically (written under a temp name)."""
    path = Path(path)
    if not scenes:
        raise ValueError("need at least one scene")
    transitions = list(transitions) if transitions is not None else [Transition() for _ in scenes[1:]]
    if len(transitions) != len(scenes) - 1:
        raise ValueError(f"{len(scenes)} scenes need {len(scenes) - 1} transitions, got {len(transitions)}")
    width, height = size
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ValueError(f"size must be even and at least 16x16, got {width}x{height}")
    if subtitle_format not in ("srt", "vtt"):
        raise ValueError(f"subtitle_format must be 'srt' or 'vtt', got {subtitle_format!r}")

    timeline = _plan(scenes, transitions, fps)
    n_frames = timeline.ends[-1]
    renderers = [
        _SceneRenderer(scene, width, height, end - start, fps)
        for scene, start, end in zip(scenes, timeline.starts, timeline.ends)
    ]
    rate = Fraction(fps).limit_denominator(1001)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", "pipe:0"]
    if audio:
        seconds = n_frames / fps
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={audio_frequency_hz}:sample_rate=44100:duration={seconds:.4f}"]
    cmd += ["-map", "0:v:0"] + (["-map", "1:a:0"] if audio else [])
    cmd += _video_codec_args(codec, fps, pix_fmt)
    if audio:
        cmd += _audio_codec_args(path.suffix.lower())
    if faststart:
        cmd += ["-movflags", "+faststart"]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    cmd.append(str(partial))

    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
        assert process.stdin is not None
        try:
            for frame in _frames(renderers, timeline, fps):
                process.stdin.write(frame.tobytes())
            process.stdin.close()
        except BrokenPipeError:
            pass
        returncode = process.wait()
        if returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace").strip()
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg failed to render {path.name} with {codec}: {message[-2000:]}")
    os.replace(partial, path)

    subtitles_path = None
    if subtitles is not None:
        from panda_dagster.lib.subtitles import Cue, write_srt, write_vtt

        cues = [Cue(float(a), float(b), str(text)) for a, b, text in subtitles]
        subtitles_path = path.with_suffix(f".{subtitle_format}")
        (write_srt if subtitle_format == "srt" else write_vtt)(cues, subtitles_path)
    metadata_path = None
    if metadata is not None:
        metadata_path = path.with_suffix(".json")
        metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")

    labels = [scene.label for scene in scenes]
    return SynthVideo(
        path=path,
        fps=float(fps),
        n_frames=n_frames,
        width=width,
        height=height,
        cut_frames=list(timeline.cut_frames),
        gradual=[(g0, g1) for g0, g1, _, _ in timeline.gradual],
        scenes=[(s, e, label) for s, e, label in zip(timeline.starts, timeline.ends, labels)],
        subtitles_path=subtitles_path,
        metadata_path=metadata_path,
        codec=codec,
        has_audio=audio,
        gradual_kinds=[kind for _, _, _, kind in timeline.gradual],
    )


# ------------------------------------------------------------------------------------ demo corpus

_NARRATION = (
    "Here we see {label}.",
    "This shot shows {label}.",
    "Now: {label}.",
    "Look at this: {label}.",
    "Next, {label}.",
)


def _narration(scenes: list[tuple[int, int, str]], clean: list[tuple[int, int, str]], fps: float,
               rng: np.random.Generator) -> list[tuple[float, float, str]]:
    cues = []
    for (_, _, label), (c0, c1, _) in zip(scenes, clean):
        start, end = c0 / fps + 0.2, c1 / fps - 0.2
        template = _NARRATION[int(rng.integers(len(_NARRATION)))]
        if end - start > 6.0:  # long scenes get two cues, as a narrator would
            middle = round((start + end) / 2, 3)
            cues.append((round(start, 3), middle - 0.1, template.format(label=label)))
            cues.append((middle, round(end, 3), f"The shot continues: still {label}."))
        else:
            cues.append((round(start, 3), round(end, 3), template.format(label=label)))
    return cues


def make_demo_corpus(
    folder: str | Path,
    n_videos: int = 4,
    seed: int = 0,
    fps: float = 25.0,
    size: tuple[int, int] = (320, 180),
) -> list[SynthVideo]:
    """Write `n_videos` demo videos NAME.mp4 with NAME.srt (narration of each scene) and NAME.json
    ({"title", "description", "tags", "source", "ground_truth", ...}). Video i mixes transitions
    by i % 4: cuts only, dissolves + cuts, fades + cuts, everything; even-indexed videos carry
    audio and a long (> 7 s) scene. Deterministic for a seed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    videos = []
    for index in range(n_videos):
        n_scenes = int(rng.integers(3, 6))
        scenes = random_scenes(n_scenes, rng, min_s=2.0, max_s=4.5)
        if index % 2 == 0:
            scenes[int(rng.integers(n_scenes))].duration_s = round(float(rng.uniform(7.5, 9.0)), 2)
        style = index % 4
        transitions = []
        for _ in range(n_scenes - 1):
            if style == 0:
                kind = "cut"
            elif style == 1:
                kind = str(rng.choice(["dissolve", "dissolve", "cut"]))
            elif style == 2:
                kind = str(rng.choice(["fade", "fade", "cut"]))
            else:
                kind = str(rng.choice(["cut", "dissolve", "fade"]))
            duration = 0.0 if kind == "cut" else round(float(rng.uniform(0.6, 1.2)), 2)
            transitions.append(Transition(kind, duration))
        # Guarantee the style's transition kinds actually occur (the random draw may miss them).
        required = {1: ["dissolve"], 2: ["fade"], 3: ["dissolve", "fade"]}.get(style, [])
        for slot, kind in enumerate(required[: len(transitions)]):
            if kind not in {t.kind for t in transitions}:
                transitions[slot] = Transition(kind, round(float(rng.uniform(0.6, 1.2)), 2))

        name = f"synth_demo_{index:02d}"
        timeline = _plan(scenes, transitions, fps)
        planned = SynthVideo(
            path=folder / f"{name}.mp4", fps=fps, n_frames=timeline.ends[-1], width=size[0], height=size[1],
            cut_frames=timeline.cut_frames, gradual=[(g0, g1) for g0, g1, _, _ in timeline.gradual],
            scenes=[(s, e, sc.label) for s, e, sc in zip(timeline.starts, timeline.ends, scenes)],
            subtitles_path=None, metadata_path=None,
        )
        subtitles = _narration(planned.scenes, planned.clean_scenes(), fps, rng)
        labels = [scene.label for scene in scenes]
        metadata = {
            "title": f"Synthetic demo {index}: {labels[0]}",
            "description": f"A synthetic video with {n_scenes} shots: " + "; then ".join(labels) + ".",
            "tags": sorted({scene.background for scene in scenes}
                           | {shape.kind for scene in scenes for shape in scene.shapes or []}),
            "source": "panda_dagster.lib.synth",
            "seed": seed,
            "index": index,
            "ground_truth": {
                "fps": fps,
                "cut_frames": planned.cut_frames,
                "gradual": [list(g) for g in planned.gradual],
                "scenes": [list(s) for s in planned.scenes],
            },
        }
        videos.append(
            render_video(
                folder / f"{name}.mp4", scenes, transitions, fps=fps, size=size, audio=index % 2 == 0,
                subtitles=subtitles, subtitle_format="srt", metadata=metadata,
            )
        )
    return videos


def scene_to_dict(scene: Scene) -> dict:
    """JSON-friendly form of a scene (for manifests and debugging)."""
    return asdict(scene)
