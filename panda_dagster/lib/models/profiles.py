"""Which model profile a run uses.

PANDA_MODELS=auto (default) picks the real `default` profile when every model it needs is in the local
Hugging Face cache or the Hub is reachable, and otherwise falls back to `tiny`: random-weight models of
the same architectures, built offline. Tiny output is not a real caption or score, so every report and
every row that a tiny model produced must carry `TINY_LABEL`.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from panda_dagster.lib.settings import models_profile_setting

log = logging.getLogger(__name__)

PROFILES = ("tiny", "default", "large")
TINY_LABEL = "TINY MODELS (offline random weights, outputs are not meaningful)"
TINY_WARNING = (
    "PANDA_MODELS resolved to the offline `tiny` profile: models are random-weight twins of the real "
    "architectures, so captions, scores and metrics are NOT meaningful. Set PANDA_MODELS=default on a "
    "machine that has the real weights (Hugging Face cache or Hub access)."
)

# Modules that know which Hugging Face repos a profile needs: each exposes
# `required_model_ids(profile: str) -> list[str]`. Missing modules are skipped.
_MODEL_ID_PROVIDERS = (
    "panda_dagster.lib.models.openclip",
    "panda_dagster.lib.teachers.registry",
)


@dataclass(frozen=True)
class ModelsProfile:
    name: str  # one of PROFILES
    requested: str  # what PANDA_MODELS said
    reason: str  # why this profile was chosen

    @property
    def is_tiny(self) -> bool:
        return self.name == "tiny"

    @property
    def label(self) -> str:
        return TINY_LABEL if self.is_tiny else self.name


def required_model_ids(profile: str) -> list[str]:
    ids: list[str] = []
    for module_name in _MODEL_ID_PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        ids.extend(module.required_model_ids(profile))
    return sorted(set(ids))


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://", 1)[-1].split("/")[0]
    try:
        with socket.create_connection((endpoint, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _missing_from_cache(repo_ids: Iterable[str]) -> list[str]:
    from huggingface_hub import try_to_load_from_cache

    missing = []
    for repo_id in repo_ids:
        found = any(
            isinstance(try_to_load_from_cache(repo_id, name), str)
            for name in ("config.json", "open_clip_config.json", "model_index.json")
        )
        if not found:
            missing.append(repo_id)
    return missing


def resolve_models_profile(requested: str | None = None) -> ModelsProfile:
    requested = (requested or models_profile_setting()).strip().lower()
    if requested in PROFILES:
        return ModelsProfile(requested, requested, f"PANDA_MODELS={requested}")
    if requested != "auto":
        raise ValueError(f"PANDA_MODELS must be one of auto, {', '.join(PROFILES)}; got {requested!r}")
    missing = _missing_from_cache(required_model_ids("default"))
    if not missing:
        return ModelsProfile("default", "auto", "all default-profile weights are in the local cache")
    if _hub_reachable():
        return ModelsProfile("default", "auto", "Hugging Face Hub reachable; weights download on first use")
    log.warning(TINY_WARNING)
    shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    return ModelsProfile("tiny", "auto", f"offline and not cached: {shown}")
