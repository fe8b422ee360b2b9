"""Configuration of the synthetic action benchmark (docs/design.md, The synthetic benchmark): sizes, class set, difficulty.

Lengths that scale with the picture (object sizes, displacements) are fractions of the shorter
frame side, so a preset keeps its difficulty when only the frame size is changed. Named presets:
``demo`` (the default; sized for ``tstam demo`` on 2 CPU cores), ``localized`` (short action
windows in clips whose idle part moves too: where a model must find the action in time),
``untrimmed`` (short action windows surrounded by other classes' actions, the labelled one marked
by a cue: see ``untrimmed.py``) and ``tiny`` (tests).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tstam.config import ConfigError, check_choice, check_range, from_dict, short_repr, to_dict

from .classes import CATALOG, DEMO_CLASSES, TINY_CLASSES

__all__ = ["SynthConfig", "PRESETS", "make_config", "MAX_CLIP_PIXELS"]

# A clip is rendered in memory as float32 RGB (12 bytes a pixel, a few copies at once): its
# height x width x num_frames is bounded to 2**24 pixels (about 200 MB a copy); the demo's is 0.4 M.
MAX_CLIP_PIXELS = 2**24
MAX_SIDE = 2048           # frame height and width
MAX_FRAMES = 10_000       # frames per clip
MAX_CLIPS = 10_000        # clips per class and split


@dataclass
class SynthConfig:
    """Everything that defines a generated benchmark (together with the seed)."""

    # --- sizes ---
    height: int = 112                 # frame height in pixels (even: H.264 needs it)
    width: int = 112                  # frame width in pixels (even)
    num_frames: int = 32              # frames per clip
    fps: float = 25.0                 # frame rate written into the video files
    container: Literal["avi", "mp4"] = "avi"  # avi: MPEG-4 Part 2 / XVID as UCF101; mp4: H.264
    quality: int = 4                  # encoder quantiser (2 best .. 31 worst; x264 CRF = 4x this)
    # --- split sizes and classes ---
    train_per_class: int = 24         # training clips per class
    test_per_class: int = 10          # test clips per class (generated from a different seed)
    clips_per_group: int = 4          # clips per UCF101-style group g01, g02, ... (test groups first)
    classes: list[str] = field(default_factory=lambda: list(DEMO_CLASSES))  # names from CATALOG
    # --- temporal structure ---
    window_min: float = 0.3           # shortest action window, as a fraction of the clip
    window_max: float = 0.6           # longest action window, as a fraction of the clip
    idle_jitter: float = 0.3          # px; slow wobble of every actor in every frame (all classes)
    idle_rotation: float = 0.0        # radians; amplitude of a slow turning wobble of every actor (0: none)
    other_actions: bool = False       # fill the clip outside the window with other classes' actions (untrimmed.py)
    window_cue: bool = False          # mark the labelled action with a pulsing ring around its actor(s) (untrimmed.py)
    # --- difficulty ---
    distractors_max: int = 2          # 0..this many small distractor discs per clip, drifting
    distractor_speed: float = 1.2     # px per frame, fastest distractor
    background_contrast: float = 14.0  # std of the background texture's grey level (0: flat)
    background_pan: float = 0.4       # px per frame, fastest background pan (0: static camera)
    noise_std: float = 3.0            # std of the per-pixel Gaussian noise added to every frame

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value and what would be valid."""
        check_choice("container", self.container, ("avi", "mp4"))
        for name in ("height", "width"):
            v = getattr(self, name)
            if v < 32 or v % 2 or v > MAX_SIDE:
                raise ConfigError(f"{name}={short_repr(v)} is not valid; expected an even number from 32 to {MAX_SIDE}")
        check_range("num_frames", self.num_frames, 4, MAX_FRAMES)
        pixels = self.height * self.width * self.num_frames
        if pixels > MAX_CLIP_PIXELS:
            raise ConfigError(f"height x width x num_frames = {self.height} x {self.width} x {self.num_frames} = "
                              f"{pixels:,} pixels is more than a clip may have ({MAX_CLIP_PIXELS:,}: it is rendered in "
                              "memory); make the frames smaller or fewer")
        check_range("fps", self.fps, 1, 1000, note="the frame rate written into the videos; UCF101's 25")
        if not 2 <= self.quality <= 31:
            raise ConfigError(f"quality={self.quality} is not valid; expected 2 .. 31")
        for name in ("train_per_class", "test_per_class"):
            check_range(name, getattr(self, name), 0, MAX_CLIPS)
        if self.train_per_class + self.test_per_class == 0:
            raise ConfigError("train_per_class + test_per_class is 0; expected at least one clip")
        check_range("clips_per_group", self.clips_per_group, 1, MAX_CLIPS)
        if not self.classes:
            raise ConfigError(f"classes is empty; expected names from {sorted(CATALOG)}")
        for name in self.classes:
            check_choice("classes[]", name, sorted(CATALOG))
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes={self.classes} lists a class twice")
        if not 0.05 <= self.window_min <= self.window_max <= 1.0:
            raise ConfigError(
                f"window_min={self.window_min}, window_max={self.window_max} are not valid; "
                "expected 0.05 <= window_min <= window_max <= 1"
            )
        # lengths in px: at most the shorter frame side (a wobble or a step across the whole frame)
        for name in ("idle_jitter", "distractor_speed"):
            check_range(name, getattr(self, name), 0, self.size, note=f"px; at most the shorter frame side, {self.size}")
        # the background texture is rendered with a margin of the whole pan: the background may travel at
        # most the shorter frame side over the clip
        check_range("background_pan", self.background_pan, 0, self.size / self.num_frames,
                    note=f"px per frame; over the {self.num_frames} frames the background may travel at most "
                         f"the shorter frame side, {self.size} px")
        check_range("idle_rotation", self.idle_rotation, 0, math.pi, note="radians")
        check_range("background_contrast", self.background_contrast, 0, 128, note="grey levels")
        check_range("noise_std", self.noise_std, 0, 255, note="grey levels")
        check_range("distractors_max", self.distractors_max, 0, 32)

    @property
    def size(self) -> int:
        """The shorter frame side; object sizes and displacements are fractions of it."""
        return min(self.height, self.width)


PRESETS: dict[str, dict[str, Any]] = {
    # 12 classes x (24 + 10) clips of 32 frames at 112x112: generation takes well under a minute.
    "demo": {},
    # The demo's classes and sizes with the action in 10-25 % of 48 frames (5-12 frames), and an idle
    # part that moves without class evidence: every actor wobbles (+-2.5 px, +-0.2 rad, at 0.03-0.08
    # cycles per frame: up to ~1.3 px and 0.1 rad per frame, against 2.3-9 px or 0.18-0.26 rad per
    # frame in the action) and up to 3 distractors drift at up to 2 px per frame. Frozen at generator
    # version 3 before any model was trained on it: change it and its published results no longer apply.
    "localized": {
        "num_frames": 48, "window_min": 0.10, "window_max": 0.25, "idle_jitter": 2.5, "idle_rotation": 0.2,
        "distractors_max": 3, "distractor_speed": 2.0,
    },
    # The demo's classes and sizes with the labelled action in 10-25 % of 48 frames and the rest of the
    # clip filled with other classes' actions of the same family (the same actor, or a second one for
    # the colour classes), each as long as an action window, 1-3 idle frames apart; the labelled
    # action's actor(s) wear a pulsing grey ring during the window, the cue that tells it from the
    # others (untrimmed.py). Frozen at generator version 3 before any model was trained on it.
    "untrimmed": {
        "num_frames": 48, "window_min": 0.10, "window_max": 0.25, "other_actions": True, "window_cue": True,
    },
    # 4 classes x (3 + 2) clips of 16 frames at 64x64, for the test suite: about a second.
    "tiny": {
        "height": 64, "width": 64, "num_frames": 16, "train_per_class": 3, "test_per_class": 2,
        "classes": list(TINY_CLASSES), "distractors_max": 1,
    },
}


def make_config(preset: str = "demo", overrides: dict[str, Any] | None = None) -> SynthConfig:
    """A preset's config with ``overrides`` (a flat dict of field -> value) applied and checked.

    Raises:
        ConfigError: unknown preset, unknown key or bad value (the message lists valid ones).
    """
    check_choice("preset", preset, sorted(PRESETS))
    data = to_dict(SynthConfig())
    data.update(PRESETS[preset])
    data.update(overrides or {})
    return from_dict(SynthConfig, data)


def config_fields() -> list[str]:
    """Names of the SynthConfig fields (for help texts)."""
    return [f.name for f in dataclasses.fields(SynthConfig)]
