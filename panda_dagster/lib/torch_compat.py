"""Make torchvision importable where only its CUDA wheel exists next to a CPU torch.

The CUDA torchvision build cannot load its C extension on a CPU-only torch, and its import then fails
while registering fake kernels for `torchvision::nms` / `torchvision::qnms`. Defining those two op
schemas first lets the pure-Python parts (which open_clip, timm and transformers' vision classes need)
import. Nothing is done on a healthy install (matching builds, or the ops already registered).
"""

from __future__ import annotations

import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keep the Library object alive: the schemas vanish when it is collected


def _torchvision_extension_loads() -> bool:
    """Load torchvision's C extension the way torchvision would; False where it cannot load."""
    import importlib.util
    from pathlib import Path

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # not installed: nothing to guard
    libs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))
    except (OSError, RuntimeError):
        return False
    return True


def ensure_torchvision_importable() -> None:
    global _library
    if "torchvision" in sys.modules or _library is not None:
        return
    import torch

    if _torchvision_extension_loads():
        return
    missing = []
    for name in _SCHEMAS:
        try:
            getattr(torch.ops.torchvision, name)
        except (AttributeError, RuntimeError):
            missing.append(name)
    if not missing:
        return
    _library = torch.library.Library("torchvision", "DEF")
    for name in missing:
        _library.define(_SCHEMAS[name])
