import time
from concurrent.futures import ThreadPoolExecutor

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, RetryPolicy, asset
from pydantic import Field

from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.intake import STAGE, intake_entry
from panda_dagster.lib.ingest import load_manifest
from panda_dagster.lib.records import QuarantineRecord


class RawVideosConfig(Config):
    workers: int = Field(default=2, description="Videos probed in parallel (decoding releases the GIL)")


@asset(
    partitions_def=video_shards,
    group_name="ingest",
    kinds={"video", "duckdb"},
    retry_policy=RetryPolicy(max_retries=2, delay=5),
    description="Every video of the shard probed with a real decoder (first, middle and last frames "
    "decoded), subtitles parsed; catalog tables `videos` and `subtitles`, failures in `quarantine`.",
)
def raw_videos(context: AssetExecutionContext, config: RawVideosConfig, panda: PandaResource) -> MaterializeResult:
    shard = context.partition_key
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
    return MaterializeResult(
        metadata={
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
        }
    )
