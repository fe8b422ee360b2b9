"""The frame store layout (TSN / MMAction2 rawframes), shared by extraction and datasets.

``<root>/<video_id>/img_00001.jpg ...`` (RGB), ``flow_x_00001.jpg ...``, ``flow_y_00001.jpg ...``
(1-based; one fewer flow frame than RGB frame), and ``meta.json`` written last and atomically:
a video folder without ``meta.json`` is unfinished and is redone by a resumed extraction.
"""
from __future__ import annotations

import errno
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tstam.errors import FrameStoreError, OutputError

from ..files import write_json_atomic

__all__ = [
    "RGB_TMPL", "FLOW_X_TMPL", "FLOW_Y_TMPL", "META_NAME", "META_VERSION",
    "write_meta", "read_meta", "is_complete", "clear_partial", "write_rgb", "write_flow", "check_jpeg_size",
    "JPEG_MAX_SIDE",
]

RGB_TMPL = "img_{:05d}.jpg"
FLOW_X_TMPL = "flow_x_{:05d}.jpg"
FLOW_Y_TMPL = "flow_y_{:05d}.jpg"
META_NAME = "meta.json"
META_VERSION = 1
# meta.json keys: version, video_id, source, frames (RGB count), flow_frames (= frames - 1, or 0
# when flow was not extracted), fps, width, height, flow ({algorithm, bound, params}) or null.
_STORE_GLOBS = ("img_*.jpg", "flow_x_*.jpg", "flow_y_*.jpg", ".meta.*.tmp")  # what clear_partial removes


def write_meta(video_dir: str | Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` atomically (``tstam.files.write_json_atomic``)."""
    write_json_atomic(Path(video_dir) / META_NAME, {"version": META_VERSION, **meta})


def read_meta(video_dir: str | Path) -> dict[str, Any]:
    """Read ``meta.json``; a missing or unreadable file raises FrameStoreError naming it."""
    path = Path(video_dir) / META_NAME
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FrameStoreError(f"{path}: no metadata (the video was never extracted, or extraction was interrupted)") from None
    except json.JSONDecodeError as e:
        raise FrameStoreError(f"{path}: corrupt metadata: {e}") from None
    if not isinstance(meta, dict) or "frames" not in meta:
        raise FrameStoreError(f"{path}: metadata lacks 'frames'")
    for key in ("frames", "flow_frames"):  # counts the readers take as they are
        v = meta.get(key)
        if not (v is None and key == "flow_frames") and not (type(v) is int and v >= 0):
            raise FrameStoreError(f"{path}: metadata {key}={v!r} is not valid; expected a whole number >= 0")
    return meta


def is_complete(video_dir: str | Path) -> bool:
    return (Path(video_dir) / META_NAME).is_file()


def clear_partial(video_dir: str | Path) -> None:
    """Remove what an interrupted extraction left (only files of the store layout)."""
    for pattern in _STORE_GLOBS:
        for f in Path(video_dir).glob(pattern):
            f.unlink()
    (Path(video_dir) / META_NAME).unlink(missing_ok=True)


JPEG_MAX_SIDE = 65_535  # the JPEG format stores each side in 16 bits
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the disk, a quota or the file size limit is full


def check_jpeg_size(width: int, height: int, what: str) -> None:
    """Refuse a frame size that JPEG cannot store, before any work (``OutputError`` naming ``what``)."""
    if max(width, height) > JPEG_MAX_SIDE:
        raise OutputError(f"{what}: frames of {width} x {height} cannot be stored as JPEG, whose sides are at most "
                          f"{JPEG_MAX_SIDE:,} pixels; resize them on decode (tstam extract --size or --short-side)")


def _imwrite(path: Path, image: np.ndarray, quality: int) -> None:
    """Encode in memory, then write with Python: a full disk is an error naming the file and the
    reason (``cv2.imwrite`` only returns False)."""
    import cv2

    check_jpeg_size(image.shape[1], image.shape[0], str(path))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OutputError(f"{path}: could not encode a {image.shape[1]} x {image.shape[0]} JPEG")
    try:
        path.write_bytes(data.tobytes())
    except OSError as e:
        if e.errno in _NO_SPACE:
            raise OutputError(f"{path}: no space left to write the frame store ({e.strerror}); free some space, "
                              "or give another --out, and run the same command again to resume") from None
        raise


def write_rgb(video_dir: str | Path, frames: np.ndarray, jpeg_quality: int, first: int = 1) -> None:
    """(T, H, W, 3) uint8 RGB frames -> ``img_<first>.jpg ...`` (1-based)."""
    for t, rgb in enumerate(frames, first):
        _imwrite(Path(video_dir) / RGB_TMPL.format(t), rgb[:, :, ::-1], jpeg_quality)  # BGR for OpenCV


def write_flow(video_dir: str | Path, fields: Iterable[np.ndarray], jpeg_quality: int, first: int = 1) -> int:
    """Quantised (H, W, 2) uint8 flow fields -> ``flow_x/y_<first>.jpg ...``; returns how many."""
    n = 0
    for n, q in enumerate(fields, 1):
        _imwrite(Path(video_dir) / FLOW_X_TMPL.format(first + n - 1), q[:, :, 0], jpeg_quality)
        _imwrite(Path(video_dir) / FLOW_Y_TMPL.format(first + n - 1), q[:, :, 1], jpeg_quality)
    return n
