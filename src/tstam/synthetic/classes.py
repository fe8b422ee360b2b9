"""The classes of the synthetic action benchmark (docs/design.md, The synthetic benchmark).

Three groups, each built so that one stream cannot tell its classes apart:

- ``motion``: one grey, striped actor (square, triangle, hexagon or disc) that translates,
  spins or scales. All classes of the group draw the actor's appearance from the same
  distribution, and every per-frame quantity that is not the class's motion (position, size,
  angle) is drawn from the same marginal that the motion produces (see ``scene.py``), so a single
  frame does not reveal the class: the RGB stream is at chance inside the group.
- ``interaction``: two grey actors that approach or separate along a random axis. The two
  classes are time reversals of each other, so their per-frame distributions are equal.
- ``appearance``: one actor that oscillates along a random axis (the same motion distribution for
  every class) and whose colour is the class. Colours are *equiluminant*: every class has the
  same grey level (BT.601 luma, what ``cv2.COLOR_RGB2GRAY`` computes), and only the chroma
  differs (solid hue or two-hue stripes), so grey frames, hence optical flow, are identically
  distributed: the flow stream is at chance inside the group. Shape is not used as an appearance
  cue on purpose: a moving silhouette is visible in the flow field.

RGB separates the groups (grey vs coloured actors, one vs two actors) and flow separates them
too (translation/rotation/scaling vs oscillation), so the fused two-stream model can be right on
every class while each stream alone is at chance on one group.

``mirror`` names the class a clip becomes under a horizontal flip (the standard TSN
augmentation): MoveLeft/MoveRight and the signed spins swap, so the default class sets use only
flip-invariant classes (MoveSideways, Spin) and train correctly with flip augmentation on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ClassDef", "CATALOG", "DEMO_CLASSES", "TINY_CLASSES", "COLOURS", "get_class"]

Group = Literal["motion", "interaction", "appearance"]

# Chroma hues (degrees in the (U, V) = (Cb, Cr) plane) of the appearance classes; one hue is a
# solid colour, two hues are stripes of both. All are drawn at the same luma (render.py).
COLOURS: dict[str, tuple[float, ...]] = {
    "Red": (100.0,),
    "Yellow": (160.0,),
    "Green": (235.0,),
    "Blue": (350.0,),
    "Purple": (45.0,),
    "RedGreenStripes": (100.0, 235.0),
    "BlueYellowStripes": (350.0, 160.0),
}


@dataclass(frozen=True)
class ClassDef:
    """One class: its group, what the actor does, and what it looks like."""

    name: str              # UCF101-style CamelCase name (also the folder and file name part)
    group: Group           # which stream should be able to tell it apart (see module docstring)
    motion: str            # up|down|left|right|sideways|cw|ccw|spin|grow|shrink|approach|separate|oscillate
    colour: str | None     # key of COLOURS for the appearance group; None: grey actors
    mirror: str            # the class a horizontally flipped clip belongs to (itself: flip-safe)


def _defs() -> list[ClassDef]:
    m = "motion"
    out = [
        ClassDef("MoveUp", m, "up", None, "MoveUp"),
        ClassDef("MoveDown", m, "down", None, "MoveDown"),
        ClassDef("MoveLeft", m, "left", None, "MoveRight"),
        ClassDef("MoveRight", m, "right", None, "MoveLeft"),
        ClassDef("MoveSideways", m, "sideways", None, "MoveSideways"),
        ClassDef("SpinClockwise", m, "cw", None, "SpinCounterclockwise"),
        ClassDef("SpinCounterclockwise", m, "ccw", None, "SpinClockwise"),
        ClassDef("Spin", m, "spin", None, "Spin"),
        ClassDef("Grow", m, "grow", None, "Grow"),
        ClassDef("Shrink", m, "shrink", None, "Shrink"),
        ClassDef("Approach", "interaction", "approach", None, "Approach"),
        ClassDef("Separate", "interaction", "separate", None, "Separate"),
    ]
    for colour in COLOURS:
        name = "Wave" + colour
        out.append(ClassDef(name, "appearance", "oscillate", colour, name))
    return out


CATALOG: dict[str, ClassDef] = {d.name: d for d in _defs()}

# 12 flip-invariant classes: 6 motion-only, 2 interaction, 4 appearance-only.
DEMO_CLASSES: tuple[str, ...] = (
    "MoveUp", "MoveDown", "MoveSideways", "Spin", "Grow", "Shrink",
    "Approach", "Separate",
    "WaveRed", "WaveGreen", "WaveBlue", "WaveRedGreenStripes",
)
# 2 motion-only and 2 appearance-only classes, for the test suite.
TINY_CLASSES: tuple[str, ...] = ("MoveUp", "MoveDown", "WaveRed", "WaveBlue")


def get_class(name: str) -> ClassDef:
    """The catalog entry for ``name``; ValueError listing the valid names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown synthetic class {name!r}; expected one of {sorted(CATALOG)}") from None
