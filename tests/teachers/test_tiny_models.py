"""The tiny profile end to end: offline-built twins loaded through the real from_pretrained paths."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from panda_dagster.lib.records import Cue
from panda_dagster.lib.teachers.engine import caption_shard, plan_request
from panda_dagster.lib.teachers.registry import load_registry
from panda_dagster.lib.teachers.runners import ModelUnavailableError, get_runner
from panda_dagster.lib.teachers.tiny import TINY_BUILDERS, ensure_tiny_model


@pytest.fixture
def tiny_registry(panda_home):
    return load_registry("tiny")


def _build_in_subprocess(cache: str) -> str:
    return str(ensure_tiny_model("tiny/qwen2", Path(cache)))


@pytest.mark.slow
def test_tiny_builds_are_cached_and_safe_to_run_concurrently(panda_home, tmp_path):
    cache = tmp_path / "cache"
    # Two processes race to build the same model into one cache, a thread of this one joins in.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pending = pool.map_async(_build_in_subprocess, [str(cache)] * 2)
        with ThreadPoolExecutor(max_workers=2) as threads:
            builds = [threads.submit(ensure_tiny_model, "tiny/qwen2", cache) for _ in range(2)]
        paths = [str(b.result()) for b in builds] + pending.get(timeout=300)  # result() re-raises a failure
    assert len(set(paths)) == 1
    weights = Path(paths[0]) / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert ensure_tiny_model("tiny/qwen2", cache) == Path(paths[0]) and weights.stat().st_mtime_ns == mtime
    assert not [p for p in (cache / "tiny").iterdir() if p.name.startswith(".")]  # no temp dirs left
    with pytest.raises(KeyError, match="no tiny builder"):
        ensure_tiny_model("tiny/nonexistent", cache)


def test_every_tiny_twin_is_the_real_architecture(panda_home):
    from transformers import AutoConfig

    expected = {"blip": "blip", "git": "git", "blip2": "blip-2", "smolvlm": "smolvlm", "qwen2": "qwen2"}
    for name in TINY_BUILDERS:
        config = AutoConfig.from_pretrained(ensure_tiny_model(f"tiny/{name}"))
        assert config.model_type == expected[name]


def test_metadata_and_speech_reach_the_model_inputs(tiny_registry, clip_fixture):
    clips, videos, cues = clip_fixture
    video = videos[clips[0].video_id]
    for name in ("smolvlm2_video", "qwen25_text"):
        spec = tiny_registry.teacher(name)
        runner = get_runner(spec, "cpu")
        request = plan_request(spec, clips[0], video, cues).request
        chat = runner.build_chat(request)
        tokenizer = getattr(runner, "processor", None)
        tokenizer = tokenizer.tokenizer if tokenizer is not None else runner.tokenizer
        round_trip = tokenizer.decode(tokenizer(chat, add_special_tokens=False)["input_ids"])
        for needle in ("Painting the garage door", "sand and paint the old garage door", "first we sand the door"):
            assert needle in chat and needle in round_trip, (name, needle)
        assert "now the primer goes on" not in chat  # that cue belongs to the next clip
        if name == "smolvlm2_video":
            assert chat.count("<image>") == spec.num_frames


def test_tiny_materialization_of_all_four_kinds(tiny_registry, clip_fixture):
    # ASR cues reach the teachers through the `subtitles` table like these subtitle cues: tests/transcripts.
    clips, videos, cues = clip_fixture
    cues = [*cues, Cue(4.1, 5.9, "then the second coat", clips[2].video_id)]  # speech in every clip
    messages = []
    result = caption_shard("s1", tiny_registry.teachers, clips, videos, cues,
                           profile="tiny", progress=messages.append)
    assert not result.failures, [(f.teacher, f.reason) for f in result.failures]
    pairs = {(c.clip_id, c.teacher) for c in result.captions}
    assert pairs == {(c.clip_id, t.name) for c in clips for t in tiny_registry.teachers}
    assert {c.kind for c in result.captions} == {"image", "video_llm", "text_llm", "narration"}
    for row in result.captions:
        assert row.caption.strip() and row.prompt_sha and row.revision
        if row.kind != "narration":
            assert row.model_id.startswith("tiny/") and row.n_tokens > 0 and row.latency_ms > 0
    assert any("clips/s" in m for m in messages)
    again = caption_shard("s1", tiny_registry.teachers, clips, videos, cues,
                          profile="tiny", existing_captions=result.captions, existing_failures=result.failures)
    assert again.n_generated == 0 and len(again.captions) == len(result.captions)


@pytest.mark.parametrize("teacher", ["qwen25_text", "smolvlm2_video", "blip_keyframe"])
def test_batched_generation_matches_one_by_one(tiny_registry, clip_fixture, teacher):
    import torch

    clips, videos, cues = clip_fixture
    spec = tiny_registry.teacher(teacher)
    runner = get_runner(spec, "cpu")
    # Different prompt lengths per clip (more cues each time), so the batch really is left-padded.
    prepared = [runner.prepare(plan_request(spec, c, videos[c.video_id], cues[: i + 1]).request)
                for i, c in enumerate(clips)]
    batched = runner.generate(prepared)
    single = [runner.generate([p])[0] for p in prepared]
    assert [g.parts for g in batched] == [g.parts for g in single]
    assert [g.n_tokens for g in batched] == [g.n_tokens for g in single] == [spec.max_new_tokens] * len(clips)
    if teacher == "smolvlm2_video":  # the collated batch holds exactly each clip's own inputs
        collated = runner._collate(prepared)
        lengths = {p.payload[2]["input_ids"].shape[1] for p in prepared}
        assert len(lengths) > 1  # really padded
        for row, item in enumerate(prepared):
            own = item.payload[2]
            n = own["input_ids"].shape[1]
            assert torch.equal(collated["input_ids"][row, -n:], own["input_ids"][0])
            assert int(collated["attention_mask"][row].sum()) == n
            assert torch.equal(collated["pixel_values"][row], own["pixel_values"][0])


def test_missing_real_model_says_how_to_get_it(panda_home, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import
    spec = load_registry("default", {"qwen25_text": {"model_id": "panda-tests/not-a-real-model",
                                                     "revision": "main"}}).teacher("qwen25_text")
    with pytest.raises(ModelUnavailableError) as err:
        get_runner(spec, "cpu")
    message = str(err.value)
    assert "panda-tests/not-a-real-model" in message and "hf download" in message and "PANDA_MODELS=tiny" in message


def test_blip2_family_of_the_large_profile_runs_through_the_image_runner(panda_home, clip_fixture):
    clips, videos, cues = clip_fixture
    large = load_registry("large").teacher("blip2_keyframe")
    assert large.family == "blip2"
    for prompt in ("", "Question: what happens in this video? Answer:"):
        spec = load_registry("large", {"blip2_keyframe": {
            "model_id": "tiny/blip2", "revision": "tiny-build", "max_new_tokens": 5, "min_new_tokens": 5,
            "batch_size": 2, "prompt": prompt, "generation": {"no_repeat_ngram_size": 1}}}).teacher("blip2_keyframe")
        result = caption_shard("s1", [spec], clips, videos, cues, profile="tiny")
        assert not result.failures and len(result.captions) == len(clips)
        assert all(c.n_tokens == 5 and c.caption and "Question" not in c.caption for c in result.captions)
