"""The small interface every model of the project follows.

A model is named by a `ModelSpec` (what is loaded: model id + revision, and whether the weights are
trained or a random-weight twin), is loaded once per process through `lib.models.cache`, runs on the
device `lib.models.device.resolve_device` chose, and is called on batches under `torch.no_grad()`.

Capabilities are small protocols, so one stage can take any model that has the capability:
- `ImageEmbedder`: `embed_images(images, batch_size) -> (N, D) float32, unit rows` (open_clip; OFFLINE
  adds a packaged EfficientNet-Lite0) - frame embeddings for stitching, key frames, caption scoring;
- `TextEmbedder`: `embed_texts(texts, batch_size) -> (N, D) float32, unit rows` (open_clip, MiniLM).
A new image model becomes selectable by name with one line in `IMAGE_EMBEDDERS` (lib/models/embedders.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from panda_dagster.lib.models.profiles import TINY_LABEL

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    """What a model is: enough to reload the same weights and to tell whether stored outputs match."""

    model_id: str  # Hugging Face id, open_clip id, or `tiny/<name>` for an offline random-weight twin
    revision: str  # commit / tag / build version of the weights
    trained: bool = True  # False: random weights (tiny twins), outputs are not meaningful
    family: str = ""  # which loader builds it (open_clip, blip, whisper, efficientnet, ...)

    @property
    def label(self) -> str:
        """What reports print next to the model's outputs (TINY_LABEL for random weights)."""
        return f"{self.model_id}@{self.revision}" if self.trained else TINY_LABEL

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the weights: stored outputs with an equal key can be reused."""
        return self.model_id, self.revision


class Model:
    """Base of a loaded model: its spec and device; subclasses load in `load` and run in batches."""

    spec: ModelSpec
    device: str

    def __init__(self, spec: ModelSpec, device: str):
        self.spec = spec
        self.device = device

    # what the spec says, read through the model
    model_id = property(attrgetter("spec.model_id"))
    revision = property(attrgetter("spec.revision"))
    trained = property(attrgetter("spec.trained"))
    label = property(attrgetter("spec.label"))

    def close(self) -> None:
        """Free the weights (the cache calls this when it drops the model)."""


@runtime_checkable
class ImageEmbedder(Protocol):
    """Unit-norm embeddings of RGB images (HxWx3 uint8 arrays or PIL images), batched, no grad."""

    spec: ModelSpec
    device: str
    embed_dim: int

    @property
    def label(self) -> str: ...

    def embed_images(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray: ...


@runtime_checkable
class TextEmbedder(Protocol):
    spec: ModelSpec
    device: str
    embed_dim: int

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray: ...


def batches(items: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    for start in range(0, len(items), batch_size):
        yield items[start: start + batch_size]


# Batches on CPU: a batch's largest activation must stay under glibc's 32 MB mmap threshold to be reused
# from the heap (`processes.tune_malloc_for_tensors`). Images: EfficientNet-Lite0's first feature map is
# 1.6 MB per image, ViT-L-14's MLP 4 MB; measured, batches of 4 and 8 equally fast, 64 more than 2x
# slower. Texts (77-128 tokens): an MLP activation of under 1 MB each. CUDA keeps the caller's size.
CPU_IMAGE_BATCH = 4
CPU_TEXT_BATCH = 32


def cpu_batch_size(batch_size: int, device: str, cpu_cap: int) -> int:
    return batch_size if str(device).startswith("cuda") else min(batch_size, cpu_cap)


def embed_in_batches(items: Sequence[T], batch_size: int, forward: Callable[[Sequence[T]], Any], dim: int,
                     device: str) -> np.ndarray:
    """`forward(batch) -> torch.Tensor (B, dim)` over `items` under no_grad (+ autocast on CUDA),
    L2-normalised rows as one (N, dim) float32 array."""
    import torch

    from panda_dagster.lib.models.device import inference

    out = [np.zeros((0, dim), dtype=np.float32)]
    with inference(device):
        for batch in batches(items, batch_size):
            features = forward(batch).float()
            out.append(torch.nn.functional.normalize(features, dim=-1).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)
