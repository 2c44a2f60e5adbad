"""Speech recognition for videos that have an audio track but no subtitles.

Whisper through transformers' `automatic-speech-recognition` pipeline (30 s windows, batched, segment or
word timestamps). The transcript is stored as subtitle cues with `source='asr'` (table `asr_subtitles`)
so the narration teacher and the metadata prompts treat it like any subtitle file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from panda_dagster.lib.records import SubtitleCue
from panda_dagster.lib.teachers.cleaning import clean_caption
from panda_dagster.lib.teachers.inputs import CueInput, VideoInput
from panda_dagster.lib.teachers.records import AsrTranscript
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.runners import (
    _ensure_transformers_importable,
    _load_pretrained,
    resolve_device,
    resolve_dtype,
    resolved_revision,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
CHUNK_S = 30.0


class AudioError(Exception):
    pass


def load_audio(path: str, sample_rate: int = SAMPLE_RATE):
    """Mono float32 samples of the first audio stream, resampled; None when the file has no audio."""
    import av
    import numpy as np

    try:
        container = av.open(path)
    except Exception as exc:
        raise AudioError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise AudioError(f"audio of {path} does not decode: {exc}") from exc
            log.warning("audio of %s decodes only partly: %s", path, exc)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str


def segments_from_chunks(chunks: Sequence[dict], audio_s: float) -> list[Segment]:
    """Pipeline chunks -> cleaned, time-ordered segments. Whisper sometimes leaves a timestamp out
    (audio cut mid-word): a missing start continues from the previous segment, a missing end runs to the
    next segment's start (or the end of the audio)."""
    segments: list[Segment] = []
    raw = []
    for chunk in chunks:
        start, end = (chunk.get("timestamp") or (None, None))
        text = clean_caption(chunk.get("text") or "").caption
        if text:
            raw.append([start, end, text])
    for i, (start, end, text) in enumerate(raw):
        if start is None:
            start = segments[-1].end_s if segments else 0.0
        if end is None:
            nxt = raw[i + 1][0] if i + 1 < len(raw) else None
            end = nxt if nxt is not None else min(audio_s, start + CHUNK_S)
        start = max(0.0, min(float(start), audio_s))
        end = max(start, min(float(end), audio_s))
        if end - start < 0.01:
            end = min(audio_s, start + 0.01) if audio_s > start else start
        segments.append(Segment(round(start, 3), round(end, 3), text))
    return segments


def group_words(words: Sequence[Segment], max_s: float = 4.0, max_words: int = 12, max_gap_s: float = 0.8) -> list[Segment]:
    """Word timestamps -> subtitle-sized cues: a new cue after a pause, a sentence end, or when the
    current one gets long."""
    cues: list[Segment] = []
    current: list[Segment] = []

    def flush():
        if current:
            cues.append(Segment(current[0].start_s, current[-1].end_s, " ".join(w.text for w in current)))
            current.clear()

    for word in words:
        if current and (word.start_s - current[-1].end_s > max_gap_s or word.end_s - current[0].start_s > max_s
                        or len(current) >= max_words):
            flush()
        current.append(word)
        if word.text.endswith((".", "?", "!")):
            flush()
    flush()
    return cues


class AsrRunner:
    """One loaded Whisper model behind the speech-recognition pipeline."""

    def __init__(self, spec: TeacherSpec, device: str = "auto"):
        _ensure_transformers_importable()
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(spec.dtype, self.device)
        self.revision = resolved_revision(spec)
        processor = _load_pretrained(spec, AutoProcessor)
        model = _load_pretrained(spec, AutoModelForSpeechSeq2Seq, dtype=self.dtype).to(self.device).eval()
        self.pipe = pipeline(
            "automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor, device=self.device, dtype=self.dtype,
            ignore_warning=True,
        )

    def transcribe(self, audio, language: str | None = None) -> list[Segment]:
        audio_s = len(audio) / SAMPLE_RATE
        if audio_s < 0.1:
            return []
        generate_kwargs = {"max_new_tokens": self.spec.max_new_tokens, "task": "transcribe"}
        if language:
            generate_kwargs["language"] = language
        generate_kwargs.update(self.spec.generation)
        out = self.pipe(
            {"raw": audio, "sampling_rate": SAMPLE_RATE},
            return_timestamps="word" if self.spec.timestamps == "word" else True,
            chunk_length_s=CHUNK_S, batch_size=self.spec.batch_size, generate_kwargs=generate_kwargs,
        )
        chunks = out.get("chunks") or ([{"timestamp": (0.0, audio_s), "text": out.get("text", "")}])
        segments = segments_from_chunks(chunks, audio_s)
        return group_words(segments) if self.spec.timestamps == "word" else segments


_ASR: dict[tuple, AsrRunner] = {}
_ASR_LOCK = threading.Lock()


def get_asr_runner(spec: TeacherSpec, device: str = "auto") -> AsrRunner:
    key = (spec.model_id, spec.revision, spec.dtype, resolve_device(device))
    with _ASR_LOCK:
        runner = _ASR.get(key)
        if runner is None:
            runner = _ASR[key] = AsrRunner(spec, device)
    runner.spec = spec
    return runner


def videos_needing_asr(videos: Iterable[VideoInput], subtitle_cues: Iterable[CueInput]) -> list[VideoInput]:
    """Videos with an audio track and no subtitle cues (file or inline)."""
    with_subs = {c.video_id for c in subtitle_cues if c.source != "asr"}
    return [v for v in videos if v.has_audio and v.video_id not in with_subs]


@dataclass
class AsrResult:
    cues: list[SubtitleCue]
    transcripts: list[AsrTranscript]
    n_transcribed: int  # videos run through the model now (the rest came from the previous run)


def transcribe_shard(
    shard: str,
    spec: TeacherSpec,
    videos: Iterable[VideoInput],
    subtitle_cues: Iterable[CueInput],
    *,
    existing_cues: Iterable[SubtitleCue] = (),
    existing_transcripts: Iterable[AsrTranscript] = (),
    runner_factory: Callable[[TeacherSpec], AsrRunner] | None = None,
    audio_loader: Callable[[str], object] = load_audio,
    progress: Callable[[str], None] | None = None,
) -> AsrResult:
    """ASR cues for every video of the shard that has audio but no subtitles; a video already
    transcribed by the same model + revision keeps its previous cues."""
    runner_factory = runner_factory or get_asr_runner
    revision = resolved_revision(spec)
    previous = {t.video_id: t for t in existing_transcripts
                if t.model_id == spec.model_id and t.revision == revision and t.status != "failed"}
    old_cues: dict[str, list[SubtitleCue]] = {}
    for cue in existing_cues:
        old_cues.setdefault(cue.video_id, []).append(cue)
    cues: list[SubtitleCue] = []
    transcripts: list[AsrTranscript] = []
    todo = videos_needing_asr(videos, subtitle_cues)
    n_done = 0
    runner = None
    for i, video in enumerate(todo):
        if video.video_id in previous:
            t = previous[video.video_id]
            transcripts.append(AsrTranscript(**{**t.__dict__, "shard": shard}))
            cues.extend(SubtitleCue(**{**c.__dict__, "shard": shard}) for c in old_cues.get(video.video_id, []))
            continue
        started = time.perf_counter()
        try:
            audio = audio_loader(video.local_path)
            if audio is None:
                raise AudioError("no audio stream")
            runner = runner or runner_factory(spec)
            segments = runner.transcribe(audio)
        except Exception as exc:
            if runner is None and not isinstance(exc, AudioError):
                raise  # the model itself did not load: a configuration problem, not a bad video
            transcripts.append(AsrTranscript(video.video_id, shard, spec.model_id, revision, 0, "failed",
                                             f"{type(exc).__name__}: {str(exc)[:300]}"))
            continue
        audio_s = len(audio) / SAMPLE_RATE
        for index, seg in enumerate(segments):
            cues.append(SubtitleCue(video.video_id, shard, index, seg.start_s, seg.end_s, seg.text, "asr"))
        transcripts.append(AsrTranscript(
            video.video_id, shard, spec.model_id, runner.revision, len(segments),
            "ok" if segments else "no_speech", None if segments else "no speech recognised",
            round(audio_s, 3), round((time.perf_counter() - started) * 1000, 1),
        ))
        n_done += 1
        if progress:
            progress(f"asr {spec.model_id}: {i + 1}/{len(todo)} videos, {len(segments)} cues for {video.video_id}")
    return AsrResult(cues, transcripts, n_done)


def asr_cues_as_inputs(cues: Iterable[SubtitleCue]) -> list[CueInput]:
    return [CueInput(c.video_id, c.start_s, c.end_s, c.text, c.source) for c in cues]
