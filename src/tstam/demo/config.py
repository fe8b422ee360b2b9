"""``DemoConfig``: what ``tstam demo`` generates, extracts, trains and tests.

The per-stream training recipe ships as YAML in this package (``demo/recipe_rgb.yaml``,
``demo/recipe_flow.yaml``, the paper's model; not a ``--config`` preset, as it is incomplete on its
own: the ``scratch_*`` presets are the same recipe for any data); paths, sizes and budgets are filled in by the
pipeline, and ``DEMO_OPTIONS`` adds the model options beyond the paper that the demo uses
(``paper=True`` leaves them out and writes beside the default run: ``runs/<stream>_paper`` for a
stream with options (the others are shared), ``scores/*_paper.npz``, ``report_paper/``). ``quick`` is the same path end to end on a small
benchmark of the generator's ``tiny`` preset (test suite).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tstam.config import ConfigError, check_choice, check_literals, check_range
from tstam.data.config import MAX_FRAME_SIDE, MAX_TEST_FRAMES
from tstam.engine.config import SEED_RANGE
from tstam.errors import InputError
from tstam.flow import FlowAlgorithm
from tstam.flow.config import MAX_FLOW_BOUND
from tstam.models.fusion import DEFAULT_FUSION_WEIGHTS, check_weights
from tstam.models.tstam import MAX_INPUT_SIZE, MAX_NUM_SEGMENTS, MAX_WIDTH_MULT

__all__ = ["DemoConfig", "DEMO_OPTIONS", "DEMO_WEIGHTS", "recipe_path", "demo_threads", "stream_config", "synth_config"]

# What the demo changes from the paper, chosen on `tstam ablate --out ablate-demo` (benchmark seed 0,
# training seeds 0-2) before the demo ran on the seeds it is reported on (docs/demo.md): per stream, the
# model options beyond the paper (tstam.models.ModelConfig keys): the flow stream's alpha pooling, the
# option whose alpha put more than the uniform share in the action window with the best fused top-1;
# and the fusion weights (the best mean of the five tried; the paper's 1:3 is not better here).
DEMO_OPTIONS: dict[str, tuple[str, ...]] = {"rgb": (), "flow": ("model.frame_pool=alpha",)}
DEMO_WEIGHTS = (1.0, 1.0)


@dataclass
class DemoConfig:
    """Everything ``tstam demo`` does, with the defaults sized for 2 CPU cores and <= 10 minutes."""

    out: str = "demo"                       # everything goes here: bench/, frames/, runs/, scores/, report/
    seed: int = 0                           # benchmark seed (test clips come from a seed derived from it) and run seed
    quick: bool = False                     # small benchmark, 6 short epochs: the whole path in well under a minute
    synth_preset: str = "demo"              # tstam.synthetic preset (quick: "tiny")
    synth_overrides: dict[str, Any] = field(default_factory=dict)  # SynthConfig fields changed from the preset
    frame_size: int = 80                    # frames and flow are extracted at this square size (flow is cheaper)
    flow: FlowAlgorithm = "dis"             # DIS: 23x faster than TV-L1 (benchmarks/bench_flow.py)
    flow_bound: float = 4.0                 # px; flow clipped to +-this, then 0-255 (TSN's 20 is for 340x256 frames)
    input_size: int = 64                    # network crop (multiple of 32)
    width_mult: float = 0.25                # backbone width (1.0 = BN-Inception)
    num_segments: int = 4                   # N segments in training (the paper's best is 6; 4 fits the budget)
    epochs: int = 0                         # epochs per stream; 0 -> the recipe's (RGB 24, flow 60: motion is learnt slower)
    batch_size: int = 16                    # clips per batch
    lr: float = 0.0                         # SGD learning rate; 0 -> the recipe's (RGB 0.005, flow 0.01)
    test_frames: int = 25                   # snippets per test video (paper 4.2)
    test_crops: int = 1                     # 1 (centre) for time; the paper uses 10
    weights: tuple[float, float] | None = None  # fusion RGB:flow; None -> DEMO_WEIGHTS, or the paper's 1:3 with paper
    attention_clips: int = 4                # test clips drawn with their attention in the report
    workers: int = 0                        # loader worker processes (0: in the training process; decoding is cheap here)
    extract_workers: int = 0                # extraction processes; 0 -> one per core
    threads: int = 0                        # torch threads; 0 -> one per core, less one per loader worker
    paper: bool = False                     # the paper's model: no DEMO_OPTIONS (mean frame pooling, 2*sigmoid SE gate), fusion 1:3

    def __post_init__(self) -> None:
        check_literals(self, "demo")
        # the bounds of the configs these numbers go into (ModelConfig, DataConfig, FlowConfig), checked
        # here already so that a bad value stops the demo before it generates and extracts anything
        check_range("seed", self.seed, *SEED_RANGE, hi_open=True)
        if self.input_size < 32 or self.input_size % 32 or self.input_size > MAX_INPUT_SIZE:
            raise ConfigError(f"input_size={self.input_size} is not valid; expected a multiple of 32 from 32 to "
                              f"{MAX_INPUT_SIZE}")
        if self.frame_size < self.input_size:
            raise ConfigError(f"frame_size={self.frame_size} is smaller than input_size={self.input_size}")
        check_range("frame_size", self.frame_size, self.input_size, MAX_FRAME_SIDE)
        check_range("flow_bound", self.flow_bound, 0, MAX_FLOW_BOUND, lo_open=True, note="px")
        check_range("width_mult", self.width_mult, 0, MAX_WIDTH_MULT, lo_open=True)
        check_choice("test_crops", self.test_crops, (1, 3, 10))
        if self.epochs < 0 or self.batch_size < 1 or self.num_segments < 1:
            raise ConfigError("epochs must be >= 0 (0: the recipe's), batch_size and num_segments >= 1")
        check_range("num_segments", self.num_segments, 1, MAX_NUM_SEGMENTS)
        check_range("epochs", self.epochs, 0, 100_000, note="0: the recipe's")
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("lr", self.lr, 0, note="0: the recipe's")
        check_range("test_frames", self.test_frames, 1, MAX_TEST_FRAMES)
        for name in ("attention_clips", "workers", "extract_workers", "threads"):
            check_range(name, getattr(self, name), 0, 256)
        if self.weights is not None:
            try:
                check_weights(self.weights, 2)
            except InputError as e:
                raise ConfigError(f"weights: {e}") from None

    @classmethod
    def make(cls, *, out: str = "demo", seed: int = 0, quick: bool = False, **kw: Any) -> DemoConfig:
        """The default demo, or with ``quick`` the test-suite sized one (tiny preset, 6 short epochs)."""
        if quick:  # 4 classes x (12 + 4) clips at 64x64: learns above chance in 6 epochs (tests/test_demo.py)
            base = dict(synth_preset="tiny", synth_overrides={"train_per_class": 12, "test_per_class": 4},
                        frame_size=64, input_size=64, num_segments=3, epochs=6, batch_size=8, test_frames=5,
                        attention_clips=1, workers=0, extract_workers=1)
            base.update(kw)
            kw = base
        return cls(out=out, seed=seed, quick=quick, **kw)

    @property
    def root(self) -> Path:
        return Path(self.out)

    @property
    def fusion_weights(self) -> tuple[float, float]:
        """``weights``, or the demo's (``DEMO_WEIGHTS``), or with ``paper`` the paper's RGB:flow = 1:3."""
        if self.weights is not None:
            return self.weights
        return (DEFAULT_FUSION_WEIGHTS["rgb"], DEFAULT_FUSION_WEIGHTS["flow"]) if self.paper else DEMO_WEIGHTS

    @property
    def suffix(self) -> str:
        """``"_paper"`` for the paper's model (its runs, scores and report sit beside the default's)."""
        return "_paper" if self.paper else ""


def recipe_path(stream: str) -> Path:
    """The shipped YAML recipe of one stream (``recipe_rgb.yaml`` / ``recipe_flow.yaml`` here)."""
    check_choice("stream", stream, ("rgb", "flow"))
    return Path(str(resources.files("tstam") / "demo" / f"recipe_{stream}.yaml"))


def demo_threads(cfg: DemoConfig) -> int:
    """Torch threads for training and testing: ``cfg.threads`` or cores - workers (at least 1).

    With a loader worker beside it, 2 threads on 2 cores oversubscribe them, and OpenMP's waiting
    threads then slow a step down many times over (measured on a loaded 2-core machine)."""
    if cfg.threads > 0:
        return cfg.threads
    return max(1, (os.cpu_count() or 2) - cfg.workers)


def synth_config(cfg: DemoConfig) -> Any:
    """The ``SynthConfig`` of the demo's benchmark (its preset with ``synth_overrides``)."""
    from tstam.synthetic import make_config

    return make_config(cfg.synth_preset, dict(cfg.synth_overrides))


def stream_config(cfg: DemoConfig, stream: str) -> Any:
    """The ``TrainConfig`` of one stream: the shipped recipe plus the demo's sizes and paths, and
    unless ``cfg.paper`` the stream's ``DEMO_OPTIONS``."""
    from tstam.config import load_yaml
    from tstam.engine.config import load_train_config

    e = cfg.epochs or int(load_yaml(recipe_path(stream))["optim"]["epochs"])
    steps = sorted({max(1, round(0.7 * e)), max(1, round(0.9 * e))}) if e > 2 else [e]
    fs = cfg.frame_size
    overrides = [
        f"model.num_classes={len(synth_config(cfg).classes)}", f"model.input_size={cfg.input_size}",
        f"model.width_mult={cfg.width_mult}", f"model.num_segments={cfg.num_segments}",
        f"annotations.path={cfg.root / 'bench' / 'splits'}", f"data.root={cfg.root / 'frames'}",
        f"data.resize=[{fs},{fs}]", f"data.batch_size={cfg.batch_size}", f"data.workers={cfg.workers}",
        f"data.test_frames={cfg.test_frames}", f"data.test_crops={cfg.test_crops}",
        *([f"optim.lr={cfg.lr}"] if cfg.lr else []), f"optim.epochs={e}", f"optim.lr_steps={steps}",
        f"run.out_dir={cfg.root / 'runs' / (stream + (cfg.suffix if DEMO_OPTIONS[stream] else ''))}",
        f"run.seed={cfg.seed}", "run.device=cpu",
        "annotations.val_fraction=0", "run.eval_every=0",  # no hold-out: every clip trains
        *([] if cfg.paper else DEMO_OPTIONS[stream]),
    ]
    return load_train_config(recipe_path(stream), overrides)
