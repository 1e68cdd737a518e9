"""How a run computes on its device: the autocast dtype ``precision: auto`` picks, and the
flags of ``train.deterministic``."""
from __future__ import annotations

import contextlib
import logging
import os

import torch

log = logging.getLogger("fusionlab.train")

# cuBLAS's fixed workspace, which torch's reproducibility notes ask for on CUDA >= 10.2
CUBLAS_WORKSPACE = ":4096:8"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``bf16`` or ``fp32``: ``auto`` is bf16 only on a GPU that computes it natively (Ampere and
    later); V100s and T4s emulate bf16, slower than fp32, so there ``auto`` is fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return "fp32"


def describe_precision(precision: str, device: torch.device) -> str:
    """What ``precision`` computes in on ``device``, and why, for the run's log."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return f"{chosen} (train.precision)"
    if device.type != "cuda":
        return f"fp32 (precision auto on {device.type})"
    name = torch.cuda.get_device_name(device)
    why = "computes bf16 natively" if chosen == "bf16" else "has no native bf16"
    return f"{chosen} autocast (precision auto: {name} {why})"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`resolve_precision` says bf16; nothing for fp32."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_deterministic(enabled: bool) -> None:
    """Set (or reset to torch's defaults) the flags torch's reproducibility notes list.

    Enabled: deterministic algorithms, warning (not failing) at an op that has none on the
    device, such as bilinear upsampling's backward on CUDA; cuDNN deterministic and not
    benchmarking; TF32 off for matmuls and convolutions; and cuBLAS's fixed workspace, set only
    when the environment has none (it counts only before CUDA's first matmul in the process).
    A sweep worker runs cells one after the other: each sets the flags to its own config.
    """
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's default too
    torch.backends.cudnn.allow_tf32 = not enabled  # torch's default: True
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
