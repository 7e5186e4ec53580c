"""Where a run computes: the device, the precision and the memory format a TrainConfig asks for.

    hw = choose_hardware(config, dist)   # Hardware(device, precision, amp_dtype, channels_last)

CUDA is only asked anything after torch.cuda.is_available() said yes, so a CPU machine never
initialises it (nanoGPT #293 crashed CPU machines by asking for bf16 support unconditionally).
"""
from dataclasses import dataclass

import torch

from .errors import SetupError
from .models import check_input_size

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> cuda:<local_rank> when CUDA is available, else cpu. Asking for cuda without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SetupError("device='cuda' but torch.cuda.is_available() is False; use device='auto' or 'cpu'")
        return torch.device("cuda", local_rank)
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SetupError("device='mps' but this torch build or machine has no MPS; use device='auto' or 'cpu'")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto" -> "bf16" on a CUDA GPU that supports it, else "fp32" (CPU autocast is rarely faster)."""
    if name != "auto":
        return name
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


@dataclass
class Hardware:
    device: torch.device
    precision: str             # "fp32" / "bf16" / "fp16"
    amp_dtype: torch.dtype | None
    channels_last: bool


def choose_hardware(config, dist) -> Hardware:
    """Device, precision and memory format of a TrainConfig on this process (dist: a DistInfo); the input
    sizes are checked before anything is built."""
    device = resolve_device(config.device, dist.local_rank)
    precision = resolve_precision(config.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels once
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls/convs on tensor cores (Ampere+)
        torch.backends.cudnn.allow_tf32 = True
    for name in ("image_size", "crop_size"):
        size = getattr(config, name)
        if size is not None:
            try:
                check_input_size(*size)  # fail now with the nearest valid size, not after building everything
            except ValueError as error:
                raise SetupError(f"{name}: {error}") from None
    # Channels-last (NHWC) suits tensor cores. On a CPU it is opt-in: it is not bit-identical to NCHW, so
    # switching the default would change every committed CPU run (benchmarks/RESULTS.md measures its speed).
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    return Hardware(device, precision, AMP_DTYPES[precision], channels_last)
