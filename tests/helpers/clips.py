"""Small encoded clips for the extraction and decoding tests, a folder's files as bytes, and a
real AVI whose headers over-count its frames."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from tstam.video import write_video


def drifting_clip(path: Path, t: int, seed: int, h: int = 48, w: int = 64) -> Path:
    """A short encoded clip of a smooth pattern drifting by (1, 0.5) px per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, ph = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3), rng.uniform(0, 6)
    frames = []
    for i in range(t):
        g = 128 + 90 * np.sin(fx * (xx - i) + ph) * np.cos(fy * (yy - 0.5 * i))
        frames.append(np.stack([g, 255 - g, np.full_like(g, 40 * seed % 256)], -1).astype(np.uint8))
    return write_video(path, np.stack(frames), fps=25)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root``: {path relative to it: its bytes}."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def avi_declaring(src: Path, dst: Path, frames: int) -> Path:
    """A copy of a real AVI whose headers (``avih`` dwTotalFrames, the video ``strh`` dwLength)
    declare ``frames``: what a header that over-counts looks like, the frame data untouched."""
    data = bytearray(src.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    assert data[strh + 8:strh + 12] == b"vids"
    struct.pack_into("<I", data, avih + 8 + 16, frames)
    struct.pack_into("<I", data, strh + 8 + 32, frames)
    dst.write_bytes(bytes(data))
    return dst
