"""Model runners: one loaded captioning model each, with batched `@torch.no_grad()` generation.

A runner splits the work in two: `prepare(request)` does the CPU part for one clip (decode frames, render
the chat template) and runs in a prefetch thread; `generate(prepared_batch)` runs the model on a batch.
Runners are cached per process (`get_runner`), so a model is loaded once however many shards or assets
use it. Real models load by Hugging Face id + revision; `tiny/<family>` ids load the offline twins that
`tiny.py` builds, through the very same `from_pretrained` calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from panda_dagster.lib.teachers.frames import load_keyframes, sample_video_frames
from panda_dagster.lib.teachers.prompts import text_llm_messages, video_llm_messages
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.tiny import BUILD_VERSION, ensure_tiny_model, is_tiny_model_id

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


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    """bf16 (or the registry's dtype) on CUDA; float32 on CPU, where half precision is slow or missing."""
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    if dtype in ("auto", "bfloat16"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"float32": torch.float32, "float16": torch.float16}[dtype]


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

    @property
    def model_id(self) -> str:
        return self.spec.model_id

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
            runner.special_ids = _special_ids(tokenizer)
            if cls is not ImageCaptionRunner:
                tokenizer.padding_side = "left"
            if cls is ImageCaptionRunner and "tokenizer" not in components:
                runner.tokenizer = tokenizer
        return runner

    def prepare(self, request: TeacherRequest) -> Prepared:
        return Prepared(request)

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        raise NotImplementedError

    def close(self) -> None:
        """Free the model (tests, benchmarks)."""

    def _generate_kwargs(self, spec: TeacherSpec | None = None) -> dict:
        spec = spec or self.spec
        kwargs = dict(max_new_tokens=spec.max_new_tokens, do_sample=False, num_beams=1)
        if spec.min_new_tokens:
            kwargs["min_new_tokens"] = spec.min_new_tokens
        kwargs.update(spec.generation)
        return kwargs


def _special_ids(tokenizer) -> set[int]:
    """Ids that are not caption text: declared specials plus added special tokens (image placeholders)."""
    ids = set(tokenizer.all_special_ids)
    for token_id, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "special", False):
            ids.add(int(token_id))
    return ids


def _count_tokens(ids, special_ids: set[int]) -> int:
    return sum(1 for t in ids if int(t) not in special_ids)


class ImageCaptionRunner(TeacherRunner):
    """BLIP / BLIP-2 / GIT through AutoProcessor + AutoModelForImageTextToText, on stored key frames."""

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        super().__init__(spec, device, s3_client)
        _ensure_transformers_importable()
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.dtype = resolve_dtype(spec.dtype, self.device)
        self.processor = _load_pretrained(spec, AutoProcessor)
        self.model = _load_pretrained(spec, AutoModelForImageTextToText, dtype=self.dtype).to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        self.special_ids = _special_ids(self.tokenizer)

    def prepare(self, request: TeacherRequest) -> Prepared:
        frames = load_keyframes(request.keyframe_uris, self.spec.num_frames, self.s3_client)
        # Resizing/normalising happens here, in the prefetch thread, not in the generation loop.
        # BLIP-2's processor ties image placeholders to the text, so it is processed with the batch.
        pixels = None
        if self.spec.family != "blip2":
            pixels = self.processor.image_processor(frames, return_tensors="pt")["pixel_values"]
        return Prepared(request, (frames, pixels))

    def _batch_inputs(self, batch: Sequence[Prepared], prompt: str):
        import torch

        if all(item.payload[1] is not None for item in batch):
            inputs: dict[str, Any] = {"pixel_values": torch.cat([item.payload[1] for item in batch])}
            if prompt:
                n_images = inputs["pixel_values"].shape[0]
                inputs.update(self.processor(text=[prompt] * n_images, padding=True, return_tensors="pt"))
            from transformers import BatchFeature

            return BatchFeature(inputs)
        images = [frame for item in batch for frame in item.payload[0]]
        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if prompt:
            kwargs["text"] = [prompt] * len(images)
            kwargs["padding"] = True
        return self.processor(**kwargs)

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        import torch

        owners = [i for i, item in enumerate(batch) for _ in item.payload[0]]
        prompt = batch[0].request.prompt  # image teachers have one fixed prompt
        inputs = self._batch_inputs(batch, prompt).to(self.device, dtype=self.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, **self._generate_kwargs())
        prompt_tokens = _count_tokens(inputs["input_ids"][0], self.special_ids) if "input_ids" in inputs else 0
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        results = [Generation([], 0) for _ in batch]
        for owner, text, ids in zip(owners, texts, out):
            results[owner].parts.append(text)
            results[owner].n_tokens += max(0, _count_tokens(ids, self.special_ids) - prompt_tokens)
        return results

    def close(self) -> None:
        self.model = None


class VideoLLMRunner(TeacherRunner):
    """SmolVLM2-style video-LLM: frames sampled inside the clip, each with its time, plus the metadata
    prompt, through the processor's chat template."""

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        super().__init__(spec, device, s3_client)
        _ensure_transformers_importable()
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.dtype = resolve_dtype(spec.dtype, self.device)
        self.processor = _load_pretrained(spec, AutoProcessor)
        self.processor.tokenizer.padding_side = "left"  # batched decoder-only generation
        self.model = _load_pretrained(spec, AutoModelForImageTextToText, dtype=self.dtype).to(self.device).eval()
        self.special_ids = _special_ids(self.processor.tokenizer)

    def build_chat(self, request: TeacherRequest) -> str:
        messages = video_llm_messages(request.prompt, list(request.frame_times_s), request.clip_start_s)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def _processor_kwargs(self) -> dict:
        # Frames are shown whole: SmolVLM's tiling of each image into sub-crops is meant for documents.
        return {"do_image_splitting": False} if self.spec.family == "smolvlm" else {}

    def prepare(self, request: TeacherRequest) -> Prepared:
        if not request.video_path:
            raise ValueError("clip has no video file to sample frames from")
        frames = sample_video_frames(request.video_path, list(request.frame_times_s))
        chat = self.build_chat(request)
        # Tokenising and image preprocessing run here, in the prefetch thread; generate() only collates.
        encoded = self.processor(text=[chat], images=[frames], return_tensors="pt", **self._processor_kwargs())
        return Prepared(request, (chat, frames, encoded))

    def _collate(self, batch: Sequence[Prepared]):
        """Left-pad the per-clip token ids and stack the image tensors; None when the clips' image tensors
        differ in shape (then the processor handles the whole batch)."""
        import torch
        from transformers import BatchFeature

        encoded = [item.payload[2] for item in batch]
        pad_id = self.processor.tokenizer.pad_token_id
        longest = max(e["input_ids"].shape[1] for e in encoded)
        ids, masks = [], []
        for e in encoded:
            missing = longest - e["input_ids"].shape[1]
            ids.append(torch.nn.functional.pad(e["input_ids"], (missing, 0), value=pad_id))
            masks.append(torch.nn.functional.pad(e["attention_mask"], (missing, 0), value=0))
        inputs = {"input_ids": torch.cat(ids), "attention_mask": torch.cat(masks)}
        for key in encoded[0].keys():
            if key in inputs:
                continue
            values = [e[key] for e in encoded]
            if not all(isinstance(v, torch.Tensor) and v.shape[1:] == values[0].shape[1:] for v in values):
                return None
            inputs[key] = torch.cat(values)
        return BatchFeature(inputs)

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        import torch

        inputs = self._collate(batch)
        if inputs is None:
            inputs = self.processor(text=[item.payload[0] for item in batch], images=[item.payload[1] for item in batch],
                                    padding=True, return_tensors="pt", **self._processor_kwargs())
        inputs = inputs.to(self.device, dtype=self.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, **self._generate_kwargs())
        new = out[:, inputs["input_ids"].shape[1]:]
        decoded = self.processor.batch_decode(new, skip_special_tokens=True)
        return [Generation([text], _count_tokens(ids, self.special_ids)) for text, ids in zip(decoded, new)]

    def close(self) -> None:
        self.model = None


class TextLLMRunner(TeacherRunner):
    """Instruction LLM that turns title + description + the clip's speech into one caption."""

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        super().__init__(spec, device, s3_client)
        _ensure_transformers_importable()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.dtype = resolve_dtype(spec.dtype, self.device)
        self.tokenizer = _load_pretrained(spec, AutoTokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = _load_pretrained(spec, AutoModelForCausalLM, dtype=self.dtype).to(self.device).eval()
        self.special_ids = _special_ids(self.tokenizer)

    def build_chat(self, request: TeacherRequest) -> str:
        messages = text_llm_messages(request.prompt, self.spec.system_prompt)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, request: TeacherRequest) -> Prepared:
        return Prepared(request, self.tokenizer(self.build_chat(request), add_special_tokens=False)["input_ids"])

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        import torch

        enc = self.tokenizer.pad({"input_ids": [item.payload for item in batch]}, padding=True,
                                 return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**enc, **self._generate_kwargs(), pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [Generation([text], _count_tokens(ids, self.special_ids)) for text, ids in zip(decoded, new)]

    def close(self) -> None:
        self.model = None


class NarrationRunner(TeacherRunner):
    """HowTo100M's caption: what is said during the clip (subtitles or ASR). No model."""

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        return [Generation([item.request.prompt], len(item.request.prompt.split())) for item in batch]


RUNNER_CLASSES: dict[str, type[TeacherRunner]] = {
    "image": ImageCaptionRunner,
    "video_llm": VideoLLMRunner,
    "text_llm": TextLLMRunner,
    "narration": NarrationRunner,
}

_RUNNERS: dict[tuple, TeacherRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def runner_cache_key(spec: TeacherSpec, device: str) -> tuple:
    # Settings that only change generation (prompt, batch size, token limits) share the loaded model.
    return (spec.kind, spec.family, spec.model_id, spec.revision, spec.dtype, resolve_device(device))


def get_runner(spec: TeacherSpec, device: str = "auto", s3_client=None) -> TeacherRunner:
    """The process-wide runner for this model (loaded on first use), bound to `spec`'s settings."""
    key = runner_cache_key(spec, device)
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            runner = RUNNER_CLASSES[spec.kind](spec, device, s3_client)
            _RUNNERS[key] = runner
            log.info("loaded teacher model %s@%s on %s", spec.model_id, runner.revision, runner.device)
    runner.spec = spec  # same weights, possibly different prompt / limits
    if s3_client is not None:
        runner.s3_client = s3_client
    return runner


def loaded_runners() -> list[TeacherRunner]:
    return list(_RUNNERS.values())


def clear_runner_cache() -> None:
    with _RUNNERS_LOCK:
        for runner in _RUNNERS.values():
            runner.close()
        _RUNNERS.clear()
