"""Key-frame embeddings are computed once per clip and model across clips → selected_captions →
retrieval_benchmark: the open_clip model's image calls are counted stage by stage."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.fixtures.synth import Scene, render_video
from panda_dagster.lib.ingest import ingest_source


@pytest.mark.slow
def test_keyframes_are_embedded_at_clips_and_reused_downstream(panda_home, tmp_path, monkeypatch):
    from panda_dagster.definitions import defs
    from panda_dagster.lib.models.keyframes import TABLE
    from panda_dagster.lib.models.openclip import OpenClipModel

    embedded: list[int] = []  # images per embed_images call of any open_clip model
    real_embed = OpenClipModel.embed_images
    monkeypatch.setattr(OpenClipModel, "embed_images",
                        lambda self, images, batch_size=64: (embedded.append(len(images)), real_embed(
                            self, images, batch_size))[1])

    folder = tmp_path / "videos"
    for i in range(3):
        render_video(folder / f"v{i}.mp4", [Scene(3.0, seed=30 + i), Scene(3.0, seed=40 + i, background="blue")],
                     audio=False, subtitles=[(0.0, 2.5, f"the first scene of video {i}"),
                                             (3.2, 5.5, f"and the second scene of video {i}")])
    panda = PandaResource(home=str(panda_home))
    (shard,) = ingest_source(folder, panda.catalog(), panda.storage(), shard_size=10, prefix="kf").keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    resources = {**defs.resources, "panda": panda}

    def run(selection, partition=shard, run_config=None):
        embedded.clear()
        result = materialize(defs.assets, selection=selection, partition_key=partition, instance=instance,
                             resources=resources, run_config=run_config)
        assert result.success
        return {name: {k: v.value for k, v in result.asset_materializations_for_node(name)[-1].metadata.items()}
                for name in selection}

    meta = run(["raw_videos", "clips"])
    catalog = panda.catalog()
    clips = catalog.rows("clips", shard)
    rows = catalog.rows(TABLE, shard)
    assert len(clips) >= 3 and meta["clips"]["n_keyframes_embedded"] == len(clips)
    assert sorted(r.clip_id for r in rows) == sorted(c.clip_id for c in clips)
    assert all(r.n_frames == len(c.keyframe_uris) for r, c in zip(sorted(rows, key=lambda r: r.clip_id),
                                                                  sorted(clips, key=lambda c: c.clip_id)))
    n_keyframes = sum(len(c.keyframe_uris) for c in clips)
    assert sum(embedded) >= n_keyframes  # stitching frames + every key frame once

    run(["teacher_captions"], run_config={"ops": {"teacher_captions": {"config": {
        "only": ["narration", "blip_keyframe"]}}}})
    meta = run(["selected_captions"])["selected_captions"]
    assert sum(embedded) == 0, "selected_captions embeds no key frame: it reads keyframe_embeddings"
    assert meta["keyframe_embeddings_computed"] == 0 and meta["keyframe_embeddings_reused"] > 0

    meta = run(["retrieval_benchmark"], partition=None)["retrieval_benchmark"]
    assert sum(embedded) == 0, "retrieval_benchmark embeds no key frame: it reads keyframe_embeddings"
    assert meta["keyframe_embeddings_computed"] == 0 and meta["keyframe_embeddings_reused"] == len(clips)
    assert len(catalog.rows(TABLE, shard)) == len(clips)  # nothing was added by the downstream stages
