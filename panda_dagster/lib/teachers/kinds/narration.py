"""Kind `narration`: HowTo100M's caption, what is said during the clip (subtitle or ASR cues of the one
`subtitles` table, or the narration the clips stage attached). No model."""

from __future__ import annotations

from collections.abc import Sequence

from panda_dagster.lib.teachers.kinds import PlanContext, PlannedRequest, TeacherKind, request_for
from panda_dagster.lib.teachers.prompts import prompt_sha
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.runners import Generation, Prepared, TeacherRunner


def plan(spec: TeacherSpec, ctx: PlanContext) -> PlannedRequest:
    request = request_for(ctx, prompt_sha(ctx.fingerprint, ctx.prompt, None))
    if not ctx.prompt:
        return PlannedRequest(request, "no narration: the clip has no subtitle or ASR text")
    return PlannedRequest(request)


class NarrationRunner(TeacherRunner):
    """HowTo100M's caption: what is said during the clip (subtitles or ASR). No model."""

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        return [Generation([item.request.prompt], len(item.request.prompt.split())) for item in batch]


KIND = TeacherKind(
    name="narration", families=("narration",), runner=NarrationRunner, plan=plan, needs_model=False,
    echoes_prompt=False,  # the "prompt" is the caption itself
    description="the clip's own subtitle / ASR text, no model",
)
