"""Near-duplicates within a shard and across shards: the same footage cut twice, re-uploaded, re-encoded.

Two clips are duplicates when their key frames have nearly the same perceptual hash (DCT pHash, 64 bits:
robust to re-encoding, rescaling and small crops; the distance is the median over one clip's key frames of
the Hamming distance to the closest key frame of the other, taken both ways) or, where the catalog has
key-frame embeddings of a trained frame embedder, when the mean embeddings' cosine reaches `min_cosine`
(Open-Sora deduplicates at 0.98 similarity). The pHash bar, 8 of 64 bits, is Meta's PDQ match bar
(31 of 256) scaled; a half-resolution re-encode lands at 0-2 bits, different footage at 10 and more, and
consecutive pieces of one unchanging shot (a static camera) below it: they are duplicates too.

One clip of each group is kept: a clip that no other filter dropped first, then the longest, then the
sharpest, then the smallest (shard, clip id), so every shard picks the same keeper. A shard only writes
its own rows: when the keeper is in this shard but another shard still keeps a copy, that other shard
keeps it until it is re-materialized (reported as `n_duplicates_kept_elsewhere`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import gray

DUPLICATE = "duplicate"


@dataclass
class DuplicateParams:
    max_hash_distance: float = field(default=8.0, metadata={"help": "pHash Hamming distance (of 64 bits) at or "
                                     "below which two clips are the same footage"})
    min_cosine: float = field(default=0.98, metadata={"help": "Cosine of mean key-frame embeddings at or above "
                              "which two clips are duplicates (Open-Sora: 0.98); only with trained embeddings"})
    across_shards: bool = field(default=True, metadata={"help": "Also compare with the kept clips of every "
                                "other shard already filtered"})


def phash(rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash (as a signed int64, the catalog's integer type)."""
    import cv2

    small = cv2.resize(gray(rgb), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    value = int(np.packbits(bits).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class Fingerprint:
    clip_id: str
    shard: str
    duration_s: float
    sharpness: float
    hashes: Sequence[int]
    embedding: np.ndarray | None = None  # unit norm
    dropped_by_others: bool = False  # another filter already drops it: never the keeper

    def rank(self) -> tuple:
        sharp = self.sharpness if np.isfinite(self.sharpness) else -1.0
        return (self.dropped_by_others, -round(self.duration_s, 3), -sharp, self.shard, self.clip_id)


def _as_u64(hashes: Sequence[int]) -> np.ndarray:
    return np.asarray([h & ((1 << 64) - 1) for h in hashes], dtype=np.uint64)


def hash_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Median (lower middle) over each clip's key frames of the Hamming distance to the other clip's
    closest one, the larger of the two directions (inf when either has no hash)."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    bits = np.bitwise_count(_as_u64(a)[:, None] ^ _as_u64(b)[None, :]).astype(np.float64)
    rows, columns = np.sort(bits.min(axis=1)), np.sort(bits.min(axis=0))
    return float(max(rows[(len(rows) - 1) // 2], columns[(len(columns) - 1) // 2]))


@dataclass
class DuplicateMatch:
    duplicate_of: str | None  # the kept clip of its group (None: this clip is kept)
    distance: float  # smallest pHash distance to any other clip (inf: none compared)
    cosine: float  # largest embedding cosine to any other clip (nan: no embeddings)
    kept_elsewhere: bool = False  # this clip is the keeper but a copy in another shard is still kept


def _hash_matrix(clips: Sequence[Fingerprint]) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) uint64 hashes padded with zeros, and the (n, k) mask of real ones."""
    width = max([len(c.hashes) for c in clips] + [1])
    hashes = np.zeros((len(clips), width), np.uint64)
    mask = np.zeros((len(clips), width), bool)
    for i, clip in enumerate(clips):
        hashes[i, :len(clip.hashes)] = _as_u64(clip.hashes)
        mask[i, :len(clip.hashes)] = True
    return hashes, mask


def _lower_median(values: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Median (the lower middle for an even count) of the valid values along `axis`; inf where none."""
    ordered = np.sort(np.where(valid, values, np.inf), axis=axis)
    count = valid.sum(axis=axis)
    index = np.expand_dims(np.maximum(count - 1, 0) // 2, axis)
    middle = np.take_along_axis(ordered, index, axis=axis).squeeze(axis)
    return np.where(count > 0, middle, np.inf)


def _distances_to_all(i: int, hashes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`hash_distance` of clip i to every clip at once (inf where either has no hash)."""
    bits = np.bitwise_count(hashes[i][:, None, None] ^ hashes[None, :, :]).astype(np.float32)  # (k, n, k)
    bits[~mask[i]] = np.inf
    bits[:, ~mask] = np.inf
    both = mask[i][:, None] & mask.any(axis=1)[None, :]  # (k, n): my frame i vs a clip that has hashes
    mine = _lower_median(bits.min(axis=2), both, axis=0)  # (n,)
    theirs = _lower_median(bits.min(axis=0), mask & mask[i].any(), axis=1)  # (n,)
    return np.maximum(mine, theirs).astype(np.float64)


def find_duplicates(current: Sequence[Fingerprint], others: Sequence[Fingerprint],
                    params: DuplicateParams) -> dict[str, DuplicateMatch]:
    """Group `current` clips (this shard) with each other and with `others` (kept clips of other shards)."""
    current = list(current)
    mine = {c.clip_id for c in current}
    everyone = current + [o for o in others if o.clip_id not in mine]
    n_current = len(current)
    parent = list(range(len(everyone)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hashes, mask = _hash_matrix(everyone)
    dims = {c.embedding.shape for c in everyone if c.embedding is not None}
    vectors = None
    if len(dims) == 1:
        (dim,) = dims
        vectors = np.full((len(everyone), *dim), np.nan)
        for i, clip in enumerate(everyone):
            if clip.embedding is not None:
                vectors[i] = clip.embedding
    nearest, best_cos = {}, {}
    for i in range(n_current):
        distance = _distances_to_all(i, hashes, mask)
        distance[i] = np.inf
        cosine = vectors @ vectors[i] if vectors is not None else np.full(len(everyone), np.nan)
        cosine[i] = np.nan
        nearest[current[i].clip_id] = float(distance.min()) if len(distance) else float("inf")
        best_cos[current[i].clip_id] = float(np.nanmax(cosine)) if np.isfinite(cosine).any() else float("nan")
        same = (distance <= params.max_hash_distance) | (np.nan_to_num(cosine, nan=-2.0) >= params.min_cosine)
        for j in np.flatnonzero(same):
            parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(everyone)):
        groups.setdefault(root(i), []).append(i)
    out: dict[str, DuplicateMatch] = {}
    for members in groups.values():
        keeper = min(members, key=lambda i: everyone[i].rank())
        copies_elsewhere = any(i >= n_current for i in members if i != keeper)
        for i in members:
            if i >= n_current:
                continue
            clip = everyone[i]
            duplicate_of = None if i == keeper else everyone[keeper].clip_id
            out[clip.clip_id] = DuplicateMatch(duplicate_of, nearest[clip.clip_id], best_cos[clip.clip_id],
                                               kept_elsewhere=i == keeper and copies_elsewhere)
    return out


def mean_embedding(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray | None:
    array = np.asarray(vectors, dtype=np.float64)
    if array.size == 0:
        return None
    mean = array.reshape(-1, array.shape[-1]).mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else None


def fingerprints_from_rows(rows: Sequence[Mapping], embeddings: Mapping[str, np.ndarray] | None = None
                           ) -> list[Fingerprint]:
    """Kept clips of other shards from their `clip_filters` rows (clip_id, shard, duration_s, sharpness,
    phashes)."""
    embeddings = embeddings or {}
    return [Fingerprint(str(r["clip_id"]), str(r["shard"]), float(r["duration_s"]),
                        float(r["sharpness"]) if r.get("sharpness") is not None else float("nan"),
                        [int(h) for h in (r.get("phashes") if r.get("phashes") is not None else [])],
                        embeddings.get(str(r["clip_id"]))) for r in rows]
