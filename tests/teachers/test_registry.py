from __future__ import annotations

import pytest

from panda_dagster.lib.models.profiles import required_model_ids as all_required_model_ids
from panda_dagster.lib.teachers.registry import KINDS, RegistryError, load_registry, required_model_ids


@pytest.mark.parametrize("profile", ["tiny", "default", "large"])
def test_every_profile_has_all_four_kinds(profile):
    registry = load_registry(profile)
    assert {t.kind for t in registry.teachers} == set(KINDS)
    names = [t.name for t in registry.teachers]
    assert len(names) == len(set(names))


def test_tiny_profile_uses_twins_of_the_default_architectures():
    tiny, default = load_registry("tiny"), load_registry("default")
    assert all(t.model_id.startswith("tiny/") for t in tiny.model_specs())
    assert {(t.name, t.kind, t.family) for t in tiny.teachers} == {(t.name, t.kind, t.family) for t in default.teachers}


def test_required_model_ids():
    default = required_model_ids("default")
    assert "HuggingFaceTB/SmolVLM2-2.2B-Instruct" in default
    assert not any(m.startswith("tiny/") or m == "narration" for m in default)
    assert required_model_ids("tiny") == []
    assert "Qwen/Qwen2.5-7B-Instruct" in required_model_ids("large")
    # The profile resolver collects the teachers' ids too (and the transcripts stage's ASR model).
    assert set(default) <= set(all_required_model_ids("default"))
    assert "Systran/faster-whisper-small" in all_required_model_ids("default")


def test_overrides_change_disable_and_add_teachers():
    base = load_registry("tiny")
    registry = load_registry("tiny", {
        "qwen25_text": {"batch_size": 2, "max_new_tokens": 5, "min_new_tokens": 5},
        "narration": None,
        "git_three_frames": {"kind": "image", "family": "git", "model_id": "tiny/git", "revision": "tiny-build",
                             "num_frames": 3, "batch_size": 4, "max_new_tokens": 6},
    })
    names = [t.name for t in registry.teachers]
    assert "narration" not in names and names[-1] == "git_three_frames"
    assert registry.teacher("qwen25_text").batch_size == 2
    assert registry.teacher("qwen25_text").prompt == base.teacher("qwen25_text").prompt
    assert registry.teacher("git_three_frames").num_frames == 3


@pytest.mark.parametrize("override, message", [
    ({"x": {"kind": "image", "family": "git", "model_id": "m"}}, "missing required field 'revision'"),
    ({"blip_keyframe": {"kind": "text_llm"}}, "does not fit kind"),
    ({"blip_keyframe": {"batch_size": 0}}, "batch_size"),
    ({"blip_keyframe": {"prompt": "{titel}"}}, "unknown field {titel}"),
    ({"blip_keyframe": {"colour": "red"}}, "unknown field(s) ['colour']"),
    ({"blip_keyframe": {"num_frames": 0}}, "num_frames >= 1"),
])
def test_invalid_entries_are_rejected_with_the_field_named(override, message):
    with pytest.raises(RegistryError) as err:
        load_registry("tiny", override)
    assert message in str(err.value)


def test_unknown_profile():
    with pytest.raises(RegistryError, match="unknown models profile"):
        load_registry("huge")


def test_config_fingerprint_tracks_generation_settings_not_batch_size():
    registry = load_registry("tiny")
    spec = registry.teacher("blip_keyframe")
    bigger_batch = load_registry("tiny", {"blip_keyframe": {"batch_size": 32}}).teacher("blip_keyframe")
    longer = load_registry("tiny", {"blip_keyframe": {"max_new_tokens": 9}}).teacher("blip_keyframe")
    pinned = load_registry("tiny", {"blip_keyframe": {"revision": "abc123"}}).teacher("blip_keyframe")
    assert spec.config_fingerprint() == bigger_batch.config_fingerprint()
    assert spec.config_fingerprint() != longer.config_fingerprint()
    assert spec.config_fingerprint() != pinned.config_fingerprint()
