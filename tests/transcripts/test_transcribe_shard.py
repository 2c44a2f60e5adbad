"""Which videos of a shard are transcribed, what is reused, and what rows come out (a counting fake model,
so the reuse and skip rules are checked exactly; the real model is exercised in test_asr/test_asset)."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.models.base import ModelSpec
from panda_dagster.lib.records import Cue
from panda_dagster.lib.transcripts.audio import SAMPLE_RATE, AudioError
from panda_dagster.lib.transcripts.cues import Segment
from panda_dagster.lib.transcripts.shard import TranscriptsConfig, VideoAudio, transcribe_shard
from panda_dagster.lib.transcripts.whisper import Recognition

SPEC = ModelSpec("Systran/faster-whisper-tiny.en", "pypi:x==1", True, "faster-whisper")


class CountingAsr:
    spec, trained, label = SPEC, True, SPEC.label

    def __init__(self):
        self.calls = 0

    def transcribe(self, audio, options=None):
        self.calls += 1
        if len(audio) == 1:
            raise RuntimeError("decoder exploded")
        return Recognition([Segment(0.5, 1.0, "hello there."), Segment(1.2, 1.9, "general")], "en", 0.99,
                           len(audio) / SAMPLE_RATE, 1.2, 3)


def audio_loader(path):
    return {"/speech.mp4": np.zeros(2 * SAMPLE_RATE, np.float32), "/none.mp4": None,
            "/boom.mp4": np.zeros(1, np.float32)}.get(path) if path != "/broken.mp4" else (_ for _ in ()).throw(
        AudioError("does not decode"))


VIDEOS = [VideoAudio("speech", "/speech.mp4", True), VideoAudio("subs", "/speech.mp4", True),
          VideoAudio("mute", "/mute.mp4", False), VideoAudio("none", "/none.mp4", True),
          VideoAudio("broken", "/broken.mp4", True), VideoAudio("boom", "/boom.mp4", True)]
SUBTITLES = [Cue(0.0, 1.0, "a subtitle", video_id="subs", shard="s", source="subtitle")]


def _run(model, config=None, previous=None, counter=None):
    counter = counter if counter is not None else []
    return transcribe_shard(
        "s", VIDEOS, SUBTITLES + (previous.cues if previous else []), config or TranscriptsConfig(),
        model_spec=lambda: counter.append("spec") or SPEC, load_model=lambda: counter.append("load") or model,
        existing_transcripts=previous.transcripts if previous else (),
        existing_cues=previous.cues if previous else (), audio_loader=audio_loader)


def test_rows_per_video_cues_in_part_asr_and_statuses():
    model = CountingAsr()
    result = _run(model)
    status = {t.video_id: t.status for t in result.transcripts}
    assert status == {"speech": "ok", "subs": "skipped_subtitles", "mute": "no_audio", "none": "no_audio",
                      "broken": "failed", "boom": "failed"}
    assert [(c.video_id, c.cue_index, c.text, c.source, c.origin) for c in result.cues] == [
        ("speech", 0, "hello there.", "asr", SPEC.model_id), ("speech", 1, "general", "asr", SPEC.model_id)]
    ok = next(t for t in result.transcripts if t.video_id == "speech")
    assert (ok.language, ok.n_cues, ok.n_words, ok.trained, ok.revision) == ("en", 2, 3, True, "pypi:x==1")
    assert "RuntimeError: decoder exploded" in next(t.reason for t in result.transcripts if t.video_id == "boom")
    assert model.calls == 2 and result.n_transcribed == 1


def test_a_rerun_reuses_same_model_revision_and_settings_and_retries_failures():
    first = _run(CountingAsr())
    model, counter = CountingAsr(), []
    again = _run(model, previous=first, counter=counter)
    assert model.calls == 1 and again.n_reused == 1  # only `boom` is retried; `broken` fails at decoding
    assert [c.text for c in again.cues] == ["hello there.", "general"]
    changed = _run(CountingAsr(), TranscriptsConfig(beam_size=1), previous=first)
    assert changed.n_transcribed == 1 and changed.n_reused == 0  # other settings: redone


def test_a_shard_without_videos_to_transcribe_never_looks_for_the_model():
    counter = []
    result = transcribe_shard("s", [VIDEOS[1], VIDEOS[2]], SUBTITLES, TranscriptsConfig(),
                              model_spec=lambda: counter.append("spec"), load_model=lambda: counter.append("load"),
                              audio_loader=audio_loader)
    assert counter == [] and {t.status for t in result.transcripts} == {"skipped_subtitles", "no_audio"}


def test_force_transcribes_subtitled_videos_too():
    result = _run(CountingAsr(), TranscriptsConfig(force=True))
    assert {t.video_id for t in result.transcripts if t.status == "ok"} == {"speech", "subs"}


def test_a_model_that_does_not_load_stops_the_shard():
    def broken():
        raise RuntimeError("weights missing")

    with pytest.raises(RuntimeError, match="weights missing"):
        transcribe_shard("s", VIDEOS, SUBTITLES, TranscriptsConfig(), model_spec=lambda: SPEC, load_model=broken,
                         audio_loader=audio_loader)


def test_bad_settings_fail_when_the_config_is_made():
    with pytest.raises(ValueError, match="beam_size"):
        TranscriptsConfig(beam_size=0)


def test_videos_recognised_in_parallel_keep_the_shard_order_and_are_each_checkpointed():
    import threading
    import time

    class ParallelAsr(CountingAsr):
        parallel_calls = 3

        def __init__(self):
            super().__init__()
            self.threads = set()

        def transcribe(self, audio, options=None):
            self.threads.add(threading.current_thread().name)
            time.sleep(0.05)
            return super().transcribe(audio, options)

    videos = [VideoAudio(f"v{k}", "/speech.mp4", True) for k in range(6)]
    saved: list[str] = []
    model = ParallelAsr()
    result = transcribe_shard("s", videos, [], TranscriptsConfig(), model_spec=lambda: SPEC, load_model=lambda: model,
                              audio_loader=audio_loader, on_video=lambda row, cues: saved.append(row.video_id))
    assert [t.video_id for t in result.transcripts] == [v.video_id for v in videos]
    assert [c.video_id for c in result.cues] == [v.video_id for v in videos for _ in range(2)]
    assert sorted(saved) == sorted(v.video_id for v in videos) and result.n_transcribed == 6
    assert len(model.threads) == 3
