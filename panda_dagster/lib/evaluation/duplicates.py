"""Duplicate selected captions within a shard: exact repeats and near-duplicates by sentence embedding.

A curated set whose clips all read "a person is talking" teaches a downstream model little, however well
each caption matches its clip. Exact repeats are counted on the normalised text (no model needed);
near-duplicates need a sentence embedder (the `offline` profile's packaged MiniLM): two clips' captions
are near-duplicates when the cosine of their sentence embeddings reaches `min_cosine`. Without a sentence
embedder the near-duplicate metrics are recorded as undefined, with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from panda_dagster.lib.evaluation.stats import Metric

# Measured with the packaged all-MiniLM-L6-v2: rewordings of one sentence ("a man rides a bike down the
# street" / "... a bicycle ...", "a person is talking" / "a person talking") score 0.95-0.99; a changed
# subject or colour ("a man" / "a woman rides a bike ...") 0.66-0.68, loose paraphrases 0.67-0.75.
DEFAULT_NEAR_DUPLICATE_COSINE = 0.9
MAX_EXAMPLES = 5
_BLOCK = 1024  # rows of the similarity matrix held at once

EmbedTexts = Callable[[Sequence[str]], np.ndarray]


def normalise(text: str) -> str:
    return " ".join(str(text).lower().split())


def exact_duplicate_metrics(captions: Sequence[str]) -> list[Metric]:
    """Share of clips whose caption (normalised) is also another clip's, with the most repeated ones."""
    texts = [normalise(t) for t in captions if normalise(t)]
    if not texts:
        return [Metric("captions.selected.exact_duplicates.share", None, {"n_clips": 0})]
    counts = Counter(texts)
    repeated = sum(n for n in counts.values() if n > 1)
    top = [{"caption": t, "clips": n} for t, n in counts.most_common(MAX_EXAMPLES) if n > 1]
    return [Metric("captions.selected.exact_duplicates.share", repeated / len(texts),
                   {"n_clips": len(texts), "n_duplicate_clips": repeated, "most_repeated": top})]


def nearest_other(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every unit row: the index of the most similar other row and that cosine (-inf with one row)."""
    n = len(vectors)
    best = np.full(n, -np.inf, dtype=np.float32)
    index = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        sims = vectors[start: start + _BLOCK] @ vectors.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # a caption is not its own duplicate
        if n > 1:
            index[start: start + _BLOCK] = sims.argmax(axis=1)
            best[start: start + _BLOCK] = sims[rows, index[start: start + _BLOCK]]
    return index, best


def near_duplicate_metrics(captions: Sequence[str], embed_texts: EmbedTexts | None, model_label: str,
                           min_cosine: float = DEFAULT_NEAR_DUPLICATE_COSINE, skipped_reason: str = "") -> list[Metric]:
    """Share and count of clips whose caption has a near-duplicate among the shard's other captions.

    Each distinct text is embedded once; clips with the same text are near-duplicates of each other."""
    name = "captions.selected.near_duplicates"
    if embed_texts is None:
        detail = {"skipped": skipped_reason or "no sentence embedder in this models profile"}
        return [Metric(f"{name}.share", None, detail), Metric(f"{name}.count", None, detail)]
    texts = [normalise(t) for t in captions if normalise(t)]
    detail: dict[str, object] = {"model": model_label, "min_cosine": min_cosine, "n_clips": len(texts)}
    if not texts:
        return [Metric(f"{name}.share", None, detail), Metric(f"{name}.count", 0.0, detail)]
    distinct = sorted(set(texts))
    vectors = np.asarray(embed_texts(distinct), dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    nearest, cosine = nearest_other(vectors)
    counts = Counter(texts)
    has_duplicate = {t: counts[t] > 1 or cosine[i] >= min_cosine for i, t in enumerate(distinct)}
    n_duplicate = sum(counts[t] for t, dup in has_duplicate.items() if dup)
    pairs = sorted({(round(float(cosine[i]), 4), *sorted((t, distinct[nearest[i]]))) for i, t in enumerate(distinct)
                    if nearest[i] >= 0 and cosine[i] >= min_cosine}, reverse=True)
    detail.update(n_duplicate_clips=n_duplicate,
                  examples=[{"a": a, "b": b, "cosine": c} for c, a, b in pairs[:MAX_EXAMPLES]])
    return [Metric(f"{name}.share", n_duplicate / len(texts), detail), Metric(f"{name}.count", float(n_duplicate))]
