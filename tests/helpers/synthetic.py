"""Rendering and measuring synthetic clips: shared by the synthetic benchmark's tests."""
from __future__ import annotations

import cv2
import numpy as np

from tstam.synthetic import CATALOG, clip_rng, get_class
from tstam.synthetic.render import render_scene
from tstam.synthetic.scene import sample_scene

MOTION = ["MoveUp", "MoveDown", "MoveSideways", "Spin", "Grow", "Shrink"]
APPEARANCE = ["WaveRed", "WaveGreen", "WaveBlue", "WaveRedGreenStripes"]
CLEAN = {"distractors_max": 0, "background_pan": 0.0, "noise_std": 0.0}


def render_clip(name, cfg, seed=0, index=0, split="train", rng=None):
    rng = rng if rng is not None else clip_rng(seed, split, name, index)
    scene = sample_scene(get_class(name), cfg, rng)
    frames, masks = render_scene(scene, with_masks=True)
    return scene, frames, masks


def grey_frames(frames):
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float32)


def assert_same_means(per_class):
    """Every two classes' statistics (class -> (clips, statistics)) have means within 4.5 standard
    errors of the clip-to-clip spread."""
    for a in per_class:
        for b in per_class:
            if a < b:
                ma, mb = per_class[a], per_class[b]
                se = np.sqrt(ma.var(0) / len(ma) + mb.var(0) / len(mb)) + 1e-9
                z = np.abs(ma.mean(0) - mb.mean(0)) / se
                assert np.all(z < 4.5), (a, b, np.round(z, 1))


def pose_stats(scene, width, height):
    """Per-frame pose of the actor(s): centre, size, orientation, 4-bin centre histograms."""
    cols = []
    for a in scene.actors:
        x, y = a.cx / width, a.cy / height
        cols += [x, y, x * x, y * y, a.radius, np.cos(a.angle), np.sin(a.angle)]
        cols += [np.digitize(c, [0.35, 0.5, 0.65]) == k for c in (x, y) for k in range(4)]
    return np.column_stack(cols).astype(np.float64)


def window_flow(frames, masks, actors, window):
    """Over a window and a mask of the given actors: mean (vx, vy) in px/frame, and the relative
    expansion and rotation rates per frame about the actors' centre (OpenCV Farneback flow)."""
    grey = grey_frames(frames).astype(np.uint8)
    start, end = window
    h, w = masks.shape[1:]
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    out = []
    for t in range(start, end - 1):
        flow = cv2.calcOpticalFlowFarneback(grey[t], grey[t + 1], None, 0.5, 3, 9, 3, 5, 1.1, 0)
        m = masks[t]
        cx = np.mean([a.cx[t] for a in actors])
        cy = np.mean([a.cy[t] for a in actors])
        dx, dy, vx, vy = xs - cx, ys - cy, flow[..., 0], flow[..., 1]
        r2 = (m * (dx * dx + dy * dy)).sum()  # divergence and curl as rates per frame
        out.append([(m * vx).sum() / m.sum(), (m * vy).sum() / m.sum(),
                     (m * (dx * vx + dy * vy)).sum() / r2, (m * (dx * vy - dy * vx)).sum() / r2])
    return np.mean(out, axis=0)


def flow_stats(frames, masks, scene):
    """``window_flow`` over the action window and the actors."""
    return window_flow(frames, masks, scene.actors, scene.window)


def shows_motion(name, stats, direction=1.0):
    """Whether ``window_flow`` statistics show the motion of class ``name``; ``direction``: the sign
    an either-way class drew (MoveSideways: +1 right; Spin*: +1 counter-clockwise). The bounds leave
    room for the estimator: an actor that grows past the frame edge, or stripes that move along
    themselves, bend the measured field even though the drawn motion is exact."""
    vx, vy, div, curl = stats
    motion = CATALOG[name].motion
    if motion in ("up", "down"):
        return np.sign(vy) == (1 if motion == "down" else -1) and abs(vy) > max(1.0, 3 * abs(vx))
    if motion in ("sideways", "left", "right"):
        return np.sign(vx) == direction and abs(vx) > max(1.0, 3 * abs(vy))
    if motion in ("grow", "separate"):
        return div > 0.04 and div > 1.5 * abs(curl)
    if motion in ("shrink", "approach"):
        return div < -0.04 and -div > 1.5 * abs(curl)
    if motion in ("spin", "cw", "ccw"):
        # y points down on screen, so a counter-clockwise turn has a negative dx*vy - dy*vx.
        return (np.sign(curl) == -direction and abs(curl) > 0.04 and abs(curl) > 3 * abs(div)
                and abs(vx) + abs(vy) < 1.0)
    raise ValueError(f"no flow criterion for {name} ({motion})")


def either_way_direction(scene):
    """The sign the clip's either-way class drew (``shows_motion``)."""
    return scene.extras.get("direction_x", scene.extras.get("direction_spin", 1.0))
