"""clips mode `given` (lib/video/split.py): spans ingested from a Panda-70M CSV, rounded to milliseconds,
snap back to the frames they were cut at, also where frame times are not whole milliseconds (29.97 fps)."""

from __future__ import annotations

import pytest

from panda_dagster.lib.video.split import SplitConfig, split_video


@pytest.fixture(scope="module")
def ntsc_video(tmp_path_factory):
    from panda_dagster.fixtures.synth import Scene, render_video

    path = tmp_path_factory.mktemp("given") / "ntsc.mp4"
    render_video(path, [Scene(2.7, seed=1), Scene(3.2, seed=2, background="red"), Scene(2.9, seed=3)],
                 fps=30000 / 1001, audio=False)
    return path


def test_millisecond_spans_snap_to_the_original_frames(ntsc_video):
    shots = split_video(ntsc_video, SplitConfig(stitch=False, mode="visual"))
    assert len(shots.clips) >= 2
    rounded = [(round(c.start_s, 3), round(c.end_s, 3)) for c in shots.clips]
    assert any(abs(s - c.start_s) > 1e-6 for (s, _), c in zip(rounded, shots.clips))  # really off-grid
    given = split_video(ntsc_video, SplitConfig(mode="given"), given_spans=rounded)
    assert [(c.start_frame, c.end_frame, c.start_s, c.end_s) for c in given.clips] == [
        (c.start_frame, c.end_frame, c.start_s, c.end_s) for c in shots.clips]
    assert {c.method for c in given.clips} == {"given"} and not given.dropped


def test_spans_outside_the_video_are_dropped_with_a_reason(ntsc_video):
    result = split_video(ntsc_video, SplitConfig(mode="given"), given_spans=[(1.0, 2.0), (50.0, 55.0), (8.5, 99.0)])
    assert [(round(c.start_s, 2), c.end_s == result.duration_s) for c in result.clips] == [(1.0, False), (8.51, True)]
    assert [d.reason for d in result.dropped][0].startswith("given span outside the decoded video")
    none = split_video(ntsc_video, SplitConfig(mode="given"), given_spans=None)
    assert not none.clips and "no given spans" in none.dropped[0].reason
