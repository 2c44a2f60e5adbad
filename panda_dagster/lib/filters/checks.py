"""Checks of table `clip_filters` on one shard (pure; the asset turns them into Dagster checks)."""

from __future__ import annotations

from collections import Counter

from panda_dagster.lib.checks import CheckOutcome, Violation, check_scores_finite
from panda_dagster.lib.filters.records import SCORE_COLUMNS
from panda_dagster.lib.filters.registry import REASONS


def check_one_row_per_clip(catalog, shard: str) -> CheckOutcome:
    """Every clip of the shard has exactly one decision, and no decision names a clip that is gone."""
    clips = {c.clip_id for c in catalog.rows("clips", shard)}
    counts = Counter(r.clip_id for r in catalog.rows("clip_filters", shard))
    violations = [Violation(c, "missing", "clip has no clip_filters row") for c in sorted(clips - set(counts))]
    violations += [Violation(c, "unknown_clip", "row for a clip not in table clips") for c in sorted(set(counts) - clips)]
    violations += [Violation(c, "repeated", f"{n} rows") for c, n in sorted(counts.items()) if n > 1]
    return CheckOutcome.from_violations("one_row_per_clip", len(clips), violations, "clips")


def check_decisions_consistent(catalog, shard: str) -> CheckOutcome:
    """keep iff no reasons; reasons are known codes; `duplicate` iff duplicate_of is set."""
    rows = catalog.rows("clip_filters", shard)
    violations = []
    for row in rows:
        if row.keep == bool(row.reasons):
            violations.append(Violation(row.clip_id, "keep_vs_reasons", f"keep={row.keep} reasons={row.reasons}"))
        unknown = set(row.reasons) - set(REASONS)
        if unknown:
            violations.append(Violation(row.clip_id, "unknown_reason", f"reasons {sorted(unknown)}"))
        if ("duplicate" in row.reasons) != (row.duplicate_of is not None):
            violations.append(Violation(row.clip_id, "duplicate_of", f"reasons={row.reasons} "
                                        f"duplicate_of={row.duplicate_of}"))
    return CheckOutcome.from_violations("decisions_consistent", len(rows), violations, "rows")


def check_filter_scores_finite(catalog, shard: str) -> CheckOutcome:
    frame = catalog.read_shard("clip_filters", shard)
    return check_scores_finite([("clip_filters", frame, list(SCORE_COLUMNS), "clip_id")],
                               nullable=[f"clip_filters.{c}" for c in SCORE_COLUMNS])
