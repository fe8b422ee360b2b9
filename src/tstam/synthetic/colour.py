"""Colour helpers of the synthetic benchmark (docs/design.md, The synthetic benchmark): full-range BT.601 YCbCr.

Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` is exactly the grey level that ``cv2.COLOR_RGB2GRAY``
(and so every optical-flow extractor) computes, so colours built as ``yuv_to_rgb(Y, U, V)`` with
the same ``Y`` and different chroma ``(U, V)`` look identical to the flow stream.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["yuv_to_rgb", "chroma", "luma"]


def yuv_to_rgb(y: np.ndarray, u: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
    """Full-range YCbCr (U = Cb - 128, V = Cr - 128) to float RGB, shape ``y.shape + (3,)``."""
    y = np.asarray(y, dtype=np.float32)
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    r = y + 1.402 * v
    g = y - 0.344136 * u - 0.714136 * v
    b = y + 1.772 * u
    return np.stack(np.broadcast_arrays(r, g, b), axis=-1)


def chroma(hue_deg: float, radius: float) -> tuple[float, float]:
    """(U, V) at angle ``hue_deg`` in the Cb-Cr plane, ``radius`` from grey."""
    h = math.radians(hue_deg)
    return radius * math.cos(h), radius * math.sin(h)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 grey level of (..., 3) RGB."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
