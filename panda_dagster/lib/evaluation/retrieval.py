"""Retrieval metrics from a similarity matrix: recall at K and median rank.

Rows are queries, columns are candidates. A query's rank is the 1-based position of its ground-truth
candidate when candidates are sorted by decreasing similarity. Ties count against the query
(rank = number of candidates scoring at least as high as the ground truth), so a degenerate model that
scores everything the same gets the worst rank, never a perfect one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalScores:
    r1: float  # percent of queries whose ground truth is ranked first
    r5: float
    r10: float
    median_rank: float
    mean_rank: float
    n_queries: int
    n_candidates: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def ground_truth_ranks(sim: np.ndarray, gt: Sequence[int] | Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """1-based rank of each query's ground truth.

    `gt` is one candidate index per query, or a list of index lists when a query has several correct
    candidates (e.g. a video and its 20 reference sentences); the best-ranked one counts. Default: the
    diagonal (query i matches candidate i).
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity matrix must be 2-D, got shape {sim.shape}")
    n_queries, n_candidates = sim.shape
    if gt is None:
        if n_queries != n_candidates:
            raise ValueError(f"no ground truth given for a non-square similarity matrix {sim.shape}")
        gt = np.arange(n_queries)
    if len(gt) != n_queries:
        raise ValueError(f"{len(gt)} ground-truth entries for {n_queries} queries")
    if np.isnan(sim).any():
        raise ValueError("similarity matrix contains NaN")
    ranks = np.empty(n_queries, dtype=np.int64)
    for i, positives in enumerate(gt):
        pos = np.atleast_1d(np.asarray(positives, dtype=np.int64))
        if pos.size == 0:
            raise ValueError(f"query {i} has no ground-truth candidate")
        if pos.min() < 0 or pos.max() >= n_candidates:
            raise ValueError(f"query {i}: ground-truth index out of range 0..{n_candidates - 1}")
        best = sim[i, pos].max()
        ranks[i] = int(np.count_nonzero(sim[i] >= best))
    return ranks


def scores_from_ranks(ranks: np.ndarray, n_candidates: int, ks: Sequence[int] = DEFAULT_KS) -> RetrievalScores:
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no queries to score")
    recall = {k: 100.0 * float(np.mean(ranks <= k)) for k in ks}
    return RetrievalScores(
        r1=recall.get(1, float("nan")),
        r5=recall.get(5, float("nan")),
        r10=recall.get(10, float("nan")),
        median_rank=float(np.median(ranks)),
        mean_rank=float(np.mean(ranks)),
        n_queries=int(ranks.size),
        n_candidates=int(n_candidates),
    )


def retrieval_scores(sim: np.ndarray, gt: Sequence[int] | Sequence[Sequence[int]] | None = None) -> RetrievalScores:
    """R@1/5/10 (percent), median and mean rank of `sim` (queries x candidates)."""
    sim = np.asarray(sim)
    return scores_from_ranks(ground_truth_ranks(sim, gt), sim.shape[1])


def chance_recall_at_k(k: int, n_candidates: int) -> float:
    """Expected R@K (percent) of a random ranking with one correct candidate."""
    return 100.0 * min(k, n_candidates) / n_candidates
