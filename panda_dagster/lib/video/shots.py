"""Shots: contiguous frame ranges between boundaries, with pts-based times; splitting of long shots.

Gradual transitions (dissolves, fades, wipes) become shots of their own marked `transition`, so the shots
still partition the video while no clip can contain a transition."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Shot:
    start_frame: int
    end_frame: int  # exclusive
    start_s: float  # pts of start_frame
    end_s: float  # pts of end_frame (or the end of the last frame)
    piece: int = 0  # > 0 when this is piece `piece` of a long shot that had no cut
    of_long_shot: int = -1  # index of the detector shot it came from
    transition: bool = False  # the frames of a gradual transition (belong to neither neighbouring shot)

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        return {"start_frame": self.start_frame, "end_frame": self.end_frame,
                "start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6)}


def frame_end_times(times_s: np.ndarray, end_s: float) -> np.ndarray:
    """Time at which each frame ends: the next frame's pts, the video end for the last one."""
    times_s = np.asarray(times_s, dtype=np.float64)
    return np.append(times_s[1:], end_s) if len(times_s) else times_s


def shots_from_cuts(cuts: Sequence[int], times_s: np.ndarray, end_s: float) -> list[Shot]:
    """Partition frames [0, n) at the cut frames; times are the frames' presentation times."""
    n = len(times_s)
    if n == 0:
        return []
    bounds = [0] + sorted({int(c) for c in cuts if 0 < int(c) < n}) + [n]
    shots = []
    for index, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        end = float(times_s[b]) if b < n else float(end_s)
        shots.append(Shot(a, b, float(times_s[a]), end, 0, index))
    return shots


def clean_boundaries(boundaries: Sequence, n_frames: int) -> list:
    """Boundaries inside (0, n_frames), sorted, gradual spans clipped to the video and never overlapping
    the previous boundary (a cut inside a gradual span is dropped)."""
    from panda_dagster.lib.video.detectors.base import CUT, Boundary

    out: list = []
    for b in sorted(boundaries, key=lambda b: (b.start, b.end)):
        if b.kind == CUT:
            if not 0 < b.frame < n_frames or (out and b.frame <= out[-1].end):
                continue
            out.append(b)
            continue
        start = max(b.start, out[-1].end if out else 0, 0)
        end = min(b.end, n_frames)
        if end - start < 2:  # clipped to (almost) nothing: a cut at what is left, if inside
            frame = min(max(b.frame, start), end)
            if 0 < frame < n_frames and not (out and frame <= out[-1].end):
                out.append(Boundary.cut(frame))
            continue
        frame = min(max(b.frame, start), end - 1) if (start, end) != (b.start, b.end) else b.frame
        out.append(Boundary(b.kind, frame, start, end, b.kind_detail))
    return out


def shots_from_boundaries(boundaries: Sequence, times_s: np.ndarray, end_s: float) -> tuple[list, list[Shot]]:
    """(the boundaries kept, the shots): frames [0, n) partitioned at cuts, gradual spans [start, end)
    as `transition` shots between the shots they join."""
    n = len(times_s)
    if n == 0:
        return [], []
    kept = clean_boundaries(boundaries, n)
    spans: list[tuple[int, int, bool]] = []
    position = 0
    for b in kept:
        if b.start > position:
            spans.append((position, b.start, False))
        if b.end > b.start:
            spans.append((b.start, b.end, True))
        position = b.end
    if position < n:
        spans.append((position, n, False))
    shots = []
    for index, (a, b, transition) in enumerate(spans):
        end = float(times_s[b]) if b < n else float(end_s)
        shots.append(Shot(a, b, float(times_s[a]), end, 0, index, transition))
    return kept, shots


def split_long_shots(shots: Sequence[Shot], times_s: np.ndarray, end_s: float,
                     long_shot_s: float = 7.0, max_shot_s: float = 5.0) -> list[Shot]:
    """Cut shots longer than `long_shot_s` into equal pieces of at most `max_shot_s` (Panda-70M splits
    uncut stretches so that stitching decides what belongs together). Piece borders snap to frames."""
    if max_shot_s <= 0:
        raise ValueError("max_shot_s must be > 0")
    times_s = np.asarray(times_s, dtype=np.float64)
    out: list[Shot] = []
    for shot in shots:
        if shot.duration_s <= long_shot_s or shot.transition:
            out.append(shot)
            continue
        pieces = math.ceil(shot.duration_s / max_shot_s - 1e-9)
        borders = [shot.start_frame]
        for k in range(1, pieces):
            target = shot.start_s + shot.duration_s * k / pieces
            frame = int(np.searchsorted(times_s, target - 1e-9, side="left"))
            frame = min(max(frame, borders[-1] + 1), shot.end_frame - 1)
            if frame > borders[-1]:
                borders.append(frame)
        borders.append(shot.end_frame)
        for k, (a, b) in enumerate(zip(borders[:-1], borders[1:]), start=1):
            end = float(times_s[b]) if b < len(times_s) else float(end_s)
            out.append(Shot(a, b, float(times_s[a]), end, k, shot.of_long_shot))
    return out
