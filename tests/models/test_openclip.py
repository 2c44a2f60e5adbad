"""The open_clip wrapper, exercised with the tiny random-weight twin (built offline, loaded back)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from panda_dagster.lib.models import openclip
from panda_dagster.lib.models.profiles import TINY_LABEL


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_model_cache):
    home = tmp_path_factory.mktemp("panda_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PANDA_HOME", str(home))
        mp.setenv("PANDA_MODEL_CACHE", str(tiny_model_cache))  # the session's cache, as in `panda_home`
        yield openclip.load_open_clip("tiny", device="cpu")


def _shape_image(color: tuple[int, int, int], square: bool, size: int = 96) -> np.ndarray:
    image = np.full((size, size, 3), 235, dtype=np.uint8)
    lo, hi = size // 4, 3 * size // 4
    if square:
        image[lo:hi, lo:hi] = color
    else:
        yy, xx = np.mgrid[:size, :size]
        image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2] = color
    return image


def _state_dict(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def test_tiny_build_is_deterministic_and_idempotent(tmp_path):
    first = openclip.ensure_tiny_open_clip(tmp_path / "a")
    checkpoint = first / openclip.TINY_CHECKPOINT
    mtime = checkpoint.stat().st_mtime_ns
    assert openclip.ensure_tiny_open_clip(tmp_path / "a") == first
    assert checkpoint.stat().st_mtime_ns == mtime, "second call must reuse the build, not rewrite it"

    second = openclip.ensure_tiny_open_clip(tmp_path / "b")
    a, b = _state_dict(checkpoint), _state_dict(second / openclip.TINY_CHECKPOINT)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), "fixed seed must give identical weights"
    # A real ViT CLIP layout: patch embedding conv, transformer blocks, text token embedding over the BPE vocab.
    assert tuple(a["visual.conv1.weight"].shape) == (64, 3, 16, 16)
    assert tuple(a["token_embedding.weight"].shape) == (49408, 64)
    assert not any(p.name.startswith(".") for p in first.parent.iterdir()), "staging dirs must be cleaned up"


def test_concurrent_builds_leave_one_complete_model(tmp_path):
    barrier = threading.Barrier(3)
    results, errors = [], []

    def build():
        barrier.wait()
        try:
            results.append(openclip.ensure_tiny_open_clip(tmp_path))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert sorted(p.name for p in results[0].parent.iterdir()) == [results[0].name]
    _state_dict(results[0] / openclip.TINY_CHECKPOINT)  # loads: not truncated


def test_load_round_trip_uses_saved_checkpoint(tiny):
    assert tiny.profile == "tiny" and tiny.device == "cpu"
    assert tiny.label == TINY_LABEL
    assert tiny.embed_dim == 64
    saved = _state_dict(openclip.tiny_model_dir(openclip.model_cache_dir()) / openclip.TINY_CHECKPOINT)
    loaded = tiny.model.state_dict()
    assert all(np.array_equal(saved[k].numpy(), loaded[k].numpy()) for k in saved)
    assert openclip.load_open_clip("tiny", device="cpu") is tiny, "loaded once per process"
    assert tiny.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)


def test_image_embeddings_shapes_norms_and_batching(tiny):
    colors = [(220, 30, 30), (30, 200, 40), (30, 60, 220), (240, 220, 20), (10, 10, 10)]
    images = [_shape_image(c, square=i % 2 == 0) for i, c in enumerate(colors)]
    images.append(_shape_image((220, 30, 30), square=True, size=150))  # other size: resized by the transform
    batched = tiny.embed_images(images, batch_size=4)
    assert batched.shape == (6, 64) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([tiny.embed_images([image]) for image in images])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(tiny.embed_images(images, batch_size=4), batched)  # deterministic

    from PIL import Image

    np.testing.assert_allclose(tiny.embed_images([Image.fromarray(images[0])]), batched[:1], atol=1e-6)
    distances = 1 - batched[:5] @ batched[:5].T
    assert distances[~np.eye(5, dtype=bool)].min() > 1e-4, "different images must embed differently"
    assert tiny.embed_images([]).shape == (0, 64)


def test_text_embeddings_and_truncation(tiny):
    texts = ["a red square", "a blue circle", "a red square", "word " * 500]
    embedded = tiny.embed_texts(texts, batch_size=3)
    assert embedded.shape == (4, 64) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedded[0], embedded[2], atol=1e-6)
    assert 1 - embedded[0] @ embedded[1] > 1e-4
    tokens = tiny.tokenize(["word " * 500])
    assert tuple(tokens.shape) == (1, 77), "long texts are cut to the context length"
    assert tiny.embed_texts([]).shape == (0, 64)


def test_bad_inputs_raise_clear_errors(tiny):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        tiny.embed_images([np.zeros((32, 32), dtype=np.uint8)])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        tiny.embed_images([np.zeros((32, 32, 3), dtype=np.float32)])
    with pytest.raises(TypeError, match="expected str"):
        tiny.embed_texts([None])
    with pytest.raises(ValueError, match="unknown models profile"):
        openclip.load_open_clip("huge", device="cpu")


def test_checkpoint_override_loads_other_weights(tiny, tmp_path):
    import torch

    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    state["text_projection"] = torch.flip(state["text_projection"], dims=[1])
    path = tmp_path / "changed.pt"
    torch.save(state, path)
    changed = openclip.load_open_clip_checkpoint("tiny", path, device="cpu")
    assert changed is not tiny
    before, after = tiny.embed_texts(["a red square"]), changed.embed_texts(["a red square"])
    np.testing.assert_allclose(after[0], before[0][::-1], atol=1e-5)


def test_profile_comes_from_environment(tiny, monkeypatch):
    monkeypatch.setenv("PANDA_MODELS", "tiny")
    assert openclip.load_open_clip(device="cpu") is tiny


def test_required_model_ids():
    open_clip = openclip._import_open_clip()
    assert openclip.required_model_ids("tiny") == []
    for profile in ("default", "large"):
        spec = openclip.PROFILE_SPECS[profile]
        tag_cfg = open_clip.get_pretrained_cfg(spec.model_name, spec.pretrained)
        assert tag_cfg, f"{profile}: {spec.model_name}/{spec.pretrained} is not a real open_clip tag"
        assert openclip.required_model_ids(profile) == [tag_cfg["hf_hub"].strip("/")]
    with pytest.raises(ValueError):
        openclip.required_model_ids("huge")
