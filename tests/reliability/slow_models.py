"""Stand-in models for the checkpoint tests: a teacher and an ASR model that take `delay_s` per call and
count their calls. Also a command, so a test can run a stage in a process it kills:

    python slow_models.py teachers|transcripts HOME SHARD DELAY_S
"""

from __future__ import annotations

import sys
import time

from panda_dagster.lib.models.base import ModelSpec
from panda_dagster.lib.teachers.runners import Generation, Prepared, TeacherRunner
from panda_dagster.lib.transcripts.cues import Segment
from panda_dagster.lib.transcripts.whisper import Recognition

ASR_SPEC = ModelSpec("Systran/faster-whisper-tiny.en", "pypi:slow-fake==1", True, "faster-whisper")
TEACHER_OVERRIDES = {"blip_keyframe": {"batch_size": 2}}


class SlowRunner(TeacherRunner):
    calls: list[str] = []  # clip ids generated in this process

    def __init__(self, spec, delay_s: float):
        super().__init__(spec, device="cpu")
        self.delay_s = delay_s

    def prepare(self, request):
        return Prepared(request)

    def generate(self, batch):
        time.sleep(self.delay_s)
        SlowRunner.calls += [p.request.clip_id for p in batch]
        return [Generation([f"a caption of {p.request.clip_id}"], 4) for p in batch]


class SlowAsr:
    spec, trained, label = ASR_SPEC, True, ASR_SPEC.label
    calls: list[int] = []  # audio lengths recognised in this process

    def __init__(self, delay_s: float):
        self.delay_s = delay_s

    def transcribe(self, audio, options=None):
        time.sleep(self.delay_s)
        SlowAsr.calls.append(len(audio))
        return Recognition([Segment(0.1, 0.5, "hello there."), Segment(0.6, 0.9, "general")], "en", 0.99,
                           0.9, 0.8, 3)


def run_teachers(home: str, shard: str, delay_s: float):
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.teachers.shard import CaptionConfig, caption_teacher_shard, select_teachers

    config = CaptionConfig(overrides=TEACHER_OVERRIDES, only=["blip_keyframe"])
    return caption_teacher_shard(shard, Catalog(home), select_teachers("tiny", config), config, profile="tiny",
                                 runner_factory=lambda spec: SlowRunner(spec, delay_s))


def run_transcripts(home: str, shard: str, delay_s: float):
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.transcripts.shard import TranscriptsConfig, transcribe_catalog_shard

    return transcribe_catalog_shard(shard, Catalog(home), TranscriptsConfig(), model_spec=lambda: ASR_SPEC,
                                    load_model=lambda: SlowAsr(delay_s))


if __name__ == "__main__":
    stage, home, shard, delay = sys.argv[1:5]
    {"teachers": run_teachers, "transcripts": run_transcripts}[stage](home, shard, float(delay))
