"""`teacher_captions`: every clip of a shard captioned by several cross-modality teachers."""

import time
from typing import Any

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from panda_dagster.common.checks import check_events, selected_checks
from panda_dagster.common.jobs import GPU_POOL, MODEL_BACKFILL, TRANSIENT_RETRY
from panda_dagster.common.metadata import combine_shard_metadata, markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.teachers.checks import TEACHER_CAPTIONS_CHECK_SPECS, evaluate_teacher_checks
from panda_dagster.teachers.resources import (
    ASR_RESOURCE_KEY,
    EXTRA_RESOURCE_KEY,
    registry_teacher_names,
    resource_key,
)

REQUIRED_RESOURCE_KEYS = {"panda", ASR_RESOURCE_KEY, EXTRA_RESOURCE_KEY} | {
    resource_key(name) for name in registry_teacher_names()
}


class TeacherCaptionsConfig(Config):
    profile: str = Field(default="", description="Models profile: tiny, default or large; empty = PANDA_MODELS")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-teacher registry overrides by name: {name: {field: value}} changes fields, "
        "{name: null} disables a teacher, a new name adds one (all required fields), key 'asr' changes ASR",
    )
    only: list[str] = Field(default_factory=list, description="Run only these teachers (empty = all)")
    asr: bool = Field(default=True, description="Transcribe videos that have audio but no subtitles")
    retry_failures: bool = Field(default=False, description="Regenerate clips whose previous attempt failed")


def _teacher_resource(context: AssetExecutionContext, name: str):
    key = resource_key(name)
    return getattr(context.resources, key) if key in REQUIRED_RESOURCE_KEYS else getattr(
        context.resources, EXTRA_RESOURCE_KEY)


@asset(
    partitions_def=video_shards,
    deps=["clips"],
    group_name="captions",
    kinds={"pytorch", "duckdb"},
    pool=GPU_POOL,
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=MODEL_BACKFILL,
    required_resource_keys=REQUIRED_RESOURCE_KEYS,
    check_specs=TEACHER_CAPTIONS_CHECK_SPECS,
    description="Captions for every clip of the shard from every teacher of the models profile (image "
    "captioners on key frames, a video-LLM on sampled frames + metadata, a text LLM over title/description/"
    "speech, the narration itself), plus ASR for videos with audio but no subtitles. Catalog tables "
    "`teacher_captions`, `teacher_failures`, `asr_subtitles`, `asr_transcripts`. Incremental: captions whose "
    "model, revision, prompt and frames are unchanged are reused.",
)
def teacher_captions(context: AssetExecutionContext, config: TeacherCaptionsConfig):
    from panda_dagster.lib.models.profiles import TINY_LABEL, resolve_models_profile
    from panda_dagster.lib.records import SubtitleCue
    from panda_dagster.lib.teachers.asr import asr_cues_as_inputs, transcribe_shard
    from panda_dagster.lib.teachers.engine import caption_shard
    from panda_dagster.lib.teachers.inputs import clips_from_frame, cues_from_frame, videos_from_frame
    from panda_dagster.lib.teachers.records import AsrTranscript, TeacherCaption, TeacherFailure, rows_from_frame
    from panda_dagster.lib.teachers.registry import RegistryError, load_registry

    panda: PandaResource = context.resources.panda
    catalog = panda.catalog()
    profile = resolve_models_profile(config.profile or None)
    if profile.is_tiny:
        context.log.warning(f"models profile tiny ({profile.reason}): {TINY_LABEL}")
    try:
        registry = load_registry(profile.name, config.overrides)
    except RegistryError as exc:
        raise Failure(f"teacher registry: {exc}", allow_retries=False) from exc
    teachers = [t for t in registry.teachers if not config.only or t.name in config.only]
    unknown = set(config.only) - {t.name for t in registry.teachers}
    if unknown:
        raise Failure(f"`only` names unknown teachers {sorted(unknown)}; profile {profile.name} has "
                      f"{[t.name for t in registry.teachers]}", allow_retries=False)

    # A backfill run may hand this step several shards: each model is loaded once for all of them.
    metadata_by_shard, outcomes, unavailable = {}, {}, {}
    for shard in context.partition_keys:
        started = time.perf_counter()
        clips = clips_from_frame(catalog.read_shard("clips", shard))
        videos = videos_from_frame(catalog.read_shard("videos", shard))
        subtitle_cues = cues_from_frame(catalog.read_shard("subtitles", shard))
        context.log.info(f"shard {shard}: {len(clips)} clips of {len(videos)} videos, profile {profile.name}, "
                         f"teachers {[t.name for t in teachers]}")

        # ASR first: its cues feed the narration teacher and the metadata prompts.
        asr_cues: list[SubtitleCue] = []
        n_asr = 0
        if registry.asr is not None and config.asr:
            asr_resource = context.resources.teacher_asr
            asr = transcribe_shard(
                shard, registry.asr, videos.values(), subtitle_cues,
                existing_cues=rows_from_frame(catalog.read_shard("asr_subtitles", shard), SubtitleCue),
                existing_transcripts=rows_from_frame(catalog.read_shard("asr_transcripts", shard), AsrTranscript),
                runner_factory=asr_resource.asr_runner, progress=context.log.info,
            )
            catalog.replace_shard("asr_subtitles", shard, asr.cues)
            catalog.replace_shard("asr_transcripts", shard, asr.transcripts)
            asr_cues, n_asr = asr.cues, asr.n_transcribed
            for t in asr.transcripts:
                if t.status == "failed":
                    context.log.warning(f"ASR failed for {t.video_id}: {t.reason}")

        s3_client = None
        if any(uri.startswith("s3://") for clip in clips for uri in clip.keyframe_uris):
            s3_client = panda.s3_client()

        def runner_for(spec):
            return _teacher_resource(context, spec.name).runner(spec, s3_client)

        previous_captions = rows_from_frame(catalog.read_shard("teacher_captions", shard), TeacherCaption)
        previous_failures = rows_from_frame(catalog.read_shard("teacher_failures", shard), TeacherFailure)
        result = caption_shard(
            shard, teachers, clips, videos, subtitle_cues + asr_cues_as_inputs(asr_cues),
            profile=profile.name, existing_captions=previous_captions, existing_failures=previous_failures,
            runner_factory=runner_for, progress=context.log.info, retry_failures=config.retry_failures,
        )
        if config.only:  # keep the other teachers' rows: `only` narrows the work, not the table
            kept = {t.name for t in teachers}
            result.captions += [c for c in previous_captions if c.teacher not in kept]
            result.failures += [f for f in previous_failures if f.teacher not in kept]
        catalog.replace_shard("teacher_captions", shard, result.captions)
        catalog.replace_shard("teacher_failures", shard, result.failures)
        unavailable.update(result.unavailable)
        for failure in result.failures[:20]:
            context.log.warning(f"{failure.teacher} failed on clip {failure.clip_id}: {failure.reason}")

        per_teacher = [
            {"teacher": s.teacher, "kind": s.kind, "model_id": s.model_id,
             "captions": sum(1 for c in result.captions if c.teacher == s.teacher),
             "failures": sum(1 for f in result.failures if f.teacher == s.teacher), "cached": s.n_cached,
             "generated": s.n_generated, "failed_now": s.n_failed, "mean_chars": s.mean_chars,
             "clips_per_s": s.clips_per_s, "batch_size": s.batch_size, "oom_backoffs": s.oom_events}
            for s in result.stats
        ]
        sample_clips = [c.clip_id for c in clips[:3]]
        samples = [{"clip_id": c.clip_id[:8], "teacher": c.teacher, "caption": c.caption}
                   for clip_id in sample_clips for c in result.captions if c.clip_id == clip_id]
        elapsed = time.perf_counter() - started
        metadata_by_shard[shard] = {
            "profile": profile.name,
            "models": MetadataValue.text(profile.label),
            "n_clips": len(clips),
            "teachers": len(teachers),
            "n_captions": len(result.captions),
            "n_failures": len(result.failures),
            "n_generated_now": result.n_generated,
            "n_asr_videos_transcribed": n_asr,
            "n_asr_cues": len(asr_cues),
            "per_teacher": MetadataValue.md(markdown_table(per_teacher)),
            "per_teacher_counts": MetadataValue.json({r["teacher"]: r["captions"] for r in per_teacher}),
            "sample_captions": MetadataValue.md(markdown_table(samples, limit=30)),
            "seconds": round(elapsed, 2),
        }
        outcomes[shard] = evaluate_teacher_checks(catalog, shard, selected_checks(context))
    if unavailable:
        raise Failure(
            "teacher model(s) unavailable; the other teachers' captions were written:\n"
            + "\n".join(f"- {message}" for message in unavailable.values()),
            allow_retries=False,
        )
    yield MaterializeResult(metadata=combine_shard_metadata(metadata_by_shard))
    yield from check_events(context, outcomes)
