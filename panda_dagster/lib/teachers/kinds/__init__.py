"""Teacher kinds: each kind is one module here that describes itself with a `KIND = TeacherKind(...)`.

A kind says which model families it accepts, what inputs it needs from a clip and how they become a
request (`plan`: the rendered prompt, which frames, the cache key), and which runner loads the model,
prepares one clip and generates for a batch. Adding a kind is one new module plus its name in
`KIND_MODULES` (and a teacher entry using it in `teachers.yaml`); the engine, the registry's validation
and the tiny profile find it here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from panda_dagster.lib.records import Cue
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput

if TYPE_CHECKING:
    from panda_dagster.lib.teachers.registry import TeacherSpec
    from panda_dagster.lib.teachers.runners import TeacherRequest, TeacherRunner

# One line per kind: the module lib/teachers/kinds/<name>.py that defines `KIND` (a dotted name: any module).
KIND_MODULES = ("image", "video_llm", "text_llm", "narration")


@dataclass(frozen=True)
class PlanContext:
    """What a kind may use to plan one clip's request (the prompt is already rendered)."""

    clip: ClipInput
    video: VideoInput | None
    cues: list[Cue]
    prompt: str  # the teacher's template rendered for this clip
    fingerprint: str  # TeacherSpec.config_fingerprint(): settings that change the output


@dataclass(frozen=True)
class PlannedRequest:
    request: TeacherRequest
    failure_reason: str | None = None  # set when the clip cannot be sent to this teacher at all


@dataclass(frozen=True)
class TeacherKind:
    name: str
    families: tuple[str, ...]  # model families (runner implementations) a teacher of this kind may name
    runner: type[TeacherRunner]  # loads the model in __init__(spec, device, s3_client); prepare; generate
    plan: Callable[[TeacherSpec, PlanContext], PlannedRequest]  # the clip's request, or why there is none
    needs_model: bool = True  # False: no weights to load (narration)
    min_frames: int = 0  # the registry rejects teachers of this kind with fewer `num_frames`
    echoes_prompt: bool = True  # model output may repeat the prompt: cleaning strips it
    tiny_builders: Mapping[str, Callable[[Path], None]] = field(default_factory=dict)  # family -> tiny twin
    description: str = ""


@functools.cache
def teacher_kinds() -> dict[str, TeacherKind]:
    """Every kind of KIND_MODULES, by name."""
    kinds = {}
    for module_name in KIND_MODULES:
        kind = importlib.import_module(module_name if "." in module_name else f"{__name__}.{module_name}").KIND
        if kind.name in kinds:
            raise ValueError(f"teacher kind {kind.name!r} defined twice (module {module_name})")
        kinds[kind.name] = kind
    return kinds


def teacher_kind(name: str) -> TeacherKind:
    kinds = teacher_kinds()
    if name not in kinds:
        raise KeyError(f"unknown teacher kind {name!r}; known: {sorted(kinds)}")
    return kinds[name]


def request_for(ctx: PlanContext, prompt_sha: str, **inputs) -> TeacherRequest:
    """The request for `ctx.clip` with `inputs` (video_path, frame_times_s, keyframe_uris)."""
    from panda_dagster.lib.teachers.runners import TeacherRequest

    clip = ctx.clip
    return TeacherRequest(clip_id=clip.clip_id, video_id=clip.video_id, prompt=ctx.prompt, prompt_sha=prompt_sha,
                          clip_start_s=clip.start_s, **inputs)
