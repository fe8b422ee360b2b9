"""The embedded synthetic action benchmark (docs/design.md, The synthetic benchmark).

Classes defined by motion only, by appearance only, and by two-actor interaction, with the action
in a random window of each clip, distractors, a textured panning background and noise; written
as encoded videos with UCF101-format split files. See ``classes.py`` for what makes each group
invisible to one stream, ``scene.py`` for the sampling, ``untrimmed.py`` for the other classes'
actions around the labelled one and the cue that marks it, ``generate.py`` for seeds and reuse.

    from tstam.synthetic import make_config, generate, load_annotations
    splits = generate("bench", make_config("demo"), seed=0)
"""
from .classes import CATALOG, DEMO_CLASSES, TINY_CLASSES, ClassDef, get_class
from .config import PRESETS, SynthConfig, make_config
from .generate import GENERATOR_VERSION, clip_rng, generate, make_clip, split_seed
from .layout import ClipAnnotation, OtherActionAnnotation, load_annotations

__all__ = [
    "SynthConfig", "PRESETS", "make_config", "generate", "load_annotations", "ClipAnnotation", "OtherActionAnnotation",
    "ClassDef", "CATALOG", "DEMO_CLASSES", "TINY_CLASSES", "get_class", "make_clip", "clip_rng",
    "split_seed", "GENERATOR_VERSION",
]
