"""Key-frame embeddings, computed once per clip and image model and kept in the catalog.

`clips` stores a few key frames per clip; `selected_captions` (caption scoring) and
`retrieval_benchmark` (frozen video features) both need the embeddings of those frames under the same
open_clip model. Whoever comes first computes them; the others find the rows in table
`keyframe_embeddings` and reuse them when the model id, revision, width and number of key frames match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from panda_dagster.lib.models.base import ImageEmbedder
from panda_dagster.lib.models.records import KeyframeEmbedding

TABLE = "keyframe_embeddings"


class ClipWithKeyframes(Protocol):
    clip_id: str
    shard: str
    keyframe_uris: Sequence[str]


def keyframe_embeddings(
    clips: Iterable[ClipWithKeyframes],
    model: ImageEmbedder,
    cached_rows: Iterable[KeyframeEmbedding],
    read_image: Callable[[str], Any],
    *,
    batch_size: int = 64,
    clips_per_batch: int = 64,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> tuple[list[KeyframeEmbedding], int]:
    """(rows, n_computed): one row per clip that has key frames, in clip order, reusing `cached_rows` of
    the same model and revision; the other clips' frames are read with `read_image(uri)` (an HxWx3 uint8
    array or a PIL image) and embedded in batches. A clip whose frames cannot be read has no row
    (`on_error(clip_id, exc)` is told why); clips without key frames have none either.

    Write the rows with `catalog.replace_shard(TABLE, shard, rows, part=model.spec.model_id)`.
    """
    spec = model.spec
    cached = {row.clip_id: row for row in cached_rows
              if row.model_id == spec.model_id and row.revision == spec.revision and row.dim == model.embed_dim}
    rows: dict[str, KeyframeEmbedding] = {}
    todo: list[ClipWithKeyframes] = []
    order: list[str] = []
    for clip in clips:
        uris = list(clip.keyframe_uris or ())
        if not uris or clip.clip_id in rows:
            continue
        order.append(clip.clip_id)
        row = cached.get(clip.clip_id)
        if row is not None and row.n_frames == len(uris):
            rows[clip.clip_id] = row if row.shard == clip.shard else dataclasses.replace(row, shard=clip.shard)
        else:
            todo.append(clip)
    n_computed = 0
    for start in range(0, len(todo), clips_per_batch):
        images, owners = [], []
        for clip in todo[start: start + clips_per_batch]:
            try:
                frames = [read_image(uri) for uri in clip.keyframe_uris]
            except Exception as exc:  # noqa: BLE001  one unreadable frame skips its clip, not the shard
                if on_error:
                    on_error(clip.clip_id, exc)
                continue
            images.extend(frames)
            owners.append((clip, len(frames)))
        if not owners:
            continue
        vectors = np.asarray(model.embed_images(images, batch_size=batch_size), dtype=np.float32)
        offset = 0
        for clip, count in owners:
            block = vectors[offset: offset + count]
            offset += count
            rows[clip.clip_id] = KeyframeEmbedding(
                clip_id=clip.clip_id, shard=clip.shard, model_id=spec.model_id, revision=spec.revision,
                dim=int(block.shape[1]), n_frames=count, embedding=block.reshape(-1).tolist())
            n_computed += 1
    return [rows[clip_id] for clip_id in order if clip_id in rows], n_computed


def frame_matrix(row: KeyframeEmbedding) -> np.ndarray:
    """(n_frames, dim) float32: the row's per-frame embeddings."""
    return np.asarray(row.embedding, dtype=np.float32).reshape(row.n_frames, row.dim)


def mean_embedding(row: KeyframeEmbedding) -> np.ndarray:
    """Unit-norm mean of the key-frame embeddings (the caption scorer's clip embedding)."""
    mean = frame_matrix(row).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def max_embedding(row: KeyframeEmbedding) -> np.ndarray:
    """Max over time of the key-frame embeddings (the retrieval benchmark's frozen video feature)."""
    return frame_matrix(row).max(axis=0)
