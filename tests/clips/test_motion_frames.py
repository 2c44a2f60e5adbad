"""The `clips` decode pass also samples clip_filters' small grey frames (0.25 s apart): stored per clip,
they spare clip_filters a second decode and give what that second decode would have."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.lib.filters.frames import (
    ClipSpan,
    MotionFrameSampler,
    decode_motion_frames,
    motion_frames_key,
    sample_videos,
)
from panda_dagster.lib.video.shard import joined_motion_frames, motion_frames_between

MOTION_COLUMNS = ("motion_camera", "motion_object", "motion_jitter", "changing_share")


def _frame(value: int) -> np.ndarray:
    return np.full((36, 64, 3), value, np.uint8)


def test_joined_stretches_keep_what_one_sequential_sampler_keeps():
    # 10 frames/s; the second stretch starts at 2.4 s, inside the 0.25 s cell [2.25, 2.5) whose first frame
    # (2.3 s) the first stretch kept: the join must drop the stretch's own first frame there.
    times = [k / 10 for k in range(50)]
    sequential, first, second = MotionFrameSampler(), MotionFrameSampler(), MotionFrameSampler()
    for k, t in enumerate(times):
        sequential(k, t, _frame(k))
        (first if k < 24 else second)(k, t, _frame(k))
    first(24, math.nan, _frame(24))  # the frame past a stretch's end comes without a time: ignored
    assert 2.4 in second.clip(0, 10).times_s.tolist()  # the duplicate the join has to remove
    joined = joined_motion_frames([first, second])
    expected = sequential.clip(-math.inf, math.inf)
    np.testing.assert_array_equal(joined.times_s, expected.times_s)
    np.testing.assert_array_equal(joined.gray, expected.gray)
    window = motion_frames_between(joined, 2.3, 4.0)
    np.testing.assert_array_equal(window.times_s, sequential.clip(2.3, 4.0).times_s)
    assert joined_motion_frames([]) is None
    capped = [MotionFrameSampler(max_frames=5), MotionFrameSampler(max_frames=5)]
    for k, t in enumerate(times):
        capped[k >= 24](k, t, _frame(k))
    np.testing.assert_array_equal(joined_motion_frames(capped).times_s, expected.times_s[:5])  # one cap, as one pass


@pytest.fixture(scope="module")
def motion_corpus(tmp_path_factory, render_pan_then_cut) -> Path:
    folder = tmp_path_factory.mktemp("motion_corpus")
    render_pan_then_cut(folder / "pan.mp4", 6.0, 5.0, pan_px=80.0, size=(320, 180))
    return folder


def _materialize(home: Path, shard: str, instance, assets):
    from panda_dagster.clips.resources import ClipEmbedderResource
    from panda_dagster.common.resources import PandaResource

    ops = {"clips": {"config": {"stitch": False}},
           "clip_filters": {"config": {"enabled": ["quality", "still", "motion"]}}}
    return materialize(
        assets, partition_key=shard, instance=instance,
        run_config={"ops": {name: ops[name] for name in ops if any(a.key.path[-1] == name for a in assets)}},
        resources={"panda": PandaResource(home=str(home)), "clip_embedder": ClipEmbedderResource(profile="tiny")})


@pytest.mark.slow
def test_clip_filters_reads_the_frames_clips_stored_and_a_clips_rerun_clears_stale_artifacts(panda_home,
                                                                                              motion_corpus):
    from panda_dagster.clips.assets import clips
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.filters.assets import clip_filters
    from panda_dagster.ingest.assets import raw_videos
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.filters.registry import FiltersParams
    from panda_dagster.lib.filters.shard import filter_catalog_shard
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.storage import LocalStorage, artifact_reader

    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    (shard,) = ingest_source(motion_corpus, catalog, storage, shard_size=10, prefix="mf").keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    result = _materialize(panda_home, shard, instance, [raw_videos, clips, clip_filters])
    assert result.success
    clip_rows = catalog.rows("clips", shard)
    assert len(clip_rows) == 2  # the two shots
    assert result.asset_materializations_for_node("clips")[0].metadata["n_motion_frames_stored"].value == 2
    notes = result.asset_materializations_for_node("clip_filters")[0].metadata["notes"].data
    assert not any("decoded" in note for note in notes), notes  # no second decode of the video

    (video,) = catalog.rows("videos", shard)
    redecoded, errors, n_decoded = sample_videos(
        {video.video_id: (video.local_path, [ClipSpan(c.clip_id, c.start_s, c.end_s) for c in clip_rows])})
    assert errors == {} and n_decoded == 1
    for clip in clip_rows:
        stored = decode_motion_frames(storage.get_bytes(motion_frames_key(shard, clip.clip_id)))
        assert len(stored) >= 4 * (clip.end_s - clip.start_s) - 1
        np.testing.assert_allclose(stored.times_s, redecoded[clip.clip_id].times_s, atol=1e-6)
        difference = np.abs(stored.gray.astype(np.int16) - redecoded[clip.clip_id].gray.astype(np.int16))
        assert difference.mean() < 1.0  # the same decoder settings: (nearly) the same pixels

    with_stored = {r.clip_id: r for r in catalog.rows("clip_filters", shard)}
    storage.delete_prefix(f"shards/{shard}/motion_frames/")  # the fallback: clip_filters decodes again
    fallback = filter_catalog_shard(catalog, storage, shard, FiltersParams(enabled=["quality", "still", "motion"]),
                                    read_artifact=artifact_reader(storage), use_embeddings=False)
    assert any("decoded 1 videos again" in note for note in fallback.notes)
    for row in fallback.rows:
        assert row.keep == with_stored[row.clip_id].keep and row.reasons == with_stored[row.clip_id].reasons
        for column in MOTION_COLUMNS:
            a, b = getattr(row, column), getattr(with_stored[row.clip_id], column)
            assert a is not None and b is not None and a == pytest.approx(b, rel=0.02, abs=1e-3), column
    assert max(with_stored[c.clip_id].motion_camera for c in clip_rows) > 0.01  # the pan is measured

    # Re-running clips rewrites the shard's key frames and motion frames: nothing of a previous run is left,
    # and every model's key-frame embeddings of the shard (not only the clip embedder's) are stale.
    from panda_dagster.lib.models.records import KeyframeEmbedding

    clip_model = {r.model_id for r in catalog.rows("keyframe_embeddings", shard)}
    assert len(clip_model) == 1 and "other/frame-model" not in clip_model
    catalog.replace_shard("keyframe_embeddings", shard, [
        KeyframeEmbedding(c.clip_id, shard, "other/frame-model", "r0", 2, 1, [1.0, 0.0]) for c in clip_rows],
        part="other/frame-model")
    assert {r.model_id for r in catalog.rows("keyframe_embeddings", shard)} == clip_model | {"other/frame-model"}
    storage.put_bytes(motion_frames_key(shard, "stale-clip"), b"old")
    assert _materialize(panda_home, shard, instance, [raw_videos, clips]).success
    assert sorted(Path(k).stem for k in storage.list(f"shards/{shard}/motion_frames/")) == \
        sorted(c.clip_id for c in clip_rows)
    embeddings = catalog.rows("keyframe_embeddings", shard)
    assert {r.model_id for r in embeddings} == clip_model  # the other model's rows are gone
    assert sorted(r.clip_id for r in embeddings) == sorted(c.clip_id for c in clip_rows)
