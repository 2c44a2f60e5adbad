"""A backfill run may give a model asset several shards: one step captions and selects all of them."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.fixtures.synth import Scene, render_video

STAGES = ["raw_videos", "clips", "teacher_captions", "selected_captions"]


@pytest.mark.slow
def test_one_run_processes_a_range_of_shards_per_model_step(panda_home, tmp_path):
    from panda_dagster.definitions import defs

    folder = tmp_path / "videos"
    for i in range(2):
        render_video(folder / f"v{i}.mp4", [Scene(5.0, seed=10 + i), Scene(5.0, seed=20 + i, background="red")],
                     audio=False, subtitles=[(0.0, 2.5, f"the first part of video {i}")])
    panda = PandaResource(home=str(panda_home))
    shards = ingest_source(folder, panda.catalog(), panda.storage(), shard_size=1, prefix="rng").keys
    assert len(shards) == 2
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    tags = {ASSET_PARTITION_RANGE_START_TAG: shards[0], ASSET_PARTITION_RANGE_END_TAG: shards[-1]}
    result = materialize(defs.assets, selection=STAGES, instance=instance, tags=tags,
                         resources={**defs.resources, "panda": panda})
    assert result.success
    for name in ("teacher_captions", "selected_captions"):
        steps = [e for e in result.all_events if e.event_type_value == "STEP_START" and e.step_key == name]
        assert len(steps) == 1, name  # one step (one model load) for both shards
        partitions = {m.partition for m in result.asset_materializations_for_node(name)}
        assert partitions == set(shards), name
    catalog = panda.catalog()
    for shard in shards:
        clip_ids = set(catalog.read_shard("clips", shard)["clip_id"])
        selected = catalog.read_shard("selected_captions", shard)
        assert clip_ids and set(selected["clip_id"]) == clip_ids
        assert set(catalog.read_shard("teacher_captions", shard)["shard"]) == {shard}
