"""What is recorded with every run so that it can be reproduced: versions, device, precision, seed."""

from __future__ import annotations

import platform

import numpy as np
import torch

from . import __version__


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; an explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device '{name}': CUDA is not available on this machine")
    return torch.device(name)


def run_metadata(device: torch.device, dtype: torch.dtype, seed: int) -> dict[str, str]:
    meta = {
        "version.sfli": __version__,
        "version.python": platform.python_version(),
        "version.torch": torch.__version__,
        "version.numpy": np.__version__,
        "device": str(device),
        "device.name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "precision": str(dtype).removeprefix("torch."),
        "seed": str(seed),
        "torch.threads": str(torch.get_num_threads()),
    }
    return meta
