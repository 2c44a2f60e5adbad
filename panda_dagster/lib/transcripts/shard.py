"""Transcribe the videos of one shard: which videos need speech recognition, what a previous run already
did, and the rows to write (cues for `subtitles` part `asr`, one `transcripts` row per video).

The `transcripts` asset is a thin wrapper around `transcribe_catalog_shard`. Incremental: a video whose
previous transcript came from the same model id + revision with the same recognition settings keeps its
cues; a failed one is retried; a video recognised by a run that was killed before the end is not redone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.models.base import ModelSpec
from panda_dagster.lib.records import CUE_SOURCE_ASR, CUE_SOURCE_SUBTITLE, Cue
from panda_dagster.lib.transcripts import records as status
from panda_dagster.lib.transcripts.audio import SAMPLE_RATE, AudioError, load_audio
from panda_dagster.lib.transcripts.records import Transcript
from panda_dagster.lib.transcripts.whisper import AsrOptions, WhisperAsr


@dataclass
class TranscriptsConfig:
    """Which videos are transcribed and how (the Dagster config of `transcripts` is generated from this)."""

    force: bool = field(default=False, metadata={
        "help": "Also transcribe videos that have subtitles (their ASR cues are stored next to the subtitles)"})
    language: str = field(default="", metadata={
        "help": "Language code to force (e.g. 'de'); empty = detect per video (English-only models: 'en')"})
    beam_size: int = field(default=5, metadata={"help": "Beam width of the decoder (1 = greedy, faster)"})
    vad_filter: bool = field(default=True, metadata={
        "help": "Drop non-speech audio with Silero VAD before recognition (fewer hallucinations in music/silence)"})
    word_timestamps: bool = field(default=True, metadata={
        "help": "Word-level timestamps; cues are then cut at pauses and sentence ends"})
    max_cue_s: float = field(default=4.0, metadata={"help": "Longest cue made from words, seconds"})
    max_cue_words: int = field(default=12, metadata={"help": "Most words in one cue"})
    max_gap_s: float = field(default=0.8, metadata={"help": "A pause longer than this starts a new cue"})

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.max_cue_s <= 0 or self.max_cue_words < 1 or self.max_gap_s < 0:
            raise ValueError("max_cue_s must be > 0, max_cue_words >= 1, max_gap_s >= 0")

    def options(self) -> AsrOptions:
        return AsrOptions(language=self.language, beam_size=self.beam_size, vad_filter=self.vad_filter,
                          word_timestamps=self.word_timestamps, max_cue_s=self.max_cue_s,
                          max_cue_words=self.max_cue_words, max_gap_s=self.max_gap_s)


def options_sha(options: AsrOptions) -> str:
    return hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class VideoAudio:
    """What the stage needs to know about a video."""

    video_id: str
    local_path: str
    has_audio: bool
    duration_s: float | None = None  # probed at ingest: the longest videos are recognised first


@dataclass
class ShardTranscripts:
    cues: list[Cue]  # part `asr` of `subtitles` for the shard
    transcripts: list[Transcript]  # one per video
    n_transcribed: int  # videos run through the model now
    n_reused: int  # videos whose previous transcript was kept
    model_label: str = ""
    seconds: float = 0.0

    def count(self, which: str) -> int:
        return sum(1 for t in self.transcripts if t.status == which)


def transcribe_shard(
    shard: str,
    videos: Iterable[VideoAudio],
    subtitle_cues: Iterable[Cue],
    config: TranscriptsConfig,
    model_spec: Callable[[], ModelSpec],
    load_model: Callable[[], WhisperAsr],
    *,
    existing_transcripts: Iterable[Transcript] = (),
    existing_cues: Iterable[Cue] = (),
    audio_loader: Callable[[str], object] = load_audio,
    progress: Callable[[str], None] | None = None,
    on_video: Callable[[Transcript, list[Cue]], None] | None = None,
) -> ShardTranscripts:
    """Cues and transcript rows for every video of the shard.

    `model_spec()` says which weights `load_model()` would give without loading them; it is called only
    when some video needs ASR, and `load_model()` only when some video is not already transcribed, so a
    shard of subtitled or already transcribed videos never loads (or even looks for) the model. Either
    raising is a configuration problem and propagates; a video whose audio or recognition fails gets a
    `failed` row (retried by the next run). `on_video(row, cues)` gets every video recognised now, as
    soon as it is done (the caller checkpoints it).
    """
    started = time.perf_counter()
    options = config.options()
    settings = options_sha(options)
    videos = list(videos)
    with_subtitles = {c.video_id for c in subtitle_cues if c.source == CUE_SOURCE_SUBTITLE}
    needs_asr = [v for v in videos if v.has_audio and (config.force or v.video_id not in with_subtitles)]
    spec = model_spec() if needs_asr else None
    model_id, revision = (spec.model_id, spec.revision) if spec else ("", "")
    previous = {t.video_id: t for t in existing_transcripts
                if (t.model_id, t.revision, t.settings_sha) == (model_id, revision, settings)
                and t.status in (status.OK, status.NO_SPEECH)}
    old_cues: dict[str, list[Cue]] = {}
    for cue in existing_cues:
        if cue.source == CUE_SOURCE_ASR:
            old_cues.setdefault(cue.video_id, []).append(cue)

    rows: dict[int, Transcript] = {}  # by the video's position, so the rows keep the shard's order
    cues_at: dict[int, list[Cue]] = {}
    todo: list[tuple[int, VideoAudio, dict]] = []
    n_reused = 0
    for position, video in enumerate(videos):
        base = dict(video_id=video.video_id, shard=shard, model_id=model_id, revision=revision, settings_sha=settings)
        if video.video_id in with_subtitles and not config.force:
            rows[position] = Transcript(**base, status=status.SKIPPED, reason="has subtitles (set force to transcribe)")
        elif not video.has_audio:
            rows[position] = Transcript(**base, status=status.NO_AUDIO, reason="no audio stream")
        elif video.video_id in previous:
            rows[position] = Transcript(**{**previous[video.video_id].__dict__, "shard": shard})
            cues_at[position] = [Cue(**{**c.__dict__, "shard": shard}) for c in old_cues.get(video.video_id, [])]
            n_reused += 1
        else:
            todo.append((position, video, base))

    n_done = 0
    if todo:
        model = load_model()  # a model that does not load raises: the caller stops the step

        def recognise(item: tuple[int, VideoAudio, dict]) -> tuple[Transcript, list[Cue]]:
            _, video, base = item
            return _recognise(video, base, model, options, audio_loader, shard, model_id)

        # Several videos at once where the model takes concurrent calls (audio decoding, voice-activity
        # detection and the decoder all release the GIL); the longest videos first, so none is left alone
        # at the end.
        workers = min(len(todo), max(1, int(getattr(model, "parallel_calls", 1))))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asr") as pool:
            longest_first = sorted(todo, key=lambda item: item[1].duration_s or 0.0, reverse=True)
            futures = {pool.submit(recognise, item): item for item in longest_first}
            for future in as_completed(futures):
                position, video, _ = futures[future]
                row, video_cues = future.result()
                rows[position], cues_at[position] = row, video_cues
                if row.status in (status.FAILED, status.NO_AUDIO):  # retried by the next run
                    continue
                if on_video is not None:
                    on_video(row, video_cues)
                n_done += 1
                if progress:
                    progress(f"asr {model_id}: video {n_done}/{len(todo)} {video.video_id}: {len(video_cues)} cues, "
                             f"language {row.language}")
    cues = [cue for position in sorted(cues_at) for cue in cues_at[position]]
    transcripts = [rows[position] for position in sorted(rows)]
    label = spec.label if spec is not None else "none (no video needed ASR)"
    return ShardTranscripts(cues, transcripts, n_done, n_reused, label, time.perf_counter() - started)


def _recognise(video: VideoAudio, base: dict, model: WhisperAsr, options: AsrOptions,
               audio_loader: Callable[[str], object], shard: str, model_id: str) -> tuple[Transcript, list[Cue]]:
    """One video's transcript row and cues; its audio or the model failing is a `failed` row."""
    t0 = time.perf_counter()
    try:
        audio = audio_loader(video.local_path)
    except AudioError as exc:
        return Transcript(**base, status=status.FAILED, reason=f"audio: {str(exc)[:300]}"), []
    if audio is None:
        return Transcript(**base, status=status.NO_AUDIO, reason="no audio stream found when decoding"), []
    try:
        result = model.transcribe(audio, options)
    except Exception as exc:  # noqa: BLE001  the model raised on this audio: one video, not the shard
        return Transcript(**base, status=status.FAILED, reason=f"{type(exc).__name__}: {str(exc)[:300]}"), []
    video_cues = [Cue(seg.start_s, seg.end_s, seg.text, video_id=video.video_id, shard=shard, cue_index=index,
                      source=CUE_SOURCE_ASR, origin=model_id) for index, seg in enumerate(result.cues)]
    row = Transcript(
        **base, status=status.OK if result.cues else status.NO_SPEECH,
        reason=None if result.cues else ("no speech found by voice-activity filtering" if result.speech_s == 0
                                         else "no words recognised"),
        language=result.language, language_probability=result.language_probability, n_cues=len(result.cues),
        n_words=result.n_words, duration_s=result.duration_s if result.duration_s else round(len(audio) / SAMPLE_RATE, 3),
        speech_s=result.speech_s, latency_ms=round((time.perf_counter() - t0) * 1000, 1),
        trained=model.trained, models_label=model.label)
    return row, video_cues


def transcribe_catalog_shard(
    shard: str,
    catalog: Catalog,
    config: TranscriptsConfig,
    model_spec: Callable[[], ModelSpec],
    load_model: Callable[[], WhisperAsr],
    *,
    progress: Callable[[str], None] | None = None,
) -> ShardTranscripts:
    """`transcribe_shard` over the catalog's rows of `shard`, then its `subtitles` part `asr` and its
    `transcripts` rows replaced. Every video recognised is checkpointed at once, so a run after a crash
    reuses it (checkpointed videos win over the table's older rows)."""
    videos = catalog.rows("videos", shard)
    cues = catalog.rows("subtitles", shard)
    saved_rows = catalog.checkpoint_rows("transcripts", shard)
    saved = {t.video_id: t for t in saved_rows}  # the latest row per video
    saved_cues = _cues_of_saved_rows(catalog.checkpoint_rows("subtitles", shard), saved)
    if progress and saved:
        progress(f"shard {shard}: {len(saved)} videos transcribed by an earlier run that did not finish are reused")

    def checkpoint(row: Transcript, video_cues: list[Cue]) -> None:
        catalog.add_checkpoint("subtitles", shard, video_cues)  # first: a row without its cues is never saved
        catalog.add_checkpoint("transcripts", shard, [row])

    result = transcribe_shard(
        shard, [VideoAudio(v.video_id, v.local_path, v.probe.has_audio, v.probe.duration_s) for v in videos], cues,
        config,
        model_spec=model_spec, load_model=load_model,
        existing_transcripts=[t for t in catalog.rows("transcripts", shard) if t.video_id not in saved] + saved_rows,
        existing_cues=[c for c in cues if c.video_id not in saved] + saved_cues,
        progress=progress, on_video=checkpoint)
    catalog.replace_shard("subtitles", shard, result.cues, part=CUE_SOURCE_ASR)
    catalog.replace_shard("transcripts", shard, result.transcripts)
    catalog.clear_checkpoint("subtitles", shard)
    catalog.clear_checkpoint("transcripts", shard)
    return result


def _cues_of_saved_rows(cues: list[Cue], rows: dict[str, Transcript]) -> list[Cue]:
    """The checkpointed cues that belong to the checkpointed rows. A video's cues are saved just before its
    row, so they are its last `n_cues` cues; earlier ones are from a run killed in between."""
    by_video: dict[str, list[Cue]] = {}
    for cue in cues:
        by_video.setdefault(cue.video_id, []).append(cue)
    out: list[Cue] = []
    for video_id, row in rows.items():
        n = row.n_cues or 0
        out += by_video.get(video_id, [])[-n:] if n else []
    return out

