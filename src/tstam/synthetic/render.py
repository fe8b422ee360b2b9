"""Rendering a sampled ``Scene`` to RGB frames (docs/design.md, The synthetic benchmark).

Pure numpy (plus ``cv2.resize`` for the background texture), deterministic: the same Scene gives
byte-identical frames. Shapes are drawn from signed distances with a one-pixel soft edge (cheap
anti-aliasing, which keeps the encoded files clean and the optical flow smooth). Actors are
composited in linear RGB, so the grey level of a composite is the composite of grey levels: the
equiluminant colours of the appearance classes stay invisible to the flow stream.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .colour import chroma, yuv_to_rgb
from .parts import CHROMA, Actor, Background, Cue, Distractor
from .scene import Scene

__all__ = ["render_scene", "background_frames"]

_SIDES = {"triangle": 3, "square": 4, "hexagon": 6}
_DISC_SCALE = 0.9    # a disc's radius relative to the circumradius (similar area to a polygon)
_OCTAVES = ((1 / 6, 1.0), (1 / 12, 0.6), (1 / 24, 0.35))  # (cell size / frame side, weight)


def background_frames(bg: Background, height: int, width: int, num_frames: int) -> np.ndarray:
    """(T, H, W, 3) float32: the panning textured background of every frame."""
    vx, vy = bg.pan
    margin = int(math.ceil(max(abs(vx), abs(vy)) * num_frames)) + 2
    th, tw = height + 2 * margin, width + 2 * margin
    rng = np.random.default_rng(bg.seed)
    side = min(height, width)
    tex = np.zeros((th, tw), np.float32)
    for cell_frac, weight in _OCTAVES:
        cell = max(side * cell_frac, 2.0)
        gh, gw = int(math.ceil(th / cell)) + 2, int(math.ceil(tw / cell)) + 2
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        tex += weight * up[:th, :tw]
    tex = (tex - tex.mean()) / max(float(tex.std()), 1e-6)
    rgb = yuv_to_rgb(bg.luma + bg.contrast * tex, *bg.tint)  # (th, tw, 3)
    out = np.empty((num_frames, height, width, 3), np.float32)
    for t in range(num_frames):
        ox, oy = margin + vx * t, margin + vy * t
        ix, iy = int(math.floor(ox)), int(math.floor(oy))
        fx, fy = ox - ix, oy - iy
        a = rgb[iy:iy + height + 1, ix:ix + width + 1]
        out[t] = ((1 - fy) * ((1 - fx) * a[:-1, :-1] + fx * a[:-1, 1:])
                  + fy * ((1 - fx) * a[1:, :-1] + fx * a[1:, 1:]))
    return out


def _box(cx: float, cy: float, r: float, height: int, width: int) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Pixel window around a circle and the pixel offsets (dx, dy) from its centre in it."""
    x0, x1 = max(int(math.floor(cx - r - 2)), 0), min(int(math.ceil(cx + r + 2)) + 1, width)
    y0, y1 = max(int(math.floor(cy - r - 2)), 0), min(int(math.ceil(cy + r + 2)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    return slice(y0, y1), slice(x0, x1), dx, dy


def _actor_layer(actor: Actor, t: int, height: int, width: int):
    """(window, alpha (h, w), rgb (h, w, 3)) of one actor at frame t, or None if off-screen."""
    cx, cy, r, theta = (float(actor.cx[t]), float(actor.cy[t]), float(actor.radius[t]),
                        float(actor.angle[t]))
    box = _box(cx, cy, r, height, width)
    if box is None:
        return None
    ys, xs, dx, dy = box
    # Local shape coordinates, y up, rotated by -theta: the shape turns counter-clockwise on
    # screen as theta grows.
    up = -dy
    c, s = math.cos(theta), math.sin(theta)
    lx = dx * c + up * s                       # (h, w)
    ly = -dx * s + up * c                      # (h, w)
    n = _SIDES.get(actor.shape)
    if n is None:  # disc
        sdf = np.sqrt(lx * lx + ly * ly) - _DISC_SCALE * r
    else:
        apothem = r * math.cos(math.pi / n)
        normals = [math.pi / 2 + math.pi / n + 2 * math.pi * k / n for k in range(n)]
        sdf = np.max(np.stack([lx * math.cos(a) + ly * math.sin(a) for a in normals]), axis=0) - apothem
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)
    period = max(actor.stripe_period * r, 1.0)
    y = actor.luma + actor.stripe_amp * np.clip(2.0 * np.sin(2 * math.pi * lx / period), -1.0, 1.0)
    if not actor.hues:
        u = v = np.float32(0.0)
    elif len(actor.hues) == 1:
        u, v = chroma(actor.hues[0], CHROMA)
    else:  # stripes of two hues, across the grey stripes
        first = np.sin(2 * math.pi * ly / period) >= 0
        (u1, v1), (u2, v2) = (chroma(h, CHROMA) for h in actor.hues[:2])
        u, v = np.where(first, u1, u2), np.where(first, v1, v2)
    return (ys, xs), alpha, yuv_to_rgb(y, u, v)


def _distractor_layer(d: Distractor, t: int, height: int, width: int):
    box = _box(float(d.cx[t]), float(d.cy[t]), d.radius, height, width)
    if box is None:
        return None
    ys, xs, dx, dy = box
    alpha = np.clip(0.5 - (np.sqrt(dx * dx + dy * dy) - d.radius), 0.0, 1.0)
    return (ys, xs), alpha, np.asarray(d.rgb, np.float32)


def _cue_layer(cue: Cue, actor: Actor, t: int, height: int, width: int):
    """The pulsing ring of a cue around its actor at frame t (None outside the cue's window)."""
    if not cue.window[0] <= t < cue.window[1]:
        return None
    cx, cy = float(actor.cx[t]), float(actor.cy[t])
    ring = cue.scale * float(actor.radius[t]) + cue.amplitude * math.sin(2 * math.pi * t / cue.period + cue.phase)
    box = _box(cx, cy, ring + cue.width / 2, height, width)
    if box is None:
        return None
    ys, xs, dx, dy = box
    alpha = np.clip(0.5 - (np.abs(np.sqrt(dx * dx + dy * dy) - ring) - cue.width / 2), 0.0, 1.0)
    return (ys, xs), alpha, yuv_to_rgb(np.float32(cue.luma), 0.0, 0.0)


def render_scene(scene: Scene, *, with_masks: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render every frame of a scene.

    Args:
        scene: from ``scene.sample_scene``.
        with_masks: also return the actors' coverage (union over actors), for tests and figures.

    Returns:
        frames (T, H, W, 3) uint8 RGB; with ``with_masks`` also masks (T, H, W) float32 in [0, 1].
    """
    h, w, n = scene.height, scene.width, scene.num_frames
    frames = background_frames(scene.background, h, w, n)
    masks = np.zeros((n, h, w), np.float32) if with_masks else None
    for t in range(n):
        canvas = frames[t]
        # Distractors drift behind the actors; a cue's ring is behind its actor too.
        layers = [(_distractor_layer(d, t, h, w), False) for d in scene.distractors]
        layers += [(_cue_layer(c, scene.actors[c.actor], t, h, w), False) for c in scene.cues]
        layers += [(_actor_layer(a, t, h, w), True) for a in scene.actors]
        for layer, is_actor in layers:
            if layer is None:
                continue
            (ys, xs), alpha, rgb = layer
            a3 = alpha[..., None]
            canvas[ys, xs] = canvas[ys, xs] * (1.0 - a3) + rgb * a3
            if masks is not None and is_actor:
                masks[t, ys, xs] = np.maximum(masks[t, ys, xs], alpha)
    if scene.noise_std > 0:
        noise = np.random.default_rng(scene.noise_seed).standard_normal(frames.shape, dtype=np.float32)
        frames += np.float32(scene.noise_std) * noise
    out = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return (out, masks) if with_masks else out
