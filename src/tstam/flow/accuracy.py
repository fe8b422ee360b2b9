"""How far a flow field is from the truth: the end-point error, and frame pairs with a known
motion to measure it on (real frames warped by a smooth field), as ``benchmarks/bench_flow.py``
measures the flow algorithms and the tests check ``tvl1_torch``."""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["end_point_error", "known_motion_pairs"]


def end_point_error(a: np.ndarray, b: np.ndarray, margin: int = 0) -> float:
    """Mean Euclidean distance between two (..., H, W, 2) flow fields, leaving out ``margin``
    pixels at each border (where a warped pair has no correspondence)."""
    d = np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)
    if margin:
        d = d[..., margin:-margin, margin:-margin]
    return float(d.mean())


def known_motion_pairs(clips: list[np.ndarray], n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """``n`` pairs (prev, next, flow, amplitude) made from the (T, H, W) uint8 grey ``clips``:
    ``next`` is a frame of a clip and ``prev(x) = next(x + flow(x))``, so ``flow`` (H, W, 2)
    float32 is the prev -> next flow. The motion: a translation of up to ``amplitude`` px (3, 6,
    12 in turn), a small rotation and zoom, and a smooth random field."""
    rng = np.random.default_rng(seed)
    h, w = clips[0].shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        g = clips[i % len(clips)]
        nxt = g[(17 * i + 5) % len(g)]
        amp = (3.0, 6.0, 12.0)[i % 3]
        tx, ty = rng.uniform(-amp, amp, 2)
        rot, zoom = rng.uniform(-0.03, 0.03, 2)
        cx, cy = xx - w / 2, yy - h / 2
        low = rng.normal(0, 2.0, (2, 4, 5)).astype(np.float32)
        u = tx + zoom * cx - rot * cy + cv2.resize(low[0], (w, h), interpolation=cv2.INTER_CUBIC)
        v = ty + zoom * cy + rot * cx + cv2.resize(low[1], (w, h), interpolation=cv2.INTER_CUBIC)
        u, v = u.astype(np.float32), v.astype(np.float32)
        prev = cv2.remap(nxt, xx + u, yy + v, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        out.append((prev, nxt, np.stack([u, v], -1), amp))
    return out
