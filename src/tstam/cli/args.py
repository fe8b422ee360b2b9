"""Argument types shared by every subcommand: numbers are checked when the command line is parsed.

Each helper is an ``argparse`` ``type=``: it returns the converted value or raises
``argparse.ArgumentTypeError`` with a message naming the value and what would be valid, which
argparse prints after the option's name with the usage line (exit status 2). Non-finite floats
(``nan``, ``inf``) are refused by every float type here.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from tstam.errors import InputError

T = TypeVar("T")

__all__ = ["positive_int", "share", "nonnegative_int", "int_range", "positive_float", "nonnegative_float", "int_list",
           "argument_type", "add_decode_args", "decode_limits"]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected a finite number")
    return value


def _checked(convert: Callable[[str], T], ok: Callable[[T], bool], expected: str, name: str) -> Callable[[str], T]:
    """An argparse type: ``convert`` the text, then refuse values for which ``ok`` is false."""
    def parse(text: str) -> T:
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected {expected}")
        return value

    parse.__name__ = name  # what argparse names in its own messages
    return parse


positive_int = _checked(_int, lambda v: v >= 1, "an integer >= 1", "positive_int")
nonnegative_int = _checked(_int, lambda v: v >= 0, "an integer >= 0", "nonnegative_int")
positive_float = _checked(_float, lambda v: v > 0, "a finite number > 0", "positive_float")
nonnegative_float = _checked(_float, lambda v: v >= 0, "a finite number >= 0", "nonnegative_float")
share = _checked(_float, lambda v: 0 <= v < 1, "a share from 0 to below 1, e.g. 0.2", "share")


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """An integer in ``[lo, hi]``."""
    return _checked(_int, lambda v: lo <= v <= hi, f"an integer from {lo} to {hi}", f"int_{lo}_{hi}")


def int_list(text: str) -> list[int]:
    """Comma-separated integers >= 0, e.g. ``0,1,2`` (seeds)."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items or not all(s.isdigit() for s in items):
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected integers >= 0 separated by commas, "
                                         "e.g. 0,1,2")
    return [int(s) for s in items]


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A library parser (``tstam.extract.parse_size``, ...) as an argparse type: the message of its
    ``InputError`` is shown as it is (argparse would print only "invalid parse_size value")."""
    def wrapped(text: str) -> T:
        try:
            return parse(text)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


def add_decode_args(p: argparse.ArgumentParser) -> None:
    """The decoding budget per video (``tstam.video.DecodeLimits``), shared by every command that decodes."""
    g = p.add_argument_group("decoding budget per video (a file over it is refused; docs/bad_inputs.md)")
    g.add_argument("--decode-max-frames", type=positive_int, default=None, metavar="N",
                   help="frames decoded per video (default 108000: an hour at 30 fps)")
    g.add_argument("--decode-max-pixels", type=positive_float, default=None, metavar="P",
                   help="pixels decoded per video, frames x width x height (default 8.3e9: that hour at 320x240)")
    g.add_argument("--decode-max-frame-pixels", type=positive_int, default=None, metavar="P",
                   help="width x height of one frame (default 16777216 = 4096x4096)")


def decode_limits(args: argparse.Namespace):  # -> tstam.video.DecodeLimits (imported late: it loads PyAV)
    """The ``DecodeLimits`` of the options of :func:`add_decode_args` (the defaults where not given)."""
    from tstam.video import DecodeLimits

    given = {k: getattr(args, f"decode_{k}", None) for k in ("max_frames", "max_pixels", "max_frame_pixels")}
    return DecodeLimits(**{k: v for k, v in given.items() if v is not None})
