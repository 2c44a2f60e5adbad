"""Speech recognition on real audio: faster-whisper with the packaged trained tiny.en.

Word error rates measured on this machine (int8, beam 5, VAD on): espeak-ng speech 0.05-0.10, the 1940
film clip mdn_friday.mp4 against its WebVTT ~0.35 (old recording, overlapping voices, a 39 M-parameter
model; the `default` profile's whisper-small does better). The bounds leave room for CPU rounding noise,
not for a broken pipeline: random text, a wrong sample rate or lost words all give WER > 0.8.
"""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.transcripts.audio import SAMPLE_RATE, load_audio
from panda_dagster.lib.transcripts.cues import Segment, group_words, normalise_words, word_error_rate
from panda_dagster.lib.transcripts.whisper import (
    AsrModelUnavailable,
    AsrOptions,
    WhisperChoice,
    asr_choice,
    load_asr,
    locate,
)

from .conftest import NARRATION


@pytest.fixture(scope="module")
def asr():
    return load_asr("offline", "cpu")


def test_word_error_rate_counts_edits_on_normalised_words():
    assert word_error_rate("Tell me, is the <u>lord</u> in?", "tell me is the Lord in") == 0.0
    assert word_error_rate("a b c d", "a x c") == pytest.approx(0.5)  # one substitution, one deletion
    assert word_error_rate("one two", "1 2 three") == pytest.approx(0.5)  # numbers spelled out; one insertion
    assert normalise_words("He's in - in a bad humor") == ["hes", "in", "in", "a", "bad", "humor"]


def test_word_timestamps_are_grouped_into_subtitle_sized_cues():
    words = [Segment(0.0, 0.3, "so"), Segment(0.3, 0.6, "first"), Segment(0.6, 1.0, "unscrew"), Segment(1.0, 1.4, "it."),
             Segment(1.5, 1.8, "then"), Segment(1.8, 2.0, "pull"), Segment(4.0, 4.4, "finally"), Segment(4.4, 9.0, "done")]
    assert group_words(words, max_s=4.0) == [
        Segment(0.0, 1.4, "so first unscrew it."), Segment(1.5, 2.0, "then pull"), Segment(4.0, 4.4, "finally"),
        Segment(4.4, 9.0, "done")]


def test_audio_is_decoded_to_16k_mono(narrated_video):
    path, spoken = narrated_video
    audio = load_audio(str(path))
    assert audio.dtype == np.float32 and abs(len(audio) / SAMPLE_RATE - 15.0) < 0.2
    rms = lambda a, b: float(np.sqrt(np.mean(audio[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)] ** 2)))  # noqa: E731
    assert rms(spoken[0].start_s, spoken[0].end_s) > 20 * rms(spoken[0].end_s + 0.2, spoken[1].start_s - 0.2) + 1e-6


def test_espeak_speech_is_transcribed_with_low_wer_and_word_aligned_cues(asr, narrated_video):
    path, spoken = narrated_video
    result = asr.transcribe(load_audio(str(path)))
    text = " ".join(c.text for c in result.cues)
    wer = word_error_rate(" ".join(s.text for s in NARRATION), text)
    assert wer <= 0.25, (wer, text)
    assert result.language == "en" and result.language_probability > 0.5
    assert 0 < result.speech_s < result.duration_s  # VAD removed the silences between sentences
    for sentence in spoken:  # each spoken sentence is covered by cues that start and end near it
        inside = [c for c in result.cues if c.end_s > sentence.start_s and c.start_s < sentence.end_s]
        assert inside, sentence
        assert abs(inside[0].start_s - sentence.start_s) < 0.8 and abs(inside[-1].end_s - sentence.end_s) < 0.8
        assert word_error_rate(sentence.text, " ".join(c.text for c in inside)) <= 0.35


@pytest.mark.shared_videos
def test_film_dialogue_wer_against_its_webvtt(asr, shared_videos):
    from panda_dagster.lib.subtitles import parse_subtitles

    reference = " ".join(c.text for c in parse_subtitles(shared_videos / "mdn_friday.vtt").cues)
    result = asr.transcribe(load_audio(str(shared_videos / "mdn_friday.mp4")))
    hypothesis = " ".join(c.text for c in result.cues)
    wer = word_error_rate(reference, hypothesis)
    assert wer <= 0.5, (wer, hypothesis)
    assert "crown" in normalise_words(hypothesis) and "universe" in normalise_words(hypothesis)


def test_silence_gives_no_cues(asr):
    result = asr.transcribe(np.zeros(SAMPLE_RATE * 3, np.float32))
    assert result.cues == [] and result.speech_s == 0.0
    assert asr.transcribe(np.zeros(100, np.float32)).cues == []  # shorter than a frame


def test_greedy_without_vad_or_word_timestamps_still_transcribes(asr, narrated_video):
    path, _ = narrated_video
    result = asr.transcribe(load_audio(str(path)), AsrOptions(beam_size=1, vad_filter=False, word_timestamps=False))
    assert word_error_rate(" ".join(s.text for s in NARRATION), " ".join(c.text for c in result.cues)) <= 0.3


def test_every_profile_has_faster_whisper_and_tiny_is_the_packaged_trained_model():
    assert asr_choice("default").model_id == "Systran/faster-whisper-small"
    assert asr_choice("large").model_id == "Systran/faster-whisper-large-v3"
    assert asr_choice("offline").packaged == asr_choice("tiny").packaged == "whisper-tiny.en"
    with pytest.raises(ValueError, match="no ASR model for models profile"):
        asr_choice("nope")


def test_a_real_model_missing_from_the_hf_cache_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(AsrModelUnavailable, match=r"`hf download Systran/faster-whisper-small --revision main`"):
        locate(WhisperChoice("Systran/faster-whisper-small"))


def test_a_cached_hf_snapshot_is_found_with_its_commit_as_revision(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--Systran--faster-whisper-small" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    refs = tmp_path / "hub" / "models--Systran--faster-whisper-small" / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    path, spec = locate(WhisperChoice("Systran/faster-whisper-small"))
    assert path == snapshot and spec.revision == "a" * 40 and spec.trained


def test_parallelism_shares_the_cores_among_concurrent_calls(monkeypatch):
    from panda_dagster.lib import processes
    from panda_dagster.lib.transcripts.whisper import parallelism

    monkeypatch.setattr(processes, "usable_cores", lambda: 8)
    assert parallelism(on_cuda=False) == (4, 2)
    assert parallelism(on_cuda=False, workers=1) == (1, 8)
    assert parallelism(on_cuda=False, cpu_threads=3, workers=2) == (2, 3)
    assert parallelism(on_cuda=True) == (2, 4)
    monkeypatch.setattr(processes, "usable_cores", lambda: 1)
    assert parallelism(on_cuda=False) == (1, 1)
