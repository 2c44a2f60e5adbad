"""Everything `eval_metrics` computes for one shard, from its catalog tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from panda_dagster.lib.evaluation.captions import CaptionMetricsError, SourceComparison, reference_metrics
from panda_dagster.lib.evaluation.catalog_io import ShardTables
from panda_dagster.lib.evaluation.plots import shard_plots
from panda_dagster.lib.evaluation.records import EvalMetricRecord
from panda_dagster.lib.evaluation.stats import Metric, metrics_frame, shard_statistics, to_records
from panda_dagster.lib.models.profiles import TINY_LABEL

log = logging.getLogger(__name__)


def models_metric(tables: ShardTables) -> Metric:
    """Which model profiles produced the shard's clips, captions and selection; value 1.0 if any was tiny."""
    def labels(df: pd.DataFrame, column: str) -> list[str]:
        return sorted({str(v) for v in df[column].dropna()}) if not df.empty and column in df else []

    detail = {
        "clips": labels(tables.clips, "models_label"),
        "teachers": labels(tables.teacher_captions, "profile"),
        "selection": labels(tables.selected_captions, "models_label"),
    }
    tiny = (TINY_LABEL in detail["clips"] or "tiny" in detail["teachers"] or TINY_LABEL in detail["selection"]
            or any(m.startswith("tiny/") for m in labels(tables.teacher_captions, "model_id")))
    detail["label"] = TINY_LABEL if tiny else "real model weights"
    return Metric("models.tiny", 1.0 if tiny else 0.0, detail)


@dataclass
class ShardEvaluation:
    shard: str
    metrics: list[Metric]
    comparison: SourceComparison | None
    plots: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def records(self) -> list[EvalMetricRecord]:
        return to_records(self.shard, self.metrics)

    def frame(self) -> pd.DataFrame:
        return metrics_frame(self.records())

    def value(self, name: str) -> float | None:
        for m in self.metrics:
            if m.name == name:
                return m.value
        return None


def evaluate_shard(tables: ShardTables, score_references: bool = True) -> ShardEvaluation:
    metrics = [models_metric(tables)]
    metrics += shard_statistics(tables.clips, tables.selected_captions, tables.teacher_captions, tables.quarantine,
                                tables.videos)
    comparison = None
    warnings: list[str] = []
    if score_references and not tables.clips.empty:
        try:
            ref_metrics, comparison = reference_metrics(tables.clips, tables.videos, tables.teacher_captions,
                                                        tables.selected_captions)
            metrics += ref_metrics
        except (CaptionMetricsError, ValueError) as exc:
            # The shard's statistics are still worth recording; say why the reference scores are missing.
            warnings.append(f"reference caption metrics not computed: {exc}")
            metrics.append(Metric("references.error", None, {"error": str(exc)}))
            log.warning("shard %s: %s", tables.shard, warnings[-1])
    evaluation = ShardEvaluation(tables.shard, metrics, comparison, warnings=warnings)
    evaluation.plots = shard_plots(evaluation.frame(), tables.shard)
    return evaluation
