"""Stitching, long-shot splitting, narration merging and cut scoring on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.video.metrics import score_cuts
from panda_dagster.lib.video.narration import NarrationConfig, narration_clips
from panda_dagster.lib.video.shots import Shot, shots_from_cuts, split_long_shots
from panda_dagster.lib.video.stitching import StitchConfig, stitch_shots
from panda_dagster.lib.subtitles import Cue


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v / np.linalg.norm(v)


def shot(a: float, b: float, fps: float = 10.0) -> Shot:
    return Shot(int(round(a * fps)), int(round(b * fps)), a, b)


def rotate(v: np.ndarray, other: np.ndarray, angle: float) -> np.ndarray:
    """Unit vector at `angle` radians from v towards other (chord distance 2 sin(angle / 2))."""
    o = other - v * float(v @ other)
    o /= np.linalg.norm(o)
    return np.cos(angle) * v + np.sin(angle) * o


def chord(angle: float) -> float:
    return 2 * np.sin(angle / 2)


E = np.eye(6)


def test_adjacent_similar_shots_merge_and_dissimilar_ones_split():
    a0, a1 = E[0], rotate(E[0], E[1], 0.4)  # within-shot drift: distance 0.40
    b0 = rotate(a1, E[2], 0.3)  # close to a's end (0.30 <= 0.6): same event
    b1 = rotate(b0, E[3], 0.4)
    c0, c1 = E[4], rotate(E[4], E[5], 0.5)  # a different scene
    shots = [shot(0, 4), shot(4, 8), shot(8, 12)]
    result = stitch_shots(shots, [a0, b0, c0], [a1, b1, c1], StitchConfig(trim_frac=0.1))
    assert [e.shot_indices for e in result.events] == [[0, 1], [2]]
    first, second = result.events
    assert first.start_s == pytest.approx(0.8) and first.end_s == pytest.approx(7.2)  # 10 % trimmed
    assert second.start_s == pytest.approx(8.4) and second.end_s == pytest.approx(11.6)
    assert result.dropped == []


def test_transition_inside_shot_is_dropped_and_breaks_the_event():
    a0, a1 = E[0], rotate(E[0], E[1], 0.3)
    fade0, fade1 = E[2], E[3]  # start and end look nothing alike: distance sqrt(2) > 1.0
    c0, c1 = rotate(a1, E[4], 0.2), rotate(a1, E[5], 0.5)
    result = stitch_shots([shot(0, 5), shot(5, 6), shot(6, 12)], [a0, fade0, c0], [a1, fade1, c1])
    assert [e.shot_indices for e in result.events] == [[0], [2]]
    assert len(result.dropped) == 1 and result.dropped[0].reason.startswith("transition inside shot")


def test_short_still_and_redundant_events_are_dropped_with_reasons():
    still0, still1 = E[0], rotate(E[0], E[1], 0.05)  # barely changes: still
    b0, b1 = E[2], rotate(E[2], E[3], 0.5)
    c0, c1 = E[4], rotate(E[4], E[5], 0.3)  # too short after trimming
    d0, d1 = rotate(b0, E[0], 0.1), rotate(b1, E[0], 0.1)  # same content as b, later: redundant
    shots = [shot(0, 5), shot(5, 10), shot(10, 12), shot(12, 20)]
    cfg = StitchConfig(stitch_dist=0.05)  # nothing merges: each shot is its own event
    result = stitch_shots(shots, [still0, b0, c0, d0], [still1, b1, c1, d1], cfg)
    assert [e.shot_indices for e in result.events] == [[1]]
    reasons = sorted(d.reason.split(":")[0] for d in result.dropped)
    assert reasons == ["redundant", "still", "too short"]


def test_events_are_capped_at_max_clip_s():
    a0, a1 = E[0], rotate(E[0], E[1], 0.5)
    result = stitch_shots([shot(0, 100)], [a0], [a1], StitchConfig(max_clip_s=60.0))
    (event,) = result.events
    assert event.start_s == pytest.approx(10.0) and event.duration_s == pytest.approx(60.0)


def test_shot_without_embedding_is_dropped():
    result = stitch_shots([shot(0, 5)], [None], [None])
    assert result.events == [] and "no sampled frame" in result.dropped[0].reason


def test_long_shots_split_into_equal_pieces_on_frame_borders():
    times = np.arange(0, 300) / 10.0  # 30 s at 10 fps
    shots = shots_from_cuts([50, 130], times, 30.0)  # 5 s, 8 s, 17 s
    pieces = split_long_shots(shots, times, 30.0, long_shot_s=7.0, max_shot_s=5.0)
    durations = [round(p.duration_s, 3) for p in pieces]
    assert durations == [5.0, 4.0, 4.0, 4.3, 4.2, 4.3, 4.2]  # 17 s -> 4 x 4.25 s, snapped to frames
    assert all(p.duration_s <= 5.0 for p in pieces)
    assert [p.start_frame for p in pieces[1:]] == [p.end_frame for p in pieces[:-1]]
    assert pieces[-1].end_frame == 300 and pieces[-1].end_s == 30.0


def test_narration_merges_cues_until_long_or_wordy_enough():
    cues = [Cue(0.0, 1.0, "first we take"), Cue(1.1, 2.0, "the bowl"), Cue(2.1, 4.5, "and add the flour"),
            Cue(5.0, 6.0, "now whisk the eggs with a fork until they are smooth and frothy"),
            Cue(20.0, 20.5, "done")]
    result = narration_clips(cues, video_end_s=30.0, config=NarrationConfig(min_time_s=4.0, min_words=12))
    assert [(c.start_s, c.end_s) for c in result.clips] == [(0.0, 4.5), (5.0, 6.0)]
    assert result.clips[0].text == "first we take the bowl and add the flour"
    assert result.clips[0].n_cues == 3
    assert len(result.dropped) == 1 and result.dropped[0][0] == 20.0  # lone short cue after a pause


def test_narration_clamps_to_the_decodable_part():
    cues = [Cue(0.0, 5.0, "a b c"), Cue(8.0, 14.0, "d e f"), Cue(16.0, 20.0, "g h i")]
    result = narration_clips(cues, video_end_s=10.0)
    assert [(c.start_s, c.end_s) for c in result.clips] == [(0.0, 5.0), (8.0, 10.0)]
    assert "after the decodable end" in result.dropped[0][2]


def test_overlapping_rolling_cues_give_clips_that_do_not_overlap():
    # Auto-captions roll: each cue starts before the previous one ends.
    cues = [Cue(0.0, 4.2, "so today we are going"), Cue(4.0, 8.3, "to build a small shelf"),
            Cue(8.1, 12.4, "out of pine boards"), Cue(12.2, 16.0, "and a few screws")]
    result = narration_clips(cues, video_end_s=20.0, config=NarrationConfig(min_time_s=4.0, min_words=50))
    spans = [(c.start_s, c.end_s) for c in result.clips]
    assert spans == [(0.0, 4.2), (4.2, 8.3), (8.3, 16.0)]  # the short last cue joins its neighbour
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_score_cuts_hard_and_gradual():
    score = score_cuts([30, 77, 140, 300], [30, 76, 137], gradual=[(290, 310)], tolerance=2)
    assert (score.tp, score.fp, score.fn) == (3, 1, 1)  # 140 is 3 frames off 137; 300 is inside the dissolve
    strict = score_cuts([30], [30], gradual=[(290, 310)], gradual_required=True)
    assert (strict.tp, strict.fp, strict.fn) == (1, 0, 1)
    assert score_cuts([], []).f1 == 1.0 and score_cuts([5], []).f1 == 0.0


def test_gradual_spans_become_transition_shots_that_stitching_drops():
    from panda_dagster.lib.video.detectors import Boundary
    from panda_dagster.lib.video.shots import shots_from_boundaries

    times = np.arange(100) / 10.0
    boundaries = [Boundary.gradual(40, 52), Boundary.cut(20), Boundary.cut(45), Boundary.gradual(95, 130)]
    kept, shots = shots_from_boundaries(boundaries, times, 10.0)
    # The cut inside the dissolve goes; the span running past the end is clipped to the video.
    assert [(b.kind, b.start, b.end) for b in kept] == [("cut", 20, 20), ("gradual", 40, 52), ("gradual", 95, 100)]
    assert [(s.start_frame, s.end_frame, s.transition) for s in shots] == [
        (0, 20, False), (20, 40, False), (40, 52, True), (52, 95, False), (95, 100, True)]
    vectors = [unit(1, 0, 0)] * len(shots)  # every shot looks the same: only the transitions split events
    result = stitch_shots(shots, vectors, vectors, StitchConfig(trim_frac=0.0, min_clip_s=0.5, still_dist=0.0,
                                                                 redundant_dist=0.0))
    assert [(e.raw_start_s, e.raw_end_s) for e in result.events] == [(0.0, 4.0), (5.2, 9.5)]
    assert sum(d.reason == "gradual transition (detector)" for d in result.dropped) == 2
