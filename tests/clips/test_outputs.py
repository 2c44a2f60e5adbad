"""Clip files, key frames and the `clips` catalog table."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.video.cutting import cut_clip
from panda_dagster.lib.video.keyframes import encode_jpeg, pick_keyframes
from panda_dagster.lib.video.split import SplitConfig, split_video


def _probe(path):
    import av

    with av.open(str(path)) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    return len(times), times


def test_reencoded_clip_is_frame_exact_and_copy_starts_on_a_keyframe(long_shot_video, tmp_path):
    result = split_video(long_shot_video.path, SplitConfig(stitch=False))
    keyframe_times = result.decoded.times_s[result.decoded.keyframes].tolist()
    exact = cut_clip(long_shot_video.path, tmp_path / "exact.mp4", 3.0, 7.0, "reencode")
    n, _ = _probe(exact.path)
    assert abs(n - 80) <= 1  # 4 s at 20 fps
    copied = cut_clip(long_shot_video.path, tmp_path / "copy.mp4", 3.0, 9.5, "copy", keyframe_times)
    assert copied.start_s in keyframe_times and copied.start_s >= 3.0
    n, _ = _probe(copied.path)
    # A stream copy ends on packet boundaries: a few frames of slack at the end, none at the start.
    assert 0 <= n - round((9.5 - copied.start_s) * 20) <= 4
    # No keyframe inside the span: falls back to an exact re-encode rather than starting early.
    fallback = cut_clip(long_shot_video.path, tmp_path / "fallback.mp4", 0.5, 1.5, "copy", [0.0, 2.0])
    assert fallback.mode == "reencode" and fallback.start_s == 0.5


def test_keyframes_spread_inside_the_clip():
    samples = list(range(0, 200, 10))
    picked = pick_keyframes(samples, 40, 100, 3)
    assert [samples[p] for p in picked] == [50, 70, 90]
    assert pick_keyframes(samples, 41, 49, 3) == []
    assert len(pick_keyframes(samples, 40, 52, 3)) == 2  # duplicates removed
    jpeg = encode_jpeg(np.full((24, 32, 3), 200, np.uint8))
    assert jpeg[:2] == b"\xff\xd8"


def test_clip_records_round_trip_through_the_catalog(panda_home):
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.ids import clip_id
    from panda_dagster.lib.video.records import ClipRecord

    rows = [ClipRecord(clip_id("vid", 1.0, 4.0), "vid", "shard-1", 1.0, 4.0, 25, 100, "stitched", 2, "content",
                       None, ["/a/k0.jpg", "/a/k1.jpg"], None, 0.21, "tiny")]
    catalog = Catalog(panda_home)
    catalog.replace_shard("clips", "shard-1", rows)
    catalog.replace_shard("clips", "shard-1", rows)  # idempotent
    frame = catalog.query("SELECT clip_id, keyframe_uris, split_quality FROM clips")
    assert len(frame) == 1 and list(frame.keyframe_uris[0]) == ["/a/k0.jpg", "/a/k1.jpg"]
    assert frame.split_quality[0] == pytest.approx(0.21)
