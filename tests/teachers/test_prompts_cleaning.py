from __future__ import annotations

import pytest

from panda_dagster.lib.teachers.cleaning import clean_caption
from panda_dagster.lib.teachers.engine import merge_caption_parts, plan_request
from panda_dagster.lib.records import Cue
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput, subtitle_text_for_span
from panda_dagster.lib.teachers.prompts import (
    build_context,
    check_template,
    frame_timestamps,
    render_prompt,
    truncate_words,
    video_llm_messages,
)
from panda_dagster.lib.teachers.registry import load_registry

VIDEO = VideoInput("v", "/videos/v.mp4", title="How to fix a bike chain",
                   description="In this video I show how to put a chain back on.", has_audio=True)
CUES = [
    Cue(0.0, 4.0, "hi everyone", "v"),
    Cue(4.0, 9.0, "grab the chain with one hand", "v"),
    Cue(9.0, 12.0, "grab the chain with one hand", "v"),  # rolling caption repeated
    Cue(12.0, 15.0, "and turn the pedal backwards", "v", source="asr"),
    Cue(20.0, 25.0, "thanks for watching", "v"),
]
CLIP = ClipInput("c", "v", 5.0, 14.0, ("/k/c_0.jpg", "/k/c_1.jpg", "/k/c_2.jpg"))


def test_subtitle_text_covers_only_the_clip_span_without_repeats():
    text = subtitle_text_for_span(CUES, 5.0, 14.0)
    assert text == "grab the chain with one hand and turn the pedal backwards"
    assert subtitle_text_for_span(CUES, 15.5, 19.0) == ""
    # A cue that only touches the span boundary is not part of it.
    assert subtitle_text_for_span(CUES, 15.0, 20.0) == ""


@pytest.mark.parametrize("teacher", ["smolvlm2_video", "qwen25_text"])
@pytest.mark.parametrize("profile", ["tiny", "default", "large"])
def test_metadata_and_subtitles_reach_video_llm_and_text_prompts(profile, teacher):
    spec = load_registry(profile).teacher(teacher)
    request = plan_request(spec, CLIP, VIDEO, CUES).request
    assert "How to fix a bike chain" in request.prompt
    assert "put a chain back on" in request.prompt
    assert "grab the chain with one hand and turn the pedal backwards" in request.prompt
    assert "hi everyone" not in request.prompt and "thanks for watching" not in request.prompt
    assert "9.0-second" in request.prompt


def test_missing_metadata_is_rendered_as_none_not_left_blank():
    spec = load_registry("tiny").teacher("qwen25_text")
    bare = VideoInput("v", "/videos/v.mp4")
    request = plan_request(spec, CLIP, bare, []).request
    assert "Title: (none)" in request.prompt and "Words spoken during the clip: (none)" in request.prompt


def test_narration_prompt_is_the_clip_speech_and_prefers_clip_narration():
    spec = load_registry("tiny").teacher("narration")
    assert plan_request(spec, CLIP, VIDEO, CUES).request.prompt == (
        "grab the chain with one hand and turn the pedal backwards")
    narrated = ClipInput("c", "v", 5.0, 14.0, (), narration="  the clip's own   narration ")
    assert plan_request(spec, narrated, VIDEO, CUES).request.prompt == "the clip's own narration"
    silent = plan_request(spec, ClipInput("c", "v", 15.5, 19.0), VIDEO, CUES)
    assert silent.failure_reason and "no subtitle or ASR text" in silent.failure_reason


def test_prompt_sha_changes_with_prompt_frames_and_model_but_not_batch_size():
    registry = load_registry("tiny")
    video_spec = registry.teacher("smolvlm2_video")
    base = plan_request(video_spec, CLIP, VIDEO, CUES).request.prompt_sha
    retitled = VideoInput("v", "/videos/v.mp4", title="Another title", description=VIDEO.description)
    assert plan_request(video_spec, CLIP, retitled, CUES).request.prompt_sha != base
    more_frames = load_registry("tiny", {"smolvlm2_video": {"num_frames": 6}}).teacher("smolvlm2_video")
    assert plan_request(more_frames, CLIP, VIDEO, CUES).request.prompt_sha != base
    batch = load_registry("tiny", {"smolvlm2_video": {"batch_size": 1}}).teacher("smolvlm2_video")
    assert plan_request(batch, CLIP, VIDEO, CUES).request.prompt_sha == base
    # Image teachers: which key frames are shown is part of the identity.
    image_spec = registry.teacher("blip_keyframe")
    sha_a = plan_request(image_spec, CLIP, VIDEO, CUES).request.prompt_sha
    other = ClipInput("c", "v", 5.0, 14.0, ("/k/c_0.jpg", "/k/OTHER.jpg", "/k/c_2.jpg"))
    assert plan_request(image_spec, other, VIDEO, CUES).request.prompt_sha != sha_a


def test_frames_are_sampled_inside_the_clip_and_labelled_with_their_time():
    times = frame_timestamps(5.0, 13.0, 4)
    assert times == [6.0, 8.0, 10.0, 12.0]
    messages = video_llm_messages("Describe.", times, clip_start_s=5.0)
    content = messages[0]["content"]
    assert [c["type"] for c in content].count("image") == 4
    assert content[0]["text"] == "Frame at 00:01.0:" and content[-1]["text"].endswith("Describe.")


def test_long_fields_are_truncated_at_a_word():
    text = "word " * 500
    cut = truncate_words(text, 50)
    assert len(cut) <= 54 and cut.endswith(" ...") and "wor ..." not in cut
    long_video = VideoInput("v", "/v.mp4", title="t", description="x" * 5000)
    context = build_context(CLIP, long_video, CUES, 4)
    assert len(context.description) <= 610


def test_template_check():
    check_template("{title} {duration_s:.1f}")
    with pytest.raises(ValueError, match="unknown field"):
        check_template("{nope}")
    assert render_prompt("{title}|{subtitles}", build_context(CLIP, None, [], 1)) == "(none)|(none)"


@pytest.mark.parametrize("raw, prompt, expected", [
    ("  a man   riding\n a bike ", "", "a man riding a bike"),
    ("a video frame of a man riding a bike", "a video frame of", "a man riding a bike"),
    ("Assistant: A dog runs on the beach.<end_of_utterance>", "", "A dog runs on the beach."),
    ('"A red car at night."', "", "A red car at night."),
    ("<|im_start|>a cat<|im_end|>", "", "a cat"),
])
def test_clean_caption(raw, prompt, expected):
    assert clean_caption(raw, prompt).caption == expected


@pytest.mark.parametrize("raw, prompt, reason", [
    ("   \n ", "", "empty output"),
    ("<|im_end|> [SEP]", "", "empty output"),
    ("a video frame of", "a video frame of", "output only repeated the prompt"),
    ("... -- !!", "", "no letters or digits"),
])
def test_clean_caption_failures_carry_a_reason(raw, prompt, reason):
    result = clean_caption(raw, prompt)
    assert result.caption is None and reason in result.reason


def test_multi_frame_parts_are_joined_once_each():
    caption, reason = merge_caption_parts(["a dog", "A dog", "a dog on grass", "   "], "")
    assert caption == "a dog; a dog on grass" and reason is None
    assert merge_caption_parts(["", " "], "")[0] is None
