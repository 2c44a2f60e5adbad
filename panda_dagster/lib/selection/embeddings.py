"""Key-frame embeddings through the catalog: the stored rows of a model are reused, only the missing
clips are embedded, and those are recorded so the next reader finds them.

`clips` records the rows of its image embedder; `selected_captions` (mean of the frames, the caption
scorer's clip embedding) and `retrieval_benchmark` (max over the frames, the benchmark's video feature)
read them through `shard_keyframe_embeddings`. A fine-tuned selection model is another model id (its own
rows), so its embeddings are computed once per version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.models.keyframes import TABLE, ClipWithKeyframes, keyframe_embeddings
from panda_dagster.lib.models.records import KeyframeEmbedding


def shard_keyframe_embeddings(catalog: Catalog, shard: str, clips: Sequence[ClipWithKeyframes], model,
                              read_image: Callable[[str], object], *, batch_size: int = 64, clips_per_batch: int = 64,
                              on_error: Callable[[str, BaseException], None] | None = None
                              ) -> tuple[dict[str, KeyframeEmbedding], int]:
    """(clip_id -> row, n_computed) for the `clips` of `shard` under `model` (an ImageEmbedder)."""
    stored = [r for r in catalog.rows(TABLE, shard) if r.model_id == model.spec.model_id]
    rows, n_computed = keyframe_embeddings(clips, model, stored, read_image, batch_size=batch_size,
                                           clips_per_batch=clips_per_batch, on_error=on_error)
    if n_computed:
        # The part holds every clip of this model: keep the stored rows of its revision, add the new ones.
        merged = {r.clip_id: r for r in stored if r.revision == model.spec.revision}
        merged.update({r.clip_id: r for r in rows})
        catalog.replace_shard(TABLE, shard, list(merged.values()), part=model.spec.model_id)
    return {r.clip_id: r for r in rows}, n_computed
