"""The models the evaluation stage uses, as one resource: the profile's frame embedder (the retrieval
benchmark's frozen video features: EfficientNet-Lite0 in `offline`, open_clip elsewhere), open_clip's text
tower and, where the profile has one, a sentence embedder (near-duplicate captions; the benchmark's text
side in the `offline` profile). Profile and device come from the resource only, like every model resource
(`common/models.py`)."""

from __future__ import annotations

from panda_dagster.common.models import ModelProfileResource


class EvaluationModelsResource(ModelProfileResource):
    """Models of `eval_metrics` and `retrieval_benchmark`, loaded once per process (lib.models.cache)."""

    def image_text_model(self):
        """The profile's open_clip model: the benchmark's text features where there is no sentence embedder."""
        from panda_dagster.lib.models.openclip import load_open_clip

        return load_open_clip(self._profile, self.resolved_device)

    def video_model(self):
        """The benchmark's frozen video encoder: the profile's frame embedder (lib.models.embedders `auto`:
        the trained EfficientNet-Lite0 in `offline`, whose key-frame rows `clips` already wrote; open_clip
        elsewhere). HowTo100M itself used ImageNet 2-D CNN features, max-pooled over time."""
        from panda_dagster.lib.models.embedders import load_image_embedder

        return load_image_embedder("auto", self._profile, self.resolved_device)

    def sentence_embedder(self):
        """(embedder, None) when the profile has a sentence embedder, else (None, why not)."""
        from panda_dagster.lib.evaluation.text_models import load_sentence_embedder

        return load_sentence_embedder(self._profile, self.resolved_device)

    def text_embedder(self):
        """The benchmark's text encoder: the sentence embedder where there is one, else open_clip's text tower."""
        embedder, _ = self.sentence_embedder()
        return embedder if embedder is not None else self.image_text_model()
