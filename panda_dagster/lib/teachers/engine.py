"""Caption every clip of a shard with every teacher, reusing what an earlier run already produced.

Per teacher: build one request per clip (rendered prompt + which frames), look its `prompt_sha` up in the
shard's previous rows, and run the model only on the clips whose request changed or is new. A teacher
whose requests are all cached never loads its model, so re-materializing an unchanged shard generates
nothing and adding a teacher computes only that teacher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from panda_dagster.lib.records import Cue
from panda_dagster.lib.subtitles import cues_by_video
from panda_dagster.lib.teachers.batching import AdaptiveBatcher
from panda_dagster.lib.teachers.cleaning import clean_caption
from panda_dagster.lib.teachers.frames import interleave_runs, prefetch
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput
from panda_dagster.lib.teachers.kinds import PlanContext, PlannedRequest, teacher_kind
from panda_dagster.lib.teachers.prompts import build_context, render_prompt
from panda_dagster.lib.teachers.records import TeacherCaption, TeacherFailure
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.runners import (
    Generation,
    ModelUnavailableError,
    Prepared,
    TeacherRequest,
    TeacherRunner,
    get_runner,
    resolved_revision,
)

log = logging.getLogger(__name__)

RunnerFactory = Callable[[TeacherSpec], TeacherRunner]


@dataclass
class TeacherStats:
    teacher: str
    kind: str
    model_id: str
    n_clips: int = 0
    n_cached: int = 0  # rows (captions or failures) reused from the previous run
    n_generated: int = 0  # captions produced now
    n_failed: int = 0  # failures recorded now
    mean_chars: float = 0.0  # over all captions of the teacher (cached + new)
    generate_s: float = 0.0  # wall time of the teacher's generation (incl. waiting for frames)
    clips_per_s: float = 0.0
    batch_size: int = 0  # in use at the end (lower than configured after an out-of-memory back-off)
    oom_events: int = 0


@dataclass
class ShardCaptions:
    captions: list[TeacherCaption] = field(default_factory=list)
    failures: list[TeacherFailure] = field(default_factory=list)
    stats: list[TeacherStats] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # teacher -> why its model did not load

    @property
    def n_generated(self) -> int:
        return sum(s.n_generated + s.n_failed for s in self.stats)


def plan_request(spec: TeacherSpec, clip: ClipInput, video: VideoInput | None, cues: list[Cue]) -> PlannedRequest:
    """The request (prompt + inputs) this teacher gets for this clip, or why there is none: the prompt is
    rendered here, the kind (lib/teachers/kinds/) decides which inputs and the cache key."""
    prompt = render_prompt(spec.prompt, build_context(clip, video, cues, spec.num_frames))
    context = PlanContext(clip, video, cues, prompt, spec.config_fingerprint())
    return teacher_kind(spec.kind).plan(spec, context)


def merge_caption_parts(parts: Sequence[str], prompt: str) -> tuple[str | None, str | None]:
    """Clean each part (one per frame for image captioners) and join the distinct ones."""
    cleaned, reasons = [], []
    for part in parts:
        result = clean_caption(part, prompt)
        if result.caption is None:
            reasons.append(result.reason)
        elif result.caption.lower() not in (c.lower() for c in cleaned):
            cleaned.append(result.caption)
    if not cleaned:
        return None, reasons[0] if reasons else "model returned no output"
    return "; ".join(cleaned), None


class _Progress:
    def __init__(self, teacher: str, total: int, report: Callable[[str], None] | None, every_s: float = 5.0):
        self.teacher, self.total, self.report, self.every_s = teacher, total, report, every_s
        self.done = 0
        self.started = time.perf_counter()
        self.last = 0.0

    def add(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.perf_counter()
        if self.report and (force or self.done >= self.total or now - self.last >= self.every_s):
            self.last = now
            elapsed = max(now - self.started, 1e-9)
            self.report(f"{self.teacher}: {self.done}/{self.total} clips, {self.done / elapsed:.2f} clips/s")


def caption_shard(
    shard: str,
    teachers: Iterable[TeacherSpec],
    clips: Sequence[ClipInput],
    videos: dict[str, VideoInput],
    cues: Iterable[Cue],
    *,
    profile: str,
    existing_captions: Iterable[TeacherCaption] = (),
    existing_failures: Iterable[TeacherFailure] = (),
    runner_factory: RunnerFactory | None = None,
    progress: Callable[[str], None] | None = None,
    retry_failures: bool = False,
    prefetch_depth: int = 1,
    on_rows: Callable[[list[TeacherCaption], list[TeacherFailure]], None] | None = None,
) -> ShardCaptions:
    """Rows of `teacher_captions` / `teacher_failures` for the shard: reused where the request is
    unchanged, generated otherwise. `runner_factory(spec)` returns the loaded model (default: the
    process-wide `get_runner`). `on_rows(captions, failures)` gets the rows of every generated batch as
    soon as it is done (the caller checkpoints them, so a crash loses at most one batch)."""
    runner_factory = runner_factory or get_runner
    cues_of = cues_by_video(cues)
    previous: dict[tuple[str, str], TeacherCaption | TeacherFailure] = {}
    for row in existing_captions:
        previous[(row.clip_id, row.teacher)] = row
    if not retry_failures:
        for row in existing_failures:
            previous.setdefault((row.clip_id, row.teacher), row)

    result = ShardCaptions()
    for spec in teachers:
        stats = TeacherStats(spec.name, spec.kind, spec.model_id, n_clips=len(clips))
        revision = resolved_revision(spec)
        todo: list[TeacherRequest] = []
        for clip in clips:
            planned = plan_request(spec, clip, videos.get(clip.video_id), cues_of.get(clip.video_id, []))
            request = planned.request
            old = previous.get((clip.clip_id, spec.name))
            if (old is not None and old.prompt_sha == request.prompt_sha and old.model_id == spec.model_id
                    and old.revision == revision):
                (result.captions if isinstance(old, TeacherCaption) else result.failures).append(
                    _reshard(old, shard))
                stats.n_cached += 1
            elif planned.failure_reason:
                result.failures.append(_failure(shard, spec, revision, request, planned.failure_reason, profile))
                stats.n_failed += 1
            else:
                todo.append(request)
        if todo:
            # A video's clips one after another: frame-sampling kinds decode each video once.
            todo.sort(key=lambda r: r.video_id)
            try:
                _generate_for_teacher(shard, spec, todo, runner_factory, profile, result, stats, progress,
                                      prefetch_depth, on_rows)
            except ModelUnavailableError as exc:
                # The other teachers still run; the caller reports the missing model (no rows are
                # written for its pending clips, so they are generated once the model is available).
                result.unavailable[spec.name] = str(exc)
                if progress:
                    progress(f"{spec.name}: model unavailable, skipped: {exc}")
        elif progress:
            progress(f"{spec.name}: all {len(clips)} clips cached, model not loaded")
        captions = [c for c in result.captions if c.teacher == spec.name]
        stats.mean_chars = round(sum(len(c.caption) for c in captions) / len(captions), 1) if captions else 0.0
        result.stats.append(stats)
    return result


def _reshard(row, shard: str):
    if row.shard != shard:
        row = type(row)(**{**row.__dict__, "shard": shard})
    return row


def _failure(shard: str, spec: TeacherSpec, revision: str, request: TeacherRequest, reason: str, profile: str,
             detail: str | None = None) -> TeacherFailure:
    return TeacherFailure(
        clip_id=request.clip_id, shard=shard, video_id=request.video_id, teacher=spec.name, kind=spec.kind,
        model_id=spec.model_id, revision=revision, prompt_sha=request.prompt_sha, reason=reason,
        detail=detail, profile=profile,
    )


def _generate_for_teacher(shard, spec, todo, runner_factory, profile, result, stats, progress, prefetch_depth,
                          on_rows=None):
    runner = runner_factory(spec)
    revision = runner.revision
    started = time.perf_counter()
    meter = _Progress(spec.name, len(todo), progress)
    latency_ms: dict[str, float] = {}

    def step(batch: list[Prepared]) -> list[Generation]:
        t0 = time.perf_counter()
        out = runner.generate(batch)
        share = (time.perf_counter() - t0) * 1000.0 / max(1, len(batch))
        for item in batch:
            latency_ms[item.request.clip_id] = share
        return out

    def on_oom(old: int, new: int) -> None:
        if progress:
            progress(f"{spec.name}: out of memory at batch size {old}; retrying with {new}")

    batcher = AdaptiveBatcher(step, spec.batch_size, on_oom=on_oom)

    def prepare_chunk(chunk: list[TeacherRequest]) -> list[Prepared | tuple[TeacherRequest, BaseException]]:
        prepared = []
        for request in chunk:
            try:
                prepared.append(runner.prepare(request))
            except Exception as exc:  # one undecodable clip fails alone
                prepared.append((request, exc))
        return prepared

    chunks = [todo[i: i + spec.batch_size] for i in range(0, len(todo), spec.batch_size)]
    workers = getattr(runner, "prepare_workers", 1) if prefetch_depth > 0 else 1
    chunks = interleave_runs(chunks, workers)  # the batches stay the same; rows are put back in order below
    n_captions, n_failures = len(result.captions), len(result.failures)
    try:
        _run_chunks(shard, spec, chunks, prepare_chunk, prefetch_depth, workers, batcher, latency_ms, revision,
                    profile, result, stats, meter, on_rows)
    finally:
        end_pass = getattr(runner, "end_pass", None)  # test doubles may not extend TeacherRunner
        if end_pass:
            end_pass()
        position = {request.clip_id: k for k, request in enumerate(todo)}
        for rows, start in ((result.captions, n_captions), (result.failures, n_failures)):
            rows[start:] = sorted(rows[start:], key=lambda row: position.get(row.clip_id, len(position)))
    stats.generate_s = round(time.perf_counter() - started, 3)
    stats.clips_per_s = round(len(todo) / stats.generate_s, 3) if stats.generate_s > 0 else 0.0
    stats.batch_size = batcher.batch_size
    stats.oom_events = batcher.oom_events


def _run_chunks(shard, spec, chunks, prepare_chunk, prefetch_depth, prepare_workers, batcher, latency_ms, revision,
                profile, result, stats, meter, on_rows=None):
    echoes_prompt = teacher_kind(spec.kind).echoes_prompt
    for _, prepared in prefetch(chunks, prepare_chunk, depth=prefetch_depth, workers=prepare_workers):
        n_captions, n_failures = len(result.captions), len(result.failures)
        if isinstance(prepared, BaseException):  # the loader itself broke: fail the whole chunk loudly
            raise prepared
        ready = [p for p in prepared if isinstance(p, Prepared)]
        for item in prepared:
            if not isinstance(item, Prepared):
                request, exc = item
                result.failures.append(_failure(shard, spec, revision, request,
                                                f"input not readable: {type(exc).__name__}: {str(exc)[:200]}",
                                                profile, repr(exc)[:1000]))
                stats.n_failed += 1
        outcome = batcher.run(ready)
        for item, generation in outcome.results:
            echo = item.request.prompt if echoes_prompt else ""
            caption, reason = merge_caption_parts(generation.parts, echo)
            request = item.request
            if caption is None:
                result.failures.append(_failure(shard, spec, revision, request, reason, profile,
                                                " | ".join(generation.parts)[:1000]))
                stats.n_failed += 1
                continue
            result.captions.append(TeacherCaption(
                clip_id=request.clip_id, shard=shard, video_id=request.video_id, teacher=spec.name,
                kind=spec.kind, model_id=spec.model_id, revision=revision, prompt_sha=request.prompt_sha,
                caption=caption, n_tokens=int(generation.n_tokens),
                latency_ms=round(latency_ms.get(request.clip_id, 0.0), 3), profile=profile,
            ))
            stats.n_generated += 1
        for item, reason, detail in outcome.failures:
            result.failures.append(_failure(shard, spec, revision, item.request, reason, profile, detail))
            stats.n_failed += 1
        if on_rows is not None:
            on_rows(result.captions[n_captions:], result.failures[n_failures:])
        meter.add(len(prepared))
