"""The ablation grid: which variants are trained, with which budget, where their runs live.

Groups (paper 4.3.1-4.3.4, the baselines, and the options beyond the paper): each setting is a
list of ``TrainConfig`` overrides on top of the demo's recipe for one stream. Groups marked
``short`` train ``AblateConfig.short_epochs`` epochs (the heads, SE, segments and design grids:
enough to rank variants, not to converge); the others ``ABLATE_EPOCHS`` (flow 36, RGB 8: the
demo's schedule when the tables were measured). Each group compares against the reference trained
with the same budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tstam.config import ConfigError, check_choice, check_range
from tstam.data.config import MAX_TEST_FRAMES
from tstam.engine.config import SEED_RANGE

__all__ = ["Setting", "Group", "GROUPS", "REFERENCE", "AUX_WEIGHT", "AblateConfig", "grid", "demo_config",
           "train_config"]

AUX_WEIGHT = 1.0  # lambda of the auxiliary temporal loss in the grid: fixed a priori, not tuned


@dataclass(frozen=True)
class Setting:
    """One trained variant: a name, the ``TrainConfig`` overrides, and the stream."""

    name: str                       # e.g. "heads=2"
    overrides: tuple[str, ...]      # key=value on top of the reference
    stream: str = "flow"


@dataclass(frozen=True)
class Group:
    """Settings trained with the same budget and compared with that budget's reference."""

    settings: tuple[Setting, ...]
    short: bool = False             # AblateConfig.short_epochs instead of the demo's budget


REFERENCE = Setting("T-STAM (reference)", ())
ALPHA_POOL = ("model.frame_pool=alpha",)
AUX = (f"model.temporal_aux_weight={AUX_WEIGHT}",)
GROUPS: dict[str, Group] = {
    "baselines": Group((
        REFERENCE,
        Setting("TSN average consensus", ("model.head=tsn",)),
        Setting("temporal attention only", ("model.head=temporal",)),
        Setting("spatial attention only", ("model.head=spatial",)),
    )),
    "options": Group((                # beyond the paper (docs/design.md, Readings)
        Setting("alpha frame pooling", ALPHA_POOL),
        Setting("auxiliary temporal loss", AUX),
        Setting("alpha pooling + aux loss", ALPHA_POOL + AUX),
    )),
    "fusion": Group(()),            # weights tried on the saved scores of the reference RGB and flow runs
    "segments": Group(tuple(Setting(f"segments={n}", (f"model.num_segments={n}",)) for n in (3, 4, 5, 6)), True),
    "heads": Group(tuple(Setting(f"heads={n}", (f"model.num_heads={n}",)) for n in (1, 2, 3, 4, 5)), True),
    "se": Group((Setting("SE on", ()), Setting("SE off", ("model.se_blocks=[]",))), True),
    "design": Group((
        Setting("T-STAM (reference)", ()),
        Setting("sum frame pooling", ("model.frame_pool=sum",)),
        Setting("LSTM temporal attention", ("model.temporal_attention=lstm",)),
    ), True),
}
FUSION_WEIGHTS = ((1, 1), (1, 2), (1, 3), (1, 4), (2, 3))
PRESETS = ("demo", "localized", "untrimmed")
# --quick with another preset than the demo's: that preset at the test suite's size (the demo's quick
# benchmark is the tiny preset); 32 frames keep a 10-25 % window at 3-8 frames.
QUICK_SYNTH = {"height": 64, "width": 64, "num_frames": 32, "classes": ["MoveUp", "MoveDown", "WaveRed", "WaveBlue"],
               "train_per_class": 12, "test_per_class": 4}


# The full budget of the grid: the demo's schedule when the published tables were measured (docs/results.md, docs/ablation.md).
# Fixed here, so that `tstam ablate` reruns those runs (and reuses them) after the demo's own schedule grew.
ABLATE_EPOCHS = {"flow": 36, "rgb": 8}


@dataclass
class AblateConfig:
    """The grid, the per-run budgets and the benchmark."""

    out: str = "ablate"                     # bench/, frames/ (shared with a demo run there), runs/, tables
    preset: str = "demo"                    # synthetic benchmark preset (benchmark seed 0)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # training seeds (>= 5 for a claim)
    only: list[str] = field(default_factory=lambda: list(GROUPS))  # groups, or "group/setting name" items
    epochs: int = 0                         # full-budget groups; 0 -> ABLATE_EPOCHS of the run's stream
    short_epochs: int = 12                  # groups marked short (segments, heads, SE, design)
    test_frames: int = 25                   # snippets per test video (1 crop)
    threads: int = 0                        # torch threads; 0 -> the demo's choice (one per core)
    quick: bool = False                     # tiny benchmark (of the preset, QUICK_SYNTH), 1 epoch (tests)
    train: bool = True                      # False: only rebuild the tables from the finished runs
    demo_overrides: dict[str, Any] = field(default_factory=dict)  # other DemoConfig fields

    def __post_init__(self) -> None:
        names = [f"{g}/{st.name}" for g, grp in GROUPS.items() for st in grp.settings]
        bad = [g for g in self.only if g not in GROUPS and g not in names]
        if bad:
            raise ConfigError(f"ablation group(s) or setting(s) {bad} do not exist; expected some of {list(GROUPS)} "
                              f"or of {names}")
        if not self.seeds:
            raise ConfigError("seeds is empty; give at least one seed")
        check_choice("preset", self.preset, PRESETS)
        if self.epochs < 0 or self.short_epochs < 1:
            raise ConfigError(f"epochs={self.epochs} (0: flow 36, RGB 8) must be >= 0 and short_epochs="
                              f"{self.short_epochs} >= 1")
        for seed in self.seeds:
            check_range("seeds[]", seed, *SEED_RANGE, hi_open=True)
        check_range("epochs", self.epochs, 0, 100_000, note="0: flow 36, RGB 8")
        check_range("short_epochs", self.short_epochs, 1, 100_000)
        check_range("test_frames", self.test_frames, 1, MAX_TEST_FRAMES)
        check_range("threads", self.threads, 0, 256, note="0: one per core")


def grid(cfg: AblateConfig) -> list[tuple[str, Setting]]:
    """(group, setting) pairs to train; a setting shared by groups of one budget is trained once."""
    return [(g, s) for g, grp in GROUPS.items() for s in grp.settings
            if g in cfg.only or f"{g}/{s.name}" in cfg.only]


def demo_config(cfg: AblateConfig, *, short: bool = False, stream: str = "flow") -> Any:
    """The ``DemoConfig`` (benchmark, sizes, paths, budget) of the runs of one budget and stream."""
    from tstam.demo import DemoConfig

    kw = dict(cfg.demo_overrides)
    kw.setdefault("paper", True)  # the reference is the paper's model; the options are settings of the grid
    if cfg.quick:
        kw.setdefault("epochs", 1)
        if cfg.preset != "demo":
            kw.setdefault("synth_preset", cfg.preset)
            kw.setdefault("synth_overrides", dict(QUICK_SYNTH))
    else:
        kw.setdefault("epochs", cfg.short_epochs if short else cfg.epochs or ABLATE_EPOCHS[stream])
        kw.setdefault("synth_preset", cfg.preset)
    kw.setdefault("test_frames", cfg.test_frames if not cfg.quick else 5)
    if cfg.threads:
        kw.setdefault("threads", cfg.threads)
    return DemoConfig.make(out=cfg.out, seed=0, quick=cfg.quick, **kw)


def _key(setting: Setting) -> str:
    return "_".join(o.split("=")[0].split(".")[-1] + "-" + o.split("=")[1] for o in setting.overrides
                    ).replace("[]", "none")


def _overrides_tag(cfg: AblateConfig) -> str:
    """The folder-wide ``demo_overrides`` in a run's name (``--segments 8`` -> ``_n8``), so that runs
    with other overrides never share (and overwrite) a folder."""
    short = {"num_segments": "n", "input_size": "px", "frame_size": "fs"}
    return "".join(f"_{short[k]}{v}" if k in short else f"_{k}-{v}" for k, v in sorted(cfg.demo_overrides.items()))


def train_config(cfg: AblateConfig, setting: Setting, seed: int, *, short: bool = False) -> Any:
    """The ``TrainConfig`` of one run: ``runs/<stream>_<variant>_e<epochs>[<overrides>]_s<seed>`` under ``out``."""
    from tstam.demo import stream_config
    from tstam.engine.config import load_train_config

    base = stream_config(demo_config(cfg, short=short, stream=setting.stream), setting.stream)
    tcfg = load_train_config(base.to_dict(), list(setting.overrides))
    name = "ref" if tcfg.model == base.model else _key(setting)  # e.g. heads=4 is the reference itself
    out = Path(cfg.out) / "runs" / f"{setting.stream}_{name}_e{base.optim.epochs}{_overrides_tag(cfg)}_s{seed}"
    return load_train_config(tcfg.to_dict(), [f"run.seed={seed}", f"run.out_dir={out}",
                                              f"run.eval_every={base.optim.epochs}"])
