"""A generated preference set whose right caption is knowable from the pixels.

Each "video" shows coloured shapes; each of its clips has a few key frames of one shape in one colour
(position, size and background jitter from frame to frame), and four candidate captions written in
varied templates: the true one and three that name a wrong colour (with the same or another shape).
The simulated person always picks the true caption, so a scorer that sees colour can reach 100 %,
while picking at random scores 25 %. Used by tests, benchmarks and the demo to
show that fine-tuning on human choices moves selection accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 230),
    "yellow": (235, 215, 20),
    "purple": (140, 40, 190),
    "orange": (245, 130, 10),
}
SHAPES = ("square", "circle", "triangle")
TEMPLATES = (
    "a {colour} {shape}",
    "a {colour} {shape} on a plain background",
    "the video shows a {colour} {shape}",
    "a {shape} coloured {colour} in the middle of the frame",
    "close-up of a {colour} {shape}",
)


@dataclass
class ShapeClip:
    clip_id: str
    video_id: str
    colour: str
    shape: str
    frames: list[np.ndarray]
    candidates: list[str]
    chosen_index: int


def draw_shape(colour: str, shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    background = rng.integers(90, 200)
    image = np.full((size, size, 3), background, dtype=np.int16)
    image += rng.integers(-12, 13, size=(size, size, 3)).astype(np.int16)  # sensor-like noise
    radius = rng.uniform(0.22, 0.34) * size
    cy, cx = rng.uniform(radius, size - radius, size=2)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    if shape == "square":
        mask = (np.abs(yy - cy) <= radius * 0.85) & (np.abs(xx - cx) <= radius * 0.85)
    elif shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    elif shape == "triangle":  # apex up: width grows linearly from the apex to the base
        top, bottom = cy - radius, cy + radius
        half_width = (yy - top) / (2 * radius) * radius * 1.1
        mask = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    image[mask] = COLOURS[colour]
    return np.clip(image, 0, 255).astype(np.uint8)


def _caption(colour: str, shape: str, rng: np.random.Generator) -> str:
    return TEMPLATES[rng.integers(len(TEMPLATES))].format(colour=colour, shape=shape)


def make_shape_preferences(
    n_videos: int = 60, clips_per_video: int = 5, frames_per_clip: int = 2, size: int = 64, seed: int = 0
) -> list[ShapeClip]:
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    clips = []
    for v in range(n_videos):
        video_id = f"shapes-video-{v:04d}"
        for c in range(clips_per_video):
            colour = colours[rng.integers(len(colours))]
            shape = SHAPES[rng.integers(len(SHAPES))]
            wrong = rng.permutation([c for c in colours if c != colour])[:3]
            other_shape = SHAPES[(SHAPES.index(shape) + 1 + rng.integers(len(SHAPES) - 1)) % len(SHAPES)]
            pairs = [(colour, shape), (wrong[0], shape), (wrong[1], other_shape),
                     (wrong[2], SHAPES[rng.integers(len(SHAPES))])]
            order = rng.permutation(len(pairs))
            candidates = [_caption(*pairs[i], rng) for i in order]
            clips.append(ShapeClip(
                clip_id=f"{video_id}-clip-{c:02d}", video_id=video_id, colour=colour, shape=shape,
                frames=[draw_shape(colour, shape, size, rng) for _ in range(frames_per_clip)],
                candidates=candidates, chosen_index=int(np.flatnonzero(order == 0)[0]),
            ))
    return clips
