"""Fixtures shared by every test module (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_videos_dir() -> Path | None:
    for candidate in (
        os.environ.get("PANDA_SHARED_VIDEOS"),
        REPO_ROOT.parent / "shared" / "videos",
        Path("/work/shared/videos"),
    ):
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    """The real, openly licensed sample videos (../shared/videos); skips where they are absent."""
    path = _shared_videos_dir()
    if path is None:
        pytest.skip("sample videos not found (../shared/videos or $PANDA_SHARED_VIDEOS)")
    return path


def _set_home_env(monkeypatch, home: Path) -> None:
    monkeypatch.setenv("PANDA_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(REPO_ROOT))
    monkeypatch.setenv("PANDA_DAGSTER_STORAGE", str(home / "dagster" / "storage"))
    monkeypatch.setenv("PANDA_DAGSTER_ARTIFACTS", str(home / "dagster" / "artifacts"))
    monkeypatch.setenv("PANDA_DAGSTER_LOGS", str(home / "dagster" / "logs"))
    monkeypatch.setenv("PANDA_MODELS", "tiny")
    for name in ("PANDA_S3_BUCKET", "PANDA_S3_PREFIX", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model_cache(tmp_path_factory) -> Path:
    """One model cache per test session, so tiny models are built once."""
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture
def panda_home(tmp_path, monkeypatch, tiny_model_cache) -> Path:
    """A fresh PANDA_HOME (with the Dagster instance of dagster.yaml under it) for one test;
    PANDA_MODELS=tiny and a model cache shared by the whole session."""
    home = tmp_path / "panda_home"
    home.mkdir()
    _set_home_env(monkeypatch, home)
    monkeypatch.setenv("PANDA_MODEL_CACHE", str(tiny_model_cache))
    return home
