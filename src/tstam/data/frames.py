"""Reading frames from the frame store (TSN / MMAction2 rawframes layout; docs/design.md, Data flow).

File names come from templates (``img_{:05d}.jpg``, ``flow_x_{:05d}.jpg``, ``flow_y_{:05d}.jpg``,
1-based), configurable so that other layouts read too, e.g. MMAction2's ``x_{:05d}.jpg``.
JPEGs are decoded with OpenCV (libjpeg-turbo); RGB frames are returned in RGB order.
"""
from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tstam.errors import FrameStoreError, InputError

from .store import FLOW_X_TMPL, FLOW_Y_TMPL, RGB_TMPL

__all__ = ["FrameLayout", "template_regex", "list_indices", "read_rgb_frames", "read_flow_frames"]


@dataclass(frozen=True)
class FrameLayout:
    """File-name templates of one frame folder (1-based indices)."""

    rgb_tmpl: str = RGB_TMPL         # RGB JPEGs
    flow_x_tmpl: str = FLOW_X_TMPL   # horizontal flow, quantised to a grey JPEG
    flow_y_tmpl: str = FLOW_Y_TMPL   # vertical flow

    @classmethod
    def mmaction(cls) -> FrameLayout:
        """MMAction2's test fixture layout: ``x_00001.jpg`` / ``y_00001.jpg``."""
        return cls(flow_x_tmpl="x_{:05d}.jpg", flow_y_tmpl="y_{:05d}.jpg")


def template_regex(tmpl: str) -> re.Pattern[str]:
    """A regex matching the names a template produces, capturing the index."""
    parts = list(string.Formatter().parse(tmpl))
    fields = [p for p in parts if p[1] is not None]
    if len(fields) != 1:
        raise InputError(f"frame name template {tmpl!r} must have exactly one {{}} field, e.g. 'img_{{:05d}}.jpg'")
    pattern = ""
    for literal, field_name, _spec, _conv in parts:
        pattern += re.escape(literal)
        if field_name is not None:
            pattern += r"(\d+)"
    return re.compile(pattern + r"\Z")


def list_indices(video_dir: str | Path, tmpl: str, names: Sequence[str] | None = None) -> list[int]:
    """Sorted 1-based indices of the files in ``video_dir`` that match ``tmpl``.

    ``names`` (the folder's file names) may be passed to avoid listing the folder again.
    """
    rx = template_regex(tmpl)
    if names is None:
        names = os.listdir(video_dir)
    out = []
    for name in names:
        m = rx.match(name)
        if m:
            out.append(int(m.group(1)))
    out.sort()
    return out


def _imread(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        reason = "missing" if not path.exists() else "not a readable image (corrupt or truncated?)"
        raise FrameStoreError(f"{path}: frame {reason}; check the store before training (tstam.data.check_records)")
    return img


def read_rgb_frames(video_dir: str | Path, indices: Sequence[int], tmpl: str = RGB_TMPL) -> np.ndarray:
    """Frames at 0-based ``indices`` as uint8 (T, H, W, 3), RGB order. Repeated indices are read once."""
    video_dir = Path(video_dir)
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in indices:
        if i not in cache:
            cache[i] = cv2.cvtColor(_imread(video_dir / tmpl.format(int(i) + 1), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out.append(cache[i])
    return _stack(out, video_dir)


def read_flow_frames(video_dir: str | Path, indices: Sequence[int], layout: FrameLayout = FrameLayout()) -> np.ndarray:
    """Flow fields at 0-based ``indices`` as uint8 (T, 2, H, W): channel 0 = x, 1 = y."""
    video_dir = Path(video_dir)
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in indices:
        if i not in cache:
            x = _imread(video_dir / layout.flow_x_tmpl.format(int(i) + 1), cv2.IMREAD_GRAYSCALE)
            y = _imread(video_dir / layout.flow_y_tmpl.format(int(i) + 1), cv2.IMREAD_GRAYSCALE)
            if x.shape != y.shape:
                raise FrameStoreError(f"{video_dir}: flow x/y frame {int(i) + 1} sizes differ ({x.shape} vs {y.shape})")
            cache[i] = np.stack([x, y])
        out.append(cache[i])
    return _stack(out, video_dir)


def _stack(frames: list[np.ndarray], video_dir: Path) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise FrameStoreError(f"{video_dir}: frames differ in size {sorted(shapes)}; expected one size per video")
    return np.stack(frames)
