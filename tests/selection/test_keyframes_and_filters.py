"""`selected_captions` and `retrieval_benchmark` reuse the key-frame embeddings in table `keyframe_embeddings`
(computing and recording only the missing ones), and `selected_captions` carries the clip filters' decision."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.filters.records import ClipFilterRecord
from panda_dagster.lib.models.openclip import OpenClipModel, load_open_clip
from panda_dagster.lib.selection.embeddings import shard_keyframe_embeddings
from panda_dagster.lib.selection.records import REJECT_FILTERED
from panda_dagster.lib.selection.shard import keyframe_image_reader
from panda_dagster.lib.selection.synthetic import make_shape_preferences
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.selection.assets import selected_captions

SHARD = "shard-kf"


@pytest.fixture
def counted_frames(monkeypatch):
    """How many images the open_clip image tower embedded (every embedding goes through embed_images)."""
    counted = []
    real = OpenClipModel.embed_images

    def counting(self, images, batch_size=64):
        counted.append(len(images))
        return real(self, images, batch_size)

    monkeypatch.setattr(OpenClipModel, "embed_images", counting)
    return counted


def test_embeddings_recorded_at_clips_are_reused_and_only_missing_ones_computed(
        panda_home, write_shape_shard, counted_frames, run_assets):
    from panda_dagster.evaluation.assets import retrieval_benchmark

    shapes = write_shape_shard(SHARD, make_shape_preferences(n_videos=6, clips_per_video=4, seed=5))
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    model = load_open_clip("tiny", "cpu")
    clips = sorted(catalog.rows("clips", SHARD), key=lambda c: c.clip_id)
    # What `clips` records with the scorer's image model: every clip but the last.
    rows, n = shard_keyframe_embeddings(catalog, SHARD, clips[:-1], model, keyframe_image_reader(storage))
    assert n == len(clips) - 1 and sum(counted_frames) == 2 * n
    counted_frames.clear()

    meta = run_assets([selected_captions], SHARD)
    assert meta["keyframe_embeddings_reused"].value == len(clips) - 1
    assert meta["keyframe_embeddings_computed"].value == 1
    assert sum(counted_frames) == 2  # the one missing clip's two key frames, nothing else
    stored = catalog.rows("keyframe_embeddings", SHARD)
    assert sorted(r.clip_id for r in stored) == sorted(c.clip_id for c in clips)
    assert {(r.model_id, r.revision) for r in stored} == {model.spec.key}
    assert len(catalog.read_shard("selected_captions", SHARD)) == len(shapes)

    # A re-run and the benchmark find every clip's embeddings: no key frame is embedded again.
    counted_frames.clear()
    again = run_assets([selected_captions], SHARD)
    assert again["keyframe_embeddings_computed"].value == 0 and counted_frames == []
    config = {"ops": {"retrieval_benchmark": {"config": {"joint": {"epochs": 2, "embed_dim": 16, "batch_size": 8}}}}}
    bench = run_assets([retrieval_benchmark], run_config=config)
    assert bench["keyframe_embeddings_reused"].value == len(clips)
    assert bench["keyframe_embeddings_computed"].value == 0 and counted_frames == []


def test_stored_embeddings_of_another_revision_are_recomputed(panda_home, write_shape_shard, counted_frames):
    import dataclasses

    write_shape_shard(SHARD, make_shape_preferences(n_videos=2, clips_per_video=2, seed=6))
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    model = load_open_clip("tiny", "cpu")
    clips = catalog.rows("clips", SHARD)
    rows, _ = shard_keyframe_embeddings(catalog, SHARD, clips, model, keyframe_image_reader(storage))
    stale = [dataclasses.replace(r, revision="older-weights", embedding=[0.0] * len(r.embedding)) for r in rows.values()]
    catalog.replace_shard("keyframe_embeddings", SHARD, stale, part=model.spec.model_id)
    counted_frames.clear()
    fresh, n = shard_keyframe_embeddings(catalog, SHARD, clips, model, keyframe_image_reader(storage))
    assert n == len(clips) and sum(counted_frames) == 2 * len(clips)
    assert {r.revision for r in catalog.rows("keyframe_embeddings", SHARD)} == {model.spec.revision}
    for clip_id, row in fresh.items():
        assert np.allclose(row.embedding, rows[clip_id].embedding, atol=1e-5)


def _decision(clip, keep: bool, reasons: list[str]) -> ClipFilterRecord:
    scores = dict.fromkeys(("motion_camera", "motion_object", "motion_jitter", "changing_share", "text_area", "nsfw",
                            "sharpness", "brightness", "blown_share", "short_side", "duplicate_distance",
                            "duplicate_cosine"))
    return ClipFilterRecord(clip_id=clip.clip_id, video_id=clip.video_id, shard=SHARD, keep=keep, reasons=reasons,
                            duplicate_of=None, text=None, duration_s=2.0, phashes=[], filters=["still"], **scores)


def test_clips_the_filters_dropped_are_never_accepted_nor_take_a_cap_slot(panda_home, write_shape_shard, run_assets):
    shapes = write_shape_shard(SHARD, make_shape_preferences(n_videos=3, clips_per_video=4, seed=7))
    catalog = Catalog(panda_home)
    video = shapes[0].video_id
    own = [s for s in shapes if s.video_id == video]
    dropped = {own[0].clip_id: ["still"], own[1].clip_id: ["still", "dark"]}
    # teacher_captions captions only kept clips: one dropped clip has no candidates at all.
    no_captions = own[1].clip_id
    captions = [c for c in catalog.rows("teacher_captions", SHARD) if c.clip_id != no_captions]
    catalog.replace_shard("teacher_captions", SHARD, captions)
    catalog.replace_shard("clip_filters", SHARD, [_decision(s, s.clip_id not in dropped, dropped.get(s.clip_id, []))
                                                  for s in shapes])

    meta = run_assets([selected_captions], SHARD,
                      run_config={"ops": {"selected_captions": {"config": {"min_score": None, "max_clips_per_video": 1}}}})
    selected = catalog.read_shard("selected_captions", SHARD).set_index("clip_id")
    assert no_captions not in selected.index and meta["n_without_candidates"].value == 1
    assert meta["n_filtered"].value == 1 and meta["n_quarantined"].value == 0
    filtered = selected.loc[own[0].clip_id]
    assert not filtered["accepted"] and filtered["reject_reason"] == REJECT_FILTERED
    # The per-video cap of 1 went to one of the video's kept clips.
    accepted = selected[selected["accepted"]]
    assert accepted.groupby("video_id").size().to_dict() == {s.video_id: 1 for s in shapes}
    assert accepted.loc[accepted["video_id"] == video].index[0] in {own[2].clip_id, own[3].clip_id}
    assert len(catalog.read_shard("quarantine", SHARD)) == 0
