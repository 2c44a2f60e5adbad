"""Base of the resources that hold a model: which models profile and device, resolved once per process.

This is the only place a run chooses its profile and device (assets' run config does not): every model
resource (clip embedder, teachers, caption scorer, benchmark features, ASR) derives from it.
"""

from operator import attrgetter

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from panda_dagster.lib.models.profiles import ModelsProfile


class ModelProfileResource(ConfigurableResource):
    profile: str = Field(default="", description="Models profile (tiny, default, large, ...); empty = PANDA_MODELS")
    device: str = Field(default="auto", description="auto (CUDA + bf16 autocast when present, else CPU), cpu, cuda:N")
    _resolved: ModelsProfile | None = PrivateAttr(default=None)
    _profile: str = PrivateAttr(default="")  # the resolved profile's name (subclasses read it)
    _device: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # The device is resolved when a model first needs it: `auto` imports torch (1.4 s), which a run
        # whose steps load no model should not pay for at set-up.
        from panda_dagster.lib.models.profiles import resolve_models_profile

        self._resolved = resolve_models_profile(self.profile or None)
        self._profile = self._resolved.name
        if context.log:
            context.log.debug(f"{type(self).__name__}: profile {self._resolved.name} ({self._resolved.reason}), "
                              f"device {self.device}")

    @property
    def models_profile(self) -> ModelsProfile:
        """The resolved profile (name, why it was chosen, is_tiny, label)."""
        if self._resolved is None:  # used outside a run (tests, CLI): resolve now
            from panda_dagster.lib.models.profiles import resolve_models_profile

            self._resolved = resolve_models_profile(self.profile or None)
            self._profile = self._resolved.name
        return self._resolved

    # what the resolved profile says, read through the resource
    profile_name = property(attrgetter("models_profile.name"))
    profile_reason = property(attrgetter("models_profile.reason"))
    is_tiny = property(attrgetter("models_profile.is_tiny"))
    models_label = property(attrgetter("models_profile.label"),
                            doc="TINY_LABEL for the random-weight profile, else the profile name (reports print it)")

    @property
    def resolved_device(self) -> str:
        if self._device is None:
            from panda_dagster.lib.models.device import resolve_device

            self._device = resolve_device(self.device)
        return self._device
