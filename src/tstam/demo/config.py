"""``DemoConfig``: what ``tstam demo`` generates, extracts, trains and tests (issue 6).

The per-stream training recipe ships as YAML beside the other presets (``configs/demo_rgb.yaml``,
``configs/demo_flow.yaml``); paths, sizes and budgets are filled in by the pipeline. ``quick`` is
the same path end to end on the generator's ``tiny`` preset with one short epoch (test suite).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tstam.config import ConfigError, check_choice, check_literals
from tstam.flow import FlowAlgorithm
from tstam.models.fusion import DEFAULT_FUSION_WEIGHTS

__all__ = ["DemoConfig", "recipe_path", "demo_threads"]


@dataclass
class DemoConfig:
    """Everything ``tstam demo`` does, with the defaults sized for 2 CPU cores and <= 10 minutes."""

    out: str = "demo"                       # everything goes here: bench/, frames/, runs/, scores/, report/
    seed: int = 0                           # benchmark seed (test clips come from a seed derived from it) and run seed
    quick: bool = False                     # tiny benchmark and a few steps: the whole path in well under a minute
    synth_preset: str = "demo"              # tstam.synthetic preset (quick: "tiny")
    synth_overrides: dict[str, Any] = field(default_factory=dict)  # SynthConfig fields changed from the preset
    frame_size: int = 80                    # frames and flow are extracted at this square size (flow is cheaper)
    flow: FlowAlgorithm = "dis"             # DIS: ~17x faster than TV-L1 here (README)
    flow_bound: float = 4.0                 # px; flow clipped to +-this, then 0-255 (TSN's 20 is for 340x256 frames)
    input_size: int = 64                    # network crop (multiple of 32)
    width_mult: float = 0.25                # backbone width (1.0 = BN-Inception)
    num_segments: int = 4                   # N segments in training (the paper's best is 6; 4 fits the budget)
    epochs: int = 0                         # epochs per stream; 0 -> the recipe's (RGB 8, flow 36: motion is learnt slower)
    batch_size: int = 16                    # clips per batch
    lr: float = 0.0                         # SGD learning rate; 0 -> the recipe's (RGB 0.005, flow 0.01)
    test_frames: int = 25                   # snippets per test video (paper 4.2)
    test_crops: int = 1                     # 1 (centre) for time; the paper uses 10
    weights: tuple[float, float] = (DEFAULT_FUSION_WEIGHTS["rgb"], DEFAULT_FUSION_WEIGHTS["flow"])  # fusion RGB:flow
    attention_clips: int = 4                # test clips drawn with their attention in the report
    workers: int = 0                        # loader worker processes (0: in the training process; decoding is cheap here)
    extract_workers: int = 0                # extraction processes; 0 -> one per core
    threads: int = 0                        # torch threads; 0 -> one per core, less one per loader worker

    def __post_init__(self) -> None:
        check_literals(self, "demo")
        if self.input_size < 32 or self.input_size % 32:
            raise ConfigError(f"input_size={self.input_size} is not valid; expected a multiple of 32")
        if self.frame_size < self.input_size:
            raise ConfigError(f"frame_size={self.frame_size} is smaller than input_size={self.input_size}")
        if not self.flow_bound > 0:
            raise ConfigError(f"flow_bound={self.flow_bound} is not valid; expected > 0")
        check_choice("test_crops", self.test_crops, (1, 3, 10))
        if self.epochs < 0 or self.batch_size < 1 or self.num_segments < 1:
            raise ConfigError("epochs must be >= 0 (0: the recipe's), batch_size and num_segments >= 1")

    @classmethod
    def make(cls, *, out: str = "demo", seed: int = 0, quick: bool = False, **kw: Any) -> "DemoConfig":
        """The default demo, or with ``quick`` the test-suite sized one (tiny preset, 1 epoch)."""
        if quick:
            base = dict(synth_preset="tiny", frame_size=40, input_size=32, num_segments=3, epochs=1,
                        batch_size=4, test_frames=5, attention_clips=1, workers=0, extract_workers=1)
            base.update(kw)
            kw = base
        return cls(out=out, seed=seed, quick=quick, **kw)

    @property
    def root(self) -> Path:
        return Path(self.out)


def recipe_path(stream: str) -> Path:
    """The shipped YAML recipe of one stream (``demo_rgb`` / ``demo_flow``)."""
    check_choice("stream", stream, ("rgb", "flow"))
    return Path(str(resources.files("tstam") / "configs" / f"demo_{stream}.yaml"))


def demo_threads(cfg: DemoConfig) -> int:
    """Torch threads for training and testing: ``cfg.threads`` or cores - workers (at least 1).

    With a loader worker beside it, 2 threads on 2 cores oversubscribe them, and OpenMP's waiting
    threads then slow a step down many times over (measured on a loaded 2-core machine)."""
    if cfg.threads > 0:
        return cfg.threads
    return max(1, (os.cpu_count() or 2) - cfg.workers)
