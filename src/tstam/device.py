"""Device names from users (``--device``, ``run.device``): checked once, with a clear message."""
from __future__ import annotations

import re

import torch

__all__ = ["resolve_device"]

_VALID = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a device.

    Raises:
        ValueError: naming the value and what is valid, when it is not a device name, when CUDA is
            asked for on a machine (or torch build) without it, or when ``cuda:N`` does not exist.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not m:
        raise ValueError(f"device {name!r} is not valid; expected {_VALID}")
    if not torch.cuda.is_available():
        build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"device {name!r}: {build}; use --device cpu (or auto)")
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible (cuda:0.."
                         f"cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)
