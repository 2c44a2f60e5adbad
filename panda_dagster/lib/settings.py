"""Process-wide settings read from the environment (one place, so every entry point agrees)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PANDA_HOME = ".panda"


def panda_home() -> Path:
    """Root of everything a run writes: catalog, per-shard artifacts, model cache, logs."""
    return Path(os.environ.get("PANDA_HOME", DEFAULT_PANDA_HOME)).expanduser().resolve()


def models_profile_setting() -> str:
    """Raw PANDA_MODELS value: auto (default), tiny, default or large."""
    return os.environ.get("PANDA_MODELS", "auto").strip().lower() or "auto"


def model_cache_dir() -> Path:
    """Where generated tiny models and other model artifacts are cached ($PANDA_MODEL_CACHE or
    PANDA_HOME/models; several homes, e.g. test runs, may share one cache)."""
    override = os.environ.get("PANDA_MODEL_CACHE")
    return Path(override).expanduser().resolve() if override else panda_home() / "models"
