"""HowTo100M joint embedding: loss on a hand-computed case, intra-video batches, training beats chance."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from panda_dagster.lib.evaluation.howto100m import (
    IntraVideoBatchSampler,
    JointEmbeddingConfig,
    ReferenceEvalSet,
    TextSource,
    compare_text_sources,
    gated_embedding_unit,
    max_margin_ranking_loss,
    split_by_video,
    train_joint_embedding,
    evaluate_pairs,
)


def test_loss_hand_computed_two_by_two():
    # S[i, j] = <video_i, text_j>. Negative pairs with margin 0.1:
    # (0,1): video 0 vs text 1: relu(0.1 + 0.45 - 0.5) = 0.05; text 0 vs video 1: relu(0.1 + 0.1 - 0.5) = 0
    # (1,0): video 1 vs text 0: relu(0.1 + 0.1 - 0.9) = 0;     text 1 vs video 0: relu(0.1 + 0.45 - 0.9) = 0
    # mean over the 2 negative pairs: 0.05 / 2
    sim = torch.tensor([[0.5, 0.45], [0.1, 0.9]])
    assert max_margin_ranking_loss(sim, margin=0.1).item() == pytest.approx(0.025)


def test_loss_hand_computed_three_by_three_both_directions():
    sim = torch.tensor([[0.2, 0.3, 0.0], [0.0, 0.5, 0.0], [0.25, 0.0, 0.1]])
    m = 0.1
    expected = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                expected += max(0.0, m + sim[i, j].item() - sim[i, i].item())
                expected += max(0.0, m + sim[j, i].item() - sim[i, i].item())
    # by hand: row 0: (0,1) 0.2 + (0,1)^T relu(.1+0-.2)=0; (0,2) 0 + relu(.1+.25-.2)=.15
    #          row 1: (1,0) 0 + relu(.1+.3-.5)=0; (1,2) 0 + 0
    #          row 2: (2,0) relu(.1+.25-.1)=.25 + relu(.1+0-.1)=0; (2,1) relu(.1+0-.1)=0 + relu(0)=0
    assert expected == pytest.approx(0.2 + 0.15 + 0.25)
    assert max_margin_ranking_loss(sim, margin=m).item() == pytest.approx(expected / 6)


def test_loss_zero_when_positives_win_by_the_margin_and_ignore_mask():
    sim = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    assert max_margin_ranking_loss(sim, 0.1).item() == 0.0
    tight = torch.tensor([[1.0, 0.95], [0.0, 1.0]])
    assert max_margin_ranking_loss(tight, 0.1).item() > 0
    # pair (0,1) marked as not a real negative (same text): nothing left to penalise
    ignore = torch.tensor([[False, True], [False, False]])
    assert max_margin_ranking_loss(tight, 0.1, ignore).item() == 0.0


def test_loss_has_gradient_towards_the_positive():
    sim = torch.tensor([[0.2, 0.3], [0.3, 0.2]], requires_grad=True)
    max_margin_ranking_loss(sim, 0.1).backward()
    assert (sim.grad.diagonal() < 0).all()  # raising the positives lowers the loss


def test_gated_embedding_unit_outputs_unit_vectors():
    torch.manual_seed(0)
    unit = gated_embedding_unit(12, 8)
    out = unit(torch.randn(5, 12))
    assert out.shape == (5, 8)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    # the gate is a sigmoid of a linear map of the projected input
    x = torch.randn(3, 12)
    z = unit.fc(x)
    gated = z * torch.sigmoid(unit.gating.fc(z))
    assert torch.allclose(unit(x), torch.nn.functional.normalize(gated, dim=1), atol=1e-6)


def _video_ids(clips_per_video: list[int]) -> list[str]:
    return [f"v{v}" for v, n in enumerate(clips_per_video) for _ in range(n)]


def test_sampler_visits_every_clip_once_per_epoch():
    ids = _video_ids([1, 2, 3, 5, 8, 13, 1, 1, 4])
    sampler = IntraVideoBatchSampler(ids, batch_size=8, intra_video_rate=0.5, seed=3)
    for epoch in range(3):
        batches = list(sampler.epoch(epoch))
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(ids)))
        assert all(len(b) <= 8 for b in batches)
    assert [b.tolist() for b in sampler.epoch(1)] == [b.tolist() for b in sampler.epoch(1)]  # deterministic
    assert [b.tolist() for b in sampler.epoch(1)] != [b.tolist() for b in sampler.epoch(2)]


def _same_video_share(batches, ids) -> float:
    """Share of batch slots whose clip has another clip of the same video in the batch."""
    ids = np.asarray(ids)
    shared = total = 0
    for b in batches:
        counts = Counter(ids[b].tolist())
        shared += sum(1 for i in b if counts[ids[i]] > 1)
        total += len(b)
    return shared / total


def test_sampler_intra_video_rate_controls_same_video_negatives():
    ids = _video_ids([10] * 40)  # 40 videos, 10 clips each
    first_half_share = []
    for rate in (0.0, 0.5, 1.0):
        sampler = IntraVideoBatchSampler(ids, batch_size=32, intra_video_rate=rate, seed=0)
        batches = list(sampler.epoch(0))
        full = [b for b in batches if len(b) == 32]
        first_half_share.append(_same_video_share(full[: len(full) // 2], ids))
        if rate > 0:
            n_intra = round(rate * 32)
            # the first n_intra slots of every full batch come in same-video groups of >= 2
            for b in full[: len(full) // 2]:
                head = np.asarray(ids)[b[:n_intra]]
                counts = Counter(head.tolist())
                assert min(counts.values()) >= 2
    # random batches of 32 out of 400 clips (10 per video) rarely pair clips of one video
    assert first_half_share[0] < 0.6
    assert first_half_share[1] >= 0.5
    assert first_half_share[2] == 1.0


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError):
        IntraVideoBatchSampler(["a", "b"], batch_size=1)
    with pytest.raises(ValueError):
        IntraVideoBatchSampler(["a", "b"], batch_size=4, intra_video_rate=1.5)


def test_split_by_video_keeps_videos_whole():
    ids = _video_ids([3] * 10)
    test = split_by_video(ids, 0.2, seed=1)
    assert test.sum() == 6  # 2 of 10 videos x 3 clips
    ids_arr = np.asarray(ids)
    assert not set(ids_arr[test]) & set(ids_arr[~test])
    assert (split_by_video(ids, 0.2, seed=1) == test).all()
    with pytest.raises(ValueError):
        split_by_video(["same"] * 4)


class SyntheticWorld:
    """Clusters: each clip has a latent topic; video and text features are two fixed random linear views
    of it plus noise, so a model can only match them by learning the views."""

    def __init__(self, seed=0, d_latent=16, d_video=48, d_text=32):
        self.rng = np.random.default_rng(seed)
        self.to_video = self.rng.normal(size=(d_latent, d_video))
        self.to_text = self.rng.normal(size=(d_latent, d_text))

    def clips(self, n_videos=30, clips_per_video=6, text_noise=0.3):
        n = n_videos * clips_per_video
        latent = self.rng.normal(size=(n, self.to_video.shape[0]))
        video = latent @ self.to_video + 0.3 * self.rng.normal(size=(n, self.to_video.shape[1]))
        text = latent @ self.to_text + text_noise * self.rng.normal(size=(n, self.to_text.shape[1]))
        return video.astype(np.float32), text.astype(np.float32), _video_ids([clips_per_video] * n_videos)


def test_training_beats_chance_on_held_out_videos():
    video, text, ids = SyntheticWorld(0).clips()
    test = split_by_video(ids, 0.25, seed=0)
    config = JointEmbeddingConfig(embed_dim=64, epochs=25, batch_size=32, learning_rate=3e-3, seed=0)
    model, history = train_joint_embedding(video[~test], text[~test], np.asarray(ids)[~test], config)
    assert history[-1] < 0.5 * history[0]
    scores = evaluate_pairs(model, video[test], text[test])
    n_test = int(test.sum())
    chance_r1 = 100.0 / n_test
    assert scores["t2v"].r1 > 10 * chance_r1, scores
    assert scores["v2t"].r1 > 10 * chance_r1, scores
    assert scores["t2v"].median_rank <= 3


def test_compare_text_sources_shows_which_text_helps():
    world = SyntheticWorld(1)
    video, good, ids = world.clips()
    rng = np.random.default_rng(5)
    noisy = good + 6.0 * rng.normal(size=good.shape).astype(np.float32)  # barely related to the clip
    sparse = good.copy()
    sparse[rng.random(len(sparse)) < 0.7] = np.nan  # narration for 30% of clips only
    # an evaluation set with two reference sentences per clip, kept apart from the training clips
    ev_video, ev_text, _ = world.clips(n_videos=4, clips_per_video=5)
    ref_sentences = np.concatenate([ev_text, ev_text + 0.3 * rng.normal(size=ev_text.shape).astype(np.float32)])
    ref_clip = np.concatenate([np.arange(20), np.arange(20)])
    config = JointEmbeddingConfig(embed_dim=64, epochs=25, batch_size=32, learning_rate=3e-3, seed=0)
    result = compare_text_sources(
        video, ids,
        {"selected": TextSource(good), "teacher:noisy": TextSource(noisy), "narration": TextSource(sparse)},
        config,
        reference_sets={"references:evalset": ReferenceEvalSet(ev_video, ref_sentences, ref_clip)},
    )
    assert "narration" in result.skipped and "< 50%" in result.skipped["narration"]
    t = result.table
    own = t[(t.eval_set == "heldout") & (t.train_text == t.eval_text) & (t.direction == "t2v")].set_index("train_text")
    assert set(own.index) == {"selected", "teacher:noisy"}
    assert own.loc["selected", "r1"] > own.loc["teacher:noisy", "r1"] + 15
    # same clips, same split for every source
    assert t["n_train_clips"].nunique() == 1 and result.n_test_clips == own["n_queries"].iloc[0]
    refs = t[t.eval_set == "references:evalset"].set_index(["train_text", "direction"])
    assert refs.loc[("selected", "t2v"), "n_queries"] == 40 and refs.loc[("selected", "v2t"), "n_queries"] == 20
    assert refs.loc[("selected", "t2v"), "r1"] > refs.loc[("teacher:noisy", "t2v"), "r1"]
