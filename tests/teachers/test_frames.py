"""Frame sampling on real decoded video: sampled frames, stored key frames, the prefetch thread."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.teachers import frames as frames_mod
from panda_dagster.lib.teachers.frames import (
    FrameError,
    interleave_runs,
    load_keyframes,
    pick_evenly,
    prefetch,
    sample_video_frames,
)

COLOURS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "white": (255, 255, 255), "black": (0, 0, 0)}
ORDER = ["red", "green", "blue", "yellow", "white", "black"]


def _close(image, colour, tol=40):
    mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    return np.abs(mean - np.array(COLOURS[colour])).max() < tol


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_sampled_frames_show_the_content_at_their_timestamps(colour_video, backend, monkeypatch):
    if backend == "decord":  # the fallback, where PyAV fails
        monkeypatch.setattr(frames_mod, "_ForwardReader", lambda *a: (_ for _ in ()).throw(RuntimeError("off")))
    times = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    images = sample_video_frames(str(colour_video), times, max_side=64)
    assert len(images) == 6 and all(im.size == (64, 48) for im in images)
    for image, colour in zip(images, ORDER):
        assert _close(image, colour), colour


def test_one_open_serves_times_out_of_order_by_seeking(colour_video):
    """Forward decoding from one open: a time behind the position seeks back, one more than
    SEEK_AHEAD_S ahead seeks forward; either way the frame shows that second's colour."""
    from panda_dagster.lib.teachers.frames import SEEK_AHEAD_S, VideoFrameSampler

    assert 4.5 - 0.5 > SEEK_AHEAD_S
    with VideoFrameSampler(max_side=64) as sampler:
        for times in ([0.5], [4.5, 5.5], [1.5], [2.5, 3.5]):
            images = sampler.sample(str(colour_video), times)
            assert [_close(im, ORDER[int(t)]) for im, t in zip(images, times)] == [True] * len(times), times
        assert sampler.opens == 1


def test_undecodable_video_raises_frame_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(FrameError):
        sample_video_frames(str(bad), [0.5])


def test_keyframes_are_loaded_from_stored_jpegs(clip_fixture):
    clips, _, _ = clip_fixture
    images = load_keyframes(clips[1].keyframe_uris, 2)
    assert [im.mode for im in images] == ["RGB", "RGB"]
    assert _close(images[0], "blue") and _close(images[1], "yellow")
    with pytest.raises(FrameError, match="no stored key frames"):
        load_keyframes([], 1)
    with pytest.raises(FrameError, match="unreadable"):
        load_keyframes(["/nonexistent/k.jpg"], 1)


def test_pick_evenly():
    assert pick_evenly([1, 2, 3, 4, 5], 1) == [3]
    assert pick_evenly([1, 2, 3, 4], 2) == [2, 4]
    assert pick_evenly([1, 2], 5) == [1, 2]


def test_prefetch_keeps_order_and_hands_back_errors():
    def load(x):
        if x == 2:
            raise ValueError("boom")
        return x * x

    out = list(prefetch([1, 2, 3, 4], load, depth=2))
    assert [x for x, _ in out] == [1, 2, 3, 4]
    assert out[0][1] == 1 and isinstance(out[1][1], ValueError) and out[3][1] == 16


def test_interleave_runs_gives_each_thread_one_contiguous_run():
    items = list(range(7))
    mixed = interleave_runs(items, 2)
    assert sorted(mixed) == items
    assert mixed[0::2] == [0, 1, 2, 3] and mixed[1::2] == [4, 5, 6]  # item i runs on thread i % 2
    for n, runs in ((7, 3), (10, 4), (5, 4), (3, 5)):
        mixed = interleave_runs(list(range(n)), runs)
        assert sorted(mixed) == list(range(n))
        for lane in range(runs):  # each thread's items are one contiguous, increasing run
            mine = mixed[lane::runs]
            assert mine == list(range(mine[0], mine[0] + len(mine))) if mine else True
    assert interleave_runs(items, 1) == items and interleave_runs([1], 3) == [1]


def test_prefetch_with_threads_keeps_order_and_loads_each_run_on_its_own_thread():
    import threading
    import time

    threads: dict[int, str] = {}
    running, most = [0], [0]
    lock = threading.Lock()

    def load(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        threads[x] = threading.current_thread().name
        with lock:
            running[0] -= 1
        return -x

    items = interleave_runs(list(range(8)), 2)
    out = list(prefetch(items, load, depth=1, workers=2))
    assert [x for x, _ in out] == items and all(r == -x for x, r in out)
    assert most[0] == 2  # two loads at once
    assert len({threads[x] for x in range(4)}) == 1 and len({threads[x] for x in range(4, 8)}) == 1
    assert threads[0] != threads[4]
