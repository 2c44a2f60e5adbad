"""Frame sampling and audio/ASR plumbing on real decoded video."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.records import SubtitleCue
from panda_dagster.lib.teachers import frames as frames_mod
from panda_dagster.lib.teachers.asr import (
    SAMPLE_RATE,
    Segment,
    group_words,
    load_audio,
    segments_from_chunks,
    transcribe_shard,
    videos_needing_asr,
)
from panda_dagster.lib.teachers.frames import FrameError, load_keyframes, pick_evenly, prefetch, sample_video_frames
from panda_dagster.lib.teachers.inputs import CueInput, VideoInput
from panda_dagster.lib.teachers.registry import load_registry
from panda_dagster.lib.teachers.runners import tiny_revision

COLOURS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "white": (255, 255, 255), "black": (0, 0, 0)}
ORDER = ["red", "green", "blue", "yellow", "white", "black"]


def _close(image, colour, tol=40):
    mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    return np.abs(mean - np.array(COLOURS[colour])).max() < tol


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_sampled_frames_show_the_content_at_their_timestamps(colour_video, backend, monkeypatch):
    if backend == "pyav":
        monkeypatch.setattr(frames_mod, "_sample_decord", lambda *a: (_ for _ in ()).throw(RuntimeError("off")))
    times = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    images = sample_video_frames(str(colour_video), times, max_side=64)
    assert len(images) == 6 and all(im.size == (64, 48) for im in images)
    for image, colour in zip(images, ORDER):
        assert _close(image, colour), colour


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


def test_audio_is_decoded_to_16k_mono(colour_video, tmp_path):
    audio = load_audio(str(colour_video))
    assert audio.dtype == np.float32 and abs(len(audio) / SAMPLE_RATE - 6.0) < 0.1
    # 440 Hz tone: the spectrum peaks there.
    spectrum = np.abs(np.fft.rfft(audio[SAMPLE_RATE:2 * SAMPLE_RATE]))
    assert abs(np.argmax(spectrum) - 440) <= 2


def test_segments_fill_missing_timestamps_and_clip_to_audio():
    chunks = [
        {"timestamp": (0.0, 2.5), "text": " Hello there. "},
        {"timestamp": (None, 5.0), "text": "second"},
        {"timestamp": (6.0, None), "text": "third"},
        {"timestamp": (8.0, 9.0), "text": "   "},
        {"timestamp": (9.5, 40.0), "text": "last"},
    ]
    assert segments_from_chunks(chunks, audio_s=12.0) == [
        Segment(0.0, 2.5, "Hello there."), Segment(2.5, 5.0, "second"), Segment(6.0, 9.5, "third"),
        Segment(9.5, 12.0, "last"),
    ]


def test_only_videos_with_audio_and_no_subtitles_need_asr():
    videos = [VideoInput("a", "/a.mp4", has_audio=True), VideoInput("b", "/b.mp4", has_audio=True),
              VideoInput("c", "/c.mp4", has_audio=False)]
    cues = [CueInput("b", 0, 1, "hi", "file")]
    assert [v.video_id for v in videos_needing_asr(videos, cues)] == ["a"]


class FakeAsr:
    def __init__(self, spec, calls):
        self.spec, self.calls, self.revision = spec, calls, tiny_revision()

    def transcribe(self, audio):
        self.calls.append(len(audio))
        return [Segment(0.0, 1.0, "hello"), Segment(1.0, 2.0, "world")]


def test_transcribe_shard_stores_asr_cues_and_reuses_them():
    spec = load_registry("tiny").asr
    videos = [VideoInput("a", "/a.mp4", has_audio=True), VideoInput("silent", "/s.mp4", has_audio=True)]
    calls = []

    def audio_loader(path):
        return np.zeros(SAMPLE_RATE * 2, np.float32) if path == "/a.mp4" else None

    first = transcribe_shard("s", spec, videos, [], runner_factory=lambda s: FakeAsr(s, calls),
                             audio_loader=audio_loader)
    assert [(c.video_id, c.cue_index, c.text, c.source) for c in first.cues] == [
        ("a", 0, "hello", "asr"), ("a", 1, "world", "asr")]
    status = {t.video_id: (t.status, t.reason) for t in first.transcripts}
    assert status == {"a": ("ok", None), "silent": ("failed", "AudioError: no audio stream")}
    assert all(isinstance(c, SubtitleCue) for c in first.cues) and first.n_transcribed == 1

    calls.clear()
    again = transcribe_shard("s", spec, videos, [], existing_cues=first.cues, existing_transcripts=first.transcripts,
                             runner_factory=lambda s: FakeAsr(s, calls), audio_loader=audio_loader)
    assert calls == []  # the failed video is retried, but it has no audio: no model call
    assert [c.text for c in again.cues] == ["hello", "world"] and again.n_transcribed == 0


def test_word_timestamps_are_grouped_into_subtitle_sized_cues():
    words = [Segment(0.0, 0.3, "so"), Segment(0.3, 0.6, "first"), Segment(0.6, 1.0, "unscrew"), Segment(1.0, 1.4, "it."),
             Segment(1.5, 1.8, "then"), Segment(1.8, 2.0, "pull"), Segment(4.0, 4.4, "finally"), Segment(4.4, 9.0, "done")]
    assert group_words(words, max_s=4.0) == [
        Segment(0.0, 1.4, "so first unscrew it."), Segment(1.5, 2.0, "then pull"), Segment(4.0, 4.4, "finally"),
        Segment(4.4, 9.0, "done")]
