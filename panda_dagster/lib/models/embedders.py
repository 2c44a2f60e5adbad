"""Image embedders by name: what stitching, key-frame embeddings and split quality may use.

`open_clip` is the profile's CLIP (also the caption scorer's image tower, so key-frame embeddings
computed at `clips` are reused by `selected_captions`). Another image model becomes a choice with one
line here: a function `(profile, device) -> ImageEmbedder` (see lib/models/base.py), loaded through
`lib.models.cache.cached_model` so it loads once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from panda_dagster.lib.models.base import ImageEmbedder


def _open_clip(profile: str | None, device: str) -> ImageEmbedder:
    from panda_dagster.lib.models.openclip import load_open_clip

    return load_open_clip(profile, device)


def _efficientnet_lite0(profile: str | None, device: str) -> ImageEmbedder:
    from panda_dagster.lib.models.efficientnet import load_efficientnet

    return load_efficientnet(device)  # packaged trained weights, the same in every profile


IMAGE_EMBEDDERS: dict[str, Callable[[str | None, str], ImageEmbedder]] = {
    "open_clip": _open_clip,
    "efficientnet_lite0": _efficientnet_lite0,
}


@dataclass(frozen=True)
class StitchDistances:
    """Stitching thresholds that belong to an embedder (L2 between its unit-norm embeddings)."""

    transition_dist: float
    stitch_dist: float
    still_dist: float
    redundant_dist: float
    source: str  # where the values come from
    provisional: bool = False  # not measured on this embedder's trained weights yet

    def values(self) -> dict[str, float]:
        return {"transition_dist": self.transition_dist, "stitch_dist": self.stitch_dist,
                "still_dist": self.still_dist, "redundant_dist": self.redundant_dist}


STITCH_DISTANCES: dict[str, StitchDistances] = {
    # Panda-70M's ImageBind values: provisional for open_clip until `panda calibrate-stitching` has been
    # run with trained open_clip weights.
    "open_clip": StitchDistances(1.0, 0.6, 0.15, 0.3, "Panda-70M (ImageBind) collection values", provisional=True),
    # `panda calibrate-stitching` on the 12 single-shot videos of ../shared/videos (centred features):
    # link purity 1.000 / coverage 0.996, piece purity 0.990 / coverage 0.981; compositions with cuts:
    # clip purity 1.0, coverage 11/11 stretches; with dissolves/fades: purity 1.0, coverage 8/11.
    "efficientnet_lite0": StitchDistances(1.319, 1.155, 0.076, 0.669, "panda calibrate-stitching on ../shared/videos"),
}

# The frame embedder a profile stitches with when the resource says `auto`: the offline profile has no
# trained open_clip, but a trained EfficientNet-Lite0.
PROFILE_IMAGE_EMBEDDER = {"offline": "efficientnet_lite0"}


def default_image_embedder(profile: str | None) -> str:
    return PROFILE_IMAGE_EMBEDDER.get(profile or "", "open_clip")


def stitch_distances(name: str) -> StitchDistances:
    return STITCH_DISTANCES.get(name, STITCH_DISTANCES["open_clip"])


def load_image_embedder(name: str = "open_clip", profile: str | None = None, device: str = "auto") -> ImageEmbedder:
    """The image embedder `name` for the models profile (None: PANDA_MODELS) on `device`."""
    if name == "auto":
        from panda_dagster.lib.models.profiles import resolve_models_profile

        name = default_image_embedder(profile or resolve_models_profile().name)
    if name not in IMAGE_EMBEDDERS:
        raise ValueError(f"unknown image embedder {name!r}; choose from {sorted(IMAGE_EMBEDDERS)}")
    return IMAGE_EMBEDDERS[name](profile, device)
