"""The one per-shard loop of every per-shard asset, and the decorator that gives those assets the same
partitions, retries, backfill policy and group.

A step may be handed several shards (a single-run or chunked backfill). Each shard is processed on its
own: a shard that raises is logged and named in one `Failure` at the end, while the shards that
succeeded keep what they wrote (every stage replaces a shard's rows atomically, so a retry redoes them
idempotently). Metadata of several shards is combined into totals plus a per-shard table, and check
outcomes are emitted per shard (`common.checks.check_events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from dagster import AssetExecutionContext, BackfillPolicy, Failure, MaterializeResult, MetadataValue, asset

from panda_dagster.common.checks import check_events
from panda_dagster.common.jobs import RANGE_IN_ONE_RUN, TRANSIENT_RETRY
from panda_dagster.common.metadata import combine_shard_metadata
from panda_dagster.common.partitions import video_shards
from panda_dagster.lib.checks import CheckOutcome


@dataclass
class ShardResult:
    """What processing one shard reports: its asset metadata and the outcomes of the asset's checks."""

    metadata: dict[str, object]
    checks: Sequence[CheckOutcome] = field(default_factory=list)


def shard_asset(*, group: str, backfill_policy: BackfillPolicy = RANGE_IN_ONE_RUN, **asset_kwargs):
    """`@asset` for a stage partitioned by video shard, with the retry policy every stage shares."""
    return asset(partitions_def=video_shards, group_name=group, retry_policy=TRANSIENT_RETRY,
                 backfill_policy=backfill_policy, **asset_kwargs)


def run_shards(context: AssetExecutionContext, process_shard: Callable[[str], ShardResult], *,
               warning_checks: Iterable[str] = (), permanent: tuple[type[BaseException], ...] = (),
               not_retried: tuple[type[BaseException], ...] = ()) -> Iterator[object]:
    """Run `process_shard` for every shard of the step and yield the asset's events.

    Exceptions of the types in `permanent` (e.g. a missing model) stop the step at once without retries;
    any other exception fails only its shard. When every failed shard failed with one of `not_retried`
    (e.g. its manifest is missing: retrying cannot help), the step is not retried.
    """
    shards = list(context.partition_keys)
    results: dict[str, ShardResult] = {}
    failed: dict[str, str] = {}
    retry_can_help = False
    for shard in shards:
        started = time.perf_counter()
        try:
            result = process_shard(shard)
        except Failure:
            raise
        except permanent as exc:
            raise Failure(f"shard {shard}: {exc}", allow_retries=False) from exc
        except Exception as exc:  # noqa: BLE001  reported below as one Failure; the other shards are kept
            context.log.exception(f"shard {shard} failed: {type(exc).__name__}: {exc}")
            failed[shard] = f"{type(exc).__name__}: {exc}"
            retry_can_help = retry_can_help or not isinstance(exc, not_retried)
            continue
        result.metadata.setdefault("seconds", round(time.perf_counter() - started, 2))
        results[shard] = result
    if failed:
        raise Failure(
            f"{context.assets_def.key.to_user_string()} failed for {len(failed)} of {len(shards)} shards: "
            f"{', '.join(failed)} (the other {len(results)} were written)",
            metadata={"failed_shards": MetadataValue.json(failed), "written_shards": MetadataValue.json(sorted(results))},
            allow_retries=retry_can_help,
        )
    yield MaterializeResult(metadata=combine_shard_metadata({s: r.metadata for s, r in results.items()}))
    yield from check_events(context, {s: list(r.checks) for s, r in results.items()}, warning_checks)

