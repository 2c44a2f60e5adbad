"""`hybrid`: hard cuts from the HSV frame score, gradual transitions from 48x27 thumbnails, traps rejected.

Everything comes from the one decode pass: per frame the same HSV score as `content` and a 48x27 RGB
thumbnail (~4 KB; the frame TransNetV2 reads). The decisions run afterwards over the whole video:

- **Hard cut** at frame i: HSV score >= `threshold`, a local maximum, and a real jump in the
  thumbnails. Rejected when the picture *returns* within a few frames (a camera flash: the frame before
  the jump matches one shortly after it, or the frame after matches one shortly before) and when a small
  shift of the previous thumbnail explains the jump and the colours stay (fast motion).
- **Gradual transition** (dissolve, fade, wipe, slide, iris): for lags L, frames i - L and i + L differ a
  lot (`gradual_min_change`) while no single frame step explains it (`gradual_max_step`), no shift or
  zoom of one matches the other (a pan or zoom), most of the picture changed (not an overlay popping in)
  and the colour histograms differ. The span is refined to the frames between the two shots
  (progress 15 %..85 % from the one to the other).
  Two ends with the same picture structure once brightness is normalised (an exposure change, a light
  coming on, one car leaving a parking lot) are not a transition.
- **Fades** from the mean brightness alone: every run of black frames with the steady ramp into it (fade
  out) and out of it (fade in) is one gradual transition spanning ramp, hold and ramp.
- Boundaries closer than `merge_gap` frames, or separated only by dark frames (fade to black, black
  hold, fade in), become one gradual transition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.video.detectors.base import Boundary, Detection, DetectorBase
from panda_dagster.lib.video.detectors.content import ContentScorer

THUMB_SIZE = (48, 27)  # (width, height), as TransNetV2's input
THUMB_SHAPE = (27, 48, 3)
SCORE_DTYPE = np.dtype([("content", np.float64), ("thumb", np.uint8, THUMB_SHAPE)])
GAIN_GATE = 0.7
BLACK_LEVEL = 0.04  # mean thumbnail level (0-1) of a black frame
FADE_STEP = 0.002  # least brightness change per frame (0-1) inside a fade ramp
MIN_FADE_FRAMES = 3
FADE_MIN_TOP = 2 * BLACK_LEVEL  # a fade ramp reaches at least this brightness
CHUNK = 2048  # frames per vectorised step (bounds memory on long videos)


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    """48x27 (BGR) in two cheap steps: bilinear to 96x54, then 2x2 averaging (a direct area resize from
    the ~256x144 analysis frame costs three times as much)."""
    import cv2

    half = cv2.resize(bgr, (2 * THUMB_SIZE[0], 2 * THUMB_SIZE[1]), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(half, THUMB_SIZE, interpolation=cv2.INTER_AREA)


class HybridScorer:
    """Per frame: the HSV content score and a 48x27 thumbnail (a structured array)."""

    def __init__(self) -> None:
        self._content = ContentScorer()
        self._thumbs: list[np.ndarray] = []

    def __call__(self, index: int, time_s: float, bgr: np.ndarray) -> None:
        self._content(index, time_s, bgr)
        self._thumbs.append(thumbnail(bgr))

    @property
    def scores(self) -> np.ndarray:
        out = np.zeros(len(self._thumbs), SCORE_DTYPE)
        if len(out):
            out["content"] = self._content.scores
            out["thumb"] = np.stack(self._thumbs)
        return out


@dataclass
class HybridParams:
    """Hard cuts from HSV scores plus gradual transitions from thumbnails; flashes, fast motion, pans,
    zooms and pop-in overlays rejected."""

    threshold: float = field(default=30.0, metadata={"help": "HSV frame score of a hard-cut candidate"})
    cut_min_jump: float = field(default=0.10, metadata={"help": "Mean thumbnail change (0-1) a hard cut needs"})
    flash_return: float = field(default=0.4, metadata={
        "help": "A jump is a flash when the picture comes back within 5 frames closer than this share of it"})
    gradual_min_change: float = field(default=0.06, metadata={
        "help": "Mean thumbnail difference (0-1) between the frames around a gradual transition"})
    gradual_max_step: float = field(default=0.5, metadata={
        "help": "Largest single frame step, as a share of that change (more = a cut, not gradual)"})
    gradual_min_shift_distance: float = field(default=0.6, metadata={
        "help": "Best shifted/zoomed match of the two ends, as a share of the change (less = a pan or zoom)"})
    gradual_min_gain_distance: float = field(default=0.75, metadata={
        "help": "Distance of the two ends after matching brightness and contrast, as a share of the change "
        "(less = an exposure change)"})
    gradual_min_area: float = field(default=0.3, metadata={"help": "Share of the picture that must change"})
    gradual_min_colour_change: float = field(default=0.35, metadata={
        "help": "Colour-histogram distance (0-1) between the two ends"})
    gradual_min_structure: float = field(default=0.25, metadata={
        "help": "Share of the picture whose brightness-normalised content differs between the two ends "
        "(less = the same picture lit differently or with one object gone; fades are found from brightness)"})
    fade_max_frames: int = field(default=120, metadata={
        "help": "Longest fade out to (or in from) black, frames"})
    lags: list[int] = field(default_factory=lambda: [5, 8, 12, 17, 23], metadata={
        "help": "Half-widths (frames) of the windows gradual transitions are looked for in"})
    merge_gap: int = field(default=8, metadata={"help": "Boundaries this close (frames) become one"})
    dark_level: float = field(default=0.12, metadata={
        "help": "Boundaries separated only by frames darker than this (mean, 0-1) become one (fades)"})
    min_scene_len: int = field(default=0, metadata={"help": "Drop a boundary closer than this to the previous one"})


def _histograms(thumbs: np.ndarray, bins: int = 4) -> np.ndarray:
    q = thumbs.astype(np.int32) * bins // 256
    flat = (q[..., 0] * bins * bins + q[..., 1] * bins + q[..., 2]).reshape(len(thumbs), -1)
    flat = flat + (np.arange(len(thumbs)) * bins ** 3)[:, None]
    counts = np.bincount(flat.ravel(), minlength=len(thumbs) * bins ** 3).reshape(len(thumbs), bins ** 3)
    return counts.astype(np.float32) / flat.shape[1]


def _mean_absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame mean |a - b| in 0-1 for two (n, h, w, 3) uint8 stacks (OpenCV's SIMD absdiff)."""
    import cv2

    n = len(a)
    diff = cv2.absdiff(a.reshape(n, -1), b.reshape(n, -1))
    return diff.sum(axis=1, dtype=np.uint32).astype(np.float32) / (diff.shape[1] * 255.0)


def _lag_difference(thumbs: np.ndarray, lag: int) -> np.ndarray:
    """d[i] = mean |thumb[i - lag] - thumb[i + lag]| (0 where undefined), in 0-1."""
    n = len(thumbs)
    out = np.zeros(n, np.float32)
    for start in range(lag, n - lag, CHUNK):
        stop = min(n - lag, start + CHUNK)
        out[start:stop] = _mean_absdiff(thumbs[start - lag: stop - lag], thumbs[start + lag: stop + lag])
    return out


def _local_maxima(values: np.ndarray, radius: int, minimum: float) -> np.ndarray:
    """Indices where `values` is at least `minimum` and the largest within `radius` on both sides."""
    padded = np.pad(values, radius, constant_values=-np.inf)
    peak = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).max(axis=1)
    return np.flatnonzero((values >= minimum) & (values >= peak))


def _overlaps(a: np.ndarray, b: np.ndarray, max_dx: int, max_dy: int, step: int = 1):
    """(a part, b part) of the overlap of `a` and `b` shifted by (dx, dy), for every shift up to
    (max_dx, max_dy) pixels in steps of `step`, no shift included."""
    h, w = a.shape[:2]
    for dy in range(-max_dy, max_dy + 1, step):
        for dx in range(-max_dx, max_dx + 1, step):
            ya, yb, xa, xb = max(0, dy), max(0, -dy), max(0, dx), max(0, -dx)
            hh, ww = h - abs(dy), w - abs(dx)
            yield a[ya:ya + hh, xa:xa + ww], b[yb:yb + hh, xb:xb + ww]


def _shift_distance(a: np.ndarray, b: np.ndarray, max_dx: int = 12, max_dy: int = 4) -> float:
    """Smallest mean |a - b shifted| over shifts up to (max_dx, max_dy) pixels, on the overlap, after a
    horizontal blur of both (a fast pan smears the frames it moves across)."""
    import cv2

    a, b = cv2.blur(a, (5, 1)), cv2.blur(b, (5, 1))
    return min(float(np.abs(x - y).mean()) for x, y in _overlaps(a, b, max_dx, max_dy, step=2))


def _zoom_distance(a: np.ndarray, b: np.ndarray, scales=(1.1, 1.25, 1.4, 1.6)) -> float:
    import cv2

    h, w = a.shape[:2]
    best = float("inf")
    for scale in scales:
        for near, far in ((a, b), (b, a)):
            cw, ch = int(round(w / scale)), int(round(h / scale))
            x0, y0 = (w - cw) // 2, (h - ch) // 2
            zoomed = cv2.resize(np.ascontiguousarray(near[y0:y0 + ch, x0:x0 + cw]), (w, h), interpolation=cv2.INTER_AREA)
            best = min(best, _shift_distance(zoomed, far, 4, 2))
    return best


def _gain_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| after giving each channel of b the mean and spread of a's (inf where b is flat:
    black or one colour, as in a fade)."""
    a_flat, b_flat = a.reshape(-1, 3), b.reshape(-1, 3)
    spread_b = b_flat.std(axis=0)
    if float(spread_b.min()) < 0.02:
        return float("inf")
    matched = (b_flat - b_flat.mean(axis=0)) / spread_b * a_flat.std(axis=0) + a_flat.mean(axis=0)
    return float(np.abs(a_flat - matched).mean())


def _colour_distance(ha: np.ndarray, hb: np.ndarray) -> float:
    return 0.5 * float(np.abs(ha - hb).sum())


def _structure_change(a: np.ndarray, b: np.ndarray, max_dx: int = 2, max_dy: int = 1) -> float:
    """Share of pixels whose grey level, each picture normalised to zero mean and unit spread (lightly
    blurred against noise), differs by more than one spread, at the best shift of up to (max_dx, max_dy)
    pixels (a slow pan): ~0 for one picture under other light, about half for two unrelated pictures.
    1 when either is flat."""
    import cv2

    grey = [cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_BGR2GRAY).astype(np.float32) for x in (a, b)]
    spreads = [float(g.std()) for g in grey]
    if min(spreads) < 4.0:
        return 1.0
    za, zb = (cv2.blur((g - g.mean()) / sd, (3, 3)) for g, sd in zip(grey, spreads))
    return min(float((np.abs(x - y) > 1.0).mean()) for x, y in _overlaps(za, zb, max_dx, max_dy))


def _ramp_end(luma: np.ndarray, edge: int, direction: int, limit: int) -> int:
    """From black frame `edge`, walk in `direction` while the brightness keeps rising (one flat step
    allowed: frame-doubled footage); the last frame of the ramp (`edge` when there is none)."""
    n = len(luma)
    k, flat = edge, 0
    while 0 <= k + direction < n and abs(k + direction - edge) <= limit:
        step = float(luma[k + direction] - luma[k])
        if step > FADE_STEP:
            flat = 0
        elif step > -FADE_STEP and flat == 0 and 0 <= k + 2 * direction < n \
                and float(luma[k + 2 * direction] - luma[k]) > FADE_STEP:
            flat = 1
        else:
            break
        k += direction
    return k


class HybridDetector(DetectorBase, name="hybrid", params=HybridParams, scorer=HybridScorer,
                     summary="HSV hard cuts plus gradual transitions (dissolves, fades, wipes) from thumbnails; "
                     "flashes, fast motion, pans, zooms and overlays rejected"):

    def detect(self, scores: np.ndarray, fps: float) -> Detection:
        content = np.asarray(scores["content"], dtype=np.float64)
        thumbs = np.asarray(scores["thumb"])
        luma = thumbs.reshape(len(thumbs), -1).mean(axis=1) / 255.0 if len(thumbs) else np.zeros(0)
        cuts = self._hard_cuts(content, thumbs)
        gradual = self._gradual(thumbs, cuts, luma)
        fades = self._fades(luma)
        boundaries = self._merge([Boundary.cut(c) for c in cuts] + gradual + fades, luma)
        lead_in_end, tail_start = self._end_fades(luma)
        boundaries = [b for b in boundaries
                      if b.kind != "gradual" or not (b.start <= lead_in_end or b.end >= tail_start)]
        return Detection(self.name, boundaries, content)

    def _end_fades(self, luma: np.ndarray) -> tuple[float, float]:
        """A fade in from black at the very start (or out to black at the very end) has no shot on one
        side: not a boundary. A gradual boundary is such a fade when it starts by the end of the
        brightness ramp out of the video's first black frames (or ends from the start of the ramp into its
        last ones): those two frames, -inf / +inf where the video does not start / end black."""
        n = len(luma)
        limit, gap = self.params.fade_max_frames, self.params.merge_gap
        bright = np.flatnonzero(luma >= BLACK_LEVEL)
        lead_in_end, tail_start = -math.inf, math.inf
        if n and luma[0] < BLACK_LEVEL:
            last_black = int(bright[0]) - 1 if len(bright) else n - 1
            lead_in_end = _ramp_end(luma, last_black, +1, limit) + gap
        if n and luma[-1] < BLACK_LEVEL:
            first_black = int(bright[-1]) + 1 if len(bright) else 0
            tail_start = _ramp_end(luma, first_black, -1, limit) - gap
        return lead_in_end, tail_start

    # ----------------------------------------------------------------------------------- hard cuts

    def _hard_cuts(self, content: np.ndarray, thumbs: np.ndarray) -> list[int]:
        p = self.params
        n = len(content)
        cuts: list[int] = []

        def dist(i: int, j: int) -> float:
            i, j = min(max(i, 0), n - 1), min(max(j, 0), n - 1)
            return float(np.abs(thumbs[i].astype(np.int16) - thumbs[j].astype(np.int16)).mean()) / 255.0

        for i in (int(k) for k in np.flatnonzero(content >= p.threshold)):
            if i == 0 or content[i] < content[max(0, i - 2): i + 3].max():
                continue
            jump = dist(i - 1, i)
            if jump < p.cut_min_jump:
                continue  # a big HSV score on (near-)black frames: hue noise, not a cut
            back = min(min(dist(i - 1, i + k) for k in range(1, 6)), min(dist(i - 1 - k, i) for k in range(1, 6)))
            if back < p.flash_return * jump:
                continue  # the picture returns: a flash
            before = thumbs[i - 1].astype(np.float32) / 255.0
            after = thumbs[i].astype(np.float32) / 255.0
            hist = _histograms(thumbs[max(0, i - 3): i + 3])
            k = min(3, i - max(0, i - 3))
            colour = _colour_distance(hist[:k].mean(axis=0), hist[k:].mean(axis=0))
            if colour < 0.3 and _shift_distance(before, after) < 0.5 * jump:
                continue  # a shifted copy of the previous frame, same colours: fast motion
            cuts.append(i)
        return cuts

    # ---------------------------------------------------------------------------------- gradual

    def _gradual(self, thumbs: np.ndarray, cuts: list[int], luma: np.ndarray) -> list[Boundary]:
        p = self.params
        n = len(thumbs)
        if n < 12:
            return []
        step = np.zeros(n, np.float32)  # step[i] = mean |thumb[i] - thumb[i - 1]|
        for start in range(1, n, CHUNK):
            stop = min(n, start + CHUNK)
            step[start:stop] = _mean_absdiff(thumbs[start:stop], thumbs[start - 1:stop - 1])
        candidates = []
        for lag in p.lags:
            if n <= 2 * lag + 2:
                continue
            change = _lag_difference(thumbs, lag)
            for i in _local_maxima(change, lag, p.gradual_min_change):
                if lag <= i < n - lag:
                    candidates.append((float(change[i]), int(i), lag))
        cut_array = np.asarray(cuts, dtype=np.int64)
        taken: list[tuple[int, int]] = []
        found: list[Boundary] = []
        for change, i, lag in sorted(candidates, reverse=True):
            a, b = i - lag, i + lag  # the last frame of the one shot, the first of the other
            if len(cut_array) and np.any((cut_array >= a - 1) & (cut_array <= b + 1)):
                continue
            if any(not (b < s or a > e) for s, e in taken):
                continue
            if step[a + 1: b + 1].max() > p.gradual_max_step * change:
                continue
            first = thumbs[a].astype(np.float32) / 255.0
            last = thumbs[b].astype(np.float32) / 255.0
            area = float((np.abs(first - last).mean(axis=2) > 0.12).mean())
            if area < p.gradual_min_area:
                continue
            hist = _histograms(thumbs[[a, b]])
            colour = _colour_distance(hist[0], hist[1])
            if colour < p.gradual_min_colour_change:
                continue
            if (area < 0.6 or colour < GAIN_GATE) and _gain_distance(first, last) < p.gradual_min_gain_distance * change:
                continue  # the same picture brighter or darker: the camera's exposure, not a transition
            same_shot = p.gradual_min_shift_distance * change  # a pan or zoom matches the two ends this well
            if _shift_distance(first, last) < same_shot or _zoom_distance(first, last) < same_shot:
                continue
            lit = min(luma[a], luma[b]) >= p.dark_level  # fades into or out of black are `_fades`' work
            if lit and _structure_change(thumbs[a], thumbs[b]) < p.gradual_min_structure:
                continue  # the same picture lit differently
            taken.append((a, b))
            found.append(self._span(thumbs, a, b))
        return found

    def _fades(self, luma: np.ndarray) -> list[Boundary]:
        """A run of black frames plus the steady ramps into and out of it, when at least one ramp is a
        fade (several frames long, from a picture clearly brighter than black); runs touching the start or
        end of the video are left to `_end_fades`."""
        n = len(luma)
        black = luma < BLACK_LEVEL
        found: list[Boundary] = []
        i = 0
        while i < n:
            if not black[i]:
                i += 1
                continue
            j = i
            while j < n and black[j]:
                j += 1
            start = _ramp_end(luma, i, -1, self.params.fade_max_frames)
            end = _ramp_end(luma, j - 1, +1, self.params.fade_max_frames) + 1
            ramps = [(i - start, float(luma[start])), (end - j, float(luma[end - 1]))]
            if start > 0 and end < n and any(k >= MIN_FADE_FRAMES and top >= FADE_MIN_TOP for k, top in ramps):
                found.append(Boundary.gradual(start, end, "fade"))
            i = j
        return found

    @staticmethod
    def _progress(thumbs: np.ndarray, a: int, b: int) -> np.ndarray:
        """For frames a..b: how far each is from frame a towards frame b (0 = like a, 1 = like b)."""
        first, last = thumbs[a].astype(np.float32), thumbs[b].astype(np.float32)
        segment = thumbs[a: b + 1].astype(np.float32)
        to_first = np.abs(segment - first).mean(axis=(1, 2, 3))
        to_last = np.abs(segment - last).mean(axis=(1, 2, 3))
        return to_first / np.maximum(to_first + to_last, 1e-6)

    @classmethod
    def _span(cls, thumbs: np.ndarray, a: int, b: int) -> Boundary:
        """The frames between the two shots. The middle is where the progress from frame a to frame b
        passes 50 %; around it, the narrowest window holding 85 % of the change (motion inside the shots
        would otherwise widen the span); inside that, the frames whose progress is between 15 % and 85 %."""
        def change(x: int, y: int) -> float:
            return float(np.abs(thumbs[x].astype(np.int16) - thumbs[y].astype(np.int16)).mean())

        middle = np.flatnonzero(cls._progress(thumbs, a, b) >= 0.5)
        centre = a + int(middle[0]) if len(middle) else (a + b) // 2
        full = change(a, b)
        for half in range(2, max(centre - a, b - centre) + 1):
            x, y = max(a, centre - half), min(b, centre + half)
            if change(x, y) >= 0.85 * full:
                a, b = x, y
                break
        progress = cls._progress(thumbs, a, b)
        started = np.flatnonzero(progress > 0.15)
        done = np.flatnonzero(progress >= 0.85)
        middle = np.flatnonzero(progress >= 0.5)
        start = a + int(started[0]) if len(started) else a + 1
        end = max(a + int(done[0]) if len(done) else b, start + 1)
        centre = a + int(middle[0]) if len(middle) else centre
        return Boundary("gradual", min(max(centre, start), end - 1), start, end)

    def _merge(self, boundaries: list[Boundary], luma: np.ndarray) -> list[Boundary]:
        p = self.params
        out: list[Boundary] = []
        for b in sorted(boundaries, key=lambda x: (x.start, x.end)):
            if out:
                prev = out[-1]
                between = luma[prev.end: b.start] if b.start > prev.end else luma[0:0]
                if b.start - prev.end <= p.merge_gap or (len(between) and float(between.max()) < p.dark_level):
                    start, end = prev.start, max(prev.end, b.end)
                    out[-1] = Boundary("gradual", (start + end) // 2, start, end) if end > start else prev
                    continue
            out.append(b)
        if p.min_scene_len > 0:
            kept: list[Boundary] = []
            for b in out:
                if not kept or b.frame - kept[-1].frame >= p.min_scene_len:
                    kept.append(b)
            out = kept
        return out
