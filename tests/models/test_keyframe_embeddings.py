"""Key-frame embeddings computed once per clip and model, then reused by the scorer and the retrieval
features (the model calls are counted)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.models.keyframes import TABLE, frame_matrix, keyframe_embeddings, max_embedding, mean_embedding
from panda_dagster.lib.selection.scorer import Candidate, CaptionScorer, ClipToScore, decode_jpeg

SHARD = "s-kf"
COLOURS = [(220, 30, 30), (30, 200, 40), (30, 60, 220), (240, 220, 20), (10, 10, 10), (200, 200, 200)]


class CountingEmbedder:
    """The tiny open_clip model, counting every image it embeds."""

    def __init__(self, model, spec=None):
        self.model, self.spec = model, spec or model.spec
        self.device, self.embed_dim, self.label = model.device, model.embed_dim, model.label
        self.images = 0

    def embed_images(self, images, batch_size=64):
        self.images += len(images)
        return self.model.embed_images(images, batch_size=batch_size)

    def embed_texts(self, texts, batch_size=256):
        return self.model.embed_texts(texts, batch_size=batch_size)


@dataclass
class Clip:
    clip_id: str
    shard: str
    keyframe_uris: list[str] = field(default_factory=list)


def _jpeg(colour, square: bool) -> bytes:
    from PIL import Image

    image = np.full((72, 96, 3), 240, dtype=np.uint8)
    if square:
        image[18:54, 30:66] = colour
    else:
        yy, xx = np.mgrid[:72, :96]
        image[(yy - 36) ** 2 + (xx - 48) ** 2 < 400] = colour
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def tiny(panda_home):
    from panda_dagster.lib.models.openclip import load_open_clip

    return load_open_clip("tiny", device="cpu")


@pytest.fixture
def frames():
    """Three clips with two stored key frames each (as URIs), and a reader that counts reads."""
    store = {f"mem://c{i}/{k}.jpg": _jpeg(COLOURS[2 * i + k], square=k == 0) for i in range(3) for k in range(2)}
    clips = [Clip(f"c{i}", SHARD, [f"mem://c{i}/0.jpg", f"mem://c{i}/1.jpg"]) for i in range(3)]
    reads = []

    def read(uri):
        reads.append(uri)
        return decode_jpeg(store[uri])

    return clips, read, reads


def test_embeddings_are_computed_once_then_reused_by_the_scorer_and_retrieval(tiny, frames, panda_home):
    clips, read, reads = frames
    catalog = Catalog(panda_home)
    model = CountingEmbedder(tiny)

    # `clips`: nothing stored yet, every clip is embedded.
    rows, n_computed = keyframe_embeddings(clips, model, catalog.rows(TABLE, SHARD), read)
    assert n_computed == 3 and model.images == 6 and len(reads) == 6
    assert [r.clip_id for r in rows] == ["c0", "c1", "c2"]
    assert all(r.model_id == tiny.spec.model_id and r.revision == tiny.spec.revision for r in rows)
    assert all(r.n_frames == 2 and r.dim == 64 and len(r.embedding) == 128 for r in rows)
    catalog.replace_shard(TABLE, SHARD, rows, part=tiny.spec.model_id)

    # `selected_captions`: same model and revision: no frame is read or embedded again.
    cached = catalog.rows(TABLE, SHARD)
    again, n_again = keyframe_embeddings(clips, model, cached, read)
    assert n_again == 0 and model.images == 6 and len(reads) == 6
    for old, new in zip(rows, again):
        np.testing.assert_array_equal(frame_matrix(old), frame_matrix(new))  # exact through Parquet

    scorer = CaptionScorer(model)
    to_score = [ClipToScore(c.clip_id, "v", SHARD, [Candidate("a", "a red square"), Candidate("b", "a dark circle")],
                            c.keyframe_uris) for c in clips]
    precomputed = {r.clip_id: mean_embedding(r) for r in again}
    scored, unscorable = scorer.score(to_score, precomputed=precomputed)
    assert not unscorable and model.images == 6, "precomputed clips are not embedded again"
    from_frames, _ = CaptionScorer(tiny).score(to_score, lambda clip: [read(u) for u in clip.keyframe_uris])
    assert [s.clip.clip_id for s in scored] == [s.clip.clip_id for s in from_frames]
    for a, b in zip(scored, from_frames):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)

    # `retrieval_benchmark`: the max-pooled feature comes from the same rows.
    for row, clip in zip(again, clips):
        direct = tiny.embed_images([read(u) for u in clip.keyframe_uris]).max(axis=0)
        np.testing.assert_allclose(max_embedding(row), direct, atol=1e-5)
    assert model.images == 6, "one embedding per key frame and model across the three stages"


def test_other_weights_or_other_key_frames_are_recomputed(tiny, frames):
    from panda_dagster.lib.models.base import ModelSpec

    clips, read, _ = frames
    rows, _ = keyframe_embeddings(clips, CountingEmbedder(tiny), [], read)
    tuned = CountingEmbedder(tiny, ModelSpec(tiny.spec.model_id + "+selection", "v2", trained=False))
    _, n = keyframe_embeddings(clips, tuned, rows, read)
    assert n == 3 and tuned.images == 6, "rows of another model id are not reused"
    other_revision = CountingEmbedder(tiny, ModelSpec(tiny.spec.model_id, "other", trained=False))
    assert keyframe_embeddings(clips, other_revision, rows, read)[1] == 3

    same = CountingEmbedder(tiny)
    changed = [Clip("c0", SHARD, clips[0].keyframe_uris[:1]), clips[1],
               Clip("c2", "other-shard", clips[2].keyframe_uris)]
    new_rows, n = keyframe_embeddings(changed, same, rows, read)
    assert n == 1 and same.images == 1, "only the clip whose key frames changed"
    assert new_rows[0].n_frames == 1 and new_rows[2].shard == "other-shard"


def test_unreadable_frames_skip_their_clip_and_say_why(tiny, frames):
    clips, read, _ = frames
    broken = [clips[0], Clip("gone", SHARD, ["mem://missing.jpg"]), Clip("none", SHARD, [])]
    errors = {}
    rows, n = keyframe_embeddings(broken, CountingEmbedder(tiny), [], read,
                                  on_error=lambda clip_id, exc: errors.setdefault(clip_id, exc))
    assert [r.clip_id for r in rows] == ["c0"] and n == 1
    assert set(errors) == {"gone"} and isinstance(errors["gone"], KeyError)
