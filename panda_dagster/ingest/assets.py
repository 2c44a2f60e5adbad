import time
from concurrent.futures import ThreadPoolExecutor

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from panda_dagster.common.checks import check_events, selected_checks
from panda_dagster.common.jobs import RANGE_IN_ONE_RUN, TRANSIENT_RETRY
from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.ingest.checks import RAW_VIDEOS_CHECK_SPECS, WARNING_CHECKS, evaluate_raw_videos_checks
from panda_dagster.lib.intake import STAGE, intake_entry
from panda_dagster.lib.checks import max_quarantine_share
from panda_dagster.lib.ingest import load_manifest
from panda_dagster.lib.records import QuarantineRecord


class RawVideosConfig(Config):
    workers: int = Field(default=2, description="Videos probed in parallel (decoding releases the GIL)")
    max_quarantine_share: float | None = Field(
        default=None, description="Warn (asset check) when a larger share of a shard's entries is dropped; "
        "null = $PANDA_MAX_QUARANTINE_SHARE, else 0.2")


@asset(
    partitions_def=video_shards,
    group_name="ingest",
    kinds={"video", "duckdb"},
    retry_policy=TRANSIENT_RETRY,
    # One run probes a whole range of shards (backfills, `--partition-range A...B`), shard by shard.
    backfill_policy=RANGE_IN_ONE_RUN,
    check_specs=RAW_VIDEOS_CHECK_SPECS,
    description="Every video of the shard probed with a real decoder (first, middle and last frames "
    "decoded), subtitles parsed; catalog tables `videos` and `subtitles`, failures in `quarantine`.",
)
def raw_videos(context: AssetExecutionContext, config: RawVideosConfig, panda: PandaResource):
    try:
        max_quarantine_share(config.max_quarantine_share)
    except ValueError as exc:
        raise Failure(f"raw_videos config: {exc}", allow_retries=False) from exc
    shards = context.partition_keys
    started = time.perf_counter()
    summaries, failed, permanent, check_outcomes = [], {}, [], {}
    for shard in shards:
        # Each shard is written on its own: a shard that fails (e.g. its manifest is unreadable) does
        # not stop the others; the run fails at the end so the failed ones are retried.
        try:
            summaries.append(_probe_shard(context, config, panda, shard))
            check_outcomes[shard] = evaluate_raw_videos_checks(
                panda.catalog(), shard, max_share=config.max_quarantine_share, selected=selected_checks(context))
        except Exception as exc:  # noqa: BLE001  reported below, re-raised as one Failure
            context.log.exception(f"shard {shard} failed: {exc}")
            failed[shard] = f"{type(exc).__name__}: {exc}"
            # A missing or malformed manifest stays missing: retrying cannot help.
            permanent.append(isinstance(exc, (FileNotFoundError, ValueError)))
    if failed:
        raise Failure(
            f"raw_videos failed for {len(failed)} of {len(shards)} shards: {', '.join(failed)} "
            f"(the other {len(shards) - len(failed)} were written)",
            metadata={"failed_shards": MetadataValue.json(failed), "done_shards": [s["shard"] for s in summaries]},
            allow_retries=not all(permanent),
        )
    if len(summaries) == 1:
        yield MaterializeResult(metadata=summaries[0]["metadata"])
        yield from check_events(context, check_outcomes, WARNING_CHECKS)
        return
    elapsed = time.perf_counter() - started
    totals = {k: sum(s["metadata"][k] for s in summaries)
              for k in ("n_entries", "n_videos", "n_quarantined", "n_kept_partial", "n_subtitle_cues")}
    yield MaterializeResult(
        metadata={
            "n_shards": len(summaries),
            **totals,
            "total_hours": round(sum(s["metadata"]["total_hours"] for s in summaries), 4),
            "seconds": round(elapsed, 2),
            "videos_per_s": round(totals["n_entries"] / elapsed, 2) if elapsed else 0.0,
            "shards": MetadataValue.md(markdown_table(
                [{"shard": s["shard"], **{k: s["metadata"][k] for k in ("n_entries", "n_videos", "n_quarantined")}}
                 for s in summaries], limit=100)),
        }
    )
    yield from check_events(context, check_outcomes, WARNING_CHECKS)


def _probe_shard(context: AssetExecutionContext, config: RawVideosConfig, panda: PandaResource, shard: str) -> dict:
    started = time.perf_counter()
    storage, catalog = panda.storage(), panda.catalog()
    entries = load_manifest(storage, shard)
    cache_dir = panda.home_path / "cache"
    s3_client = panda.s3_client() if any(e.uri.startswith("s3://") for e in entries) else None
    context.log.info(f"shard {shard}: probing {len(entries)} videos with {config.workers} workers")

    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        results = list(pool.map(lambda e: intake_entry(e, shard, cache_dir, s3_client), entries))

    videos, cues, quarantine = [], [], []
    first_by_sha: dict[str, str] = {}
    for entry, result in zip(entries, results):
        quarantine.extend(result.quarantine)
        video = result.video
        if video is None:
            continue
        # The same bytes under two names would put the same clips in the dataset twice.
        if video.sha256 in first_by_sha:
            reason = f"duplicate content: same bytes (sha256) as video {first_by_sha[video.sha256]}"
            quarantine.append(QuarantineRecord(shard, entry.uri, STAGE, reason, video.video_id))
            continue
        first_by_sha[video.sha256] = video.video_id
        videos.append(video)
        cues.extend(result.cues)
    for q in quarantine:
        context.log.warning(f"quarantine [{q.action}] {q.uri}: {q.reason}")

    catalog.replace_shard("videos", shard, videos)
    catalog.replace_shard("subtitles", shard, cues)
    catalog.replace_shard("quarantine", shard, quarantine, part=STAGE)

    elapsed = time.perf_counter() - started
    hours = sum(v.duration_s for v in videos) / 3600
    preview = [
        {"video_id": v.video_id, "codec": v.codec, "size": f"{v.width}x{v.height}", "fps": v.fps,
         "duration_s": v.duration_s, "audio": v.has_audio, "cues": v.n_subtitle_cues, "title": v.title or ""}
        for v in videos
    ]
    return {
        "shard": shard,
        "metadata": {
            "n_entries": len(entries),
            "n_videos": len(videos),
            "n_quarantined": sum(1 for q in quarantine if q.action == "dropped"),
            "n_kept_partial": sum(1 for q in quarantine if q.action == "kept_partial"),
            "n_subtitle_cues": len(cues),
            "total_hours": round(hours, 4),
            "codecs": MetadataValue.json(histogram(v.codec for v in videos)),
            "containers": MetadataValue.json(histogram(v.container for v in videos)),
            "seconds": round(elapsed, 2),
            "videos_per_s": round(len(entries) / elapsed, 2) if elapsed else 0.0,
            "preview": MetadataValue.md(markdown_table(preview)),
            "quarantine": MetadataValue.md(
                markdown_table([{"uri": q.uri, "action": q.action, "reason": q.reason} for q in quarantine])
            ),
        },
    }
