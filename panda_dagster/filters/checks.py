"""Checks of the `clip_filters` asset, per shard, right after it is written (blocking: teacher_captions
would caption the wrong clips)."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.checks import CheckOutcome

CLIP_FILTERS_CHECK_SPECS = shard_check_specs("clip_filters", blocking={
    "one_row_per_clip": "Every clip of the shard has exactly one decision row, and no row names a missing clip",
    "decisions_consistent": "keep iff no reasons; reasons are known codes; `duplicate` iff duplicate_of is set",
    "scores_finite": "Every filter score is finite where it is set (None = not measured)",
})


def evaluate_clip_filters_checks(catalog, shard: str, selected: set[str]) -> list[CheckOutcome]:
    from panda_dagster.lib.filters.checks import (
        check_decisions_consistent,
        check_filter_scores_finite,
        check_one_row_per_clip,
    )

    checks = {"one_row_per_clip": check_one_row_per_clip, "decisions_consistent": check_decisions_consistent,
              "scores_finite": check_filter_scores_finite}
    return [check(catalog, shard) for name, check in checks.items() if name in selected]
