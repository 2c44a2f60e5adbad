"""Catalog tables written by the evaluation stage."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

# Unpartitioned assets (retrieval benchmark, dataset report) write their rows under this shard name.
ALL_SHARDS = "__all__"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class EvalMetricRecord:
    """One number about one shard; `detail_json` carries the structure behind it (histogram, table)."""

    shard: str
    metric: str  # dotted name, e.g. `clips.duration_s.mean`, `teacher.win_rate.blip2`
    value: float | None  # None when the metric is undefined for this shard (e.g. no clips)
    detail_json: str | None = None
    computed_at: dt.datetime = field(default_factory=utcnow)

    def detail(self) -> object:
        return json.loads(self.detail_json) if self.detail_json else None


@dataclass
class RetrievalResultRecord:
    """Text-video retrieval of one trained joint embedding, on one evaluation set, one direction."""

    shard: str  # ALL_SHARDS: the benchmark trains on the clips of every materialized shard
    train_text: str  # which text the model was trained on: selected, narration, teacher:<name>
    eval_set: str  # `heldout` (held-out clips) or `references:<shard>` (an evaluation set)
    eval_text: str  # which text the queries/targets were made of at evaluation time
    direction: str  # t2v (text query, rank videos) or v2t (video query, rank texts)
    r1: float  # recall at 1/5/10, in percent
    r5: float
    r10: float
    median_rank: float  # 1-based
    mean_rank: float
    n_queries: int
    n_candidates: int
    n_train_clips: int
    n_train_videos: int
    seed: int
    config_json: str  # training configuration and feature models
    models_label: str  # profile label; TINY_LABEL when features came from tiny random-weight models
    computed_at: dt.datetime = field(default_factory=utcnow)

