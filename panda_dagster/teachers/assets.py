"""`teacher_captions`: every kept clip of a shard captioned by several cross-modality teachers."""

from dagster import AssetExecutionContext, Failure, MetadataValue

from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import GPU_POOL, MODEL_BACKFILL, Group
from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.lib.teachers.shard import CaptionConfig
from panda_dagster.teachers.checks import TEACHER_CAPTIONS_CHECK_SPECS, evaluate_teacher_checks
from panda_dagster.teachers.resources import TeacherModelsResource

TeacherCaptionsConfig = dagster_config_from(CaptionConfig, name="TeacherCaptionsConfig")


@shard_asset(
    group=Group.CAPTIONS,
    backfill_policy=MODEL_BACKFILL,
    deps=["clips", "clip_filters"],
    pool=GPU_POOL,
    kinds={"pytorch", "duckdb"},
    check_specs=TEACHER_CAPTIONS_CHECK_SPECS,
    description="Captions for every clip of the shard the clip filters kept (all with `caption_all`) from "
    "every teacher of the models profile (image captioners on key frames, a video-LLM on sampled frames + "
    "metadata, a text LLM over title/description/speech, the narration itself; speech = table `subtitles`, "
    "subtitle files and ASR). Catalog tables `teacher_captions`, `teacher_failures`. Incremental: captions "
    "whose model, revision, prompt and frames are unchanged are reused.",
)
def teacher_captions(context: AssetExecutionContext, config: TeacherCaptionsConfig, panda: PandaResource,
                     teacher_models: TeacherModelsResource):
    from panda_dagster.lib.models.profiles import TINY_LABEL
    from panda_dagster.lib.teachers.registry import RegistryError
    from panda_dagster.lib.teachers.runners import ModelUnavailableError
    from panda_dagster.lib.teachers.shard import select_teachers

    lib_config, profile = config.to_lib(), teacher_models.profile_name
    if teacher_models.is_tiny:
        context.log.warning(f"models profile tiny ({teacher_models.profile_reason}): {TINY_LABEL}")
    try:
        teachers = select_teachers(profile, lib_config)
    except (RegistryError, ValueError) as exc:
        raise Failure(f"teacher registry: {exc}", allow_retries=False) from exc
    # A backfill run may hand this step several shards: each model is loaded once for all of them.
    yield from run_shards(context, lambda shard: _one_shard(context, panda, teacher_models, teachers, lib_config,
                                                            shard), permanent=(ModelUnavailableError,))


def _one_shard(context, panda: PandaResource, teacher_models: TeacherModelsResource, teachers,
               config: CaptionConfig, shard: str) -> ShardResult:
    from panda_dagster.lib.teachers.runners import ModelUnavailableError
    from panda_dagster.lib.teachers.shard import caption_teacher_shard, per_teacher_table, sample_captions

    catalog, s3 = panda.catalog(), None
    if panda.s3_bucket:
        s3 = panda.s3_client()
    run = caption_teacher_shard(shard, catalog, teachers, config, profile=teacher_models.profile_name,
                                runner_factory=lambda spec: teacher_models.runner(spec, s3), progress=context.log.info)
    result = run.result
    for failure in result.failures[:20]:
        context.log.warning(f"{failure.teacher} failed on clip {failure.clip_id}: {failure.reason}")
    if result.unavailable:
        raise ModelUnavailableError("teacher model(s) unavailable; the other teachers' captions were written:\n"
                                    + "\n".join(f"- {message}" for message in result.unavailable.values()))
    per_teacher = per_teacher_table(run)
    metadata = {
        "profile": teacher_models.profile_name, "models": MetadataValue.text(teacher_models.models_label),
        "n_clips": run.n_clips, "n_captioned_clips": run.n_captioned_clips, "teachers": len(teachers),
        "n_captions": len(result.captions), "n_failures": len(result.failures),
        "n_generated_now": result.n_generated, "n_subtitle_cues": run.n_cues["subtitle"],
        "n_asr_cues": run.n_cues["asr"],
        "per_teacher": MetadataValue.md(markdown_table(per_teacher)),
        "per_teacher_counts": MetadataValue.json({r["teacher"]: r["captions"] for r in per_teacher}),
        "sample_captions": MetadataValue.md(markdown_table(sample_captions(result), limit=30)),
    }
    return ShardResult(metadata, evaluate_teacher_checks(catalog, shard, selected_checks(context)))
