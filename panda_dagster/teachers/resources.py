"""The teacher models as one Dagster resource: the models profile, the device (per teacher if wanted).

The weights live in the project's one model cache (`panda_dagster.lib.models.cache`, through
`lib.teachers.runners.get_runner`), so a model is loaded once per process however many shards or runs
the process executes, and only when a clip actually needs it: an all-cached shard never loads anything.
"""

from __future__ import annotations

from pydantic import Field

from panda_dagster.common.models import ModelProfileResource
from panda_dagster.lib.teachers.registry import TeacherSpec

TEACHER_MODELS_KEY = "teacher_models"


class TeacherModelsResource(ModelProfileResource):
    """`runner(spec)` gives the loaded, batched generator of a teacher, on `device` or its own device."""

    devices: dict[str, str] = Field(default_factory=dict, description="Per-teacher device by teacher name "
                                    "(e.g. {'smolvlm2_video': 'cuda:1'}); the others use `device`")

    def device_for(self, teacher: str) -> str:
        from panda_dagster.lib.models.device import resolve_device

        return resolve_device(self.devices[teacher]) if teacher in self.devices else self.resolved_device

    def runner(self, spec: TeacherSpec, s3_client=None):
        from panda_dagster.lib.teachers.runners import get_runner

        return get_runner(spec, self.device_for(spec.name), s3_client)


def teacher_resources(device: str = "auto", profile: str = "") -> dict[str, TeacherModelsResource]:
    return {TEACHER_MODELS_KEY: TeacherModelsResource(profile=profile, device=device)}
