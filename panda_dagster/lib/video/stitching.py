"""Semantic stitching of shots into events (the Panda-70M recipe), over unit-norm image embeddings.

Shots marked `transition` (gradual transitions the detector found) are dropped and end the current
event. Each other shot brings two embeddings: of a frame near its start (5 %) and near its end (95 %). Distances are
L2 between unit vectors (0 = same direction, 2 = opposite). Steps, in order:
  1. a shot whose start and end embeddings are further apart than `transition_dist` has a transition
     inside it (a fade or dissolve the detector missed): it is dropped and ends the current event;
  2. the next shot joins the current event while distance(end of the event's last shot, start of the
     next shot) <= `stitch_dist` and the two are adjacent in time;
  3. each event is trimmed by `trim_frac` of its length at both ends (transitions leak into the borders)
     and capped at `max_clip_s`; events whose result is shorter than `min_clip_s` are dropped, so are
     "still" events (start/end distance < `still_dist`) and events whose mean embedding lies within
     `redundant_dist` of an event already kept.
Every dropped shot or event keeps its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.video.shots import Shot


@dataclass
class StitchConfig:
    """Stitching (Panda-70M's collection values, as L2 distances between unit-norm image embeddings) and
    clip-length limits."""

    transition_dist: float = field(default=1.0, metadata={
        "help": "Drop a shot whose start/end embeddings are further apart (a transition inside it)"})
    stitch_dist: float = field(default=0.6, metadata={
        "help": "Join the next shot while distance(last frame of the event, first frame of the shot) <= this"})
    still_dist: float = field(default=0.15, metadata={"help": "Drop events whose start/end distance is below (still)"})
    redundant_dist: float = field(default=0.3, metadata={"help": "Drop events closer than this to a kept one"})
    min_clip_s: float = field(default=2.5, metadata={"help": "Drop clips shorter than this (after trimming)"})
    max_clip_s: float = field(default=60.0, metadata={"help": "Cap clip length"})
    trim_frac: float = field(default=0.1, metadata={"help": "Trim this fraction of each event at both ends"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.trim_frac < 0.5:
            raise ValueError(f"trim_frac must be in [0, 0.5), got {self.trim_frac}")
        if self.max_clip_s <= 0 or self.min_clip_s < 0 or self.min_clip_s > self.max_clip_s:
            raise ValueError(f"need 0 <= min_clip_s <= max_clip_s and max_clip_s > 0, got "
                             f"{self.min_clip_s}, {self.max_clip_s}")


def with_embedder_distances(stitching: StitchConfig, embedder_name: str) -> StitchConfig:
    """`stitching` with the image embedder's own distances (lib.models.embedders.STITCH_DISTANCES) wherever
    it still has the library defaults (Panda-70M's ImageBind values); values a run set stay."""
    import dataclasses

    from panda_dagster.lib.models.embedders import stitch_distances

    defaults = StitchConfig()
    own = stitch_distances(embedder_name).values()
    return dataclasses.replace(stitching, **{k: v for k, v in own.items()
                                             if getattr(stitching, k) == getattr(defaults, k)})


@dataclass
class Event:
    shot_indices: list[int]  # indices into the stitched shot list
    start_s: float  # after trimming and capping
    end_s: float
    raw_start_s: float  # before trimming
    raw_end_s: float
    start_end_dist: float  # distance between the first shot's start and the last shot's end embedding
    embedding: np.ndarray  # unit-norm mean of the event's shot embeddings

    @property
    def n_shots(self) -> int:
        return len(self.shot_indices)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Dropped:
    kind: str  # 'shot' or 'event'
    start_s: float
    end_s: float
    reason: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6),
                "reason": self.reason}


@dataclass
class StitchResult:
    events: list[Event]
    dropped: list[Dropped] = field(default_factory=list)


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def stitch_shots(
    shots: Sequence[Shot],
    start_embeddings: Sequence[np.ndarray | None],
    end_embeddings: Sequence[np.ndarray | None],
    config: StitchConfig | None = None,
) -> StitchResult:
    """Group shots into events; `None` embeddings mark shots without a usable frame (dropped)."""
    cfg = config or StitchConfig()
    if not (len(shots) == len(start_embeddings) == len(end_embeddings)):
        raise ValueError("need one start and one end embedding per shot")
    dropped: list[Dropped] = []
    groups: list[list[int]] = []
    current: list[int] = []

    def close() -> None:
        nonlocal current
        if current:
            groups.append(current)
        current = []

    for i, shot in enumerate(shots):
        if shot.transition:  # a gradual transition the detector found: never part of a clip
            close()
            dropped.append(Dropped("shot", shot.start_s, shot.end_s, "gradual transition (detector)"))
            continue
        first, last = start_embeddings[i], end_embeddings[i]
        if first is None or last is None:
            close()
            dropped.append(Dropped("shot", shot.start_s, shot.end_s, "no sampled frame inside the shot"))
            continue
        inner = _dist(first, last)
        if inner > cfg.transition_dist:
            close()
            dropped.append(Dropped("shot", shot.start_s, shot.end_s,
                                   f"transition inside shot: start/end distance {inner:.3f} > {cfg.transition_dist}"))
            continue
        if current:
            previous = shots[current[-1]]
            link = _dist(end_embeddings[current[-1]], first)
            if previous.end_frame == shot.start_frame and link <= cfg.stitch_dist:
                current.append(i)
                continue
        close()
        current = [i]
    close()

    events: list[Event] = []
    kept_embeddings: list[np.ndarray] = []
    for group in groups:
        raw_start, raw_end = shots[group[0]].start_s, shots[group[-1]].end_s
        trim = cfg.trim_frac * (raw_end - raw_start)
        start, end = raw_start + trim, raw_end - trim
        end = min(end, start + cfg.max_clip_s)
        span = f"{len(group)} shot(s) {raw_start:.2f}-{raw_end:.2f} s"
        if end - start < cfg.min_clip_s:
            dropped.append(Dropped("event", raw_start, raw_end, f"too short: {end - start:.2f} s after trimming "
                                                                f"< min_clip_s {cfg.min_clip_s} ({span})"))
            continue
        still = _dist(start_embeddings[group[0]], end_embeddings[group[-1]])
        if still < cfg.still_dist:
            dropped.append(Dropped("event", raw_start, raw_end,
                                   f"still: start/end distance {still:.3f} < still_dist {cfg.still_dist} ({span})"))
            continue
        vectors = [np.asarray(v, np.float64) for k in group for v in (start_embeddings[k], end_embeddings[k])]
        embedding = _unit(np.mean(vectors, axis=0))
        redundant_with = next(
            (k for k, kept in enumerate(kept_embeddings) if _dist(embedding, kept) < cfg.redundant_dist), None)
        if redundant_with is not None:
            previous = events[redundant_with]
            dropped.append(Dropped(
                "event", raw_start, raw_end,
                f"redundant: within {cfg.redundant_dist} of the kept clip "
                f"{previous.start_s:.2f}-{previous.end_s:.2f} s ({span})"))
            continue
        kept_embeddings.append(embedding)
        events.append(Event(list(group), start, end, raw_start, raw_end, still, embedding.astype(np.float32)))
    return StitchResult(events, dropped)
