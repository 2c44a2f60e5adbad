"""Everything `eval_metrics` computes for one shard, from its catalog tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from panda_dagster.lib.evaluation.captions import CaptionMetricsError, SourceComparison, reference_metrics
from panda_dagster.lib.evaluation.catalog_io import ShardTables
from panda_dagster.lib.evaluation.duplicates import (
    DEFAULT_NEAR_DUPLICATE_COSINE,
    exact_duplicate_metrics,
    near_duplicate_metrics,
)
from panda_dagster.lib.evaluation.plots import shard_plots
from panda_dagster.lib.evaluation.records import EvalMetricRecord
from panda_dagster.lib.evaluation.stats import Metric, filter_statistics, metrics_frame, shard_statistics, to_records
from panda_dagster.lib.models.base import TextEmbedder
from panda_dagster.lib.models.profiles import TINY_LABEL


@dataclass(frozen=True)
class EvalConfig:
    """What `eval_metrics` computes beyond the statistics every shard gets."""

    reference_metrics: bool = field(default=True, metadata={"help": (
        "Score every teacher and the selected captions against reference captions when the shard has them "
        "(pycocoevalcap BLEU/METEOR/ROUGE-L/CIDEr; needs Java)")})
    near_duplicate_cosine: float = field(default=DEFAULT_NEAR_DUPLICATE_COSINE, metadata={"help": (
        "Two selected captions whose sentence embeddings reach this cosine are near-duplicates (needs a "
        "sentence embedder: the `offline` profile's MiniLM; other profiles skip it with a note)")})

log = logging.getLogger(__name__)


def shard_profiles(tables: ShardTables) -> list[str]:
    """The models profiles that produced the shard's captions and selection (teacher rows name their
    profile; selection rows carry the profile's label: TINY_LABEL, the name, or a `lib.models.roles` line)."""
    from panda_dagster.lib.models.profiles import PROFILES

    found = set()
    if not tables.teacher_captions.empty and "profile" in tables.teacher_captions:
        found |= {str(p) for p in tables.teacher_captions["profile"].dropna()}
    if not tables.selected_captions.empty and "models_label" in tables.selected_captions:
        for label in {str(v) for v in tables.selected_captions["models_label"].dropna()}:
            found.add("tiny" if label == TINY_LABEL else label.split(":", 1)[0].strip())
    return sorted(found & set(PROFILES))


def profile_models_label(profile: str) -> str:
    """The line reports print for `profile`: per model trained or random (`lib.models.roles`); the tiny
    profile, random wherever it matters to the evaluation, keeps its one warning label."""
    from panda_dagster.lib.models.roles import models_label

    return TINY_LABEL if profile == "tiny" else models_label(profile)


def models_metric(tables: ShardTables) -> Metric:
    """Which model profiles produced the shard's clips, captions and selection, and per model whether its
    weights were trained or random (detail `roles`); value 1.0 if any model that fed the shard was random."""
    from dataclasses import asdict

    from panda_dagster.lib.models.roles import profile_roles

    def labels(df: pd.DataFrame, column: str) -> list[str]:
        return sorted({str(v) for v in df[column].dropna()}) if not df.empty and column in df else []

    detail: dict[str, object] = {
        "clips": labels(tables.clips, "models_label"),
        "teachers": labels(tables.teacher_captions, "profile"),
        "selection": labels(tables.selected_captions, "models_label"),
    }
    random = (TINY_LABEL in detail["clips"] or "tiny" in detail["teachers"] or TINY_LABEL in detail["selection"]
              or any(m.startswith("tiny/") for m in labels(tables.teacher_captions, "model_id")))
    profiles = shard_profiles(tables)
    roles = {p: [asdict(r) for r in profile_roles(p)] for p in profiles}
    random = random or any(not r["trained"] for rs in roles.values() for r in rs)
    detail["profiles"] = profiles
    detail["roles"] = roles
    detail["random_roles"] = sorted({r["role"] for rs in roles.values() for r in rs if not r["trained"]})
    if profiles:
        detail["label"] = " | ".join(profile_models_label(p) for p in profiles)
    else:  # no captions yet: only the clip embedder's own label says anything
        detail["label"] = TINY_LABEL if random else "real model weights"
    return Metric("models.tiny", 1.0 if random else 0.0, detail)


@dataclass
class ShardEvaluation:
    shard: str
    metrics: list[Metric]
    comparison: SourceComparison | None
    plots: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # parts skipped on purpose (e.g. no sentence embedder)

    def records(self) -> list[EvalMetricRecord]:
        return to_records(self.shard, self.metrics)

    def frame(self) -> pd.DataFrame:
        return metrics_frame(self.records())

    def value(self, name: str) -> float | None:
        for m in self.metrics:
            if m.name == name:
                return m.value
        return None


def evaluate_shard(tables: ShardTables, config: EvalConfig = EvalConfig(),
                   sentence_embedder: TextEmbedder | None = None, no_embedder_reason: str = "") -> ShardEvaluation:
    """Every metric of one shard. `sentence_embedder` (None: near-duplicates are skipped, with
    `no_embedder_reason`) embeds the selected captions for the near-duplicate metrics."""
    metrics = [models_metric(tables)]
    metrics += shard_statistics(tables.clips, tables.selected_captions, tables.teacher_captions, tables.quarantine,
                                tables.videos)
    metrics += filter_statistics(tables.clip_filters)
    captions = [str(c) for c in tables.selected_captions["caption"].dropna()] if not tables.selected_captions.empty else []
    metrics += exact_duplicate_metrics(captions)
    embed = None if sentence_embedder is None else sentence_embedder.embed_texts
    label = "" if sentence_embedder is None else str(getattr(sentence_embedder, "label", ""))
    metrics += near_duplicate_metrics(captions, embed, label, config.near_duplicate_cosine, no_embedder_reason)
    notes = [f"near-duplicate captions not measured: {no_embedder_reason or 'no sentence embedder'}"
             ] if sentence_embedder is None else []
    comparison = None
    warnings: list[str] = []
    if config.reference_metrics and not tables.clips.empty:
        try:
            ref_metrics, comparison = reference_metrics(tables.clips, tables.videos, tables.teacher_captions,
                                                        tables.selected_captions)
            metrics += ref_metrics
        except (CaptionMetricsError, ValueError) as exc:
            # The shard's statistics are still worth recording; say why the reference scores are missing.
            warnings.append(f"reference caption metrics not computed: {exc}")
            metrics.append(Metric("references.error", None, {"error": str(exc)}))
            log.warning("shard %s: %s", tables.shard, warnings[-1])
    evaluation = ShardEvaluation(tables.shard, metrics, comparison, warnings=warnings, notes=notes)
    evaluation.plots = shard_plots(evaluation.frame(), tables.shard)
    return evaluation
