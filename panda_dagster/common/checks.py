"""Asset checks evaluated inside the asset that they check, per shard.

The checks are declared on the asset (`@asset(check_specs=...)`, one `AssetCheckSpec` per check,
partitioned by `video_shards`) and evaluated right after the asset has written a shard, on what the
catalog then holds (`panda_dagster.lib.checks`). A blocking check that fails with ERROR severity fails
the step (after the materialization is recorded), so the next stage does not run on that shard.

Dagster records a check result per partition when the step runs one partition. A step that runs a range
of shards (single-run backfill policy) can emit one `AssetCheckResult` per check only, and Dagster would
file it under no partition; there the asset emits one `AssetCheckEvaluation` per shard with its
partition, plus the check's (empty) output, so each shard still gets its own status.
"""

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
    PreviewWarning,
)

# Public Dagster has no constructor for "this evaluation checks that materialization" outside a step.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.lib.checks import CheckOutcome


def shard_check_specs(asset: str, blocking: Mapping[str, str], warning: Mapping[str, str] | None = None
                      ) -> list[AssetCheckSpec]:
    """Per-shard check specs of `asset`: `blocking` ones stop downstream assets when they fail, `warning`
    ones (severity WARN) only flag the shard. Both map check name -> description."""
    with warnings.catch_warnings():
        # Partitioned check specs are marked preview in Dagster 1.13; they are what gives each shard its
        # own check status.
        warnings.simplefilter("ignore", PreviewWarning)
        specs = [AssetCheckSpec(name, asset=asset, description=text, blocking=True, partitions_def=video_shards)
                 for name, text in blocking.items()]
        specs += [AssetCheckSpec(name, asset=asset, description=text, blocking=False, partitions_def=video_shards)
                  for name, text in (warning or {}).items()]
    return specs


def selected_checks(context: AssetExecutionContext) -> set[str]:
    """Names of this asset's checks the run asked for (all of them unless a run deselects some)."""
    return {key.name for key in context.selected_asset_check_keys}


def outcome_metadata(outcome: CheckOutcome, shard: str) -> dict:
    metadata: dict[str, object] = {
        "shard": MetadataValue.text(shard),
        "summary": MetadataValue.text(outcome.summary),
        "n_checked": outcome.n_checked,
        "n_failed": outcome.n_failed,
    }
    if outcome.counts:
        metadata["failures_by_kind"] = MetadataValue.json(outcome.counts)
    if outcome.examples:
        metadata["examples"] = MetadataValue.md(markdown_table([v.as_dict() for v in outcome.examples]))
    for name, value in outcome.stats.items():
        metadata[name] = MetadataValue.text(value) if isinstance(value, str) else value
    return metadata


def _severity(outcome: CheckOutcome, warning_checks: Iterable[str]) -> AssetCheckSeverity:
    return AssetCheckSeverity.WARN if outcome.name in set(warning_checks) else AssetCheckSeverity.ERROR


def _latest_materialization(context: AssetExecutionContext, asset_key: AssetKey, shard: str):
    """The shard's materialization the evaluation belongs to (what Dagster looks up for a one-partition step)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[shard]), limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].event_log_entry.run_id, timestamp=records[0].timestamp)


def check_events(context: AssetExecutionContext, outcomes_by_shard: Mapping[str, Sequence[CheckOutcome]],
                 warning_checks: Iterable[str] = ()) -> Iterator[object]:
    """What the asset yields (after its MaterializeResult) for the checks of the shards it wrote."""
    warning_checks = set(warning_checks)
    for shard, outcomes in outcomes_by_shard.items():
        for outcome in outcomes:
            if outcome.passed:
                context.log.info(f"check {outcome.name} [{shard}]: {outcome.summary}")
            else:
                context.log.warning(f"check {outcome.name} [{shard}] FAILED: {outcome.summary}; "
                                    + "; ".join(f"{v.key[:12]}: {v.reason}" for v in outcome.examples[:3]))
    if context.has_partition_key:
        (shard, outcomes), = outcomes_by_shard.items()
        for outcome in outcomes:
            yield AssetCheckResult(check_name=outcome.name, passed=outcome.passed,
                                   severity=_severity(outcome, warning_checks), description=outcome.summary,
                                   metadata=outcome_metadata(outcome, shard))
        return
    specs = {spec.name: spec for spec in context.assets_def.check_specs}
    output_names = {spec.name: name for name, spec in context.assets_def.check_specs_by_output_name.items()}
    emitted: set[str] = set()
    for shard, outcomes in outcomes_by_shard.items():
        for outcome in outcomes:
            spec = specs[outcome.name]
            yield AssetCheckEvaluation(
                asset_key=spec.asset_key, check_name=outcome.name, passed=outcome.passed,
                metadata=outcome_metadata(outcome, shard), severity=_severity(outcome, warning_checks),
                description=outcome.summary, blocking=spec.blocking, partition=shard,
                target_materialization_data=_latest_materialization(context, spec.asset_key, shard))
            emitted.add(outcome.name)
    # Downstream steps wait for blocking checks' outputs; a failed blocking evaluation above fails the step.
    for name in sorted(emitted):
        yield Output(None, output_name=output_names[name])
