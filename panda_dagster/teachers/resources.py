"""One Dagster resource per teacher model (and one for ASR).

The weights live in a process-wide cache (`panda_dagster.lib.teachers.runners.get_runner`), so a model is
loaded once per process however many shards or runs the process executes, and only when a clip actually
needs it: an all-cached shard never loads anything.
"""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from panda_dagster.lib.teachers.registry import NO_MODEL_KINDS, REGISTRY_FILE, TeacherSpec


class TeacherModelResource(ConfigurableResource):
    """A teacher's model: `runner(spec)` gives the loaded, batched generator for that spec."""

    teacher: str = Field(description="Registry name of the teacher this resource serves ('*' = any)")
    device: str = Field(default="auto", description="auto (CUDA + bf16 when present, else CPU float32), cpu, cuda:N")
    _device: str = PrivateAttr(default="cpu")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from panda_dagster.lib.teachers.runners import resolve_device

        self._device = resolve_device(self.device)
        if context.log:
            context.log.debug(f"teacher resource {self.teacher}: device {self._device}")

    @property
    def resolved_device(self) -> str:
        return self._device

    def runner(self, spec: TeacherSpec, s3_client=None):
        from panda_dagster.lib.teachers.runners import get_runner

        return get_runner(spec, self._device, s3_client)

    def asr_runner(self, spec: TeacherSpec):
        from panda_dagster.lib.teachers.asr import get_asr_runner

        return get_asr_runner(spec, self._device)


def resource_key(teacher: str) -> str:
    return f"teacher_{teacher}"


ASR_RESOURCE_KEY = "teacher_asr"
EXTRA_RESOURCE_KEY = "teacher_extra"  # serves teachers added through run config overrides


def registry_teacher_names() -> list[str]:
    """Names of the model-backed teachers of every profile in teachers.yaml (one resource each;
    the narration teacher has no model)."""
    import yaml

    data = yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8"))
    names: dict[str, None] = {}
    for section in data["profiles"].values():
        for entry in section.get("teachers") or []:
            if entry.get("kind") not in NO_MODEL_KINDS:
                names.setdefault(entry["name"], None)
    return list(names)


def teacher_resources(device: str = "auto") -> dict[str, TeacherModelResource]:
    resources = {resource_key(name): TeacherModelResource(teacher=name, device=device)
                 for name in registry_teacher_names()}
    resources[ASR_RESOURCE_KEY] = TeacherModelResource(teacher="asr", device=device)
    resources[EXTRA_RESOURCE_KEY] = TeacherModelResource(teacher="*", device=device)
    return resources
