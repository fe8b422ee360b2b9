"""Sampling one clip's scene (docs/design.md, The synthetic benchmark): action window, actors and their per-frame poses,
distractors, background and noise parameters. Rendering is in ``render.py``.

How a single frame is kept from revealing a motion class. Every clip has an action window
``[start, end)`` (a random 30-60 % of the frames, start uniform) and a progress curve ``f(t)``:
0 before the window, rising linearly inside it, 1 after it. The class's moving quantity follows
``f(t)`` (e.g. ``y = lo + u + D f(t)`` for MoveDown, ``y = hi - u - D f(t)`` for MoveUp). Since
the window's start is uniform, ``f`` and ``1 - f`` have the same distribution over frames, so a
motion and its time reversal give the same per-frame marginals. The quantities that the class does
*not* move are drawn, constant over the clip, from the same formula evaluated at an independent
random frame of an independent window (``_random_progress``): so position, size and angle have the
same distribution at a random frame for every class of the group, whatever the class moves.

The random draws are made from separate child generators (window, appearance, motion, rest), so
two classes sampled with the same seed share their window, actor appearance, background,
distractors and noise and differ only in what the class defines. The untrimmed benchmark's other
actions and cue (``untrimmed.py``) draw from a fifth child, spawned only when they are on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .classes import COLOURS, ClassDef
from .colour import chroma, yuv_to_rgb
from .config import SynthConfig
from .parts import (
    ACTOR_RADIUS,
    BACKGROUND_LUMA,
    BACKGROUND_TINT,
    DISTRACTOR_CHROMA,
    DISTRACTOR_LUMA,
    DISTRACTOR_RADIUS,
    GROW,
    JITTER_FREQ,
    PAIR_FAR,
    PAIR_MID,
    PAIR_NEAR,
    PAIR_RADIUS,
    REGION,
    SHIFT,
    SPIN_SPEED,
    WAVE_AMPLITUDE,
    WAVE_PERIOD,
    WAVE_RADIUS,
    WAVE_REGION,
    Actor,
    Background,
    Cue,
    Distractor,
    OtherAction,
    appearance,
    progress,
    uniform,
    window_length,
)
from .untrimmed import surround

__all__ = ["Actor", "Distractor", "Background", "OtherAction", "Cue", "Scene", "window_length", "sample_window",
           "progress", "sample_scene"]

@dataclass
class Scene:
    """Everything needed to render one clip; ``render.render_scene`` is a pure function of it."""

    class_name: str
    height: int
    width: int
    num_frames: int
    window: tuple[int, int]  # [start, end) frames of the action
    actors: list[Actor]
    distractors: list[Distractor]
    background: Background
    noise_std: float
    noise_seed: int
    extras: dict[str, float] = field(default_factory=dict)  # class-specific draws, for tests
    others: list[OtherAction] = field(default_factory=list)  # other classes' actions (other_actions)
    cues: list[Cue] = field(default_factory=list)            # what marks the labelled action (window_cue)


def sample_window(rng: np.random.Generator, cfg: SynthConfig) -> tuple[int, int]:
    """A random action window ``[start, end)``: length window_min..window_max of the clip."""
    length = window_length(rng, cfg)
    start = int(rng.integers(0, cfg.num_frames - length + 1))
    return start, start + length


def _random_progress(rng: np.random.Generator, cfg: SynthConfig) -> float:
    """``f(t)`` at a uniformly random frame of an independent window (see module docstring); with
    ``other_actions`` at a random frame *inside* it: there the cue marks the window's frames, and
    other actions move the actor outside it, so it is a window frame that must not reveal the class."""
    if cfg.other_actions:
        length = window_length(rng, cfg)
        return (int(rng.integers(0, length)) + 0.5) / length
    f = progress(cfg.num_frames, sample_window(rng, cfg))
    return float(f[rng.integers(0, cfg.num_frames)])


def _axis(rng: np.random.Generator, extent: int, size: int, cfg: SynthConfig) -> tuple[float, float, float]:
    """(lo, u, D) of one coordinate: positions ``lo + u + D f`` stay inside REGION."""
    lo, hi = REGION[0] * extent, REGION[1] * extent
    d = uniform(rng, SHIFT, size)
    u = float(rng.uniform(0.0, max(hi - lo - d, 0.0)))
    return lo, u, d


def _jitter(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(cfg.num_frames, dtype=np.float64)
    out = []
    for _ in range(2):
        freq, phase = uniform(rng, JITTER_FREQ), float(rng.uniform(0, 2 * math.pi))
        out.append(cfg.idle_jitter * np.sin(2 * math.pi * freq * t + phase))
    return out[0], out[1]


def _turn(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """(T,) the turning wobble: ``idle_rotation * sin(2 pi f t + phase)``, f in JITTER_FREQ."""
    t = np.arange(cfg.num_frames, dtype=np.float64)
    freq, phase = uniform(rng, JITTER_FREQ), float(rng.uniform(0, 2 * math.pi))
    return cfg.idle_rotation * np.sin(2 * math.pi * freq * t + phase)


def _single_motion(cdef: ClassDef, f: np.ndarray, rng: np.random.Generator, cfg: SynthConfig,
                   extras: dict[str, float]) -> tuple[np.ndarray, ...]:
    """(cx, cy, radius, angle) of a motion-group actor."""
    s, t = cfg.size, cfg.num_frames
    ones = np.ones(t)
    (xlo, xu, xd), (ylo, yu, yd) = _axis(rng, cfg.width, s, cfg), _axis(rng, cfg.height, s, cfg)
    fx, fy, fr = (_random_progress(rng, cfg) * ones for _ in range(3))
    r0, grow = uniform(rng, ACTOR_RADIUS, s), uniform(rng, GROW)
    angle0 = float(rng.uniform(0, 2 * math.pi))
    spin = uniform(rng, SPIN_SPEED) * float(np.count_nonzero((f > 0) & (f < 1)))  # total angle
    sign = 1.0 if rng.random() < 0.5 else -1.0  # for the either-way classes
    m = cdef.motion
    if m in ("left", "right", "sideways"):
        right = m == "right" or (m == "sideways" and sign > 0)
        fx = f if right else 1.0 - f  # leftward: the mirror image hi - u - D f
        extras["direction_x"] = 1.0 if right else -1.0
    elif m in ("up", "down"):
        fy = f if m == "down" else 1.0 - f  # image y grows downwards
        extras["direction_y"] = 1.0 if m == "down" else -1.0
    elif m in ("grow", "shrink"):
        fr = f if m == "grow" else 1.0 - f
    cx, cy = xlo + xu + xd * fx, ylo + yu + yd * fy
    radius = r0 * grow ** fr
    if m in ("cw", "ccw", "spin"):
        # On screen (y down) a positive angle turns counter-clockwise (render.py).
        direction = {"ccw": 1.0, "cw": -1.0}.get(m, sign)
        angle = angle0 + direction * spin * f
        extras["direction_spin"] = direction
    else:
        angle = angle0 * ones
    return cx, cy, radius, angle


def _pair_motion(cdef: ClassDef, f: np.ndarray, rng: np.random.Generator, cfg: SynthConfig,
                 extras: dict[str, float]) -> list[tuple[np.ndarray, ...]]:
    s = cfg.size
    mx, my = uniform(rng, PAIR_MID, cfg.width), uniform(rng, PAIR_MID, cfg.height)
    axis = float(rng.uniform(0, math.pi))
    near, far = uniform(rng, PAIR_NEAR, s), uniform(rng, PAIR_FAR, s)
    extras.update(pair_axis=axis, pair_near=near, pair_far=far)
    g = f if cdef.motion == "separate" else 1.0 - f
    dist = near + (far - near) * g
    out = []
    for side in (-1.0, 1.0):
        r = uniform(rng, PAIR_RADIUS, s) * np.ones_like(f)
        angle = float(rng.uniform(0, 2 * math.pi)) * np.ones_like(f)
        out.append((mx + side * 0.5 * dist * math.cos(axis), my + side * 0.5 * dist * math.sin(axis), r, angle))
    return out


def _wave_motion(f: np.ndarray, rng: np.random.Generator, cfg: SynthConfig,
                 extras: dict[str, float]) -> tuple[np.ndarray, ...]:
    s = cfg.size
    cx0, cy0 = uniform(rng, WAVE_REGION, cfg.width), uniform(rng, WAVE_REGION, cfg.height)
    axis, amp = float(rng.uniform(0, math.pi)), uniform(rng, WAVE_AMPLITUDE, s)
    cycles = (np.count_nonzero((f > 0) & (f < 1))) / uniform(rng, WAVE_PERIOD, cfg.num_frames)
    offset = amp * np.sin(2 * math.pi * cycles * f)
    r = uniform(rng, WAVE_RADIUS, s) * np.ones_like(f)
    extras.update(wave_x=cx0, wave_y=cy0, wave_amplitude=amp)
    angle = float(rng.uniform(0, 2 * math.pi)) * np.ones_like(f)
    return cx0 + offset * math.cos(axis), cy0 + offset * math.sin(axis), r, angle


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = max(hi - lo, 1e-6)
    p = np.mod(x - lo, 2 * span)
    return lo + np.where(p < span, p, 2 * span - p)


def _distractors(rng: np.random.Generator, cfg: SynthConfig) -> list[Distractor]:
    out = []
    t = np.arange(cfg.num_frames, dtype=np.float64)
    for _ in range(int(rng.integers(0, cfg.distractors_max + 1))):
        r = uniform(rng, DISTRACTOR_RADIUS, cfg.size)
        luma, hue = uniform(rng, DISTRACTOR_LUMA), float(rng.uniform(0, 360))
        sat = float(rng.uniform(0, DISTRACTOR_CHROMA))
        x0, y0 = float(rng.uniform(r, cfg.width - r)), float(rng.uniform(r, cfg.height - r))
        heading = float(rng.uniform(0, 2 * math.pi))
        speed = float(rng.uniform(0.25, 1.0)) * cfg.distractor_speed
        cx = _reflect(x0 + speed * math.cos(heading) * t, r, cfg.width - r)
        cy = _reflect(y0 + speed * math.sin(heading) * t, r, cfg.height - r)
        rgb = yuv_to_rgb(np.array(luma), *chroma(hue, sat))
        out.append(Distractor(radius=r, rgb=tuple(float(v) for v in rgb.reshape(3)), cx=cx, cy=cy))
    return out


def sample_scene(cdef: ClassDef, cfg: SynthConfig, rng: np.random.Generator) -> Scene:
    """Draw every random quantity of one clip of class ``cdef``.

    Args:
        cdef: the class (``classes.CATALOG`` entry).
        cfg: sizes and difficulty.
        rng: the clip's generator; it is split into independent children (see module docstring).

    Returns:
        The Scene; render it with ``render.render_scene``.
    """
    r_window, r_look, r_motion, r_rest = rng.spawn(4)
    window = sample_window(r_window, cfg)
    f = progress(cfg.num_frames, window)
    extras: dict[str, float] = {}
    hues = COLOURS[cdef.colour] if cdef.colour else ()
    if cdef.group == "interaction":
        poses = _pair_motion(cdef, f, r_motion, cfg, extras)
    elif cdef.group == "appearance":
        poses = [_wave_motion(f, r_motion, cfg, extras)]
    else:
        poses = [_single_motion(cdef, f, r_motion, cfg, extras)]
    looks = [appearance(r_look, hues) for _ in poses]
    others: list[OtherAction] = []
    cues: list[Cue] = []
    if cfg.other_actions or cfg.window_cue:  # a child drawn only then, so the other presets keep their clips
        poses, looks, others, cues = surround(cdef, cfg, window, poses, looks, extras, rng.spawn(1)[0])
    actors = []
    for (cx, cy, radius, angle), look in zip(poses, looks):
        jx, jy = _jitter(r_rest, cfg)
        if cfg.idle_rotation > 0:  # drawn only when on, so configs without it keep their clips
            angle = angle + _turn(r_rest, cfg)
        actors.append(Actor(**look, cx=cx + jx, cy=cy + jy, radius=radius, angle=angle))
    distractors = _distractors(r_rest, cfg)
    pan_heading, pan_speed = float(r_rest.uniform(0, 2 * math.pi)), float(r_rest.uniform(0, cfg.background_pan))
    background = Background(
        seed=int(r_rest.integers(0, 2**31)), luma=uniform(r_rest, BACKGROUND_LUMA),
        contrast=cfg.background_contrast * float(r_rest.uniform(0.7, 1.3)),
        tint=chroma(float(r_rest.uniform(0, 360)), float(r_rest.uniform(0, BACKGROUND_TINT))),
        pan=(pan_speed * math.cos(pan_heading), pan_speed * math.sin(pan_heading)),
    )
    return Scene(
        class_name=cdef.name, height=cfg.height, width=cfg.width, num_frames=cfg.num_frames,
        window=window, actors=actors, distractors=distractors, background=background,
        noise_std=cfg.noise_std, noise_seed=int(r_rest.integers(0, 2**31)), extras=extras, others=others, cues=cues,
    )
