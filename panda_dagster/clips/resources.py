"""The image embedder used for stitching and split quality: open_clip, loaded once per process."""

from __future__ import annotations

from pydantic import Field

from panda_dagster.common.models import ModelProfileResource


class ClipEmbedderResource(ModelProfileResource):
    """open_clip image embeddings (unit norm) of sampled frames; the model is shared by every shard and run
    this process executes (panda_dagster.lib.models.openclip keeps one instance per profile and device)."""

    batch_size: int = Field(default=64, description="Frames per forward pass")

    def model(self):
        from panda_dagster.lib.models.openclip import load_open_clip

        return load_open_clip(self._profile or None, self._device)

    def embed_images(self, images):
        return self.model().embed_images(images, batch_size=self.batch_size)

    @property
    def models_label(self) -> str:
        return self.model().label
