"""What clip_filters reads from the catalog besides clips: trained key-frame embeddings (table
keyframe_embeddings) and the kept clips of the other shards, for near-duplicates across shards."""

from __future__ import annotations

import numpy as np


def _decision(clip_id: str, shard: str, keep: bool, phashes: list[int]):
    from panda_dagster.lib.filters.records import SCORE_COLUMNS, ClipFilterRecord

    return ClipFilterRecord(clip_id=clip_id, video_id="v", shard=shard, keep=keep, reasons=[] if keep else ["dark"],
                            duplicate_of=None, text=None, duration_s=5.0, **{c: None for c in SCORE_COLUMNS},
                            phashes=phashes, filters=["quality", "duplicates"])


def test_other_shards_kept_clips_and_their_embeddings_are_read(tmp_path):
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.filters.shard import _embeddings, _other_shards
    from panda_dagster.lib.models.records import KeyframeEmbedding

    catalog = Catalog(tmp_path)
    catalog.replace_shard("clip_filters", "s1", [_decision("kept", "s1", True, [1, -2]),
                                                 _decision("dropped", "s1", False, [3])])
    catalog.replace_shard("clip_filters", "s2", [_decision("mine", "s2", True, [4])])
    frames = np.array([[1.0, 0.0], [0.0, 1.0]])  # two unit key-frame vectors -> mean along the diagonal
    for shard, clip in (("s1", "kept"), ("s2", "mine")):
        catalog.replace_shard("keyframe_embeddings", shard, [KeyframeEmbedding(
            clip, shard, "effnet-lite0", "r1", 2, 2, frames.ravel().tolist())], part="effnet-lite0")

    catalog.replace_shard("keyframe_embeddings", "s2", [KeyframeEmbedding(
        "mine", "s2", "tiny/open_clip-x", "r0", 2, 1, [1.0, 0.0])], part="tiny/open_clip-x")  # random: ignored
    mine, model = _embeddings(catalog, "s2", use=True)
    assert model == "effnet-lite0" and np.allclose(mine["mine"], [2 ** -0.5, 2 ** -0.5])
    assert _embeddings(catalog, "s2", use=False) == ({}, None)

    (other,) = _other_shards(catalog, "s2", model)  # the dropped clip of s1 is no keeper candidate
    assert (other.clip_id, other.shard, list(other.hashes)) == ("kept", "s1", [1, -2])
    assert np.allclose(other.embedding, [2 ** -0.5, 2 ** -0.5])
    assert _other_shards(catalog, "s1", None)[0].embedding is None
