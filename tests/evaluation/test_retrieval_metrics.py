"""R@K and median rank on hand-made similarity matrices."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.evaluation.retrieval import chance_recall_at_k, ground_truth_ranks, retrieval_scores


def test_perfect_diagonal_ranks_everything_first():
    sim = np.eye(12) + 0.01 * np.arange(12)[None, :]  # off-diagonal below 1 but not all equal
    s = retrieval_scores(sim)
    assert (s.r1, s.r5, s.r10) == (100.0, 100.0, 100.0)
    assert s.median_rank == 1.0 and s.mean_rank == 1.0 and s.n_queries == 12


def test_hand_made_ranks_and_recalls():
    # Ground truth on the diagonal; its position per row is chosen by hand.
    sim = np.array([
        [0.9, 0.1, 0.2, 0.3],  # gt 0.9 highest          -> rank 1
        [0.8, 0.5, 0.6, 0.1],  # gt 0.5; 0.8, 0.6 higher -> rank 3
        [0.1, 0.2, 0.3, 0.4],  # gt 0.3; 0.4 higher      -> rank 2
        [0.9, 0.8, 0.7, 0.0],  # gt last                 -> rank 4
    ])
    ranks = ground_truth_ranks(sim)
    assert ranks.tolist() == [1, 3, 2, 4]
    s = retrieval_scores(sim)
    assert s.r1 == 25.0
    assert s.r5 == 100.0 and s.r10 == 100.0
    assert s.median_rank == 2.5
    assert s.mean_rank == 2.5


def test_recall_at_5_and_10_on_a_larger_matrix():
    n = 20
    sim = np.zeros((n, n))
    wanted_ranks = [1, 2, 5, 6, 10, 11, 20] + [1] * 13
    for i, r in enumerate(wanted_ranks):
        others = [j for j in range(n) if j != i]
        sim[i, others[: r - 1]] = 1.0  # r-1 candidates strictly above the ground truth (0.5)
        sim[i, i] = 0.5
    assert ground_truth_ranks(sim).tolist() == wanted_ranks
    s = retrieval_scores(sim)
    assert s.r1 == pytest.approx(100 * 14 / 20)
    assert s.r5 == pytest.approx(100 * 16 / 20)
    assert s.r10 == pytest.approx(100 * 18 / 20)
    assert s.median_rank == 1.0


def test_ties_count_against_the_query():
    s = retrieval_scores(np.full((5, 5), 0.3))  # a model that cannot tell anything apart
    assert s.r1 == 0.0
    assert s.median_rank == 5.0


def test_explicit_and_multiple_ground_truths():
    sim = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.6]])  # 2 queries, 3 candidates
    assert ground_truth_ranks(sim, [1, 2]).tolist() == [1, 2]
    # several correct candidates: the best-ranked one counts
    assert ground_truth_ranks(sim, [[0, 2], [1, 2]]).tolist() == [2, 2]
    with pytest.raises(ValueError):
        ground_truth_ranks(sim)  # non-square needs explicit ground truth
    with pytest.raises(ValueError):
        ground_truth_ranks(sim, [1, 3])


def test_chance_level():
    assert chance_recall_at_k(1, 100) == 1.0
    assert chance_recall_at_k(10, 5) == 100.0
