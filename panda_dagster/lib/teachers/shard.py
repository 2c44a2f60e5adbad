"""Caption every kept clip of a shard with the selected teachers and write the shard's caption tables.

The Dagster `teacher_captions` asset is a thin wrapper around `caption_teacher_shard`; selecting the
teachers (`select_teachers`) and deciding which clips to caption live here so they are tested without
Dagster. Idempotent: the shard's `teacher_captions` / `teacher_failures` rows are replaced as a whole;
every finished batch is checkpointed first, so a run after a crash does not caption those clips again.
Cues come from the one `subtitles` table (subtitle files and ASR alike), for narration and prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.filters.decisions import dropped_clip_ids
from panda_dagster.lib.records import CUE_SOURCE_ASR
from panda_dagster.lib.teachers.engine import RunnerFactory, ShardCaptions, caption_shard
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput
from panda_dagster.lib.teachers.registry import TeacherSpec, load_registry



@dataclass
class CaptionConfig:
    """What `teacher_captions` does; the models profile and device come from the model resources."""

    overrides: dict[str, Any] = field(default_factory=dict, metadata={"help": (
        "Per-teacher registry overrides by name: {name: {field: value}} changes fields, {name: null} disables "
        "a teacher, a new name adds one (all required fields)")})
    only: list[str] = field(default_factory=list, metadata={"help": "Run only these teachers (empty = all)"})
    retry_failures: bool = field(default=False, metadata={
        "help": "Regenerate clips whose previous attempt failed"})
    caption_all: bool = field(default=False, metadata={
        "help": "Caption every clip, also those the clip filters dropped (table clip_filters, keep=False)"})


def select_teachers(profile: str, config: CaptionConfig) -> list[TeacherSpec]:
    """The profile's teachers with the overrides applied, narrowed to `only`. Raises RegistryError for a
    bad registry entry or override and ValueError for unknown `only` names."""
    registry = load_registry(profile, config.overrides)
    names = [t.name for t in registry.teachers]
    unknown = sorted(set(config.only) - set(names))
    if unknown:
        raise ValueError(f"`only` names unknown teachers {unknown}; profile {profile} has {names}")
    return [t for t in registry.teachers if not config.only or t.name in config.only]


@dataclass
class TeacherShardRun:
    result: ShardCaptions
    n_clips: int  # clips of the shard
    n_captioned_clips: int  # clips sent to the teachers (kept by the filters, or all with caption_all)
    n_cues: dict[str, int]  # cues read, by source (subtitle, asr)
    n_videos: int


def caption_teacher_shard(
    shard: str,
    catalog: Catalog,
    teachers: Iterable[TeacherSpec],
    config: CaptionConfig,
    *,
    profile: str,
    runner_factory: RunnerFactory | None = None,
    progress: Callable[[str], None] | None = None,
) -> TeacherShardRun:
    """Read the shard's clips, videos and cues, caption the clips to caption, write both tables."""
    teachers = list(teachers)
    all_clips = catalog.rows("clips", shard)
    dropped = set() if config.caption_all else dropped_clip_ids(catalog, shard)
    clips = [ClipInput.of(c) for c in all_clips if c.clip_id not in dropped]
    videos = {v.video_id: VideoInput.of(v) for v in catalog.rows("videos", shard)}
    cues = catalog.rows("subtitles", shard)
    if progress:
        progress(f"shard {shard}: {len(clips)} of {len(all_clips)} clips to caption ({len(dropped)} dropped by "
                 f"the clip filters), {len(videos)} videos, teachers {[t.name for t in teachers]}")
    previous_captions = catalog.rows("teacher_captions", shard)
    previous_failures = catalog.rows("teacher_failures", shard)
    # Batches a killed run finished (newer than the table's rows: they win in the cache).
    saved_captions = catalog.checkpoint_rows("teacher_captions", shard)
    saved_failures = catalog.checkpoint_rows("teacher_failures", shard)
    if progress and (saved_captions or saved_failures):
        progress(f"shard {shard}: {len(saved_captions)} captions and {len(saved_failures)} failures checkpointed "
                 "by an earlier run that did not finish are reused")

    def checkpoint(captions, failures) -> None:
        catalog.add_checkpoint("teacher_captions", shard, captions)
        catalog.add_checkpoint("teacher_failures", shard, failures)

    result = caption_shard(
        shard, teachers, clips, videos, cues, profile=profile, existing_captions=previous_captions + saved_captions,
        existing_failures=previous_failures + saved_failures, runner_factory=runner_factory, progress=progress,
        retry_failures=config.retry_failures, on_rows=checkpoint,
    )
    if config.only:  # keep the other teachers' rows: `only` narrows the work, not the table
        kept = {t.name for t in teachers}
        result.captions += [c for c in previous_captions if c.teacher not in kept]
        result.failures += [f for f in previous_failures if f.teacher not in kept]
    catalog.replace_shard("teacher_captions", shard, result.captions)
    catalog.replace_shard("teacher_failures", shard, result.failures)
    catalog.clear_checkpoint("teacher_captions", shard)
    catalog.clear_checkpoint("teacher_failures", shard)
    n_asr = sum(1 for c in cues if c.source == CUE_SOURCE_ASR)
    return TeacherShardRun(result, len(all_clips), len(clips), {"subtitle": len(cues) - n_asr, "asr": n_asr},
                           len(videos))


def per_teacher_table(run: TeacherShardRun) -> list[dict[str, object]]:
    """One row per teacher for the asset's metadata."""
    result = run.result
    return [
        {"teacher": s.teacher, "kind": s.kind, "model_id": s.model_id,
         "captions": sum(1 for c in result.captions if c.teacher == s.teacher),
         "failures": sum(1 for f in result.failures if f.teacher == s.teacher), "cached": s.n_cached,
         "generated": s.n_generated, "failed_now": s.n_failed, "mean_chars": s.mean_chars,
         "clips_per_s": s.clips_per_s, "batch_size": s.batch_size, "oom_backoffs": s.oom_events}
        for s in result.stats
    ]


def sample_captions(result: ShardCaptions, n_clips: int = 3) -> list[Mapping[str, str]]:
    """Every teacher's caption of the first `n_clips` clips."""
    first: list[str] = []
    for caption in result.captions:
        if caption.clip_id not in first:
            first.append(caption.clip_id)
    chosen = set(first[:n_clips])
    return [{"clip_id": c.clip_id[:8], "teacher": c.teacher, "caption": c.caption}
            for c in result.captions if c.clip_id in chosen]
