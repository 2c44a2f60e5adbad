"""The project's one open_clip wrapper: image and text embeddings in a shared, L2-normalised space.

Used for shot-stitching embeddings, split quality, caption selection and HowTo100M features. Real
profiles load an open_clip architecture with a pretrained tag; the `tiny` profile builds a random-weight
ViT CLIP of the same family once, saves its config and checkpoint under the model cache, and loads it
back through the same `open_clip.create_model_and_transforms` path (checkpoint given as `pretrained`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from panda_dagster.lib.ids import file_sha256
from panda_dagster.lib.models.base import (
    CPU_IMAGE_BATCH,
    CPU_TEXT_BATCH,
    Model,
    ModelSpec,
    cpu_batch_size,
    embed_in_batches,
)
from panda_dagster.lib.models.cache import cached_model
from panda_dagster.lib.models.device import resolve_device
from panda_dagster.lib.models.profiles import PROFILES, TINY_LABEL, resolve_models_profile
from panda_dagster.lib.settings import model_cache_dir

if TYPE_CHECKING:
    import PIL.Image
    import torch


@dataclass(frozen=True)
class OpenClipSpec:
    model_name: str  # open_clip architecture name (a config in open_clip's registry)
    pretrained: str  # open_clip pretrained tag, or a local checkpoint file
    hf_repo: str | None = None  # Hugging Face repo the tag's weights come from
    revision: str | None = None  # pin a repo commit; None = the file open_clip's tag names


# The tiny twin: same ViT image tower + causal text transformer as ViT-B/L CLIPs, with tiny widths.
TINY_MODEL_NAME = "PandaTiny-ViT-16-64"
TINY_BUILD_VERSION = 1  # bump when TINY_MODEL_CONFIG or the init changes: builds a fresh directory
TINY_SEED = 20240601
TINY_CHECKPOINT = "open_clip_pytorch_model.bin"
TINY_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    # vocab_size must cover open_clip's shipped BPE vocabulary (49408 tokens), context as in CLIP.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

PROFILE_SPECS: dict[str, OpenClipSpec] = {
    # ViT-L/14 trained on DataComp-1B (79.2 % ImageNet zero-shot); ~430M params, fits a 24 GB GPU.
    "default": OpenClipSpec(
        "ViT-L-14", "datacomp_xl_s13b_b90k", hf_repo="laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K"
    ),
    # ViT-H/14 trained on DFN-5B (83.4 % ImageNet zero-shot); quick-gelu variant matches its training.
    "large": OpenClipSpec("ViT-H-14-quickgelu", "dfn5b", hf_repo="apple/DFN5B-CLIP-ViT-H-14"),
    "tiny": OpenClipSpec(TINY_MODEL_NAME, "random-init-seed-%d" % TINY_SEED),
}
# No CLIP-like image-text model installs with trained weights from PyPI: `offline` uses the tiny twin too.
PROFILE_SPECS["offline"] = PROFILE_SPECS["tiny"]
RANDOM_TWIN_PROFILES = ("tiny", "offline")


def _profile_spec(profile: str) -> OpenClipSpec:
    if profile not in PROFILE_SPECS:
        raise ValueError(f"unknown models profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return PROFILE_SPECS[profile]


def required_model_ids(profile: str) -> list[str]:
    """Hugging Face repos the profile's open_clip model is downloaded from ([] for tiny)."""
    spec = _profile_spec(profile)
    return [spec.hf_repo] if spec.hf_repo else []


def _import_open_clip():
    from panda_dagster.lib.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip

    return open_clip


def tiny_model_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "open_clip" / f"{TINY_MODEL_NAME}-v{TINY_BUILD_VERSION}"


def _tiny_complete(directory: Path) -> bool:
    return (directory / f"{TINY_MODEL_NAME}.json").is_file() and (directory / TINY_CHECKPOINT).is_file()


def _register_tiny_config(directory: Path) -> None:
    open_clip = _import_open_clip()
    if TINY_MODEL_NAME not in open_clip.list_models():
        # The directory holds exactly one architecture JSON, so registering it adds only our config.
        open_clip.add_model_config(directory / f"{TINY_MODEL_NAME}.json")


def ensure_tiny_open_clip(cache_dir: Path) -> Path:
    """Build the tiny random-weight CLIP once (fixed seed) and return its directory.

    The directory holds the architecture config (`<TINY_MODEL_NAME>.json`) and a state-dict checkpoint.
    Concurrent callers each build into a private temporary directory and rename it into place; the
    first rename wins and the others discard theirs, so readers never see a half-written model.
    """
    target = tiny_model_dir(cache_dir)
    if _tiny_complete(target):
        return target
    import torch

    open_clip = _import_open_clip()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(staging, 0o755)
    try:
        (staging / f"{TINY_MODEL_NAME}.json").write_text(json.dumps(TINY_MODEL_CONFIG, indent=2))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            model = open_clip.CLIP(**json.loads(json.dumps(TINY_MODEL_CONFIG)))
        torch.save(model.state_dict(), staging / TINY_CHECKPOINT)
        try:
            os.rename(staging, target)
        except OSError:
            if not _tiny_complete(target):  # neither a finished build by someone else nor ours
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def model_spec(arch: OpenClipSpec, profile: str, variant: str | None = None, revision: str | None = None) -> ModelSpec:
    """The `ModelSpec` of a profile's open_clip model. Other weights of the same architecture (a
    fine-tune) are another model: `variant` is appended to the model id, `revision` names the weights."""
    if profile in RANDOM_TWIN_PROFILES:
        model_id = f"tiny/open_clip-{arch.model_name}"
        default_revision = f"{arch.pretrained}-v{TINY_BUILD_VERSION}"
    else:
        model_id = arch.hf_repo or f"open_clip/{arch.model_name}"
        default_revision = arch.revision or arch.pretrained
    if variant:
        model_id = f"{model_id}+{variant}"
    return ModelSpec(model_id, revision or default_revision, trained=profile not in RANDOM_TWIN_PROFILES, family="open_clip")


class OpenClipModel(Model):
    """A loaded open_clip model: batched, no-grad embedding of images and texts (an `ImageEmbedder` and
    a `TextEmbedder`). `arch` is the open_clip architecture + pretrained tag, `spec` the model id/revision."""

    def __init__(self, arch: OpenClipSpec, profile: str, device: str, model, preprocess, tokenizer,
                 spec: ModelSpec | None = None):
        super().__init__(spec or model_spec(arch, profile), device)
        self.arch = arch
        self.profile = profile
        self.model = model.eval()
        self.preprocess = preprocess  # PIL image -> normalised CHW tensor (open_clip's eval transform)
        self.tokenizer = tokenizer  # list[str] -> (N, context_length) token ids, truncating long texts
        self.embed_dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None \
            else int(model.visual.output_dim)

    @property
    def label(self) -> str:
        return TINY_LABEL if not self.trained else f"open_clip {self.arch.model_name} {self.arch.pretrained}"

    @property
    def name(self) -> str:
        """open_clip architecture and tag, e.g. `open_clip ViT-L-14 datacomp_xl_s13b_b90k`."""
        return f"open_clip {self.arch.model_name} {self.arch.pretrained}"

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp().float().cpu())

    def image_tensor(self, images: Sequence[np.ndarray | PIL.Image.Image]) -> torch.Tensor:
        """Preprocess images (HxWx3 uint8 RGB arrays or PIL images) into a (N, 3, S, S) batch on CPU."""
        import torch
        from PIL import Image

        tensors = []
        for index, image in enumerate(images):
            if isinstance(image, np.ndarray):
                if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                    raise ValueError(
                        f"image {index}: expected an HxWx3 uint8 RGB array, got shape {image.shape} {image.dtype}"
                    )
                image = Image.fromarray(image, mode="RGB")
            elif not isinstance(image, Image.Image):
                raise TypeError(f"image {index}: expected numpy array or PIL image, got {type(image).__name__}")
            tensors.append(self.preprocess(image.convert("RGB")))
        return torch.stack(tensors)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {index}: expected str, got {type(text).__name__}")
        return self.tokenizer(texts)

    def embed_images(self, images: Sequence[np.ndarray | PIL.Image.Image], batch_size: int = 64) -> np.ndarray:
        batch_size = cpu_batch_size(batch_size, self.device, CPU_IMAGE_BATCH)
        return embed_in_batches(images, batch_size, lambda batch: self.model.encode_image(
            self.image_tensor(batch).to(self.device)), self.embed_dim, self.device)

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        batch_size = cpu_batch_size(batch_size, self.device, CPU_TEXT_BATCH)
        return embed_in_batches(texts, batch_size, lambda batch: self.model.encode_text(
            self.tokenize(batch).to(self.device)), self.embed_dim, self.device)

    def close(self) -> None:
        self.model = None


def _create(spec: OpenClipSpec, profile: str, device: str, checkpoint: Path | None = None,
            model: ModelSpec | None = None) -> OpenClipModel:
    """Load through `open_clip.create_model_and_transforms`; `checkpoint` overrides the spec's weights."""
    open_clip = _import_open_clip()
    if profile in RANDOM_TWIN_PROFILES:
        _register_tiny_config(ensure_tiny_open_clip(model_cache_dir()))
        pretrained = str(checkpoint or tiny_model_dir(model_cache_dir()) / TINY_CHECKPOINT)
        preprocess_kwargs: dict[str, Any] = {}
    else:
        tag_cfg = open_clip.get_pretrained_cfg(spec.model_name, spec.pretrained) or {}
        if checkpoint is None and spec.revision:
            from open_clip.pretrained import download_pretrained_from_hf

            checkpoint = Path(download_pretrained_from_hf(spec.hf_repo, revision=spec.revision))
        if checkpoint is None:
            pretrained, preprocess_kwargs = spec.pretrained, {}
        else:
            # A file path carries no preprocessing config: keep the base tag's normalisation.
            pretrained = str(checkpoint)
            preprocess_kwargs = {
                key: tag_cfg[src]
                for key, src in (("image_mean", "mean"), ("image_std", "std"),
                                 ("image_interpolation", "interpolation"), ("image_resize_mode", "resize_mode"))
                if tag_cfg.get(src) is not None
            }
    network, _, preprocess = open_clip.create_model_and_transforms(
        spec.model_name, pretrained=pretrained, device=device, **preprocess_kwargs
    )
    tokenizer = open_clip.get_tokenizer(spec.model_name)
    return OpenClipModel(spec, profile, device, network, preprocess, tokenizer, spec=model)


def load_open_clip(profile: str | None = None, device: str = "auto") -> OpenClipModel:
    """The profile's model on `device`, loaded once per process (profile None: PANDA_MODELS)."""
    profile = profile or resolve_models_profile().name
    spec = _profile_spec(profile)
    device = resolve_device(device)
    return cached_model(("open_clip", profile, spec, device), lambda: _create(spec, profile, device))


def load_open_clip_checkpoint(profile: str, checkpoint: Path, device: str = "auto", variant: str = "checkpoint",
                              revision: str | None = None) -> OpenClipModel:
    """The profile's architecture with weights from `checkpoint` (a state dict, e.g. a fine-tuned
    scorer). Its model id is the base id + `+variant`, its revision `revision` or the checkpoint's content
    hash, so embeddings stored for the base model are never taken for it. Not cached here."""
    checkpoint = Path(checkpoint)
    arch = _profile_spec(profile)
    spec = model_spec(arch, profile, variant, revision or file_sha256(checkpoint)[:16])
    return _create(arch, profile, resolve_device(device), checkpoint=checkpoint, model=spec)
