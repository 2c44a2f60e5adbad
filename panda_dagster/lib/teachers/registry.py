"""The teacher registry: which captioners a models profile runs (speech recognition is the `transcripts`
stage: lib/transcripts/whisper.py).

`teachers.yaml` next to this module holds the `default`, `large` and `tiny` profiles. A run picks a
profile and may override entries by name (change a field, disable one, or add a new teacher), e.g. from
Dagster run config: `{"qwen25_text": {"batch_size": 8}, "blip_keyframe": null, "my_git": {...}}`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panda_dagster.lib.models.device import DTYPES
from panda_dagster.lib.models.profiles import PROFILES

REGISTRY_FILE = Path(__file__).with_name("teachers.yaml")


def __getattr__(name: str):
    """KINDS, FAMILIES and NO_MODEL_KINDS come from the teacher kinds (lib/teachers/kinds/), computed on
    first use: the kind modules import this one."""
    from panda_dagster.lib.teachers.kinds import teacher_kinds

    kinds = teacher_kinds()
    if name == "KINDS":
        return tuple(kinds)
    if name == "FAMILIES":
        return {k.name: k.families for k in kinds.values()}
    if name == "NO_MODEL_KINDS":
        return tuple(k.name for k in kinds.values() if not k.needs_model)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RegistryError(ValueError):
    """The registry file or an override is invalid; the message names the entry and the field."""


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    kind: str  # one of KINDS
    family: str  # which runner implementation loads it (see FAMILIES)
    model_id: str  # Hugging Face repo id, or "tiny/<family>" for the offline twins
    revision: str
    prompt: str = ""  # str.format template, see teachers.yaml
    system_prompt: str = ""
    dtype: str = "auto"  # "auto" = bfloat16 on CUDA, float32 on CPU
    batch_size: int = 8
    max_new_tokens: int = 40
    min_new_tokens: int = 0
    num_frames: int = 1
    generation: Mapping[str, Any] = field(default_factory=dict)  # extra `generate()` keyword arguments

    @property
    def needs_model(self) -> bool:
        from panda_dagster.lib.teachers.kinds import teacher_kind

        return teacher_kind(self.kind).needs_model

    @property
    def is_tiny(self) -> bool:
        return self.model_id.startswith("tiny/")

    def config_fingerprint(self) -> str:
        """Hash of everything besides the rendered prompt that changes what this teacher generates."""
        payload = {
            "kind": self.kind, "family": self.family, "model_id": self.model_id, "revision": self.revision,
            "system_prompt": self.system_prompt, "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens, "num_frames": self.num_frames,
            "generation": dict(sorted(self.generation.items())),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TeacherRegistry:
    profile: str
    teachers: tuple[TeacherSpec, ...]

    def teacher(self, name: str) -> TeacherSpec:
        for spec in self.teachers:
            if spec.name == name:
                return spec
        raise KeyError(f"no teacher {name!r} in profile {self.profile}; have {[t.name for t in self.teachers]}")

    def model_specs(self) -> list[TeacherSpec]:
        return [t for t in self.teachers if t.needs_model]


_FIELDS = {f.name for f in dataclasses.fields(TeacherSpec)}
_INT_FIELDS = ("batch_size", "max_new_tokens", "min_new_tokens", "num_frames")


def _spec_from_dict(entry: Mapping[str, Any], where: str) -> TeacherSpec:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    for required in ("name", "kind", "family", "model_id", "revision"):
        if not entry.get(required):
            raise RegistryError(f"{where}: missing required field {required!r}")
    values = dict(entry)
    values["revision"] = str(values["revision"])
    values["prompt"] = values.get("prompt") or ""
    values["system_prompt"] = values.get("system_prompt") or ""
    values["generation"] = dict(values.get("generation") or {})
    for name in _INT_FIELDS:
        if name in values:
            try:
                values[name] = int(values[name])
            except (TypeError, ValueError):
                raise RegistryError(f"{where}: {name} must be an integer, got {values[name]!r}") from None
    spec = TeacherSpec(**values)
    from panda_dagster.lib.teachers.kinds import teacher_kinds

    kinds = teacher_kinds()
    if spec.kind not in kinds:
        raise RegistryError(f"{where}: kind {spec.kind!r} is not one of {tuple(kinds)}")
    kind = kinds[spec.kind]
    if spec.family not in kind.families:
        raise RegistryError(f"{where}: family {spec.family!r} does not fit kind {spec.kind!r} "
                            f"(choose from {kind.families})")
    if spec.dtype not in DTYPES:
        raise RegistryError(f"{where}: dtype {spec.dtype!r} is not one of {DTYPES}")
    if spec.batch_size < 1 or spec.max_new_tokens < 1 or spec.min_new_tokens < 0 or spec.num_frames < 0:
        raise RegistryError(f"{where}: batch_size and max_new_tokens must be >= 1, num_frames >= 0")
    if spec.min_new_tokens > spec.max_new_tokens:
        raise RegistryError(f"{where}: min_new_tokens ({spec.min_new_tokens}) > max_new_tokens")
    if spec.num_frames < kind.min_frames:
        raise RegistryError(f"{where}: a {spec.kind} teacher needs num_frames >= {kind.min_frames}")
    from panda_dagster.lib.teachers.prompts import check_template

    try:
        check_template(spec.prompt)
    except ValueError as exc:
        raise RegistryError(f"{where}: bad prompt template: {exc}") from None
    return spec


@functools.lru_cache(maxsize=4)
def _load_yaml(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_registry(
    profile: str,
    overrides: Mapping[str, Mapping[str, Any] | None] | None = None,
    path: Path | str | None = None,
) -> TeacherRegistry:
    """Teachers of `profile`, with `overrides` applied by teacher name (`None` disables a teacher;
    a new name adds one, which then needs every required field)."""
    if profile not in PROFILES:
        raise RegistryError(f"unknown models profile {profile!r}; choose from {PROFILES}")
    data = _load_yaml(str(path or REGISTRY_FILE))
    try:
        section = data["profiles"][profile]
    except KeyError:
        raise RegistryError(f"{path or REGISTRY_FILE}: no profile {profile!r}") from None
    entries: dict[str, dict] = {}
    for i, entry in enumerate(section.get("teachers") or []):
        name = entry.get("name") or f"#{i}"
        if name in entries:
            raise RegistryError(f"profile {profile}: teacher {name!r} listed twice")
        entries[name] = dict(entry)
    for name, change in (overrides or {}).items():
        if change is None:
            entries.pop(name, None)
            continue
        entries[name] = {**entries.get(name, {}), **change, "name": name}
    teachers = tuple(_spec_from_dict(e, f"profile {profile}, teacher {n!r}") for n, e in entries.items())
    return TeacherRegistry(profile=profile, teachers=teachers)


def required_model_ids(profile: str) -> list[str]:
    """Hugging Face repo ids the profile downloads (tiny builds its models offline: none)."""
    registry = load_registry(profile)
    return sorted({s.model_id for s in registry.model_specs() if not s.is_tiny})
