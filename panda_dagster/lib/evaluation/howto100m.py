"""HowTo100M-style text-video joint embedding, trained on frozen features (Miech et al., 2019).

Each side goes through a gated embedding unit (linear -> context gating -> L2 norm) into a joint
space; training minimises a bidirectional max-margin ranking loss over the batch similarity matrix,
with part of every batch made of clips of one video so that some negatives are hard (same video, other
moment). `compare_text_sources` trains the same model on the same clips with different training texts
(selected captions, narration, one fixed teacher) and ranks held-out clips, which shows what caption
curation buys downstream.

torch is imported inside functions and classes are built lazily, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from panda_dagster.lib.evaluation.retrieval import RetrievalScores, retrieval_scores

DEFAULT_MARGIN = 0.1
DEFAULT_INTRA_VIDEO_RATE = 0.5


@dataclass(frozen=True)
class JointEmbeddingConfig:
    """Training of the HowTo100M joint text-video embedding (Miech et al., 2019)."""

    embed_dim: int = field(default=256, metadata={"help": "Width of the joint embedding space"})
    margin: float = field(default=DEFAULT_MARGIN, metadata={"help": "Max-margin ranking loss margin"})
    intra_video_rate: float = field(default=DEFAULT_INTRA_VIDEO_RATE, metadata={
        "help": "Share of each batch drawn as same-video groups (hard intra-video negatives)"})
    batch_size: int = field(default=128, metadata={"help": "Clip-text pairs per step"})
    epochs: int = field(default=40, metadata={"help": "Passes over the training clips"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    test_fraction: float = field(default=0.2, metadata={"help": "Share of videos held out for evaluation"})
    seed: int = field(default=0, metadata={"help": "Seed of the split, the initialisation and the batches"})
    # One thread for small models: their tiny matrix products run many times slower when two threads
    # contend on a busy machine (measured: 13.5 s vs 0.3 s).
    num_threads: int = field(default=0, metadata={"help": "CPU threads while training; 0 = auto"})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# ---- model ---------------------------------------------------------------------------------------


def _nn():
    import torch

    return torch, torch.nn, torch.nn.functional


class _Modules:
    """Builds the torch.nn classes on first use (keeps `import torch` out of module import)."""

    _cache: dict[str, type] = {}

    @classmethod
    def get(cls) -> dict[str, type]:
        if cls._cache:
            return cls._cache
        torch, nn, F = _nn()

        class ContextGating(nn.Module):
            """y = x * sigmoid(W x + b): each dimension is re-weighted by the whole vector."""

            def __init__(self, dim: int):
                super().__init__()
                self.fc = nn.Linear(dim, dim)

            def forward(self, x):
                return x * torch.sigmoid(self.fc(x))

        class GatedEmbeddingUnit(nn.Module):
            """Linear projection, context gating, then L2 normalisation (unit-norm joint-space vector)."""

            def __init__(self, d_in: int, d_out: int):
                super().__init__()
                self.fc = nn.Linear(d_in, d_out)
                self.gating = ContextGating(d_out)

            def forward(self, x):
                return F.normalize(self.gating(self.fc(x)), p=2, dim=-1)

        class JointEmbedding(nn.Module):
            def __init__(self, video_dim: int, text_dim: int, embed_dim: int):
                super().__init__()
                self.video_unit = GatedEmbeddingUnit(video_dim, embed_dim)
                self.text_unit = GatedEmbeddingUnit(text_dim, embed_dim)

            def embed_video(self, video):
                return self.video_unit(video)

            def embed_text(self, text):
                return self.text_unit(text)

            def forward(self, video, text):
                """Similarity matrix S[i, j] = <video_i, text_j> in the joint space."""
                return self.embed_video(video) @ self.embed_text(text).t()

        cls._cache = {
            "ContextGating": ContextGating,
            "GatedEmbeddingUnit": GatedEmbeddingUnit,
            "JointEmbedding": JointEmbedding,
        }
        return cls._cache


def context_gating(dim: int):
    return _Modules.get()["ContextGating"](dim)


def gated_embedding_unit(d_in: int, d_out: int):
    return _Modules.get()["GatedEmbeddingUnit"](d_in, d_out)


def joint_embedding(video_dim: int, text_dim: int, embed_dim: int):
    return _Modules.get()["JointEmbedding"](video_dim, text_dim, embed_dim)


# ---- loss ----------------------------------------------------------------------------------------


def max_margin_ranking_loss(sim, margin: float = DEFAULT_MARGIN, ignore=None):
    """Bidirectional max-margin ranking loss over a square batch similarity matrix.

    `sim[i, j]` is the similarity of video i and text j; pairs on the diagonal are positives. For every
    negative pair (i, j), i != j, both directions are penalised:
        max(0, margin + sim[i, j] - sim[i, i])   (video i must prefer its own text over text j)
        max(0, margin + sim[j, i] - sim[i, i])   (text i must prefer its own video over video j)
    and the loss is the mean over negative pairs of the sum of the two. `ignore` (bool matrix) marks
    pairs that are not true negatives (e.g. two clips with the identical text) and leaves them out.
    """
    torch, _, F = _nn()
    n = sim.shape[0]
    if sim.ndim != 2 or sim.shape[1] != n:
        raise ValueError(f"batch similarity matrix must be square, got {tuple(sim.shape)}")
    positives = sim.diagonal().unsqueeze(1)  # (n, 1): sim[i, i] on row i
    video_anchor = F.relu(margin + sim - positives)  # [i, j]: video i vs negative text j
    text_anchor = F.relu(margin + sim.t() - positives)  # [i, j]: text i vs negative video j
    negatives = ~torch.eye(n, dtype=torch.bool, device=sim.device)
    if ignore is not None:
        ignore = torch.as_tensor(ignore, dtype=torch.bool, device=sim.device)
        negatives &= ~(ignore | ignore.t())
    count = negatives.sum()
    if count == 0:
        return sim.sum() * 0.0  # no negatives: zero loss that still belongs to the graph
    return ((video_anchor + text_anchor) * negatives).sum() / count


# ---- batches with intra-video negatives ----------------------------------------------------------


class IntraVideoBatchSampler:
    """Yields batches of clip indices; `intra_video_rate` of each batch comes in same-video groups.

    Each epoch visits every clip exactly once. For each batch, round(rate * batch_size) slots are
    filled with groups of at least two clips of one video (so these clips are each other's hard
    negatives); the remaining slots are drawn at random from all clips not used yet this epoch.
    Videos with a single clip cannot form a group; when too few groups remain, random clips fill in.
    """

    def __init__(self, video_ids: Sequence[str], batch_size: int, intra_video_rate: float = DEFAULT_INTRA_VIDEO_RATE,
                 seed: int = 0, max_group: int | None = None):
        if batch_size < 2:
            raise ValueError("batch_size must be at least 2 (a batch needs negatives)")
        if not 0.0 <= intra_video_rate <= 1.0:
            raise ValueError(f"intra_video_rate must be within [0, 1], got {intra_video_rate}")
        self.video_ids = np.asarray(list(video_ids), dtype=object)
        self.batch_size = batch_size
        self.intra_video_rate = intra_video_rate
        self.seed = seed
        # Groups larger than this would let one long video fill the whole intra part of a batch.
        self.max_group = max_group or max(2, batch_size // 4)
        self._by_video: dict[str, np.ndarray] = {}
        for vid in sorted(set(self.video_ids.tolist())):
            self._by_video[vid] = np.flatnonzero(self.video_ids == vid)

    def __len__(self) -> int:
        return math.ceil(len(self.video_ids) / self.batch_size)

    def epoch(self, epoch: int = 0) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.video_ids)
        used = np.zeros(n, dtype=bool)
        remaining = {vid: list(rng.permutation(idx)) for vid, idx in self._by_video.items()}
        video_order = [vid for vid in rng.permutation(list(remaining)) if len(remaining[vid]) >= 2]
        video_pos = 0
        random_order = rng.permutation(n)
        random_pos = 0
        n_used = 0
        n_intra = int(round(self.intra_video_rate * self.batch_size))
        while n_used < n:
            batch: list[int] = []
            target_intra = min(n_intra, n - n_used)
            while len(batch) + 2 <= target_intra and video_pos < len(video_order):
                vid = video_order[video_pos]
                pool = remaining[vid]
                take = min(len(pool), target_intra - len(batch), self.max_group)
                if target_intra - len(batch) - take == 1 and take > 2:
                    take -= 1  # leave two slots, not one: a single slot cannot hold a same-video group
                if take < 2:
                    video_pos += 1
                    continue
                group, remaining[vid] = pool[:take], pool[take:]
                batch.extend(int(i) for i in group)
                used[group] = True
                if len(remaining[vid]) < 2:
                    video_pos += 1
            want = min(self.batch_size, n - n_used)
            while len(batch) < want:
                idx = int(random_order[random_pos])
                random_pos += 1
                if used[idx]:
                    continue
                used[idx] = True
                batch.append(idx)
                vid = self.video_ids[idx]
                remaining[vid].remove(idx)
            n_used += len(batch)
            yield np.asarray(batch, dtype=np.int64)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.epoch(0)


# ---- training and evaluation ---------------------------------------------------------------------


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _text_keys(texts: Sequence[str] | None, n: int) -> np.ndarray | None:
    if texts is None:
        return None
    keys = np.asarray([(t or "").strip().lower() for t in texts], dtype=object)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} texts for {n} clips")
    return keys


def train_joint_embedding(video_features: np.ndarray, text_features: np.ndarray, video_ids: Sequence[str],
                          config: JointEmbeddingConfig = JointEmbeddingConfig(),
                          texts: Sequence[str] | None = None):
    """Train a joint embedding on aligned rows (clip i: video_features[i] <-> text_features[i]).

    `texts`, when given, lets the loss skip negatives whose text is identical to the positive's.
    Returns (model in eval mode, list of mean loss per epoch).
    """
    import torch

    video_features = np.asarray(video_features, dtype=np.float32)
    text_features = np.asarray(text_features, dtype=np.float32)
    n = len(video_features)
    if len(text_features) != n or len(video_ids) != n:
        raise ValueError(f"row counts differ: video {n}, text {len(text_features)}, ids {len(video_ids)}")
    if n < 2:
        raise ValueError("need at least two clips to train (negatives come from the batch)")
    if not (np.isfinite(video_features).all() and np.isfinite(text_features).all()):
        raise ValueError("features contain NaN/inf: drop clips without a text or video feature first")
    keys = _text_keys(texts, n)

    torch.manual_seed(config.seed)
    device = _device()
    model = joint_embedding(video_features.shape[1], text_features.shape[1], config.embed_dim).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    threads = config.num_threads or (1 if n_params < 4_000_000 else torch.get_num_threads())
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        history = _train_loop(model, video_features, text_features, video_ids, keys, config, device)
    finally:
        torch.set_num_threads(previous_threads)
    model.eval()
    return model, history


def _train_loop(model, video_features, text_features, video_ids, keys, config, device) -> list[float]:
    import torch

    n = len(video_features)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    sampler = IntraVideoBatchSampler(video_ids, min(config.batch_size, n), config.intra_video_rate, config.seed)
    video_t = torch.from_numpy(video_features).to(device)
    text_t = torch.from_numpy(text_features).to(device)
    history: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        losses = []
        for batch in sampler.epoch(epoch):
            if len(batch) < 2:
                continue
            idx = torch.from_numpy(batch).to(device)
            sim = model(video_t[idx], text_t[idx])
            ignore = None
            if keys is not None:
                bk = keys[batch]
                ignore = torch.from_numpy(bk[:, None] == bk[None, :])
            loss = max_margin_ranking_loss(sim, config.margin, ignore)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return history


def embed(model, video_features: np.ndarray | None = None, text_features: np.ndarray | None = None):
    """Joint-space embeddings (numpy) of the given features; None stays None."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for feats, fn in ((video_features, model.embed_video), (text_features, model.embed_text)):
            if feats is None:
                out.append(None)
                continue
            t = torch.from_numpy(np.asarray(feats, dtype=np.float32)).to(device)
            out.append(fn(t).cpu().numpy())
    return tuple(out)


def evaluate_pairs(model, video_features: np.ndarray, text_features: np.ndarray) -> dict[str, RetrievalScores]:
    """Retrieval on aligned held-out pairs: text->video and video->text."""
    v, t = embed(model, video_features, text_features)
    sim_tv = t @ v.T  # rows: text queries, columns: videos
    return {"t2v": retrieval_scores(sim_tv), "v2t": retrieval_scores(sim_tv.T)}


def evaluate_references(model, video_features: np.ndarray, sentence_features: np.ndarray,
                        sentence_clip: Sequence[int]) -> dict[str, RetrievalScores]:
    """Retrieval on an evaluation set with several reference sentences per clip (MSR-VTT style).

    t2v: every sentence is a query, its clip the target. v2t: every clip is a query; the best-ranked of
    its reference sentences counts.
    """
    v, t = embed(model, video_features, sentence_features)
    sentence_clip = np.asarray(sentence_clip, dtype=np.int64)
    sim_tv = t @ v.T
    per_clip = [np.flatnonzero(sentence_clip == c) for c in range(len(v))]
    keep = [c for c, s in enumerate(per_clip) if s.size]
    return {
        "t2v": retrieval_scores(sim_tv, sentence_clip),
        "v2t": retrieval_scores(sim_tv.T[keep], [per_clip[c] for c in keep]),
    }


def split_by_video(video_ids: Sequence[str], test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask of test rows: whole videos are held out, never single clips of a training video."""
    ids = np.asarray(list(video_ids), dtype=object)
    unique = sorted(set(ids.tolist()))
    if len(unique) < 2:
        raise ValueError(f"need clips of at least two videos to split train/test by video, got {len(unique)}")
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    n_test = min(len(unique) - 1, max(1, int(round(test_fraction * len(unique)))))
    test_videos = set(order[:n_test])
    return np.asarray([v in test_videos for v in ids], dtype=bool)


# ---- the comparison of training texts ------------------------------------------------------------


@dataclass
class TextSource:
    """One text per clip as features (rows of NaN where a clip has no such text) and, optionally, strings."""

    features: np.ndarray
    texts: Sequence[str] | None = None

    def available(self) -> np.ndarray:
        feats = np.asarray(self.features, dtype=np.float32)
        ok = np.isfinite(feats).all(axis=1)
        if self.texts is not None:
            ok &= np.asarray([bool((t or "").strip()) for t in self.texts], dtype=bool)
        return ok


@dataclass
class ReferenceEvalSet:
    """Evaluation clips with several reference sentences each (kept out of training by the caller)."""

    video_features: np.ndarray  # (n_clips, d_video)
    sentence_features: np.ndarray  # (n_sentences, d_text)
    sentence_clip: Sequence[int]  # clip index of each sentence


@dataclass
class ComparisonResult:
    table: pd.DataFrame  # one row per (train_text, eval_set, eval_text, direction)
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not trained
    n_clips: int = 0
    n_train_clips: int = 0
    n_test_clips: int = 0
    n_train_videos: int = 0
    n_test_videos: int = 0
    loss_history: dict[str, list[float]] = field(default_factory=dict)


def compare_text_sources(video_features: np.ndarray, video_ids: Sequence[str], sources: Mapping[str, TextSource],
                         config: JointEmbeddingConfig = JointEmbeddingConfig(), min_coverage: float = 0.5,
                         reference_sets: Mapping[str, ReferenceEvalSet] | None = None) -> ComparisonResult:
    """Train one joint embedding per training text on the same clips, split and seed; rank held-out clips.

    Sources covering less than `min_coverage` of the clips (e.g. narration when few videos have
    subtitles) are skipped with the reason, so the others still compare on a large common clip set.
    Every model is evaluated on the held-out clips with every trained source's text as queries, and on
    each reference evaluation set.
    """
    video_features = np.asarray(video_features, dtype=np.float32)
    ids = np.asarray(list(video_ids), dtype=object)
    n = len(video_features)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} video ids for {n} clips")
    for name, src in sources.items():
        if len(src.features) != n:
            raise ValueError(f"text source {name!r} has {len(src.features)} rows for {n} clips")
    skipped: dict[str, str] = {}
    mask = np.isfinite(video_features).all(axis=1)
    kept: dict[str, TextSource] = {}
    for name, src in sources.items():
        avail = src.available()
        coverage = float(avail[mask].mean()) if mask.any() else 0.0
        if coverage < min_coverage:
            skipped[name] = f"covers {coverage:.0%} of clips (< {min_coverage:.0%})"
            continue
        kept[name] = src
        mask &= avail
    result = ComparisonResult(table=pd.DataFrame(columns=_RESULT_COLUMNS), skipped=skipped, n_clips=int(mask.sum()))
    if not kept:
        return result
    rows_idx = np.flatnonzero(mask)
    if len(set(ids[rows_idx].tolist())) < 2:
        for name in kept:
            skipped[name] = "clips of fewer than two videos: nothing to hold out"
        return result
    test = split_by_video(ids[rows_idx], config.test_fraction, config.seed)
    train_idx, test_idx = rows_idx[~test], rows_idx[test]
    result.n_train_clips, result.n_test_clips = int(train_idx.size), int(test_idx.size)
    result.n_train_videos = len(set(ids[train_idx].tolist()))
    result.n_test_videos = len(set(ids[test_idx].tolist()))
    if train_idx.size < 2 or test_idx.size < 2:
        for name in kept:
            skipped[name] = f"too few clips after the split (train {train_idx.size}, test {test_idx.size})"
        return result

    rows: list[dict] = []
    for train_name, src in kept.items():
        texts = None if src.texts is None else [src.texts[i] for i in train_idx]
        model, history = train_joint_embedding(video_features[train_idx], np.asarray(src.features)[train_idx],
                                               ids[train_idx], config, texts=texts)
        result.loss_history[train_name] = history
        for eval_name, eval_src in kept.items():
            scores = evaluate_pairs(model, video_features[test_idx], np.asarray(eval_src.features)[test_idx])
            rows += _rows(train_name, "heldout", eval_name, scores)
        for set_name, ref in (reference_sets or {}).items():
            scores = evaluate_references(model, ref.video_features, ref.sentence_features, ref.sentence_clip)
            rows += _rows(train_name, set_name, "references", scores)
    table = pd.DataFrame(rows, columns=_RESULT_COLUMNS)
    table["n_train_clips"] = result.n_train_clips
    table["n_train_videos"] = result.n_train_videos
    result.table = table
    return result


_RESULT_COLUMNS = ["train_text", "eval_set", "eval_text", "direction", "r1", "r5", "r10", "median_rank",
                   "mean_rank", "n_queries", "n_candidates", "n_train_clips", "n_train_videos"]


def _rows(train: str, eval_set: str, eval_text: str, scores: Mapping[str, RetrievalScores]) -> list[dict]:
    return [{"train_text": train, "eval_set": eval_set, "eval_text": eval_text, "direction": d, **s.as_dict()}
            for d, s in scores.items()]
