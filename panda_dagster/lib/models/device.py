"""Which device (and floating-point type) a model runs on: the project's one resolver.

`auto` means the first CUDA GPU when torch sees one, else the CPU. Half precision is used on CUDA only
(bf16 where the GPU supports it): on CPU it is slow or unsupported, so CPU models stay float32.
"""

from __future__ import annotations

import contextlib
import sys

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(spec: str = "auto") -> str:
    """`auto` -> `cuda` when available, else `cpu`; any other value (cpu, cuda, cuda:N, mps) as given."""
    spec = (spec or "auto").strip()
    if spec != "auto":
        return spec
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    """The torch dtype for `dtype` (one of DTYPES) on `device`: float32 on CPU; on CUDA `auto`/`bfloat16`
    give bf16 (fp16 on GPUs without bf16)."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    if not device.startswith("cuda"):
        return torch.float32
    if dtype in ("auto", "bfloat16"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"float32": torch.float32, "float16": torch.float16}[dtype]


def inference(device: str):
    """Context for a forward pass: `torch.no_grad()`, plus bf16/fp16 autocast on CUDA."""
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if device.startswith("cuda"):
        stack.enter_context(torch.autocast("cuda", dtype=resolve_dtype("auto", device)))
    return stack


@contextlib.contextmanager
def torch_threads_per_caller(n: int):
    """Each thread that starts using torch inside the block runs its ops on `n` threads (torch sets a
    new thread's intra-op count from the global one on first use), the calling thread too; restored
    after. For a pool of Python threads that already fills the cores: without it every pool thread
    brings a full team of OpenMP threads that spin against the other pool threads. Not for blocks that
    run alongside other torch work."""
    if "torch" not in sys.modules:  # nothing has used torch: nothing to set (and no import for it)
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
