"""Base of the resources that hold a model: which models profile and device, resolved once per process."""

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr


class ModelProfileResource(ConfigurableResource):
    profile: str = Field(default="", description="Models profile: tiny, default or large; empty = PANDA_MODELS")
    device: str = Field(default="auto", description="auto (CUDA + bf16 autocast when present, else CPU), cpu, cuda:N")
    _profile: str = PrivateAttr(default="")
    _device: str = PrivateAttr(default="cpu")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from panda_dagster.lib.models.openclip import resolve_device
        from panda_dagster.lib.models.profiles import resolve_models_profile

        self._device = resolve_device(self.device)
        resolved = resolve_models_profile(self.profile or None)
        self._profile = resolved.name
        if context.log:
            context.log.debug(f"{type(self).__name__}: profile {resolved.name} ({resolved.reason}), device {self._device}")

    @property
    def profile_name(self) -> str:
        return self._profile
