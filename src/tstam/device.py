"""Device names from users (``--device``, ``run.device``): checked once, with a clear message."""
from __future__ import annotations

import re

import torch

from tstam.errors import InputError

__all__ = ["check_device_name", "resolve_device"]

_VALID = "auto, cpu, cuda or cuda:N"


def check_device_name(name: str, *, option: str = "--device") -> str:
    """The name, lower-cased, if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether that device
    exists here is :func:`resolve_device`'s business).

    Raises:
        InputError: naming ``option``, the value and the valid names.
    """
    text = str(name).strip().lower()
    if text not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", text):
        raise InputError(f"{option} {name!r} is not valid; expected {_VALID}")
    return text


def resolve_device(name: str | torch.device = "auto", *, option: str = "--device") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a device.

    ``option`` is how the user gave the name (``--device``, ``run.device``), for the messages.

    Raises:
        InputError: naming the value and what is valid, when it is not a device name, when CUDA is
            asked for on a machine (or torch build) without it, or when ``cuda:N`` does not exist.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = check_device_name(str(name), option=option)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    assert m is not None  # check_device_name
    if not torch.cuda.is_available():
        build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        use = f"{option} cpu" if option.startswith("-") else f"{option}=cpu"
        raise InputError(f"{option} {name!r}: {build}; use {use} (or auto)")
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise InputError(f"{option} {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible (cuda:0.."
                         f"cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)
