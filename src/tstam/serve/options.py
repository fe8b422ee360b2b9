"""What one request of ``tstam serve`` asks for: its multipart fields besides the video, checked,
and the client's file name made safe to show.

No web-framework import here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tstam.errors import InputError
from tstam.inference.recognizer import CENTRE_CROP
from tstam.models import check_weights

__all__ = ["Options", "parse_options", "display_name", "upload_suffix"]

_FIELDS = ("file", "crops", "weights", "top_k", "attention", "pictures")  # the multipart fields a request may send
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass
class Options:
    """What one request asks for (multipart fields besides ``file``)."""

    crops: int = 1                                  # 1, 3 or 10 crops per snippet
    weights: list[float] | None = None           # fusion (RGB, flow); None: the server's
    top_k: int = 5                                  # classes in "top"
    attention: bool = True                          # attention arrays in the JSON
    pictures: bool = False                          # draw the attention PNG and GIF (the page asks for them)


def parse_options(form: Mapping[str, Any], *, crops: int, top_k: int, pictures: bool) -> Options:
    """Options from a request's fields (strings); the keywords are the defaults.

    Raises:
        InputError: an unknown field or a bad value, naming it and what would be valid.
    """
    unknown = sorted(set(form) - set(_FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; expected {list(_FIELDS)}")

    def text(name: str) -> str | None:
        v = form.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str):
            raise InputError(f"field {name!r} must be a value, not a file")
        return v.strip()

    def integer(name: str, default: int) -> int:
        v = text(name)
        try:
            return default if v is None else int(v)
        except ValueError:
            raise InputError(f"{name}={v!r} is not an integer") from None

    def flag(name: str, default: bool) -> bool:
        v = text(name)
        if v is None:
            return default
        if v.lower() not in _TRUE + _FALSE:
            raise InputError(f"{name}={v!r} is not valid; expected one of {list(_TRUE + _FALSE)}")
        return v.lower() in _TRUE

    opts = Options(crops=integer("crops", crops), top_k=integer("top_k", top_k),
                   attention=flag("attention", True), pictures=flag("pictures", pictures))
    if opts.crops not in CENTRE_CROP:
        raise InputError(f"crops={opts.crops} is not valid; expected one of {sorted(CENTRE_CROP)}")
    if opts.top_k < 1:
        raise InputError(f"top_k={opts.top_k} is not valid; expected >= 1")
    w = text("weights")
    if w is not None:
        parts = [p for p in re.split(r"[,\s]+", w) if p]
        try:
            opts.weights = check_weights([float(p) for p in parts], 2)
        except ValueError:
            raise InputError(f"weights={w!r} is not valid; expected RGB,FLOW: two finite numbers >= 0, "
                             "not both 0, e.g. 1,3") from None
    return opts


def display_name(filename: str | None) -> str:
    """The client's file name for display only: its last path component, printable, <= 100 chars."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:100]
    return name if name not in ("", ".", "..") else "upload"


def upload_suffix(name: str) -> str:
    """The extension (lower case) an upload is saved with, so that the decoder can check it; only
    ``.`` and 1-8 letters or digits, else none (the decoder then says which extensions it reads)."""
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
