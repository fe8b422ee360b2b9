"""The untrimmed benchmark (``other_actions``, ``window_cue``): the labelled action surrounded by other
classes' actions, and the cue that tells it from them.

Untrimmed video shows its labelled action among other activity. With ``other_actions`` the frames
outside the action window show *other classes'* actions of the same family, each drawn as that
class's own action is (a displacement from SHIFT, a size ratio from GROW, a turning speed from
SPIN_SPEED, a wave), over a stretch of the same length distribution as an action window, so that a
frame outside the window carries the evidence of a wrong class:

- a motion class: the same actor performs other motion classes before and after it;
- an interaction class: the pair performs the other interaction class(es), or one of the two actors
  turns (the rotation classes: a motion of one actor that moves neither actor's centre, so it
  cannot pass for an approach or a separation);
- an appearance class (a colour): a second actor, coloured as one other appearance class, waves
  before and after the window; the labelled actor waves in the window only.

The other actions follow one another ``OTHER_GAP`` idle frames apart, outward from the window to the
clip's ends (the last one cut short by an end if it keeps the shortest window length; a shorter
remainder stays idle). Each is drawn uniformly among the classes of the family whose action keeps
the actor inside OTHER_REGION and OTHER_RADIUS (a little wider than the labelled action's REGION and
ACTOR_RADIUS x GROW, so that from most poses a move, a Grow or a Shrink fits) and the pair between
its near and far distances; when none does, the amounts are drawn again, up to AMOUNT_TRIES times,
and otherwise that stretch stays idle. The labelled action itself
is sampled as in the other presets, so a frame inside the window looks the same whatever the motion
class.

The cue. When the same actor performs the labelled action and the others, nothing would tell them
apart: with ``window_cue`` the labelled action's actor(s) wear a grey ring during the window, and
only then, whose radius pulses by +- RING_PULSE of the frame side every RING_PERIOD frames. RGB sees
the ring; optical flow sees its in-and-out motion, which no class has (the classes move smoothly, or
wave with periods of 30-45 % of the clip). It is grey (no chroma), so it is the same for every
colour and the appearance classes stay identical in grey frames.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .classes import COLOURS, ClassDef, get_class
from .config import SynthConfig
from .parts import (
    GROW,
    REGION,
    SHIFT,
    SPIN_SPEED,
    WAVE_AMPLITUDE,
    WAVE_PERIOD,
    WAVE_RADIUS,
    Cue,
    OtherAction,
    appearance,
    progress,
    uniform,
    window_length,
)

__all__ = ["OTHER_GAP", "RING_SCALE", "RING_PULSE", "RING_PERIOD", "RING_WIDTH", "family", "other_windows",
           "surround"]

OTHER_GAP = (1, 3)             # idle frames between two actions
ROTATIONS = ("cw", "ccw", "spin")  # motions of one actor of a pair that move neither centre
RING_SCALE = 1.55              # ring radius at rest / the actor's circumradius (clear of a disc's edge)
RING_PULSE = 0.02              # pulse amplitude, fraction of the shorter frame side
RING_PERIOD = (5.0, 7.0)       # frames per pulse: far faster than any class's motion changes
RING_WIDTH = 0.03              # ring thickness, fraction of the shorter frame side
RING_LUMA = (205.0, 235.0)     # grey level of the ring (brighter than actors and background)
OTHER_REGION = (0.15, 0.85)    # where an actor's centre may go in other actions (fraction of width / height)
OTHER_RADIUS = (0.06, 0.36)    # its circumradius there (fraction of the shorter side)
PLACE_TRIES = 20               # positions tried for the second actor of a colour clip
AMOUNT_TRIES = 4               # draws of an other action's amounts before its stretch is left idle
_DRAWS = 6                     # uniforms drawn per other action (5 used), whatever its class: the streams stay aligned
_EPS = 1e-9

Pose = list[np.ndarray]        # [cx, cy, radius, angle], each (T,)


def family(cdef: ClassDef, classes: Sequence[str]) -> list[str]:
    """The classes of ``classes`` whose actions may surround an action of ``cdef`` (module docstring)."""
    out = []
    for name in classes:
        c = get_class(name)
        if name != cdef.name and (c.group == cdef.group or (
                cdef.group == "interaction" and c.group == "motion" and c.motion in ROTATIONS)):
            out.append(name)
    return out


def other_windows(rng: np.random.Generator, cfg: SynthConfig,
                  window: tuple[int, int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The other actions' windows: (before the action window, latest first; after it, earliest first)."""
    shortest = max(2, int(round(cfg.window_min * cfg.num_frames)))
    before, after = [], []
    start, end = window
    while True:
        gap, length = int(rng.integers(OTHER_GAP[0], OTHER_GAP[1] + 1)), window_length(rng, cfg)
        hi = start - gap
        lo = max(hi - length, 0)
        if hi - lo < shortest:
            break
        before.append((lo, hi))
        start = lo
    while True:
        gap, length = int(rng.integers(OTHER_GAP[0], OTHER_GAP[1] + 1)), window_length(rng, cfg)
        lo = end + gap
        hi = min(lo + length, cfg.num_frames)
        if hi - lo < shortest:
            break
        after.append((lo, hi))
        end = hi
    return before, after


def _lerp(bounds: tuple[float, float], u: float) -> float:
    return bounds[0] + u * (bounds[1] - bounds[0])


def _effects(cdef: ClassDef, u: np.ndarray, length: int, cfg: SynthConfig, extras: dict[str, float]) -> list[dict]:
    """What one action of ``cdef`` changes (``x``, ``y``, ``logr``, ``angle``, pair distance ``d``),
    drawn from the uniforms ``u``; both signs for the either-way classes (with their ``direction``)."""
    shift = _lerp(SHIFT, u[0]) * cfg.size
    ratio = math.log(_lerp(GROW, u[1]))
    turn = _lerp(SPIN_SPEED, u[2]) * length  # radians over the action, as the class's own (scene.py)
    m = cdef.motion
    table = {
        "up": [{"y": -shift}], "down": [{"y": shift}], "left": [{"x": -shift}], "right": [{"x": shift}],
        "sideways": [{"x": shift, "direction": 1.0}, {"x": -shift, "direction": -1.0}],
        "grow": [{"logr": ratio}], "shrink": [{"logr": -ratio}],
        "ccw": [{"angle": turn}], "cw": [{"angle": -turn}],
        "spin": [{"angle": turn, "direction": 1.0}, {"angle": -turn, "direction": -1.0}],
    }
    if m in ("approach", "separate"):
        d = extras["pair_far"] - extras["pair_near"]
        return [{"d": -d if m == "approach" else d}]
    return table[m]


def _chain(cdef: ClassDef, cfg: SynthConfig, windows: list[tuple[int, int]], forward: bool, state: dict[str, float],
           bounds: dict[str, tuple[float, float]], pair: bool, extras: dict[str, float], r_pick: np.random.Generator,
           r_amount: np.random.Generator) -> list[tuple[OtherAction, dict]]:
    """Draw the classes of one side's actions, each feasible from the state the previous one left."""
    sign = 1.0 if forward else -1.0  # going back in time undoes an action
    names = family(cdef, cfg.classes)
    out = []
    for window in windows:
        for _ in range(AMOUNT_TRIES):
            u = r_amount.random(_DRAWS)
            choices = []
            for name in names:
                c = get_class(name)
                ok = [e for e in _effects(c, u, window[1] - window[0], cfg, extras)
                      if all(bounds[k][0] - _EPS <= state[k] + sign * v <= bounds[k][1] + _EPS
                             for k, v in e.items() if k in bounds)]
                if ok:
                    choices.append((c, ok))
            if choices:
                break
        if not choices:  # no class fits with any of the amounts tried: this stretch stays idle
            continue
        c, ok = choices[int(r_pick.integers(len(choices)))]
        effect = ok[min(int(u[3] * len(ok)), len(ok) - 1)]
        for k, v in effect.items():
            if k in state:
                state[k] += sign * v
        if "d" in effect:
            actors: tuple[int, ...] = (0, 1)
        else:
            actors = (int(u[4] < 0.5),) if pair else (0,)  # which actor of a pair turns
        out.append((OtherAction(c.name, window, actors, effect.get("direction", 1.0)), effect))
    return out


def _apply(poses: list[Pose], action: OtherAction, effect: dict, before: bool, cfg: SynthConfig,
           extras: dict[str, float]) -> None:
    """Add one action to the poses: it moves them over its window; an action before the label's window
    ends where the label's pose begins (so it starts from the pose minus its change)."""
    g = progress(cfg.num_frames, action.window) - (1.0 if before else 0.0)  # (T,)
    if "d" in effect:  # the pair's distance, along its axis: actor 0 on the minus side (scene._pair_motion)
        half = 0.5 * effect["d"] * g
        ax, ay = math.cos(extras["pair_axis"]), math.sin(extras["pair_axis"])
        for side, pose in zip((-1.0, 1.0), poses):
            pose[0] = pose[0] + side * half * ax
            pose[1] = pose[1] + side * half * ay
        return
    for i in action.actors:
        pose = poses[i]
        pose[0] = pose[0] + effect.get("x", 0.0) * g
        pose[1] = pose[1] + effect.get("y", 0.0) * g
        pose[2] = pose[2] * np.exp(effect.get("logr", 0.0) * g)
        pose[3] = pose[3] + effect.get("angle", 0.0) * g


def _state(pose: Pose, t: int) -> dict[str, float]:
    return {"x": float(pose[0][t]), "y": float(pose[1][t]), "logr": math.log(float(pose[2][t])),
            "angle": float(pose[3][t])}


def _moving_others(cdef: ClassDef, cfg: SynthConfig, window: tuple[int, int], poses: list[Pose],
                   extras: dict[str, float], rngs: Sequence[np.random.Generator]) -> list[OtherAction]:
    """Other actions by the labelled actor (motion) or the pair (interaction)."""
    r_layout, r_pick, r_amount = rngs
    before, after = other_windows(r_layout, cfg, window)
    s = cfg.size
    pair = cdef.group == "interaction"
    if pair:
        bounds = {"d": (extras["pair_near"], extras["pair_far"])}
    else:
        bounds = {"x": (OTHER_REGION[0] * cfg.width, OTHER_REGION[1] * cfg.width),
                  "y": (OTHER_REGION[0] * cfg.height, OTHER_REGION[1] * cfg.height),
                  "logr": (math.log(OTHER_RADIUS[0] * s), math.log(OTHER_RADIUS[1] * s))}
    out = []
    for windows, forward, t in ((after, True, window[1]), (before, False, window[0] - 1)):
        if not windows:
            continue
        state = _state(poses[0], t)
        if pair:
            state["d"] = float(math.hypot(poses[1][0][t] - poses[0][0][t], poses[1][1][t] - poses[0][1][t]))
        for action, effect in _chain(cdef, cfg, windows, forward, state, bounds, pair, extras, r_pick, r_amount):
            _apply(poses, action, effect, not forward, cfg, extras)
            out.append(action)
    return out


def _second_actor(cdef: ClassDef, cfg: SynthConfig, window: tuple[int, int], poses: list[Pose], looks: list[dict],
                  extras: dict[str, float], rngs: Sequence[np.random.Generator]) -> list[OtherAction]:
    """A second actor, coloured as another appearance class, waving outside the labelled window."""
    r_layout, r_pick, r_amount, r_second = rngs
    names = family(cdef, cfg.classes)
    if not names:
        return []
    other = get_class(names[int(r_pick.integers(len(names)))])
    s, n = cfg.size, cfg.num_frames
    look = appearance(r_second, COLOURS[other.colour] if other.colour else ())
    radius, angle = uniform(r_second, WAVE_RADIUS, s), float(r_second.uniform(0, 2 * math.pi))
    # Clear of the labelled actor when both wave their widest (the farthest try if none is).
    need = float(poses[0][2][0]) + extras["wave_amplitude"] + radius + WAVE_AMPLITUDE[1] * s
    tries = np.column_stack([r_second.uniform(REGION[0], REGION[1], PLACE_TRIES) * cfg.width,
                             r_second.uniform(REGION[0], REGION[1], PLACE_TRIES) * cfg.height])
    dist = np.hypot(tries[:, 0] - extras["wave_x"], tries[:, 1] - extras["wave_y"])
    ok = np.flatnonzero(dist >= need)
    cx0, cy0 = tries[ok[0] if len(ok) else int(np.argmax(dist))]
    cx, cy = np.full(n, cx0), np.full(n, cy0)
    before, after = other_windows(r_layout, cfg, window)
    out = []
    for w in after + before:
        u = r_amount.random(_DRAWS)
        axis, amp = u[0] * math.pi, _lerp(WAVE_AMPLITUDE, u[1]) * s
        # As the class's own wave, rounded to a whole number of half cycles: it ends where it began.
        cycles = max(0.5, round(2 * (w[1] - w[0]) / (_lerp(WAVE_PERIOD, u[2]) * n)) / 2)
        offset = amp * np.sin(2 * math.pi * cycles * progress(n, w))
        cx, cy = cx + offset * math.cos(axis), cy + offset * math.sin(axis)
        out.append(OtherAction(other.name, w, (1,)))
    poses.append([cx, cy, np.full(n, radius), np.full(n, angle)])
    looks.append(look)
    return sorted(out, key=lambda a: a.window)


def surround(cdef: ClassDef, cfg: SynthConfig, window: tuple[int, int], poses: Sequence[tuple[np.ndarray, ...]],
             looks: list[dict], extras: dict[str, float],
             rng: np.random.Generator) -> tuple[list[Pose], list[dict], list[OtherAction], list[Cue]]:
    """Add the other actions (``cfg.other_actions``) and the cue (``cfg.window_cue``) to a clip.

    Args:
        cdef: the clip's class.
        cfg: the benchmark's config.
        window: the labelled action's window.
        poses: (cx, cy, radius, angle) per actor of the labelled action (``scene.sample_scene``).
        looks: ``parts.appearance`` per actor (a colour clip's second actor is appended).
        extras: the labelled action's draws (pair axis and distances, wave centre and amplitude).
        rng: this module's own generator, split into independent children.

    Returns:
        (poses, looks, other actions in time order, cues).
    """
    r_layout, r_pick, r_amount, r_second, r_cue = rng.spawn(5)
    out_poses = [list(p) for p in poses]
    looks = list(looks)
    others: list[OtherAction] = []
    performers = list(range(len(out_poses)))  # who performs the labelled action: the actor or the pair
    if cfg.other_actions:
        if cdef.group == "appearance":
            others = _second_actor(cdef, cfg, window, out_poses, looks, extras, (r_layout, r_pick, r_amount, r_second))
        else:
            others = sorted(_moving_others(cdef, cfg, window, out_poses, extras, (r_layout, r_pick, r_amount)),
                            key=lambda a: a.window)
    cues = []
    if cfg.window_cue:
        luma, period = uniform(r_cue, RING_LUMA), uniform(r_cue, RING_PERIOD)
        phase = float(r_cue.uniform(0, 2 * math.pi))
        cues = [Cue(actor=i, window=window, luma=luma, scale=RING_SCALE, amplitude=RING_PULSE * cfg.size,
                    period=period, phase=phase, width=RING_WIDTH * cfg.size) for i in performers]
    return out_poses, looks, others, cues
