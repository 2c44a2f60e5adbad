"""The small grey frames of motion/still: sampled on a 0.25 s grid in one decode per video, or read from
storage where `clips` stored them (then nothing is decoded again)."""

from __future__ import annotations

import numpy as np
from conftest import split_into_inputs


def test_one_decode_per_video_gives_each_clip_its_grid(videos):
    from panda_dagster.lib.filters.frames import ClipSpan, sample_videos

    spans = [ClipSpan("a", 0.0, 2.0), ClipSpan("b", 2.0, 5.5)]
    frames, errors, n_decoded = sample_videos({"v": (str(videos["objects"]), spans)})
    assert errors == {} and n_decoded == 1
    assert len(frames["a"]) == 8 and len(frames["b"]) == 14
    # each kept frame is the first at or after its grid point (25 fps: less than 0.04 s after it)
    grid = 2.0 + 0.25 * np.arange(14)
    assert np.all((frames["b"].times_s >= grid - 1e-6) & (frames["b"].times_s < grid + 0.04))
    height, width = frames["a"].gray.shape[1:]
    assert width == 160 and abs(height - 160 * 240 / 432) <= 2 and frames["a"].gray.dtype == np.uint8


def test_stored_frames_are_used_instead_of_decoding(videos):
    from panda_dagster.lib.filters.frames import MotionFrameSampler, encode_motion_frames, motion_frames_key
    from panda_dagster.lib.filters.run import attach_motion_frames
    from panda_dagster.lib.video.decode import decode_video

    clips, paths = split_into_inputs(videos["pan"])
    sampler = MotionFrameSampler()
    decode_video(str(videos["pan"]), [sampler], sample_fps=1.0)  # what the clips decode pass would feed
    stored = {motion_frames_key(c.shard, c.clip_id): encode_motion_frames(sampler.clip(c.start_s, c.end_s))
              for c in clips}
    n_stored, n_decoded, errors = attach_motion_frames(clips, paths, stored.get)
    assert (n_stored, n_decoded, errors) == (len(clips), 0, {})
    assert all(len(c.motion_frames) >= 4 * c.duration_s - 1 for c in clips)


def test_a_missing_video_is_reported_not_fatal(videos):
    from panda_dagster.lib.filters.registry import FiltersParams
    from panda_dagster.lib.filters.run import MotionFrameSource, filter_shard

    clips, _ = split_into_inputs(videos["objects"])
    result = filter_shard(clips, FiltersParams(enabled=["motion", "quality"]),
                          frames=MotionFrameSource({}, None))
    assert any("no frames for video" in note for note in result.notes)
    assert all(row.motion_camera is None and row.sharpness is not None for row in result.rows)
    assert all(row.keep for row in result.rows)


def test_an_unreadable_key_frame_keeps_the_clip_and_names_the_error(tmp_path):
    from panda_dagster.lib.filters.base import ClipInputs
    from panda_dagster.lib.filters.registry import FiltersParams
    from panda_dagster.lib.filters.run import filter_shard
    from panda_dagster.lib.filters.shard import decode_image, quarantine_rows
    from panda_dagster.lib.storage import read_artifact

    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    clips = [ClipInputs("gone", "v", "s", 0.0, 4.0, 640, 360, keyframe_uris=[str(tmp_path / "missing.jpg")],
                        read_image=lambda uri: decode_image(read_artifact(uri))),
             ClipInputs("broken", "v", "s", 4.0, 8.0, 640, 360, keyframe_uris=[str(tmp_path / "broken.jpg")],
                        read_image=lambda uri: decode_image(read_artifact(uri)))]
    result = filter_shard(clips, FiltersParams(enabled=["quality", "duplicates"]))
    assert "FileNotFoundError" in result.errors["gone"] and "not a decodable image" in result.errors["broken"]
    assert all(row.keep and row.sharpness is None for row in result.rows)
    (first, second) = quarantine_rows(result, {"v": "/videos/v.mp4"}, "s", "clip_filters")
    assert first.uri == "/videos/v.mp4" and first.stage == "clip_filters" and first.action == "kept_partial"


def test_videos_scored_in_parallel_threads_give_the_sequential_rows(videos, monkeypatch):
    import dataclasses
    import threading

    from panda_dagster.lib.filters.registry import CLIP_FILTERS, FILTER_NAMES, FiltersParams
    from panda_dagster.lib.filters.run import MotionFrameSource, filter_shard

    clips, paths = [], {}
    for name in ("objects", "pan", "subtitles", "dark"):
        found, where = split_into_inputs(videos[name])
        clips += found
        paths.update(where)
    threads = set()
    quality = CLIP_FILTERS["quality"]
    original = type(quality).score

    def spying(self, clip, params):
        threads.add(threading.current_thread().name)
        return original(self, clip, params)

    monkeypatch.setattr(type(quality), "score", spying)

    def run(workers):
        keyframes = {c.clip_id: list(c.keyframes) for c in clips}  # scoring releases them
        params = FiltersParams(enabled=[n for n in FILTER_NAMES if n != "duplicates"], workers=workers)
        result = filter_shard(clips, params, frames=MotionFrameSource(paths, None))
        for c in clips:
            c.keyframes = keyframes[c.clip_id]
        return [dataclasses.replace(row, created_at=None) for row in result.rows]

    sequential = run(1)
    assert threads == {threading.current_thread().name}
    threads.clear()
    assert run(2) == sequential
    assert len(threads) == 2 and all(t.startswith("clip-filters") for t in threads)
    # One video's clips only: the thread without a video helps with them.
    clips[:] = [dataclasses.replace(c, video_id="objects") for c in clips]
    threads.clear()
    alone = run(1)
    threads.clear()
    assert run(2) == alone and len(threads) == 2
