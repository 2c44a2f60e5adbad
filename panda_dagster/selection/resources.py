"""The caption scorer as a Dagster resource: the open_clip base model, or the newest fine-tuned
selection model, loaded once per process and shared by every shard the process materializes."""

from __future__ import annotations

from panda_dagster.common.models import ModelProfileResource


class CaptionScorerResource(ModelProfileResource):
    """open_clip model that scores candidate captions against a clip's key frames."""

    @property
    def base_model_name(self) -> str:
        from panda_dagster.lib.models.openclip import PROFILE_SPECS

        spec = PROFILE_SPECS[self._profile]
        return f"open_clip {spec.model_name} {spec.pretrained}"

    def base_model(self):
        from panda_dagster.lib.models.openclip import load_open_clip

        return load_open_clip(self._profile, self.resolved_device)

    def scorer(self, storage, use_selection_model: bool = True):
        """(scorer, info): the newest selection model built on this profile, else the base model (info None)."""
        from panda_dagster.lib.selection.finetune import latest_selection_model, load_selection_scorer
        from panda_dagster.lib.selection.scorer import CaptionScorer

        info = latest_selection_model(storage, self._profile) if use_selection_model else None
        if info is None:
            return CaptionScorer(self.base_model()), None
        from panda_dagster.lib.models.cache import cached_model

        # One fine-tuned model in memory at a time: a newer version replaces the older one.
        scorer = cached_model(("selection_model", info.version, self.resolved_device),
                              lambda: load_selection_scorer(storage, info, self.resolved_device), slot="selection_model")
        return scorer, info
