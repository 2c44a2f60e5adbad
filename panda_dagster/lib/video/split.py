"""The per-video splitting pipeline: decode once -> detect shots -> split long shots -> stitch (or narration
clips) -> split quality and key frames. Library code: no Dagster, no catalog writes (see records.py and
the `clips` asset for those)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from panda_dagster.lib.records import Cue
from panda_dagster.lib.video.decode import DecodedVideo, FrameConsumer, VideoDecodeError, decode_video
from panda_dagster.lib.video.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    Boundary,
    Detection,
    DetectorParams,
    ShotDetector,
    detector_class,
    make_detector,
)
from panda_dagster.lib.video.keyframes import pick_keyframes
from panda_dagster.lib.video.narration import NarrationConfig, narration_clips
from panda_dagster.lib.video.quality import max_running_distance
from panda_dagster.lib.video.shots import Shot, shots_from_boundaries, split_long_shots
from panda_dagster.lib.video.stitching import Dropped, StitchConfig, stitch_shots

EmbedImages = Callable[[list[np.ndarray]], np.ndarray]  # RGB uint8 frames -> (N, D) unit-norm float32
# run_parallel(work, items): work(item) for every item, spread over free threads (`processes.run_with_helpers`)
RunParallel = Callable[[Callable[[Any], None], list], None]

# Where in a shot its two stitching frames sit (fractions of the shot's frames).
SHOT_START_FRAC = 0.05
SHOT_END_FRAC = 0.95
SPLIT_MODES = ("visual", "narration", "both", "auto", "given")
# Given spans (ingested from a Panda-70M CSV) are rounded to milliseconds: snap each to the frame it came from.
GIVEN_SNAP_S = 0.0006
SKIP_LOOP_FILTER = ("none", "noref", "bidir", "all")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class SplitConfig:
    """How videos are split into clips (the `clips` asset's config is generated from this). Defaults are
    Panda-70M's collection values; distances are L2 between unit-norm image embeddings."""

    detector: str = field(default=DEFAULT_DETECTOR, metadata=_help(
        "Shot detector, one of: " + ", ".join(f"{n} ({detector_class(n).summary})" for n in DETECTORS)))
    detectors: DetectorParams = field(default_factory=DetectorParams, metadata=_help(
        "Parameters of each detector (only the chosen one's apply)"))
    # Long shots without a cut are cut into pieces so that stitching can re-join what belongs together.
    long_shot_s: float = field(default=7.0, metadata=_help("Shots longer than this without a cut are split ..."))
    max_shot_s: float = field(default=5.0, metadata=_help("... into equal pieces of at most this length"))
    stitch: bool = field(default=True, metadata=_help(
        "Stitch shots into events with image embeddings; false = the shots (>= min_clip_s) are the clips"))
    stitching: StitchConfig = field(default_factory=StitchConfig, metadata=_help(
        "Stitching, trimming and clip-length limits (the length limits also apply without stitching)"))
    max_video_s: float | None = field(default=None, metadata=_help("Only split the first N seconds of each video"))
    mode: str = field(default="visual", metadata=_help(
        "visual (shots/stitching), narration (subtitle or ASR cues, HowTo100M), both, or auto (narration "
        "where a video has cues), or given (the spans ingested with the video, e.g. from a Panda-70M CSV)"))
    narration: NarrationConfig = field(default_factory=NarrationConfig, metadata=_help(
        "How cues merge into narration clips"))
    sample_fps: float = field(default=2.0, metadata=_help(
        "RGB frames sampled per second for stitching, split quality and key frames"))
    sample_short_side: int = field(default=224, metadata=_help("Short side of sampled frames / key frames, pixels"))
    max_samples: int = field(default=2400, metadata=_help("At most this many samples per video (sparser beyond)"))
    keyframes_per_clip: int = field(default=3, metadata=_help("Key frames (JPEG) stored per clip"))
    # 'noref': no drift, fewer cycles; 'all' is faster still but lets blocking drift through a GOP (false
    # cuts on 4:4:4 and Baseline files).
    skip_loop_filter: str = field(default="noref", metadata=_help(
        "Decoder deblocking skipped for: none, noref, bidir or all frames (faster; 'all' can cause false cuts)"))
    threads: int = field(default=0, metadata=_help(
        "Decoder threads; 0 = all cores unless the machine is saturated (then 1)"))
    # Joined into exactly the sequential result (see lib/video/segmented.py); falls back to sequential
    # when a join cannot be proven exact.
    decode_segments: int = field(default=0, metadata=_help(
        "Decode one long video in this many parallel stretches (identical results): 0 = auto (one per idle "
        "core for videos >= 60 s), 1 = sequential, N >= 2 forces N"))

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ValueError(f"mode must be one of {', '.join(SPLIT_MODES)}, got {self.mode!r}")
        if self.skip_loop_filter not in SKIP_LOOP_FILTER:
            raise ValueError(f"skip_loop_filter must be none, noref, bidir or all, got {self.skip_loop_filter!r}")
        if self.long_shot_s < self.max_shot_s:
            raise ValueError(f"long_shot_s ({self.long_shot_s}) must be >= max_shot_s ({self.max_shot_s})")
        if self.decode_segments < 0:
            raise ValueError(f"decode_segments must be >= 0 (0 = auto), got {self.decode_segments}")
        detector_class(self.detector)  # fail on an unknown name now, not once per video later

    def make_detector(self) -> ShotDetector:
        return make_detector(self.detector, self.detectors)


TINY_STILL_NOTE = ("tiny random-weight embeddings put every frame of a shot within ~0.1 of each other, so the "
                   "still filter is off (still_dist=0); stitching and transitions still use the configured distances")


def for_tiny_embeddings(config: SplitConfig) -> SplitConfig:
    """The config to use with the offline tiny open_clip: its distances are compressed (same shot ~0.06,
    different scenes 0.5-0.9), so the still filter would drop every event and the demo would get no clips."""
    return dataclasses.replace(config, stitching=dataclasses.replace(config.stitching, still_dist=0.0))


def load_split_embedder(config: SplitConfig, profile: str | None = None, device: str = "auto",
                        embedder: str = "auto") -> tuple[object, SplitConfig, str | None]:
    """The image embedder that stitches (`auto`: the profile's, lib/models/embedders.py; profile None =
    PANDA_MODELS) and `config` with that embedder's stitching distances (where the run left the defaults)
    and, for random weights (`not model.trained`), the still filter off: (model, config, note or None)."""
    from panda_dagster.lib.models.embedders import default_image_embedder, load_image_embedder
    from panda_dagster.lib.video.stitching import with_embedder_distances

    if embedder == "auto":
        from panda_dagster.lib.models.profiles import resolve_models_profile

        profile = profile or resolve_models_profile().name
        embedder = default_image_embedder(profile)
    model = load_image_embedder(embedder, profile, device)
    config = dataclasses.replace(config, stitching=with_embedder_distances(config.stitching, embedder))
    if not model.trained:
        return model, for_tiny_embeddings(config), TINY_STILL_NOTE
    return model, config, None


@dataclass
class ClipSpan:
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int  # exclusive
    method: str  # 'stitched', 'shot' (no stitching) or 'narration'
    n_shots_merged: int
    narration: str | None = None
    split_quality: float | None = None  # max running embedding distance (lower = more consistent)
    keyframe_samples: list[int] = field(default_factory=list)  # positions in SplitResult.samples

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        out = {"start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6),
               "start_frame": self.start_frame, "end_frame": self.end_frame, "method": self.method,
               "n_shots_merged": self.n_shots_merged, "split_quality": self.split_quality}
        if self.narration is not None:
            out["narration"] = self.narration
        return out


@dataclass
class SplitResult:
    video: str
    fps: float
    n_frames: int
    width: int
    height: int
    codec: str
    duration_s: float  # end of the last decoded frame
    detector: str
    shots: list[Shot]  # raw detector segmentation covering the decoded video
    pieces: list[Shot]  # shots after long-shot splitting (what stitching saw)
    clips: list[ClipSpan]
    dropped: list[Dropped] = field(default_factory=list)
    partial_reason: str | None = None  # only part of the video decoded; clips cover that part
    no_clips_reason: str | None = None
    models_label: str | None = None  # which embedding model stitched (TINY_LABEL for tiny models)
    timings: dict[str, float] = field(default_factory=dict)
    decoded: DecodedVideo | None = field(default=None, repr=False)  # samples, keyframe flags, pts
    detection: Detection | None = field(default=None, repr=False)
    boundaries: list[Boundary] = field(default_factory=list)  # cuts and gradual spans (inside the video)
    # split_video's `make_companion` consumers after the decode: one, or one per decoded stretch (in order)
    companions: list = field(default_factory=list, repr=False)

    @property
    def cuts(self) -> list[int]:
        """Boundary frames: hard cuts and the middles of gradual transitions."""
        return [b.frame for b in self.boundaries]

    @property
    def gradual(self) -> list[tuple[int, int]]:
        """Gradual transitions [start, end) in frames (no clip contains one)."""
        return [(b.start, b.end) for b in self.boundaries if b.kind == "gradual"]

    def to_json_dict(self) -> dict:
        return {
            "video": self.video, "fps": self.fps, "n_frames": self.n_frames, "width": self.width,
            "height": self.height, "codec": self.codec, "duration_s": round(self.duration_s, 6),
            "detector": self.detector,
            "boundaries": [b.as_dict() for b in self.boundaries],
            "shots": [s.as_dict() for s in self.shots],
            "clips": [c.as_dict() for c in self.clips],
            "dropped": [d.as_dict() for d in self.dropped],
            "partial_reason": self.partial_reason, "no_clips_reason": self.no_clips_reason,
            "models_label": self.models_label,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _frame_at(times_s: np.ndarray, t: float) -> int:
    """First frame whose pts is at or after `t` (tolerating float noise)."""
    return int(np.searchsorted(times_s, t - 1e-6, side="left"))


def _span(decoded: DecodedVideo, start_s: float, end_s: float) -> tuple[int, int, float, float]:
    """Snap a time span to whole frames: (start_frame, end_frame exclusive, start_s, end_s)."""
    times = decoded.times_s
    a = min(_frame_at(times, start_s), decoded.n_frames - 1)
    b = max(a + 1, min(_frame_at(times, end_s), decoded.n_frames))
    end = float(times[b]) if b < decoded.n_frames else decoded.end_s
    return a, b, float(times[a]), end


class _EmbeddingCache:
    """Embeds sample frames on demand, each at most once. `run_parallel(work, chunks)` (from the shard's
    thread pool) lets idle threads embed chunks of a long video's frames too."""

    CHUNK = 16  # frames per unit of work shared out: a multiple of the CPU batch (lib/models/base.py)

    def __init__(self, samples, embed_images: EmbedImages, run_parallel: RunParallel | None = None):
        self.samples = samples
        self.embed_images = embed_images
        self.run_parallel = run_parallel
        self.vectors: dict[int, np.ndarray] = {}

    def _embed(self, positions: list[int]) -> None:
        out = np.asarray(self.embed_images([self.samples[p].rgb for p in positions]), dtype=np.float32)
        for p, v in zip(positions, out):
            self.vectors[p] = v

    def fill(self, positions: Iterable[int]) -> None:
        missing = sorted({p for p in positions if p not in self.vectors})
        if not missing:
            return
        if self.run_parallel is None or len(missing) <= self.CHUNK:
            self._embed(missing)
            return
        self.run_parallel(self._embed, [missing[k: k + self.CHUNK] for k in range(0, len(missing), self.CHUNK)])

    def get(self, positions: Sequence[int]) -> np.ndarray:
        self.fill(positions)
        return np.stack([self.vectors[p] for p in positions]) if positions else np.zeros((0, 0), np.float32)


def _sample_near(sample_frames: np.ndarray, start_frame: int, end_frame: int, frac: float) -> int | None:
    inside = np.flatnonzero((sample_frames >= start_frame) & (sample_frames < end_frame))
    if len(inside) == 0:
        return None
    target = start_frame + frac * (end_frame - 1 - start_frame)
    return int(inside[np.argmin(np.abs(sample_frames[inside] - target))])


def _empty_result(path: str, config: SplitConfig, reason: str, decoded: DecodedVideo | None = None,
                  timings: dict | None = None) -> SplitResult:
    return SplitResult(
        video=path, fps=decoded.fps if decoded else 0.0, n_frames=decoded.n_frames if decoded else 0,
        width=decoded.width if decoded else 0, height=decoded.height if decoded else 0,
        codec=decoded.codec if decoded else "", duration_s=decoded.end_s if decoded else 0.0,
        detector=config.detector, shots=[], pieces=[], clips=[], no_clips_reason=reason,
        partial_reason=decoded.partial_reason() if decoded else None, timings=timings or {}, decoded=decoded)


def _decode_segmented(path: str, cfg: SplitConfig, detector: ShotDetector, make_companion=None,
                      companions: list | None = None) -> tuple[DecodedVideo | None, np.ndarray | None, int]:
    """Segment-parallel decode and scoring when it applies: (decoded, scores, segments used), or
    (None, None, 1) for the sequential path."""
    from panda_dagster.lib.video import segmented

    if cfg.decode_segments == 1:
        return None, None, 1
    if cfg.decode_segments >= 2:
        n_segments = cfg.decode_segments
    else:
        duration = segmented.probe_duration(path)
        if duration is not None and cfg.max_video_s is not None:
            duration = min(duration, cfg.max_video_s)
        n_segments = segmented.auto_segment_count(duration)
    if n_segments < 2:
        return None, None, 1
    decoded, scores, reason = segmented.decode_scores_segmented(
        path, detector.frame_scorer, n_segments, sample_fps=cfg.sample_fps, sample_short_side=cfg.sample_short_side,
        max_samples=cfg.max_samples, max_seconds=cfg.max_video_s, skip_loop_filter=cfg.skip_loop_filter,
        threads_per_segment=max(1, cfg.threads), make_companion=make_companion, companions=companions)
    if decoded is None:
        logging.getLogger(__name__).info("%s: sequential decode (%s)", path, reason)
        return None, None, 1
    return decoded, scores, n_segments


def _given_clips(result: SplitResult, decoded: DecodedVideo, spans: Sequence[tuple[float, float]]) -> None:
    """Mode given: the spans are the clips. A span rounded to milliseconds (Panda-70M timecodes) snaps
    back to the frame it was cut at, so an exported-then-ingested clip gets its exact span again."""
    if not spans:
        result.dropped.append(Dropped("given", 0.0, decoded.end_s, "mode given, but the video has no given spans"))
    for start_s, end_s in spans:
        if start_s >= decoded.end_s - GIVEN_SNAP_S or end_s <= start_s:
            result.dropped.append(Dropped("given", start_s, end_s,
                                          f"given span outside the decoded video (0-{decoded.end_s:.3f} s)"))
            continue
        a, b, s, e = _span(decoded, max(0.0, start_s - GIVEN_SNAP_S), min(end_s, decoded.end_s) - GIVEN_SNAP_S)
        result.clips.append(ClipSpan(s, e, a, b, "given", 1))


def split_video(
    path: str | Path,
    config: SplitConfig | None = None,
    *,
    embed_images: EmbedImages | None = None,
    models_label: str | None = None,
    cues: Sequence[Cue] | None = None,
    given_spans: Sequence[tuple[float, float]] | None = None,
    make_companion: Callable[[], FrameConsumer] | None = None,
    run_parallel: RunParallel | None = None,
) -> SplitResult:
    """Split one video. Never raises for bad input: unreadable, empty or one-frame videos come back with
    `no_clips_reason`, partially decodable ones with clips for the decodable part and `partial_reason`.

    Stitching needs `embed_images` (e.g. `OpenClipModel.embed_images`); without it, or with
    `config.stitch=False`, the shots (long ones split) of at least `min_clip_s` are the clips (method
    'shot'). `cues` (subtitles) give narration clips in modes narration, both and auto (HowTo100M);
    `given_spans` (start_s, end_s) are the clips in mode given, each snapped to whole frames.
    `make_companion` (picklable): another frame consumer fed by the same decode pass (one per parallel
    stretch), e.g. clip_filters' motion-frame sampler; they come back in `SplitResult.companions`.
    `run_parallel`: shares the frames to embed out among free threads (`split_shard` passes its pool's).
    """
    cfg = config or SplitConfig()
    path = str(path)
    timings: dict[str, float] = {}
    detector = cfg.make_detector()
    started = time.perf_counter()
    companions: list = []
    decoded, scores, segments = _decode_segmented(path, cfg, detector, make_companion, companions)
    if decoded is None:
        scorer = detector.frame_scorer()
        companions = [make_companion()] if make_companion is not None else []
        try:
            decoded = decode_video(path, [scorer, *companions], sample_fps=cfg.sample_fps,
                                   sample_short_side=cfg.sample_short_side, max_samples=cfg.max_samples,
                                   max_seconds=cfg.max_video_s, threads=cfg.threads,
                                   skip_loop_filter=cfg.skip_loop_filter)
        except VideoDecodeError as exc:
            return _empty_result(path, cfg, f"undecodable: {exc}")
        scores = scorer.scores
    timings["decode_s"] = time.perf_counter() - started
    timings["decode_segments"] = float(segments)
    if decoded.n_frames <= 1:
        reason = f"only {decoded.n_frames} decodable frame(s)"
        if decoded.decode_errors:
            reason += f"; first error: {decoded.decode_errors[0]}"
        return _empty_result(path, cfg, reason, decoded, timings)

    t0 = time.perf_counter()
    detection = detector.detect(scores, decoded.fps)
    timings["detect_s"] = time.perf_counter() - t0
    boundaries, shots = shots_from_boundaries(detection.boundaries, decoded.times_s, decoded.end_s)
    pieces = split_long_shots(shots, decoded.times_s, decoded.end_s, cfg.long_shot_s, cfg.max_shot_s)
    result = SplitResult(
        video=path, fps=decoded.fps, n_frames=decoded.n_frames, width=decoded.width, height=decoded.height,
        codec=decoded.codec, duration_s=decoded.end_s, detector=cfg.detector, shots=shots, pieces=pieces,
        clips=[], partial_reason=decoded.partial_reason(), models_label=models_label, timings=timings,
        decoded=decoded, detection=detection, boundaries=boundaries, companions=companions)

    sample_frames = np.asarray([s.index for s in decoded.samples], dtype=np.int64)
    cache = _EmbeddingCache(decoded.samples, embed_images, run_parallel) if embed_images is not None else None
    t0 = time.perf_counter()
    has_cues = bool(cues)
    want_narration = cfg.mode in ("narration", "both") or (cfg.mode == "auto" and has_cues)
    want_visual = cfg.mode in ("visual", "both") or (cfg.mode == "auto" and not has_cues)
    if want_narration:
        if not has_cues:
            result.dropped.append(Dropped("cues", 0.0, decoded.end_s,
                                          "narration clips asked for, but no subtitle cues"))
        narration = narration_clips(cues or [], decoded.end_s, cfg.narration)
        for clip in narration.clips:
            a, b, s, e = _span(decoded, clip.start_s, clip.end_s)
            result.clips.append(ClipSpan(s, e, a, b, "narration", 1, narration=clip.text))
        result.dropped += [Dropped("cues", s, e, reason) for s, e, reason in narration.dropped]
    if want_visual and cfg.stitch and cache is not None:
        starts, ends = [], []
        for piece in pieces:
            if piece.transition:  # dropped by stitching without looking at it
                starts.append(None)
                ends.append(None)
                continue
            first = _sample_near(sample_frames, piece.start_frame, piece.end_frame, SHOT_START_FRAC)
            last = _sample_near(sample_frames, piece.start_frame, piece.end_frame, SHOT_END_FRAC)
            starts.append(first)
            ends.append(last)
        cache.fill(p for p in starts + ends if p is not None)
        stitched = stitch_shots(
            pieces,
            [cache.vectors[p] if p is not None else None for p in starts],
            [cache.vectors[p] if p is not None else None for p in ends],
            cfg.stitching)
        for event in stitched.events:
            a, b, s, e = _span(decoded, event.start_s, event.end_s)
            result.clips.append(ClipSpan(s, e, a, b, "stitched", event.n_shots))
        result.dropped += stitched.dropped
    elif want_visual:
        limits = cfg.stitching
        for piece in pieces:
            duration = piece.duration_s
            if piece.transition:
                result.dropped.append(Dropped("shot", piece.start_s, piece.end_s, "gradual transition"))
                continue
            if duration < limits.min_clip_s:
                result.dropped.append(Dropped("shot", piece.start_s, piece.end_s,
                                              f"too short: {duration:.2f} s < min_clip_s {limits.min_clip_s}"))
                continue
            a, b, s, e = _span(decoded, piece.start_s, min(piece.end_s, piece.start_s + limits.max_clip_s))
            result.clips.append(ClipSpan(s, e, a, b, "shot", 1))
    if cfg.mode == "given":
        _given_clips(result, decoded, given_spans or [])
    result.clips.sort(key=lambda c: (c.start_s, c.end_s, c.method))
    timings["stitch_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    inside_of = [np.flatnonzero((sample_frames >= clip.start_frame) & (sample_frames < clip.end_frame)).tolist()
                 for clip in result.clips]
    if cache is not None:  # every frame the split quality needs, embedded at once (shared among threads)
        cache.fill(p for inside in inside_of if len(inside) >= 2 for p in inside)
    for clip, inside in zip(result.clips, inside_of):
        if cache is not None and len(inside) >= 2:
            clip.split_quality = max_running_distance(cache.get(inside))
        clip.keyframe_samples = pick_keyframes(sample_frames, clip.start_frame, clip.end_frame,
                                               cfg.keyframes_per_clip)
    timings["quality_s"] = time.perf_counter() - t0
    if not result.clips and result.no_clips_reason is None:
        result.no_clips_reason = "every shot/event was dropped (see dropped)" if result.dropped else "no clips"
    return result


# ------------------------------------------------------------------------------- many videos at once


def _split_worker(args: tuple[str, SplitConfig, str | None, bool]) -> SplitResult:
    path, config, profile, keep_samples = args
    embed = None
    label = None
    if config.stitch:
        model, config, _ = load_split_embedder(config, profile)
        embed, label = model.embed_images, model.label
    result = split_video(path, config, embed_images=embed, models_label=label)
    if not keep_samples and result.decoded is not None:
        result.decoded.samples = []  # do not ship frames back across the process boundary
    return result


def split_videos(paths: Sequence[str | Path], config: SplitConfig | None = None, *, workers: int | None = None,
                 models_profile: str | None = None, keep_samples: bool = False) -> list[SplitResult]:
    """Split several videos in a process pool (one video per process, single-threaded decoding each), so
    all cores are busy even where one decoder cannot use them all. Results come back in input order."""
    cfg = config or SplitConfig()
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(paths) <= 1:
        return [_split_worker((str(p), cfg, models_profile, keep_samples)) for p in paths]
    per_video = dataclasses.replace(cfg, threads=1, decode_segments=1)  # the pool already fills the cores
    jobs = [(str(p), per_video, models_profile, keep_samples) for p in paths]
    import multiprocessing

    # spawn: forked children would inherit FFmpeg/OpenCV/torch thread pools in an undefined state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(paths)), mp_context=context) as pool:
        return list(pool.map(_split_worker, jobs))
