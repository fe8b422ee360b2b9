"""The pieces a synthetic scene is made of: the benchmark's size constants (fractions of the frame
side), the per-frame records of actors, distractors, background, other actions and cues, and the
draws shared by ``scene.py`` (one clip's labelled action) and ``untrimmed.py`` (the other classes'
actions around it). Kept apart so that both can use them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SynthConfig

__all__ = ["Actor", "Distractor", "Background", "OtherAction", "Cue", "window_length", "progress", "uniform",
           "appearance"]

SHAPES = ("square", "triangle", "hexagon", "disc")

# Lengths are fractions of the shorter frame side, angles radians, grey levels 0-255.
REGION = (0.2, 0.8)            # where single-actor centres move (fraction of width / height)
ACTOR_RADIUS = (0.08, 0.10)    # circumradius of a motion-group actor at its small size
GROW = (2.4, 3.0)              # size ratio of a Grow / Shrink (other classes: the same marginal)
SHIFT = (0.25, 0.40)           # displacement of a Move* over its window
SPIN_SPEED = (0.18, 0.26)      # radians per frame of a Spin* (< half the stripe period at the rim)
PAIR_MID = (0.44, 0.56)        # midpoint of the two interaction actors
PAIR_NEAR = (0.22, 0.27)       # their centre distance when close
PAIR_FAR = (0.60, 0.68)        # their centre distance when apart
PAIR_RADIUS = (0.08, 0.10)     # circumradius of each interaction actor
WAVE_REGION = (0.25, 0.75)     # where oscillating actors are centred
WAVE_RADIUS = (0.11, 0.15)     # circumradius of an oscillating (appearance-group) actor
WAVE_AMPLITUDE = (0.04, 0.07)  # oscillation amplitude
WAVE_PERIOD = (0.3, 0.45)      # oscillation period, fraction of the clip length
ACTOR_LUMA = (125.0, 150.0)    # mean grey level of every actor (chroma added at equal luma)
STRIPE_AMP = (22.0, 32.0)      # grey-level amplitude of the actor's stripes (shows rotation)
STRIPE_PERIOD = (0.6, 0.9)     # stripe period as a fraction of the radius (scales with it)
CHROMA = 45.0                  # chroma radius of the appearance colours (no RGB clipping)
JITTER_FREQ = (0.03, 0.08)     # cycles per frame of the idle wobble
DISTRACTOR_RADIUS = (0.03, 0.045)
DISTRACTOR_LUMA = (90.0, 190.0)
DISTRACTOR_CHROMA = 40.0       # at most; hue uniform
BACKGROUND_LUMA = (55.0, 85.0)  # mean grey level of the background
BACKGROUND_TINT = 12.0         # at most; chroma of the background's tint, hue uniform


@dataclass
class Actor:
    """A shape with grey stripes (and for the appearance group, a chroma pattern)."""

    shape: str              # one of SHAPES
    luma: float             # mean grey level
    stripe_amp: float       # grey-level amplitude of the stripes
    stripe_period: float    # stripe period, fraction of the radius
    hues: tuple[float, ...]  # chroma hues in degrees: () grey, (h,) solid, (h1, h2) stripes
    cx: np.ndarray          # (T,) centre x in pixels
    cy: np.ndarray          # (T,) centre y in pixels
    radius: np.ndarray      # (T,) circumradius in pixels
    angle: np.ndarray       # (T,) orientation in radians (counter-clockwise on screen)


@dataclass
class Distractor:
    """A small coloured disc drifting at constant speed, bouncing off the frame edges."""

    radius: float
    rgb: tuple[float, float, float]
    cx: np.ndarray          # (T,)
    cy: np.ndarray          # (T,)


@dataclass
class Background:
    """A smooth random grey texture with a slight tint, panning at constant velocity."""

    seed: int               # seeds the texture (render.py)
    luma: float             # mean grey level
    contrast: float         # std of the grey level
    tint: tuple[float, float]  # (U, V) chroma added everywhere
    pan: tuple[float, float]   # (vx, vy) pixels per frame


@dataclass(frozen=True)
class OtherAction:
    """Another class's action in a clip of the ``other_actions`` benchmark (``untrimmed.py``)."""

    class_name: str
    window: tuple[int, int]  # [start, end) frames
    actors: tuple[int, ...]  # indices into Scene.actors of who performs it
    direction: float = 1.0   # the sign the either-way classes drew (MoveSideways: +1 right; Spin: +1 counter-clockwise)


@dataclass
class Cue:
    """The pulsing grey ring that marks the labelled action (``window_cue``): drawn around an actor
    during the window, radius ``scale * actor radius + amplitude * sin(2 pi t / period + phase)``."""

    actor: int              # index into Scene.actors
    window: tuple[int, int]  # [start, end) frames it is drawn in
    luma: float             # grey level
    scale: float            # ring radius / the actor's circumradius, at rest
    amplitude: float        # pixels; the pulse
    period: float           # frames per pulse
    phase: float            # radians
    width: float            # pixels; thickness of the ring



def window_length(rng: np.random.Generator, cfg: SynthConfig) -> int:
    """A random action length in frames: window_min..window_max of the clip, at least 2."""
    length = int(round(rng.uniform(cfg.window_min, cfg.window_max) * cfg.num_frames))
    return min(max(length, 2), cfg.num_frames)


def progress(num_frames: int, window: tuple[int, int]) -> np.ndarray:
    """(T,) 0 before the window, ``(t - start + 0.5) / length`` inside it, 1 after it."""
    start, end = window
    t = np.arange(num_frames, dtype=np.float64)
    return np.clip((t - start + 0.5) / (end - start), 0.0, 1.0)


def uniform(rng: np.random.Generator, bounds: tuple[float, float], scale: float = 1.0) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) * scale


def appearance(rng: np.random.Generator, hues: tuple[float, ...]) -> dict:
    return dict(
        shape=SHAPES[int(rng.integers(0, len(SHAPES)))], luma=uniform(rng, ACTOR_LUMA),
        stripe_amp=uniform(rng, STRIPE_AMP), stripe_period=uniform(rng, STRIPE_PERIOD), hues=hues,
    )
