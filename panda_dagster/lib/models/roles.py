"""Which model fills which role in a models profile, and whether its weights are trained or random, so
every output (run log, asset metadata, `models_label` in rows, report banner) can say it per model."""

from __future__ import annotations

from dataclasses import dataclass

from panda_dagster.lib.models.profiles import TINY_LABEL


@dataclass(frozen=True)
class ModelRole:
    role: str  # asr | frame embedder | sentence embedder | captioners | caption scorer
    model: str
    trained: bool

    @property
    def text(self) -> str:
        return f"{self.role}: {self.model} ({'trained' if self.trained else 'RANDOM weights'})"


def profile_roles(profile: str) -> list[ModelRole]:
    """The models of `profile` by role (from the registries; nothing is loaded)."""
    from panda_dagster.lib.models.embedders import default_image_embedder
    from panda_dagster.lib.models.openclip import RANDOM_TWIN_PROFILES, PROFILE_SPECS
    from panda_dagster.lib.transcripts.whisper import asr_choice

    random_clip = profile in RANDOM_TWIN_PROFILES
    clip = PROFILE_SPECS[profile]
    clip_name = f"open_clip {clip.model_name}" + (" (tiny twin)" if random_clip else f" {clip.pretrained}")
    asr = asr_choice(profile)
    frame = default_image_embedder(profile)
    roles = [ModelRole("asr", asr.model_id + (" (packaged)" if asr.packaged else ""), True)]
    roles.append(ModelRole("frame embedder", "EfficientNet-Lite0 (packaged)", True) if frame == "efficientnet_lite0"
                 else ModelRole("frame embedder", clip_name, not random_clip))
    roles.append(ModelRole("sentence embedder", "all-MiniLM-L6-v2 (packaged)", True) if profile == "offline"
                 else ModelRole("sentence embedder", f"{clip_name} text tower", not random_clip))
    roles.append(ModelRole("captioners", "tiny/<family> twins" if profile in ("tiny", "offline")
                           else "Hugging Face captioners (teachers.yaml)", profile not in ("tiny", "offline")))
    roles.append(ModelRole("caption scorer", clip_name, not random_clip))
    return roles


def models_label(profile: str) -> str:
    """One line for reports and rows: the profile and, per model, trained or random."""
    roles = profile_roles(profile)
    if not any(r.trained for r in roles):
        return TINY_LABEL
    return f"{profile}: " + "; ".join(r.text for r in roles)
