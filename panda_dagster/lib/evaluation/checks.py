"""Checks of `eval_metrics`, per shard, on what the catalog holds after the shard was evaluated.

- every recorded metric is a finite number or explicitly undefined (None: e.g. no clips yet); a NaN or
  infinity means a statistic divided by nothing or overflowed, and the report would print garbage;
- the shard's `clips.count` metric equals the number of rows of the shard in the `clips` table, so the
  numbers describe the clips that are there (not a stale or partial read);
- (warning) every part of the evaluation that applies to the shard was computed: a part that failed
  (e.g. reference metrics without Java) records a `*.error` metric instead of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from panda_dagster.lib.checks import CheckOutcome, Violation
from panda_dagster.lib.evaluation.records import EvalMetricRecord

METRICS_FINITE = "metrics_finite"
CLIP_COUNT_MATCHES_CATALOG = "clip_count_matches_catalog"
EVALUATION_COMPLETE = "evaluation_complete"

CLIP_COUNT_METRIC = "clips.count"
ERROR_SUFFIX = ".error"


def check_metrics_finite(metrics: Sequence[EvalMetricRecord]) -> CheckOutcome:
    violations = [Violation(m.metric, "not_finite", f"{m.metric} = {m.value!r}")
                  for m in metrics if m.value is not None and not math.isfinite(m.value)]
    n_undefined = sum(m.value is None for m in metrics)
    return CheckOutcome.from_violations(METRICS_FINITE, len(metrics), violations, "metrics",
                                        {"n_undefined": n_undefined})


def check_clip_count(metrics: Sequence[EvalMetricRecord], n_clips_in_catalog: int) -> CheckOutcome:
    recorded = [m.value for m in metrics if m.metric == CLIP_COUNT_METRIC]
    stats = {"clips_in_catalog": n_clips_in_catalog}
    if not recorded:
        violations = [Violation(CLIP_COUNT_METRIC, "missing", f"no {CLIP_COUNT_METRIC} metric recorded")]
    elif recorded[0] is None or recorded[0] != n_clips_in_catalog:
        violations = [Violation(CLIP_COUNT_METRIC, "mismatch",
                                f"{CLIP_COUNT_METRIC} = {recorded[0]!r}, the clips table holds {n_clips_in_catalog}")]
    else:
        violations = []
    return CheckOutcome.from_violations(CLIP_COUNT_MATCHES_CATALOG, 1, violations, "clip counts", stats)


def check_evaluation_complete(metrics: Sequence[EvalMetricRecord]) -> CheckOutcome:
    violations = [Violation(m.metric[: -len(ERROR_SUFFIX)], "not_computed", str(m.detail() or m.metric))
                  for m in metrics if m.metric.endswith(ERROR_SUFFIX)]
    parts = {m.metric.split(".", 1)[0] for m in metrics}
    return CheckOutcome.from_violations(EVALUATION_COMPLETE, len(parts), violations, "parts of the evaluation")


def evaluate_eval_checks(metrics: Sequence[EvalMetricRecord], n_clips_in_catalog: int,
                         selected: set[str] | None = None) -> list[CheckOutcome]:
    """The outcomes of the checks in `selected` (all when None)."""
    checks = {
        METRICS_FINITE: lambda: check_metrics_finite(metrics),
        CLIP_COUNT_MATCHES_CATALOG: lambda: check_clip_count(metrics, n_clips_in_catalog),
        EVALUATION_COMPLETE: lambda: check_evaluation_complete(metrics),
    }
    return [run() for name, run in checks.items() if selected is None or name in selected]
