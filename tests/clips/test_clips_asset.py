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
from panda_dagster.fixtures.synth import Scene, render_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, render_pan_then_cut) -> Path:
    folder = tmp_path_factory.mktemp("clips_corpus")
    render_pan_then_cut(folder / "story.mp4", 9.0, 4.0, pan_px=50.0, size=(192, 108))
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
    embedded = catalog.rows("keyframe_embeddings", shard)  # every clip's key frames, embedded at clips
    assert sorted(e.clip_id for e in embedded) == sorted(rows.clip_id)
    assert metadata["n_keyframes_embedded"].value == len(rows)

    again = _run(panda_home, shard, config)  # idempotent: same rows, same files, nothing duplicated
    assert again.success
    rows_again = catalog.query("SELECT clip_id FROM clips ORDER BY video_id, start_s")
    assert list(rows_again.clip_id) == list(rows.clip_id)
    assert len(storage.list(f"shards/{shard}/keyframes/")) == n_keyframes
    assert len(catalog.query("SELECT * FROM quarantine WHERE stage = 'clips'")) == 1


class CountingEmbedder:
    """A stand-in image embedder that counts the frames it is asked to embed."""

    def __init__(self):
        from panda_dagster.lib.models.base import ModelSpec

        self.spec = ModelSpec("test/colour-histogram", "r1")
        self.device, self.embed_dim, self.label, self.frames_embedded = "cpu", 64, "colour-histogram", 0

    def embed_images(self, images, batch_size=64):
        import numpy as np

        self.frames_embedded += len(images)
        out = []
        for image in images:
            image = np.asarray(image)
            bins = (image.reshape(-1, 3) // 64).astype(np.int64)
            hist = np.bincount(bins[:, 0] * 16 + bins[:, 1] * 4 + bins[:, 2], minlength=64).astype(np.float64)
            out.append(np.sqrt(hist / hist.sum()))
        out = np.asarray(out, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_asr_cues_give_narration_clips_and_keyframes_are_embedded_once(panda_home, tmp_path):
    """A video whose only cues are ASR cues (part `asr` of the one `subtitles` table, as the `transcripts`
    stage writes them) gets narration clips; every clip's stored key frames are embedded exactly once."""
    from panda_dagster.lib.records import CUE_SOURCE_ASR, Cue
    from panda_dagster.lib.video.shard import clips_for_shard
    from panda_dagster.lib.video.split import SplitConfig

    render_video(tmp_path / "speech.mp4", [Scene(9.0, background="green", texture="wavy", seed=5)], fps=20.0,
                 size=(192, 108), audio=False)
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    (shard,) = ingest_source(tmp_path, catalog, storage, shard_size=10, prefix="asr").keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    assert materialize([raw_videos], partition_key=shard, instance=instance,
                       resources={"panda": PandaResource(home=str(panda_home))}).success
    (video,) = catalog.rows("videos", shard)
    assert video.n_subtitle_cues == 0 and not catalog.rows("subtitles", shard)
    lines = [(0.4, 2.2, "today we are going to fix a bicycle tyre"), (2.4, 5.9, "first take the wheel off the "
             "frame and let the air out"), (6.2, 8.5, "then lever the tyre off the rim")]
    cues = [Cue(a, b, text, video_id=video.video_id, shard=shard, cue_index=k, source=CUE_SOURCE_ASR,
                origin="test-asr") for k, (a, b, text) in enumerate(lines)]
    catalog.replace_shard("subtitles", shard, cues, part=CUE_SOURCE_ASR)

    embedder = CountingEmbedder()
    out = clips_for_shard(catalog, storage, shard, SplitConfig(mode="auto", stitch=False), embedder=embedder)
    rows = out.split.rows
    assert rows and all(r.method == "narration" for r in rows)
    assert rows[0].narration.startswith("today we are going to fix a bicycle tyre")
    n_keyframes = sum(len(r.keyframe_uris) for r in rows)
    assert embedder.frames_embedded == n_keyframes  # no stitching: the key frames only, once each
    assert out.n_keyframes_embedded == len(rows) == len(out.keyframe_rows)
    assert {k.clip_id for k in out.keyframe_rows} == {r.clip_id for r in rows}
    assert all(k.n_frames * k.dim == len(k.embedding) and k.model_id == "test/colour-histogram"
               for k in out.keyframe_rows)
