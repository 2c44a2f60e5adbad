"""The image embedder used for stitching and split quality: open_clip, loaded once per process."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr


class ClipEmbedderResource(ConfigurableResource):
    """open_clip image embeddings (unit norm) of sampled frames; the model is shared by every shard and run
    this process executes (panda_dagster.lib.models.openclip keeps one instance per profile and device)."""

    profile: str = Field(default="", description="Models profile: tiny, default or large; empty = PANDA_MODELS")
    device: str = Field(default="auto", description="auto (CUDA + bf16 autocast when present, else CPU), cpu, cuda:N")
    batch_size: int = Field(default=64, description="Frames per forward pass")
    _profile: str = PrivateAttr(default="")
    _device: str = PrivateAttr(default="cpu")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from panda_dagster.lib.models.openclip import resolve_device
        from panda_dagster.lib.models.profiles import resolve_models_profile

        self._device = resolve_device(self.device)
        resolved = resolve_models_profile(self.profile or None)
        self._profile = resolved.name
        if context.log:
            context.log.debug(f"clip embedder: profile {resolved.name} ({resolved.reason}), device {self._device}")

    @property
    def profile_name(self) -> str:
        return self._profile

    def model(self):
        from panda_dagster.lib.models.openclip import load_open_clip

        return load_open_clip(self._profile or None, self._device)

    def embed_images(self, images):
        return self.model().embed_images(images, batch_size=self.batch_size)

    @property
    def models_label(self) -> str:
        return self.model().label
