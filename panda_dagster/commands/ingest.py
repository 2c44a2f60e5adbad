from __future__ import annotations

import argparse
import sys

from panda_dagster.commands.common import dagster_instance, fail, panda_resource


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="split a folder of videos or a manifest into shards and register them with Dagster",
        description="SOURCE is a folder (searched recursively; NAME.srt/NAME.vtt subtitles and NAME.json "
        "metadata beside a video are picked up) or a .csv/.jsonl/.parquet manifest with a `path` column "
        "and optional video_id, title, description, subtitles (path or inline text), url, references. "
        "A Panda-70M metadata CSV (videoID, url, timestamp, ...) is read as a manifest too: `url` is the "
        "video, `timestamp` its clip spans, which `clips` uses with mode=given (re-captioning). "
        "Videos already ingested are skipped. Prints the new shard keys, one per line. "
        "URLs are downloaded by raw_videos with retries and resumable transfers; every one gets a row in "
        "the `fetches` table, and `panda ingest --retry-failed` puts the videos whose download failed "
        "into new shards (retry-NNNNN) to be materialized again.",
    )
    p.add_argument("source", nargs="?", help="folder or manifest (not with --retry-failed)")
    p.add_argument("--retry-failed", action="store_true",
                   help="re-queue the videos whose download failed (table `fetches`) into new shards")
    p.add_argument("--shard-size", type=int, default=100, help="videos per shard (default 100)")
    p.add_argument("--prefix", default="shard", help="shard key prefix (default 'shard': shard-00001, ...)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.lib.ingest import RETRY_PREFIX, IngestError, ingest_source, plan_retry_failed, write_plan

    if args.retry_failed == bool(args.source):
        return fail("give either SOURCE or --retry-failed")
    resource = panda_resource()
    try:
        instance = dagster_instance()
        catalog, storage = resource.catalog(), resource.storage()
        if args.retry_failed:
            prefix = RETRY_PREFIX if args.prefix == "shard" else args.prefix
            plan = plan_retry_failed(catalog, storage, args.shard_size, prefix)
            write_plan(plan, catalog, storage)
        else:
            plan = ingest_source(args.source, catalog, storage, args.shard_size, args.prefix)
    except (IngestError, RuntimeError) as exc:
        return fail(str(exc))
    if plan.keys:
        instance.add_dynamic_partitions(video_shards.name, plan.keys)
    flagged = sum(1 for entries in plan.shards.values() for e in entries if e.ingest_error)
    n_new = sum(len(v) for v in plan.shards.values())
    note = f"; {flagged} flagged rows will be quarantined by raw_videos" if flagged else ""
    if args.retry_failed:
        print(f"re-queued {n_new} videos whose download failed into {len(plan.keys)} shards", file=sys.stderr)
    else:
        print(
            f"ingested {n_new} new entries into {len(plan.keys)} shards "
            f"({plan.skipped_existing} already ingested){note}",
            file=sys.stderr,
        )
    for key in plan.keys:
        print(key)
    return 0
