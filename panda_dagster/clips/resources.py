"""The image embedder used for stitching, split quality and key-frame embeddings, loaded once per process."""

from __future__ import annotations

from pydantic import Field

from panda_dagster.common.models import ModelProfileResource


class ClipEmbedderResource(ModelProfileResource):
    """Unit-norm image embeddings of sampled frames; the model is shared by every shard and run this process
    executes (panda_dagster.lib.models.cache). `embedder` picks the model (lib/models/embedders.py)."""

    embedder: str = Field(default="auto", description="Image embedder: auto (efficientnet_lite0 in the offline "
                          "profile, else open_clip), open_clip (the profile's CLIP, also the caption scorer's image "
                          "tower), efficientnet_lite0 (packaged trained ImageNet CNN) or another name of "
                          "lib.models.embedders")
    batch_size: int = Field(default=64, description="Frames per forward pass")

    def model(self):
        from panda_dagster.lib.models.embedders import load_image_embedder

        return load_image_embedder(self.embedder, self._profile or None, self.resolved_device)

    def embed_images(self, images):
        return self.model().embed_images(images, batch_size=self.batch_size)

    @property
    def models_label(self) -> str:
        return self.model().label

    @property
    def is_tiny(self) -> bool:
        """The embedder has random weights (its distances say nothing): per model, not per profile."""
        return not self.model().trained

    @property
    def embedder_name(self) -> str:
        from panda_dagster.lib.models.embedders import default_image_embedder

        return default_image_embedder(self._profile) if self.embedder == "auto" else self.embedder

    def stitching_for(self, stitching):
        """`stitching` (a StitchConfig) with the embedder's calibrated distances wherever the run left the
        library defaults (Panda-70M's ImageBind values) in place."""
        from panda_dagster.lib.video.stitching import with_embedder_distances

        return with_embedder_distances(stitching, self.embedder_name)  # the same rule as `panda split`
