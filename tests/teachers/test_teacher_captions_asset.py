"""`teacher_captions` materialized through Dagster with PANDA_MODELS=tiny on a shard of the real sample
videos: one row per (clip, teacher) for all four kinds, nothing regenerated on a re-run, only the new
teacher's rows when one is added. Speech comes from the one `subtitles` table: a subtitle file for one
video, ASR cues (part `asr`, as the `transcripts` asset writes them) for the other."""

from __future__ import annotations

import subprocess

import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.probe import ProbeResult
from panda_dagster.lib.records import Cue, VideoRecord
from panda_dagster.lib.video.records import ClipRecord
from panda_dagster.teachers.assets import teacher_captions
from panda_dagster.teachers.resources import teacher_resources

SHARD = "shard-teachers"
BEAR_ASR_CUES = [(0.1, 1.2, "a bear walks"), (1.3, 2.6, "through the forest")]
FRIDAY_CUES = [(0.0, 0.999, "Hildy!"), (1.0, 1.499, "How are you?"),
               (1.5, 2.999, "Tell me, is the lord of the universe in?"), (3.0, 4.299, "Yes, he's in - in a bad humor"),
               (4.3, 6.0, "Somebody must've stolen the crown jewels")]


def _video(video_id, path, duration, fps, n_frames, width, height, title, description, n_cues):
    return VideoRecord(
        video_id=video_id, shard=SHARD, uri=str(path), local_path=str(path), probe=ProbeResult(
            container="mp4", codec="h264", pix_fmt="yuv420p", duration_s=duration, fps=fps, n_frames=n_frames,
            width=width, height=height, is_vfr=False, has_audio=True, n_audio_streams=1, audio_codec="aac",
            size_bytes=path.stat().st_size, sha256=video_id, decodable_s=duration, partial_reason=None),
        title=title, description=description, url=None,
        metadata_json=None, n_subtitle_cues=n_cues)


def _clip(video_id, start, end, fps, keyframes, narration=None):
    return ClipRecord(
        clip_id=clip_id(video_id, start, end), video_id=video_id, shard=SHARD, start_s=start, end_s=end,
        start_frame=int(start * fps), end_frame=int(end * fps), method="shot", n_shots_merged=1,
        detector="content", narration=narration, keyframe_uris=keyframes, clip_uri=None, split_quality=None,
        models_label="test")


def _keyframe(video, at_s, out):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-ss", f"{at_s}", "-i", str(video),
                    "-frames:v", "1", str(out)], check=True)
    return str(out)


@pytest.fixture
def shard_catalog(panda_home, shared_videos):
    """Upstream tables of one shard: two real videos (one with a subtitle file, one with audio only)."""
    catalog = Catalog(panda_home)
    frames = panda_home / "artifacts" / "shards" / SHARD / "keyframes"
    frames.mkdir(parents=True)
    friday, bear = shared_videos / "mdn_friday.mp4", shared_videos / "tmh_bear-vp9-opus.webm"
    videos = [
        _video("friday", friday, 6.17, 30.0, 185, 640, 480, "His Girl Friday (1940)",
               "Hildy visits the newspaper office.", len(FRIDAY_CUES)),
        _video("bear", bear, 2.74, 30.0, 82, 320, 240, "Bear", "A bear in the forest.", 0),
    ]
    clips = []
    for video_id, path, spans, fps in (("friday", friday, [(0.0, 3.0), (3.0, 6.1)], 30.0),
                                        ("bear", bear, [(0.0, 2.7)], 30.0)):
        for start, end in spans:
            cid = clip_id(video_id, start, end)
            keys = [_keyframe(path, start + (end - start) * f, frames / f"{cid}_{k}.jpg")
                    for k, f in enumerate((0.25, 0.75))]
            clips.append(_clip(video_id, start, end, fps, keys))
    cues = [Cue(s, e, t, "friday", SHARD, i, origin="file") for i, (s, e, t) in enumerate(FRIDAY_CUES)]
    catalog.replace_shard("videos", SHARD, videos)
    catalog.replace_shard("subtitles", SHARD, cues, part="subtitle")
    asr = [Cue(s, e, t, "bear", SHARD, i, source="asr", origin="faster-whisper")
           for i, (s, e, t) in enumerate(BEAR_ASR_CUES)]
    catalog.replace_shard("subtitles", SHARD, asr, part="asr")
    catalog.replace_shard("clips", SHARD, clips)
    return catalog, clips


def _materialize(panda_home, instance, run_config=None):
    result = materialize(
        [teacher_captions], partition_key=SHARD, instance=instance,
        resources={"panda": PandaResource(home=str(panda_home)), **teacher_resources(device="cpu")},
        run_config=run_config,
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("teacher_captions")
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.mark.slow
def test_tiny_teacher_captions_all_kinds_cached_rerun_and_added_teacher(shard_catalog, panda_home):
    catalog, clips = shard_catalog
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("video_shards", [SHARD])

    meta = _materialize(panda_home, instance)
    rows = catalog.read_shard("teacher_captions", SHARD)
    failures = catalog.read_shard("teacher_failures", SHARD)
    assert failures.empty, failures[["teacher", "reason"]].to_dict("records")
    assert len(rows) == len(clips) * 5 == meta["n_captions"]
    assert set(zip(rows.clip_id, rows.teacher)) == {(c.clip_id, t) for c in clips for t in (
        "blip_keyframe", "git_keyframe", "smolvlm2_video", "qwen25_text", "narration")}
    assert set(rows.kind) == {"image", "video_llm", "text_llm", "narration"}
    assert set(rows[rows.kind != "narration"].model_id) == {"tiny/blip", "tiny/git", "tiny/smolvlm", "tiny/qwen2"}
    assert (rows.profile == "tiny").all() and meta["profile"] == "tiny" and "TINY" in meta["models"]
    # Narration: the subtitle file for friday, the ASR transcript for bear (it has audio, no subtitles).
    narration = dict(zip(rows[rows.teacher == "narration"].clip_id, rows[rows.teacher == "narration"].caption))
    assert narration[clip_id("friday", 0.0, 3.0)] == "Hildy! How are you? Tell me, is the lord of the universe in?"
    cues = catalog.read_shard("subtitles", SHARD)
    asr = cues[cues.source == "asr"]
    assert set(asr.video_id) == {"bear"} and (asr.source == "asr").all()
    assert narration[clip_id("bear", 0.0, 2.7)] == " ".join(asr.sort_values("start_s").text)
    assert catalog.query("SELECT count(*) AS n FROM teacher_captions WHERE shard = ?", [SHARD]).n[0] == len(rows)
    assert meta["n_generated_now"] == len(rows) and meta["n_asr_cues"] == len(BEAR_ASR_CUES)
    assert "smolvlm2_video" in meta["sample_captions"] and "clips_per_s" in meta["per_teacher"]

    again = _materialize(panda_home, instance)
    assert again["n_generated_now"] == 0 and again["n_asr_cues"] == len(BEAR_ASR_CUES)
    rows_again = catalog.read_shard("teacher_captions", SHARD)
    assert sorted(zip(rows_again.clip_id, rows_again.teacher, rows_again.caption)) == sorted(
        zip(rows.clip_id, rows.teacher, rows.caption))

    extra = {"git_two_frames": {"kind": "image", "family": "git", "model_id": "tiny/git", "revision": "tiny-build",
                                "num_frames": 2, "batch_size": 4, "max_new_tokens": 6, "min_new_tokens": 6,
                                "generation": {"no_repeat_ngram_size": 1}}}
    added = _materialize(panda_home, instance, {"ops": {"teacher_captions": {"config": {"overrides": extra}}}})
    assert added["n_generated_now"] == len(clips)
    rows_added = catalog.read_shard("teacher_captions", SHARD)
    assert len(rows_added) == len(rows) + len(clips)
    assert set(rows_added[rows_added.teacher == "git_two_frames"].clip_id) == {c.clip_id for c in clips}


def test_only_narrows_the_work_and_bad_config_fails_clearly(shard_catalog, panda_home):
    catalog, clips = shard_catalog
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("video_shards", [SHARD])
    catalog.replace_shard("subtitles", SHARD, [], part="asr")  # the video was never transcribed
    config = {"only": ["narration"]}
    meta = _materialize(panda_home, instance, {"ops": {"teacher_captions": {"config": config}}})
    rows = catalog.read_shard("teacher_captions", SHARD)
    failures = catalog.read_shard("teacher_failures", SHARD)
    # Without ASR the bear clip has no speech: a failure with the reason, not an empty caption.
    assert set(rows.teacher) == {"narration"} and len(rows) == 2 and meta["n_asr_cues"] == 0
    assert failures.reason.tolist() == ["no narration: the clip has no subtitle or ASR text"]
    assert (catalog.read_shard("subtitles", SHARD).source == "subtitle").all()

    result = materialize(
        [teacher_captions], partition_key=SHARD, instance=instance, raise_on_error=False,
        resources={"panda": PandaResource(home=str(panda_home)), **teacher_resources(device="cpu")},
        run_config={"ops": {"teacher_captions": {"config": {"overrides": {"blip_keyframe": {"batch_size": 0}}}}}},
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "batch_size" in str(failure.event_specific_data.error)
