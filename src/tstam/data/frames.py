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

__all__ = ["FrameLayout", "template_regex", "list_indices", "frame_size", "read_rgb_frames", "read_flow_frames"]


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


def _imread(path: str, flags: int) -> np.ndarray:
    data = _file_bytes(path)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if img is None:
        reason = "missing" if data is None else "not a readable image (corrupt or truncated?)"
        raise FrameStoreError(f"{path}: frame {reason}; check the store before training (tstam.data.check_records)")
    return img


_CHUNK = 1 << 16  # a flow or RGB frame of the store in one read


def _file_bytes(path: str) -> bytes | None:
    """A file's bytes (None if it does not exist) through bare file descriptors: a clip reads tens
    of frames, and Python's buffered file objects cost about as much again as reading them."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, _CHUNK)
        if len(data) == _CHUNK:
            parts = [data]
            while chunk := os.read(fd, _CHUNK):
                parts.append(chunk)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return data


Window = tuple[int, int, int, int]  # y, x, h, w


def frame_size(path: str | Path) -> tuple[int, int] | None:
    """(H, W) of a JPEG from its header alone, or None when it cannot be read (the frame readers say why)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError:
        return None


def read_rgb_frames(video_dir: str | Path, indices: Sequence[int], tmpl: str = RGB_TMPL, *,
                    window: Window | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Frames at 0-based ``indices`` as uint8 (T, H, W, 3), RGB order. Repeated indices are read once.

    ``window`` (y, x, h, w): only that window of every frame is kept, (T, h, w, 3). ``out``: an
    array (or view) of that shape to write into instead of a new one; it is returned.
    """
    names = [(tmpl.format(i + 1),) for i in indices]
    return _read(str(video_dir), indices, names, window, out, channels_last=True)


def read_flow_frames(video_dir: str | Path, indices: Sequence[int], layout: FrameLayout = FrameLayout(), *,
                     window: Window | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Flow fields at 0-based ``indices`` as uint8 (T, 2, H, W): channel 0 = x, 1 = y.

    ``window`` and ``out`` as in ``read_rgb_frames``: (T, 2, h, w).
    """
    names = [(layout.flow_x_tmpl.format(i + 1), layout.flow_y_tmpl.format(i + 1)) for i in indices]
    return _read(str(video_dir), indices, names, window, out, channels_last=False)


def _read(video_dir: str, indices: Sequence[int], names: list[tuple[str, ...]], window: Window | None,
          out: np.ndarray | None, *, channels_last: bool) -> np.ndarray:
    """Decode each index's files once, straight into ``out[k]``: no per-frame arrays to stack.
    ``names[k]``: one RGB file (BGR on disk, written RGB) or the flow x and y files of ``indices[k]``."""
    if not len(indices):
        raise ValueError(f"{video_dir}: no frame indices to read")
    first: dict[int, int] = {}  # index -> where it was written first
    size = rows = cols = None
    for k, i in enumerate(indices):
        i = int(i)
        if i in first:
            out[k] = out[first[i]]
            continue
        # file names joined as strings: a Path per frame costs a tenth of decoding it
        imgs = [_imread(f"{video_dir}{os.sep}{n}", cv2.IMREAD_COLOR if channels_last else cv2.IMREAD_GRAYSCALE)
                for n in names[k]]
        shape = imgs[0].shape[:2]
        if any(im.shape[:2] != shape for im in imgs[1:]):
            raise FrameStoreError(f"{video_dir}: flow x/y frame {i + 1} sizes differ ({imgs[0].shape} vs {imgs[1].shape})")
        if size is None:
            size, (rows, cols) = shape, _slices(video_dir, shape, window)
            if out is None:
                h, w = rows.stop - rows.start, cols.stop - cols.start
                out = np.empty((len(indices), h, w, 3) if channels_last else (len(indices), len(imgs), h, w), np.uint8)
        elif shape != size:
            raise FrameStoreError(f"{video_dir}: frames differ in size {sorted({size, shape})}; expected one size per video")
        if channels_last:
            out[k] = cv2.cvtColor(imgs[0][rows, cols], cv2.COLOR_BGR2RGB)
        else:
            for c, im in enumerate(imgs):
                out[k, c] = im[rows, cols]
        first[i] = k
    return out


def _slices(video_dir: str, size: tuple[int, int], window: Window | None) -> tuple[slice, slice]:
    if window is None:
        return slice(0, size[0]), slice(0, size[1])
    y, x, h, w = window
    if y < 0 or x < 0 or y + h > size[0] or x + w > size[1]:
        raise FrameStoreError(f"{video_dir}: crop (y={y}, x={x}, h={h}, w={w}) does not fit its {size[0]}x{size[1]} frames")
    return slice(y, y + h), slice(x, x + w)
