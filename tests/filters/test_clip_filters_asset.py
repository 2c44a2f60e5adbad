"""The Dagster `clip_filters` asset on real shards: raw_videos -> clips -> clip_filters, with a re-upload
in a second shard, checks, metadata, and an idempotent re-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

import generate as g


def _materialize(home: Path, shard: str, instance):
    from panda_dagster.clips.assets import clips
    from panda_dagster.clips.resources import ClipEmbedderResource
    from panda_dagster.common.resources import PandaResource
    from panda_dagster.filters.assets import clip_filters
    from panda_dagster.ingest.assets import raw_videos

    return materialize(
        [raw_videos, clips, clip_filters], partition_key=shard, instance=instance,
        run_config={"ops": {"clips": {"config": {"stitch": False}}}},
        resources={"panda": PandaResource(home=str(home)), "clip_embedder": ClipEmbedderResource(profile="tiny")})


@pytest.mark.slow
def test_clip_filters_asset_writes_decisions_across_shards(panda_home, tmp_path):
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.storage import LocalStorage

    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    original = g.moving_objects(first_dir / "original.mp4", size=(432, 240), seed=31)
    g.still_photo(first_dir / "photo.mp4", size=(432, 240), seed=32)
    g.reencode_half(original, second_dir / "reupload.mp4")
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    (shard_a,) = ingest_source(first_dir, catalog, storage, shard_size=10, prefix="fa").keys
    (shard_b,) = ingest_source(second_dir, catalog, storage, shard_size=10, prefix="fb").keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard_a, shard_b])

    result_a = _materialize(panda_home, shard_a, instance)
    assert result_a.success
    checks = result_a.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    metadata = result_a.asset_materializations_for_node("clip_filters")[0].metadata
    assert metadata["n_clips"].value == 2 and metadata["n_kept"].value == 1
    assert metadata["reasons"].data.get("still") == 1
    assert "score_histograms" in metadata and "cpu_s_per_filter" in metadata
    # clips stored every clip's small frames in its decode pass: no second decode here (VIDEO2's hook)
    assert not any("decoded" in note for note in metadata["notes"].data)

    assert _materialize(panda_home, shard_b, instance).success
    videos = {Path(v.local_path).stem: v.video_id for s in (shard_a, shard_b) for v in catalog.rows("videos", s)}
    rows = {r.video_id: r for s in (shard_a, shard_b) for r in catalog.rows("clip_filters", s)}
    kept_original = rows[videos["original"]]
    assert kept_original.keep
    assert set(rows[videos["reupload"]].reasons) == {"low_resolution", "duplicate"}  # 216x120
    assert rows[videos["reupload"]].duplicate_of == kept_original.clip_id
    assert "still" in rows[videos["photo"]].reasons

    # Idempotent: re-running shard A (now seeing shard B) gives the same decisions, one row per clip.
    before = sorted((r.clip_id, r.keep, tuple(r.reasons)) for r in catalog.rows("clip_filters", shard_a))
    assert _materialize(panda_home, shard_a, instance).success
    after = sorted((r.clip_id, r.keep, tuple(r.reasons)) for r in catalog.rows("clip_filters", shard_a))
    assert after == before and len(after) == 2
