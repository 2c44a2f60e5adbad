"""Batching, out-of-memory back-off (simulated) and caching, with fake runners that record their calls."""

from __future__ import annotations

import torch

from panda_dagster.lib.teachers.batching import AdaptiveBatcher, is_out_of_memory
from panda_dagster.lib.teachers.engine import caption_shard
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput
from panda_dagster.lib.teachers.registry import load_registry
from panda_dagster.lib.teachers.runners import Generation, Prepared, TeacherRunner, tiny_revision


def test_batcher_splits_into_configured_batches_in_order():
    seen = []
    batcher = AdaptiveBatcher(lambda items: (seen.append(list(items)), [i * 10 for i in items])[1], batch_size=4)
    outcome = batcher.run(list(range(10)))
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert outcome.results == [(i, i * 10) for i in range(10)] and not outcome.failures


def _oom_above(limit: int, calls: list):
    def step(items):
        calls.append(len(items))
        if len(items) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [f"caption {i}" for i in items]
    return step


def test_out_of_memory_halves_the_batch_retries_it_and_keeps_the_smaller_size():
    calls: list[int] = []
    events = []
    batcher = AdaptiveBatcher(_oom_above(2, calls), batch_size=8, on_oom=lambda old, new: events.append((old, new)))
    outcome = batcher.run(list(range(12)))
    assert [item for item, _ in outcome.results] == list(range(12))  # nothing lost, order kept
    assert all(text == f"caption {i}" for i, text in outcome.results)
    assert events == [(8, 4), (4, 2)]
    assert calls == [8, 4, 2, 2, 2, 2, 2, 2]  # 8 fails, 4 fails, then batches of 2 only
    assert outcome.batch_size == 2 and outcome.oom_events == 2 and not outcome.failures


def test_item_that_does_not_fit_alone_fails_with_a_reason_and_the_rest_continue():
    def step(items):
        if 3 in items:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return [str(i) for i in items]

    outcome = AdaptiveBatcher(step, batch_size=4).run(list(range(6)))
    assert [i for i, _ in outcome.results] == [0, 1, 2, 4, 5]
    assert [(i, reason) for i, reason, _ in outcome.failures] == [(3, "out of memory at batch size 1")]


def test_other_errors_are_narrowed_down_to_the_bad_item():
    def step(items):
        if "bad" in items:
            raise ValueError("cannot process bad")
        return [s.upper() for s in items]

    outcome = AdaptiveBatcher(step, batch_size=4).run(["a", "b", "bad", "c", "d"])
    assert [r for _, r in outcome.results] == ["A", "B", "C", "D"]
    assert outcome.failures[0][0] == "bad" and "ValueError" in outcome.failures[0][1]
    assert outcome.batch_size == 4  # not an OOM: the batch size stays


def test_oom_detection():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


# ---- engine with fake runners ------------------------------------------------------------------

class FakeRunner(TeacherRunner):
    """Echoes the request so tests can see what the model got; optionally fails on big batches."""

    def __init__(self, spec, log, oom_above=None):
        super().__init__(spec, device="cpu")
        self.log = log
        self.oom_above = oom_above

    def prepare(self, request):
        return Prepared(request, f"frames:{','.join(request.keyframe_uris)}")

    def generate(self, batch):
        self.log.append((self.spec.name, [p.request.clip_id for p in batch]))
        if self.oom_above and len(batch) > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return [Generation([f"{self.spec.name} says {p.request.clip_id}"], 3) for p in batch]


def _inputs(n=5):
    clips = [ClipInput(f"clip{i}", "v", i * 2.0, i * 2.0 + 2.0, (f"/k/{i}.jpg",)) for i in range(n)]
    videos = {"v": VideoInput("v", "/videos/v.mp4", "Title", "Description", False)}
    return clips, videos


def _run(teachers, clips, videos, calls, previous=None, oom_above=None, progress=None):
    loaded = []

    def factory(spec):
        loaded.append(spec.name)
        return FakeRunner(spec, calls, oom_above)

    result = caption_shard("shard-a", teachers, clips, videos, [], profile="tiny",
                           existing_captions=previous.captions if previous else (),
                           existing_failures=previous.failures if previous else (),
                           runner_factory=factory, progress=progress)
    return result, loaded


def test_rows_for_every_clip_and_teacher_then_rerun_generates_nothing():
    registry = load_registry("tiny", {"narration": None})
    clips, videos = _inputs()
    calls = []
    first, loaded = _run(registry.teachers, clips, videos, calls)
    assert len(first.captions) == len(clips) * len(registry.teachers)
    assert {(c.clip_id, c.teacher) for c in first.captions} == {(c.clip_id, t.name) for c in clips for t in registry.teachers}
    assert all(c.caption == f"{c.teacher} says {c.clip_id}" and c.revision == tiny_revision() for c in first.captions)
    assert set(loaded) == {t.name for t in registry.teachers}

    calls.clear()
    second, loaded = _run(registry.teachers, clips, videos, calls, previous=first)
    assert calls == [] and loaded == []  # no model even loaded
    assert second.n_generated == 0
    assert sorted((c.clip_id, c.teacher, c.caption) for c in second.captions) == sorted(
        (c.clip_id, c.teacher, c.caption) for c in first.captions)
    assert all(s.n_cached == len(clips) for s in second.stats)


def test_adding_a_teacher_generates_only_its_rows_and_changes_regenerate_only_affected_clips():
    base = load_registry("tiny", {"narration": None})
    clips, videos = _inputs()
    calls = []
    first, _ = _run(base.teachers, clips, videos, calls)
    extra = load_registry("tiny", {"narration": None, "git_two": {
        "kind": "image", "family": "git", "model_id": "tiny/git", "revision": "tiny-build", "num_frames": 1}})
    calls.clear()
    second, loaded = _run(extra.teachers, clips, videos, calls, previous=first)
    assert loaded == ["git_two"] and {name for name, _ in calls} == {"git_two"}
    assert len(second.captions) == len(first.captions) + len(clips)

    # New key frames for one clip: only that clip's image-teacher rows are regenerated.
    changed = list(clips)
    changed[2] = ClipInput("clip2", "v", 4.0, 6.0, ("/k/new.jpg",))
    calls.clear()
    third, _ = _run(extra.teachers, changed, videos, calls, previous=second)
    image_teachers = {t.name for t in extra.teachers if t.kind == "image"}
    assert sorted(calls) == sorted((name, ["clip2"]) for name in image_teachers)
    assert len(third.captions) == len(second.captions)

    # A different revision of a model invalidates that teacher's rows only.
    pinned = load_registry("tiny", {"narration": None, "qwen25_text": {"model_id": "tiny/qwen2", "revision": "v2"}})
    calls.clear()
    _run(pinned.teachers, clips, videos, calls, previous=first)
    assert {name for name, _ in calls} == {"qwen25_text"}


def test_engine_backs_off_on_out_of_memory_and_reports_it():
    spec = load_registry("tiny", {"qwen25_text": {"batch_size": 8}}).teacher("qwen25_text")
    clips, videos = _inputs(7)
    calls, messages = [], []
    result, _ = _run([spec], clips, videos, calls, oom_above=2, progress=messages.append)
    assert len(result.captions) == 7 and not result.failures
    assert [len(ids) for _, ids in calls] == [7, 4, 2, 2, 2, 1]  # 7 fails, 4 fails, then <= 2
    stats = result.stats[0]
    assert stats.oom_events == 2 and stats.batch_size == 2 and stats.n_generated == 7
    assert any("out of memory at batch size 7; retrying with 4" in m for m in messages)
    assert any("7/7 clips" in m and "clips/s" in m for m in messages)


def test_failures_are_recorded_with_reasons_and_cached():
    registry = load_registry("tiny")
    spec_image = registry.teacher("blip_keyframe")
    spec_narration = registry.teacher("narration")
    clips = [ClipInput("no-frames", "v", 0.0, 2.0, ()), ClipInput("ok", "v", 2.0, 4.0, ("/k/ok.jpg",))]
    _, videos = _inputs()
    calls = []
    first, _ = _run([spec_image, spec_narration], clips, videos, calls)
    reasons = {(f.clip_id, f.teacher): f.reason for f in first.failures}
    assert reasons[("no-frames", "blip_keyframe")] == "clip has no stored key frames"
    assert "no subtitle or ASR text" in reasons[("ok", "narration")]
    assert [c.clip_id for c in first.captions] == ["ok"]
    calls.clear()
    again, loaded = _run([spec_image, spec_narration], clips, videos, calls, previous=first)
    assert calls == [] and loaded == [] and len(again.failures) == len(first.failures)


def test_unreadable_input_fails_alone():
    class BrokenFrames(FakeRunner):
        def prepare(self, request):
            if request.clip_id == "clip1":
                raise OSError("cannot identify image file")
            return super().prepare(request)

    spec = load_registry("tiny").teacher("blip_keyframe")
    clips, videos = _inputs(3)
    result = caption_shard("shard-a", [spec], clips, videos, [], profile="tiny",
                           runner_factory=lambda s: BrokenFrames(s, []))
    assert [c.clip_id for c in result.captions] == ["clip0", "clip2"]
    assert result.failures[0].clip_id == "clip1" and "cannot identify image file" in result.failures[0].reason


def test_a_model_that_cannot_load_skips_only_its_teacher():
    from panda_dagster.lib.teachers.runners import ModelUnavailableError

    registry = load_registry("tiny", {"narration": None})
    clips, videos = _inputs(2)
    calls = []

    def factory(spec):
        if spec.name == "smolvlm2_video":
            raise ModelUnavailableError("model x could not be loaded ... PANDA_MODELS=tiny")
        return FakeRunner(spec, calls)

    result = caption_shard("shard-a", registry.teachers, clips, videos, [], profile="tiny", runner_factory=factory)
    assert set(result.unavailable) == {"smolvlm2_video"} and "PANDA_MODELS=tiny" in result.unavailable["smolvlm2_video"]
    assert {c.teacher for c in result.captions} == {t.name for t in registry.teachers} - {"smolvlm2_video"}
    assert not result.failures  # nothing cached as failed: the clips run once the model is there
