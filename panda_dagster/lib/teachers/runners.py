"""Model runners: the base every teacher kind's runner extends, and the process-wide `get_runner`.

A runner splits the work in two: `prepare(request)` does the CPU part for one clip (decode frames, render
the chat template) and runs in a prefetch thread; `generate(prepared_batch)` runs the model on a batch
under `torch.no_grad()`; `end_pass()` runs after a teacher's last batch of a shard (closes open videos).
Each kind's runner class lives in its kind module (`lib/teachers/kinds/`). Runners are loaded through the
project's one model cache (`lib.models.cache`), so a model is loaded once however many shards or assets
use it. Real models load by Hugging Face id + revision; `tiny/<family>` ids load the offline twins that
`tiny.py` builds, through the very same `from_pretrained` calls.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from panda_dagster.lib.models.base import ModelSpec
from panda_dagster.lib.models.cache import cached_model, evict, loaded_models
from panda_dagster.lib.models.device import resolve_device, resolve_dtype
from panda_dagster.lib.teachers.tiny import BUILD_VERSION, ensure_tiny_model, is_tiny_model_id

if TYPE_CHECKING:
    from panda_dagster.lib.teachers.registry import TeacherSpec

log = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """A real model is neither in the local Hugging Face cache nor downloadable."""


@dataclass(frozen=True)
class TeacherRequest:
    """One clip for one teacher: the rendered prompt and which frames to show."""

    clip_id: str
    video_id: str
    prompt: str
    prompt_sha: str
    video_path: str | None = None
    clip_start_s: float = 0.0
    frame_times_s: tuple[float, ...] = ()  # video-LLM: where to sample frames
    keyframe_uris: tuple[str, ...] = ()  # image captioner: stored key frames


@dataclass
class Generation:
    parts: list[str]  # raw decoded text: one per frame for image captioners, else one
    n_tokens: int


@dataclass
class Prepared:
    request: TeacherRequest
    payload: Any = None


def tiny_revision() -> str:
    return f"tiny-build-{BUILD_VERSION}"


def resolved_revision(spec: TeacherSpec) -> str:
    """The commit the spec's revision points to in the local HF cache (reproducible records), the
    configured revision when it is not cached, `tiny-build-N` for tiny models."""
    if is_tiny_model_id(spec.model_id):
        return tiny_revision()
    if not spec.needs_model:
        return spec.revision
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(spec.model_id, "config.json", revision=spec.revision)
    except Exception:  # malformed ids, cache errors: fall back to the configured revision
        return spec.revision
    if isinstance(path, str) and "/snapshots/" in path:
        return path.split("/snapshots/", 1)[1].split("/", 1)[0]
    return spec.revision


def missing_model_message(spec: TeacherSpec, exc: BaseException) -> str:
    return (
        f"teacher {spec.name!r}: model {spec.model_id}@{spec.revision} could not be loaded "
        f"({type(exc).__name__}: {str(exc)[:300]}). It is not in the local Hugging Face cache and the Hub is not "
        f"reachable. Download it on a machine with internet access, e.g. "
        f"`hf download {spec.model_id} --revision {spec.revision}`, and copy the cache (~/.cache/huggingface or "
        f"$HF_HOME) here; or run with PANDA_MODELS=tiny to use the offline random-weight twins (captions are then "
        f"not meaningful)."
    )


def _is_cached(spec: TeacherSpec) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec.model_id, "config.json", revision=spec.revision), str)
    except Exception:  # an invalid id is "not cached"; loading then reports the real problem
        return False


def _hub_reachable() -> bool:
    from panda_dagster.lib.models.profiles import _hub_reachable as reachable

    return reachable()


def _load_pretrained(spec: TeacherSpec, loader, **kwargs):
    """`loader.from_pretrained` on the tiny folder or the HF id + revision, with a useful error."""
    if is_tiny_model_id(spec.model_id):
        return loader.from_pretrained(str(ensure_tiny_model(spec.model_id)), **kwargs)
    if not _is_cached(spec) and not _hub_reachable():
        # Fail at once: the Hub client would otherwise retry for a minute before giving up.
        raise ModelUnavailableError(missing_model_message(spec, OSError("not cached and the Hub is unreachable")))
    try:
        return loader.from_pretrained(spec.model_id, revision=spec.revision, **kwargs)
    except OSError as exc:
        raise ModelUnavailableError(missing_model_message(spec, exc)) from exc


def _ensure_transformers_importable() -> None:
    from panda_dagster.lib.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()


class TeacherRunner:
    """Base class; subclasses load their model in `__init__`."""

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        self.spec = spec
        self.device = resolve_device(device)
        self.revision = resolved_revision(spec)
        self.s3_client = s3_client

    model_id = property(attrgetter("spec.model_id"))

    @property
    def model_spec(self) -> ModelSpec:
        """The loaded weights in the project's model interface (lib/models/base.py)."""
        return ModelSpec(self.spec.model_id, self.revision, trained=not self.spec.is_tiny, family=self.spec.family)


    @classmethod
    def from_loaded(cls, spec: TeacherSpec, device: str, dtype, **components) -> "TeacherRunner":
        """A runner around an already-built model and processor/tokenizer (benchmarks build full-size
        random-weight models from configs and must time the very same `generate` code)."""
        runner = cls.__new__(cls)
        TeacherRunner.__init__(runner, spec, device)
        runner.dtype = dtype
        for name, value in components.items():
            setattr(runner, name, value)
        tokenizer = components.get("tokenizer") or getattr(components.get("processor"), "tokenizer", None)
        if tokenizer is not None:
            runner.special_ids = special_token_ids(tokenizer)
            if cls.PAD_LEFT:
                tokenizer.padding_side = "left"
            if "tokenizer" not in components:
                runner.tokenizer = tokenizer
        return runner

    # Decoder-only generation pads on the left; encoder-decoder captioners override this.
    PAD_LEFT = True
    # Threads running `prepare` at once (kinds whose inputs are slow to decode raise it; `prepare` must
    # then be thread-safe).
    prepare_workers = 1

    def prepare(self, request: TeacherRequest) -> Prepared:
        return Prepared(request)

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        raise NotImplementedError

    # ---- helpers for Hugging Face runners (kinds call them in __init__ / generate)
    @staticmethod
    def transformers():
        """The transformers module, importable also where torchvision's C++ ops are missing."""
        _ensure_transformers_importable()
        import transformers

        return transformers

    def load_pretrained(self, loader, **kwargs):
        """`loader.from_pretrained` for this teacher: the tiny folder, or the HF id + revision."""
        return _load_pretrained(self.spec, loader, **kwargs)

    def load_weights(self, loader):
        """The model in the teacher's dtype (float32 on CPU) on its device, in eval mode."""
        self.dtype = resolve_dtype(self.spec.dtype, self.device)
        return self.load_pretrained(loader, dtype=self.dtype).to(self.device).eval()

    def count_tokens(self, ids) -> int:
        """Generated tokens that are caption text (not special / image placeholder tokens)."""
        return _count_tokens(ids, self.special_ids)

    def end_pass(self) -> None:
        """Called after the teacher's last batch of a shard: release per-pass state (open videos)."""

    def close(self) -> None:
        """Free the model (the cache calls it when it drops the runner)."""

    def _generate_kwargs(self, spec: TeacherSpec | None = None) -> dict:
        spec = spec or self.spec
        kwargs = dict(max_new_tokens=spec.max_new_tokens, do_sample=False, num_beams=1)
        if spec.min_new_tokens:
            kwargs["min_new_tokens"] = spec.min_new_tokens
        kwargs.update(spec.generation)
        return kwargs


def special_token_ids(tokenizer) -> set[int]:
    """Ids that are not caption text: declared specials plus added special tokens (image placeholders)."""
    ids = set(tokenizer.all_special_ids)
    for token_id, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "special", False):
            ids.add(int(token_id))
    return ids


def _count_tokens(ids, special_ids: set[int]) -> int:
    return sum(1 for t in ids if int(t) not in special_ids)


def runner_cache_key(spec: TeacherSpec, device: str) -> tuple:
    # Settings that only change generation (prompt, batch size, token limits) share the loaded model.
    return ("teacher", spec.kind, spec.family, spec.model_id, spec.revision, spec.dtype, resolve_device(device))


def get_runner(spec: TeacherSpec, device: str = "auto", s3_client=None) -> TeacherRunner:
    """The process-wide runner for this model (loaded on first use), bound to `spec`'s settings."""
    from panda_dagster.lib.teachers.kinds import teacher_kind

    runner_class = teacher_kind(spec.kind).runner
    runner = cached_model(runner_cache_key(spec, device), lambda: runner_class(spec, device, s3_client))
    runner.spec = spec  # same weights, possibly different prompt / limits
    if s3_client is not None:
        runner.s3_client = s3_client
    return runner


def loaded_runners() -> list[TeacherRunner]:
    return [model for key, model in loaded_models().items() if isinstance(key, tuple) and key[:1] == ("teacher",)]


def clear_runner_cache() -> None:
    evict(lambda key: isinstance(key, tuple) and key[:1] == ("teacher",))
