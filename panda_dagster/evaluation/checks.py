"""Checks of `eval_metrics`, per shard (`lib/evaluation/checks.py` evaluates them): the two blocking ones
keep the report and exports from showing numbers that are not numbers or that describe other clips."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.evaluation.checks import CLIP_COUNT_MATCHES_CATALOG, EVALUATION_COMPLETE, METRICS_FINITE

EVAL_METRICS_CHECK_SPECS = shard_check_specs(
    "eval_metrics",
    blocking={
        METRICS_FINITE: "Every recorded metric is a finite number or explicitly undefined (no NaN or infinity)",
        CLIP_COUNT_MATCHES_CATALOG: "The shard's clips.count metric equals its number of rows in the clips table",
    },
    warning={
        EVALUATION_COMPLETE: "Every part of the evaluation that applies to the shard was computed (none recorded "
        "an error, e.g. reference metrics without Java)",
    },
)
EVAL_METRICS_WARNING_CHECKS = (EVALUATION_COMPLETE,)
