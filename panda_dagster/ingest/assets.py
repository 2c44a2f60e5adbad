from dagster import AssetExecutionContext, Failure, MetadataValue

from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import Group
from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.ingest.checks import RAW_VIDEOS_CHECK_SPECS, WARNING_CHECKS, evaluate_raw_videos_checks
from panda_dagster.lib.checks import max_quarantine_share
from panda_dagster.lib.ingest import load_manifest
from panda_dagster.lib.intake import STAGE, IntakeConfig, intake_shard
from panda_dagster.lib.records import CUE_SOURCE_SUBTITLE

RawVideosConfig = dagster_config_from(IntakeConfig, name="RawVideosConfig")


@shard_asset(
    group=Group.INGEST,
    kinds={"video", "duckdb"},
    check_specs=RAW_VIDEOS_CHECK_SPECS,
    description="Every video of the shard probed with a real decoder (first, middle and last frames "
    "decoded), subtitles parsed; catalog tables `videos` and `subtitles` (part `subtitle`), failures in "
    "`quarantine`.",
)
def raw_videos(context: AssetExecutionContext, config: RawVideosConfig, panda: PandaResource):
    intake_config: IntakeConfig = config.to_lib()
    try:
        max_quarantine_share(intake_config.max_quarantine_share)
    except ValueError as exc:
        raise Failure(f"raw_videos config: {exc}", allow_retries=False) from exc
    # A missing or malformed manifest stays missing: that shard fails, retrying cannot help.
    yield from run_shards(context, lambda shard: _probe_shard(context, intake_config, panda, shard),
                          warning_checks=WARNING_CHECKS, not_retried=(FileNotFoundError, ValueError))


def _probe_shard(context: AssetExecutionContext, config: IntakeConfig, panda: PandaResource, shard: str) -> ShardResult:
    storage, catalog = panda.storage(), panda.catalog()
    entries = load_manifest(storage, shard)
    s3_client = panda.s3_client() if any(e.uri.startswith("s3://") for e in entries) else None
    context.log.info(f"shard {shard}: probing {len(entries)} videos with {config.workers} workers")
    intake = intake_shard(shard, entries, panda.home_path / "cache", workers=config.workers, s3_client=s3_client)
    for q in intake.quarantine:
        context.log.warning(f"quarantine [{q.action}] {q.uri}: {q.reason}")
    catalog.replace_shard("videos", shard, intake.videos)
    catalog.replace_shard("subtitles", shard, intake.cues, part=CUE_SOURCE_SUBTITLE)
    catalog.replace_shard("quarantine", shard, intake.quarantine, part=STAGE)
    catalog.replace_shard("fetches", shard, intake.fetches)

    probes = [v.probe for v in intake.videos]
    preview = [{"video_id": v.video_id, "codec": v.probe.codec, "size": f"{v.probe.width}x{v.probe.height}",
                "fps": v.probe.fps, "duration_s": v.probe.duration_s, "audio": v.probe.has_audio,
                "cues": v.n_subtitle_cues, "title": v.title or ""} for v in intake.videos]
    metadata = {
        "n_entries": intake.n_entries,
        "n_videos": len(intake.videos),
        "n_quarantined": sum(1 for q in intake.quarantine if q.action == "dropped"),
        "n_kept_partial": sum(1 for q in intake.quarantine if q.action == "kept_partial"),
        "n_subtitle_cues": len(intake.cues),
        "total_hours": round(sum(p.duration_s for p in probes) / 3600, 4),
        "codecs": MetadataValue.json(histogram(p.codec for p in probes)),
        "containers": MetadataValue.json(histogram(p.container for p in probes)),
        "preview": MetadataValue.md(markdown_table(preview)),
        "quarantine": MetadataValue.md(
            markdown_table([{"uri": q.uri, "action": q.action, "reason": q.reason} for q in intake.quarantine])),
    }
    checks = evaluate_raw_videos_checks(catalog, shard, max_share=config.max_quarantine_share,
                                        selected=selected_checks(context))
    return ShardResult(metadata, checks)
