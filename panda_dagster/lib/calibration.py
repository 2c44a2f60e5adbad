"""Stitching thresholds for an image embedder, measured on single-shot footage.

Panda-70M's distances (transition 1.0, stitch 0.6, still 0.15, redundant 0.3) are for ImageBind; another
embedder spreads frames differently, so its thresholds are measured:
- frames of one source that are `1 / sample_fps` apart must link (distance <= stitch_dist), frames of
  two different sources must not;
- the start and end of a long-shot piece (up to `max_shot_s` apart) of one source must stay below
  `transition_dist`, a piece that runs from one source into another must not;
- `still_dist` stays below what moving footage reaches over `min_clip_s`, `redundant_dist` below the
  distance between two sources' mean embeddings.
`choose_thresholds` returns the values plus the purity (share of different-source pairs kept apart) and
coverage (share of same-source pairs kept together) they reach. The split pipeline on compositions of
the same sources (`panda calibrate-stitching`) then measures clip purity and coverage end to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Share of different-source pairs that may fall below a threshold (robust to one odd frame).
CROSS_QUANTILE = 0.01


@dataclass
class SourceFrames:
    name: str
    times_s: np.ndarray  # (N,)
    embeddings: np.ndarray  # (N, D) unit rows


@dataclass
class Thresholds:
    transition_dist: float
    stitch_dist: float
    still_dist: float
    redundant_dist: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


@dataclass
class Calibration:
    embedder: str
    thresholds: Thresholds
    link_purity: float  # different-source frame pairs with distance > stitch_dist
    link_coverage: float  # adjacent same-source frame pairs with distance <= stitch_dist
    piece_purity: float  # different-source pairs > transition_dist
    piece_coverage: float  # same-source pairs up to max_shot_s apart <= transition_dist
    quantiles: dict[str, dict[str, float]]  # distance quantiles per kind of pair
    n_sources: int
    n_frames: int

    def snippet(self) -> str:
        """Dagster run config for `clips` with these values (YAML)."""
        lines = [f"# stitching thresholds for image embedder {self.embedder}, from {self.n_sources} single-shot "
                 f"sources ({self.n_frames} frames)",
                 f"# link purity {self.link_purity:.3f} coverage {self.link_coverage:.3f}; "
                 f"piece purity {self.piece_purity:.3f} coverage {self.piece_coverage:.3f}",
                 "ops:", "  clips:", "    config:"]
        lines += [f"      {k}: {v}" for k, v in self.thresholds.as_dict().items()]
        return "\n".join(lines) + "\n"


def _q(values: Sequence[float], qs=(0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)) -> dict[str, float]:
    if len(values) == 0:
        return {}
    return {f"p{int(q * 100)}": round(float(np.quantile(values, q)), 4) for q in qs}


def pair_distances(sources: Sequence[SourceFrames], sample_fps: float, max_shot_s: float, min_clip_s: float
                   ) -> dict[str, np.ndarray]:
    """Distances of the pairs each threshold separates (see the module docstring)."""
    link, piece, still = [], [], []
    step = max(1, int(round(max_shot_s * sample_fps * 0.9)))  # piece start (5 %) to end (95 %)
    still_step = max(1, int(round(min_clip_s * sample_fps)))
    for s in sources:
        x = s.embeddings.astype(np.float64)
        if len(x) >= 2:
            link += list(np.linalg.norm(x[1:] - x[:-1], axis=1))
        for gap, out in ((step, piece), (still_step, still)):
            if len(x) > gap:
                out += list(np.linalg.norm(x[gap:] - x[:-gap], axis=1))
            elif len(x) >= 2:
                out.append(float(np.linalg.norm(x[-1] - x[0])))
    cross, means = [], []
    for i, a in enumerate(sources):
        means.append(_unit(a.embeddings.mean(0)))
        for j, b in enumerate(sources):
            if i != j:  # the boundary frames of a cut, plus a sample of all pairs for robustness
                cross.append(float(np.linalg.norm(a.embeddings[-1] - b.embeddings[0])))
                ia = np.linspace(0, len(a.embeddings) - 1, min(8, len(a.embeddings))).astype(int)
                ib = np.linspace(0, len(b.embeddings) - 1, min(8, len(b.embeddings))).astype(int)
                d = np.linalg.norm(a.embeddings[ia][:, None, :] - b.embeddings[ib][None, :, :], axis=-1)
                cross += list(d.ravel())
    mean_dist = [float(np.linalg.norm(means[i] - means[j])) for i in range(len(means)) for j in range(i + 1, len(means))]
    return {"same_link": np.asarray(link), "same_piece": np.asarray(piece), "same_still": np.asarray(still),
            "cross": np.asarray(cross), "source_means": np.asarray(mean_dist)}


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def choose_thresholds(sources: Sequence[SourceFrames], embedder: str, *, sample_fps: float = 2.0,
                      max_shot_s: float = 5.0, min_clip_s: float = 2.5) -> Calibration:
    if len(sources) < 2:
        raise ValueError("calibration needs at least two single-shot sources (to know what 'different' looks like)")
    d = pair_distances(sources, sample_fps, max_shot_s, min_clip_s)
    cross_low = float(np.quantile(d["cross"], CROSS_QUANTILE))
    # Links: the largest threshold that keeps 99 % of different-source pairs apart, but no higher than
    # needed to join 99 % of same-source neighbours (then halfway, to leave margin on both sides).
    link_high = float(np.quantile(d["same_link"], 0.99))
    stitch = cross_low if link_high >= cross_low else (link_high + cross_low) / 2
    # Pieces: anything as far apart as two different sources is a transition.
    transition = max(stitch, cross_low)
    still = 0.5 * float(np.quantile(d["same_still"], 0.05))
    redundant = 0.5 * float(np.min(d["source_means"])) if len(d["source_means"]) else 0.0
    thresholds = Thresholds(transition, stitch, still, redundant)
    return Calibration(
        embedder, thresholds,
        link_purity=float(np.mean(d["cross"] > stitch)), link_coverage=float(np.mean(d["same_link"] <= stitch)),
        piece_purity=float(np.mean(d["cross"] > transition)),
        piece_coverage=float(np.mean(d["same_piece"] <= transition)),
        quantiles={k: _q(v) for k, v in d.items()}, n_sources=len(sources),
        n_frames=int(sum(len(s.embeddings) for s in sources)))


@dataclass
class ClipPurity:
    n_clips: int
    n_pure: int  # clips inside one source stretch (transitions count as neither)
    n_stretches: int  # stretches long enough to yield a clip
    n_covered: int  # of those, stretches that got at least one clip
    covered_s: float  # seconds of the composition inside clips
    duration_s: float

    @property
    def purity(self) -> float:
        return self.n_pure / self.n_clips if self.n_clips else 1.0

    @property
    def coverage(self) -> float:
        return self.n_covered / self.n_stretches if self.n_stretches else 1.0


def clip_purity(clips: Sequence[tuple[float, float]], stretches: Sequence[tuple[float, float, str]],
                min_stretch_s: float, tolerance_s: float = 0.2) -> ClipPurity:
    """How clips (start, end) of a composition fall onto its source stretches. A clip is pure when it lies
    within one stretch (± `tolerance_s`, one frame at low fps plus the snap to whole frames)."""
    pure = 0
    covered = set()
    for a, b in clips:
        inside = [i for i, (s, e, _) in enumerate(stretches) if a >= s - tolerance_s and b <= e + tolerance_s]
        if inside:
            pure += 1
            covered.add(inside[0])
    long_enough = [i for i, (s, e, _) in enumerate(stretches) if e - s > min_stretch_s]
    covered_s = sum(b - a for a, b in clips)
    return ClipPurity(len(clips), pure, len(long_enough), len(covered & set(long_enough)), covered_s,
                      stretches[-1][1] if stretches else 0.0)


def summarise(calibration: Calibration, compositions: Mapping[str, ClipPurity] | None = None) -> str:
    t = calibration.thresholds
    lines = [f"embedder {calibration.embedder}: {calibration.n_sources} sources, {calibration.n_frames} frames",
             f"  stitch_dist     {t.stitch_dist:.3f}   link purity {calibration.link_purity:.3f}, "
             f"coverage {calibration.link_coverage:.3f}",
             f"  transition_dist {t.transition_dist:.3f}   piece purity {calibration.piece_purity:.3f}, "
             f"coverage {calibration.piece_coverage:.3f}",
             f"  still_dist      {t.still_dist:.3f}   redundant_dist {t.redundant_dist:.3f}"]
    for name, p in (compositions or {}).items():
        lines.append(f"  composition {name}: {p.n_clips} clips, purity {p.purity:.3f} ({p.n_pure} pure), coverage "
                     f"{p.coverage:.3f} ({p.n_covered}/{p.n_stretches} stretches), {p.covered_s:.1f} of "
                     f"{p.duration_s:.1f} s in clips")
    return "\n".join(lines)
