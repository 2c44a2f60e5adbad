"""`transcripts`: speech recognition for the videos of a shard that have audio but no subtitles, before
`clips`, so narration clips (HowTo100M) and the narration teacher see speech like any subtitle."""

from dagster import AssetExecutionContext, MetadataValue

from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import GPU_POOL, MODEL_BACKFILL, Group
from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.common.stage_config import lib_config_or_fail
from panda_dagster.lib.transcripts.shard import TranscriptsConfig
from panda_dagster.lib.transcripts.whisper import AsrModelUnavailable
from panda_dagster.transcripts.checks import TRANSCRIPTS_CHECK_SPECS, WARNING_CHECKS, evaluate_transcripts_checks
from panda_dagster.transcripts.resources import AsrModelResource

TranscriptsRunConfig = dagster_config_from(TranscriptsConfig, name="TranscriptsRunConfig")


@shard_asset(
    group=Group.TRANSCRIPTS,
    backfill_policy=MODEL_BACKFILL,
    deps=["raw_videos"],
    pool=GPU_POOL,
    kinds={"pytorch", "duckdb"},
    check_specs=TRANSCRIPTS_CHECK_SPECS,
    description="Speech recognition (faster-whisper: word timestamps, voice-activity filtering, language "
    "detection) for every video of the shard that has audio and no subtitles. Cues go into `subtitles` part "
    "`asr`, one row per video into `transcripts`. Incremental: a video already transcribed by the same model, "
    "revision and settings is not redone.",
)
def transcripts(context: AssetExecutionContext, config: TranscriptsRunConfig, panda: PandaResource,
                asr_model: AsrModelResource):
    from panda_dagster.lib.models.packaged import PackagedWeightsError

    lib_config = lib_config_or_fail(config, "transcripts")
    yield from run_shards(context, lambda shard: _one_shard(context, lib_config, panda, asr_model, shard),
                          warning_checks=WARNING_CHECKS, permanent=(AsrModelUnavailable, PackagedWeightsError))


def _one_shard(context, config: TranscriptsConfig, panda: PandaResource, asr_model: AsrModelResource,
               shard: str) -> ShardResult:
    from panda_dagster.lib.transcripts.shard import transcribe_catalog_shard

    result = transcribe_catalog_shard(shard, panda.catalog(), config, model_spec=lambda: asr_model.locate()[1],
                                      load_model=asr_model.model, progress=context.log.info)
    for t in result.transcripts:
        if t.status == "failed":
            context.log.warning(f"ASR failed for {t.video_id}: {t.reason}")
    context.log.info(f"shard {shard}: {result.n_transcribed} videos transcribed, {result.n_reused} reused, "
                     f"{len(result.cues)} ASR cues; model {result.model_label} (trained weights)")
    preview = [{"video_id": t.video_id, "status": t.status, "language": t.language, "cues": t.n_cues,
                "words": t.n_words, "speech_s": t.speech_s, "audio_s": t.duration_s, "ms": t.latency_ms,
                "reason": t.reason or ""} for t in result.transcripts]
    samples = [{"video_id": c.video_id, "start_s": c.start_s, "end_s": c.end_s, "text": c.text[:80]}
               for c in result.cues[:20]]
    metadata = {
        "n_videos": len(result.transcripts),  # one row per video
        "n_transcribed_now": result.n_transcribed,
        "n_reused": result.n_reused,
        "n_asr_cues": len(result.cues),
        "statuses": MetadataValue.json(histogram(t.status for t in result.transcripts)),
        "languages": MetadataValue.json(histogram(t.language for t in result.transcripts if t.language)),
        "models": MetadataValue.json({"asr": {"label": result.model_label, "trained": True}}),
        "models_label": result.model_label,
        "transcripts": MetadataValue.md(markdown_table(preview)),
        "sample_cues": MetadataValue.md(markdown_table(samples)),
    }
    outcomes = evaluate_transcripts_checks([t.video_id for t in result.transcripts], result.cues, result.transcripts,
                                           selected_checks(context))
    return ShardResult(metadata, outcomes)
