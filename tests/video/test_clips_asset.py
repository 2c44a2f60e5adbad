"""The Dagster `clips` asset on a real shard: raw_videos -> clips, key frames, quarantine, idempotency."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.clips.assets import clips
from panda_dagster.clips.resources import ClipEmbedderResource
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.ingest.assets import raw_videos
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.lib.synth import Scene, Transition, render_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips_corpus")
    render_video(folder / "story.mp4", [Scene(9.0, background="blue", texture="striped", seed=1, pan_px=(50.0, 0)),
                                       Scene(4.0, background="orange", texture="checkered", seed=2)],
                 [Transition("cut")], fps=20.0, size=(192, 108), audio=False)
    render_video(folder / "talk.mp4", [Scene(8.0, background="green", texture="wavy", seed=3)], fps=20.0,
                 size=(192, 108), audio=True,
                 subtitles=[(0.5, 2.0, "first we open the box"), (2.1, 5.5, "then we take out the parts and lay "
                                                                            "them on the table")])
    full = render_video(folder / "cut_short.mkv", [Scene(10.0, background="magenta", texture="gradient", seed=4)],
                        fps=20.0, size=(192, 108), audio=False)
    data = full.path.read_bytes()
    full.path.write_bytes(data[: int(len(data) * 0.55)])
    return folder


def _run(home: Path, shard: str, config: dict | None = None):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    run_config = {"ops": {"clips": {"config": config}}} if config else None
    return materialize(
        [raw_videos, clips], partition_key=shard, instance=instance, run_config=run_config,
        resources={"panda": PandaResource(home=str(home)), "clip_embedder": ClipEmbedderResource(profile="tiny")})


@pytest.mark.slow
def test_clips_asset_writes_rows_keyframes_and_quarantine(panda_home, corpus):
    from panda_dagster.lib.models.profiles import TINY_LABEL

    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    (shard,) = ingest_source(corpus, catalog, storage, shard_size=10, prefix="c").keys
    config = {"mode": "auto", "write_clip_files": True, "cut_mode": "reencode"}
    result = _run(panda_home, shard, config)
    assert result.success
    rows = catalog.query("SELECT * FROM clips ORDER BY video_id, start_s")
    videos = catalog.query("SELECT video_id, local_path FROM videos").set_index("local_path").video_id
    by_name = {Path(p).stem: v for p, v in videos.items()}
    talk = rows[rows.video_id == by_name["talk"]]
    assert list(talk.method) == ["narration"]
    assert talk.narration.iloc[0].startswith("first we open the box then we take out")
    story = rows[rows.video_id == by_name["story"]]
    assert len(story) >= 1  # the tiny model cannot tell still from moving: the still filter is off for it
    assert (story.method == "stitched").all() and (story.models_label == TINY_LABEL).all()
    assert ((story.end_s - story.start_s) >= 2.5 - 1e-9).all()
    for row in rows.itertuples():
        assert len(row.keyframe_uris) >= 1 and all(Path(u).is_file() for u in row.keyframe_uris)
        assert row.clip_uri and Path(row.clip_uri).is_file()
    partial = rows[rows.video_id == by_name["cut_short"]]
    assert (partial.end_s < 10.0).all()
    quarantine = catalog.query("SELECT * FROM quarantine WHERE stage = 'clips'")
    assert list(quarantine.action) == ["kept_partial"] and quarantine.video_id[0] == by_name["cut_short"]

    metadata = result.asset_materializations_for_node("clips")[0].metadata
    assert metadata["n_clips"].value == len(rows)
    assert metadata["n_kept_partial"].value == 1
    assert metadata["split_quality_mean"].value >= 0.0
    assert "preview" in metadata and metadata["notes"].value
    n_keyframes = len(storage.list(f"shards/{shard}/keyframes/"))

    again = _run(panda_home, shard, config)  # idempotent: same rows, same files, nothing duplicated
    assert again.success
    rows_again = catalog.query("SELECT clip_id FROM clips ORDER BY video_id, start_s")
    assert list(rows_again.clip_id) == list(rows.clip_id)
    assert len(storage.list(f"shards/{shard}/keyframes/")) == n_keyframes
    assert len(catalog.query("SELECT * FROM quarantine WHERE stage = 'clips'")) == 1
