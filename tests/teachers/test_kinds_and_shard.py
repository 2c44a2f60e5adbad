"""Teacher kinds as self-describing modules (a new one: tests/docs/test_readme_extending.py), the one
decode per video of the video-LLM teacher, and the shard step that captions only the clips the clip
filters kept."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from panda_dagster.lib import schema
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.filters.records import ClipFilterRecord
from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.probe import ProbeResult
from panda_dagster.lib.records import Cue, VideoRecord
from panda_dagster.lib.teachers import kinds as kinds_mod
from panda_dagster.lib.teachers.engine import caption_shard
from panda_dagster.lib.teachers.frames import VideoFrameSampler
from panda_dagster.lib.teachers.inputs import ClipInput
from panda_dagster.lib.teachers.registry import RegistryError, load_registry
from panda_dagster.lib.teachers.shard import CaptionConfig, caption_teacher_shard, select_teachers
from panda_dagster.lib.video.records import ClipRecord

def test_every_registry_kind_is_a_module_with_its_families(panda_home):
    kinds = kinds_mod.teacher_kinds()
    assert set(kinds) == {"image", "video_llm", "text_llm", "narration"}
    assert {k.runner.__name__ for k in kinds.values()} == {
        "ImageCaptionRunner", "VideoLLMRunner", "TextLLMRunner", "NarrationRunner"}
    for profile in ("tiny", "default", "large"):
        for spec in load_registry(profile).teachers:
            assert spec.family in kinds[spec.kind].families
            assert spec.needs_model == kinds[spec.kind].needs_model
    with pytest.raises(RegistryError, match="does not fit kind 'image'"):
        load_registry("tiny", {"blip_keyframe": {"family": "qwen2"}})
    with pytest.raises(RegistryError, match="num_frames >= 1"):
        load_registry("tiny", {"smolvlm2_video": {"num_frames": 0}})


def test_frame_sampler_serves_all_clips_of_a_video_from_one_open(colour_video, tmp_path):
    other = shutil.copy(colour_video, tmp_path / "copy.mp4")
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255), "black": (0, 0, 0)}

    def close_to(image, colour):
        mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)
        return np.abs(mean - np.array(colours[colour])).max() < 40

    with VideoFrameSampler(max_side=64) as sampler:
        (red,) = sampler.sample(str(colour_video), [0.5])
        blue, black = sampler.sample(str(colour_video), [2.5, 5.5])
        assert sampler.opens == 1
        assert close_to(red, "red") and close_to(blue, "blue") and close_to(black, "black")
        assert red.size == (64, 48)
        sampler.sample(str(other), [0.5])
        assert sampler.opens == 2


@pytest.mark.parametrize("threads", [1, 2])
def test_video_llm_teacher_decodes_each_video_once_per_shard(panda_home, colour_video, tmp_path, monkeypatch,
                                                             threads):
    """Each decoding thread goes forward through its own run of the (video-sorted) clips: a video is opened
    once per thread whose run reaches it, never again for every batch."""
    import threading

    import av

    from panda_dagster.lib.teachers.kinds.video_llm import VideoLLMRunner

    monkeypatch.setattr(VideoLLMRunner, "prepare_workers", property(lambda self: threads))

    second = shutil.copy(colour_video, tmp_path / "second.mp4")
    opened: list[str] = []
    real_open = av.open

    def counting_open(path, *args, **kwargs):
        opened.append((str(path), threading.current_thread().name))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    from panda_dagster.lib.teachers.inputs import VideoInput

    videos = {"v1": VideoInput("v1", str(colour_video), "first"), "v2": VideoInput("v2", str(second), "second")}
    spans = ((0.0, 2.0), (2.0, 4.0), (4.0, 6.0))
    # Clips of the two videos interleaved, batches of two: a batch mixes videos.
    clips = [ClipInput(clip_id(v, s, e), v, s, e) for s, e in spans for v in ("v1", "v2")]
    spec = load_registry("tiny", {"smolvlm2_video": {"batch_size": 2}}).teacher("smolvlm2_video")
    result = caption_shard("s1", [spec], clips, videos, [], profile="tiny")
    assert not result.failures, [f.reason for f in result.failures]
    assert {c.clip_id for c in result.captions} == {c.clip_id for c in clips}
    by_thread = Counter(opened)
    assert set(by_thread.values()) == {1}, f"a video opened twice by one thread: {opened}"
    assert {path for path, _ in opened} == {str(colour_video), str(second)}
    assert len({thread for _, thread in opened}) == threads
    # Sorted by video: [v1 v1 | v1 v2 | v2 v2] in batches of two; two runs share one video at their seam.
    assert len(opened) == (2 if threads == 1 else 3)


SHARD = "shard-kept"


def _shard_catalog(home, clip_fixture, with_filters_table: bool):
    clips, videos, cues = clip_fixture
    tables = [t for t in schema.TABLES.values() if t.name != "clip_filters"]
    if with_filters_table:  # as FILTERS declares it in lib/schema.py
        tables.append(schema.TABLES.get("clip_filters") or schema.Table("clip_filters", ClipFilterRecord))
    catalog = Catalog(home, tables=tables)
    (video,) = videos.values()
    probe = ProbeResult("mp4", "h264", "yuv420p", 6.0, 25.0, 150, 320, 240, False, True, 1, "aac", 1, "x", 6.0, None)
    catalog.replace_shard("videos", SHARD, [VideoRecord(video.video_id, SHARD, video.local_path, video.local_path,
                                                        probe, video.title, video.description, None, None, 2)])
    catalog.replace_shard("clips", SHARD, [
        ClipRecord(c.clip_id, c.video_id, SHARD, c.start_s, c.end_s, int(c.start_s * 25), int(c.end_s * 25), "shot",
                   1, "content", None, list(c.keyframe_uris), None, None, "none") for c in clips])
    catalog.replace_shard("subtitles", SHARD, [
        Cue(c.start_s, c.end_s, c.text, c.video_id, SHARD, i) for i, c in enumerate(cues)], part="subtitle")
    # ASR cues live in the same table; a video's subtitle file wins over them (lib.subtitles.cues_by_video).
    catalog.replace_shard("subtitles", SHARD, [Cue(4.2, 5.8, "and the second coat", video.video_id, SHARD, 0,
                                                   source="asr", origin="faster-whisper")], part="asr")
    return catalog, clips


def _decision(clip, keep):
    return ClipFilterRecord(clip.clip_id, clip.video_id, SHARD, keep, [] if keep else ["still"], None, None, 2.0,
                            None, None, None, None, None, None, None, None, None, None, None, None, [], ["still"])


def test_only_clips_the_filters_kept_are_captioned_unless_caption_all(panda_home, clip_fixture):
    catalog, clips = _shard_catalog(panda_home, clip_fixture, with_filters_table=True)
    teachers = select_teachers("tiny", CaptionConfig(only=["narration"]))

    def captioned(config):
        run = caption_teacher_shard(SHARD, catalog, teachers, config, profile="tiny")
        rows = catalog.rows("teacher_captions", SHARD) + catalog.rows("teacher_failures", SHARD)
        return run, {r.clip_id for r in rows}

    run, ids = captioned(CaptionConfig(only=["narration"]))  # no clip_filters rows yet: every clip is kept
    assert ids == {c.clip_id for c in clips} and run.n_captioned_clips == 3
    narration = {r.clip_id: r.caption for r in catalog.rows("teacher_captions", SHARD)}
    assert narration[clips[0].clip_id] == "first we sand the door"
    assert clips[2].clip_id not in narration and run.n_cues == {"subtitle": 2, "asr": 1}

    catalog.replace_shard("clip_filters", SHARD, [_decision(clips[0], True), _decision(clips[1], False),
                                                  _decision(clips[2], True)])
    run, ids = captioned(CaptionConfig(only=["narration"]))
    assert ids == {clips[0].clip_id, clips[2].clip_id} and run.n_captioned_clips == 2 and run.n_clips == 3
    run, ids = captioned(CaptionConfig(only=["narration"], caption_all=True))
    assert ids == {c.clip_id for c in clips} and run.n_captioned_clips == 3


def test_a_catalog_without_the_clip_filters_table_captions_every_clip(panda_home, clip_fixture):
    catalog, clips = _shard_catalog(panda_home, clip_fixture, with_filters_table=False)
    run = caption_teacher_shard(SHARD, catalog, select_teachers("tiny", CaptionConfig(only=["narration"])),
                                CaptionConfig(only=["narration"]), profile="tiny")
    assert run.n_captioned_clips == len(clips)
    with pytest.raises(ValueError, match="unknown teachers"):
        select_teachers("tiny", CaptionConfig(only=["nope"]))


def test_the_dagster_config_is_the_library_config():
    from panda_dagster.teachers.assets import TeacherCaptionsConfig

    config = TeacherCaptionsConfig(only=["narration"], caption_all=True)
    assert config.to_lib() == CaptionConfig(only=["narration"], caption_all=True)
    fields = TeacherCaptionsConfig.model_fields
    assert set(fields) == {"overrides", "only", "retry_failures", "caption_all"}  # no profile/device: resources
    assert "clip filters" in fields["caption_all"].description
