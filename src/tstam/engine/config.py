"""``TrainConfig``: the whole recipe of a run, from a YAML preset plus ``key=value`` overrides.

Presets ship in ``tstam/configs/``: ``scratch_*`` (your own folder of class folders, from scratch
on a CPU or small GPU) and ``finetune_*`` (the same data, from ImageNet weights at 224 px), and
``ucf101_*``, ``hmdb51_*``, ``synthetic_*`` with the paper's numbers (section 4.2) and TSN's practices (docs/design.md, Training recipe); the split is an override (``annotations.split=2``). What a clip is (modality,
segments, snippet length, crop size) is set once, under ``model``; the datasets read it from there.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tstam.config import (
    ConfigError,
    apply_overrides,
    check_choice,
    check_literals,
    check_range,
    from_dict,
    load_yaml,
    to_dict,
)
from tstam.data.config import DataConfig
from tstam.device import check_device_name
from tstam.models import ModelConfig

__all__ = ["AnnotationConfig", "OptimConfig", "RunConfig", "TrainConfig", "PRESETS", "load_train_config", "preset_path",
           "shipped_presets"]

PRESETS = ("scratch_rgb", "scratch_flow", "finetune_rgb", "finetune_flow", "ucf101_rgb", "ucf101_flow", "hmdb51_rgb",
           "hmdb51_flow", "synthetic_rgb", "synthetic_flow")
# Set under ``model`` only; configs stored by tstam 0.1 also carried copies of them under ``data``.
_MODEL_KEYS_IN_OLD_DATA = ("modality", "num_segments", "new_length", "input_size")
SEED_RANGE = (0, 2**32)  # NumPy's generators take seeds in [0, 2**32) (torch takes more)
MAX_STEPS = 10**12       # step and epoch counts: far beyond any run, small enough for an int64 tensor


@dataclass
class AnnotationConfig:
    """Which videos train and test: official splits or list files (``tstam.data.splits``)."""

    format: Literal["ucf101", "hmdb51", "rawframes", "csv", "folder"] = "ucf101"  # annotation format; folder: a
                                            # folder of class folders (class = sub-folder name) is the dataset
    path: str = ""                          # split folder (ucf101, hmdb51), the training list file (rawframes,
                                            # csv) or the dataset folder (folder)
    test_path: str = ""                     # the test list file (rawframes, csv); unused for official splits
    split_dir: str = ""                     # folder: a split written by tstam split (train.csv, test.csv, val.csv);
                                            # empty: split here by the same rule (test_fraction, val_fraction, val_seed)
    test_fraction: float = 0.2              # folder without split_dir: this share of each class's clips is the test set
    split: int = 1                          # official split 1-3 (ucf101, hmdb51)
    val_fraction: float = 0.1               # hold out this share of each class's training groups (UCF101) or
                                            # clips (HMDB51) for validation and best.pt; 0 -> no validation, no
                                            # best.pt (the test list is never used for model selection)
    val_seed: int = 0                       # which groups are held out (deterministic)

    def __post_init__(self) -> None:
        check_literals(self, "annotations")
        check_range("annotations.val_fraction", self.val_fraction, 0, 1, hi_open=True, note="0: no validation hold-out")
        check_range("annotations.val_seed", self.val_seed, *SEED_RANGE, hi_open=True)
        check_range("annotations.test_fraction", self.test_fraction, 0, 1, lo_open=True, hi_open=True,
                    note="the test share of each class (format folder)")
        if self.format == "folder" and self.test_fraction + self.val_fraction >= 1:
            raise ConfigError(f"annotations.test_fraction={self.test_fraction} + annotations.val_fraction="
                              f"{self.val_fraction} leave no clip to train on; expected a sum < 1")
        if self.format in ("ucf101", "hmdb51"):
            check_choice("annotations.split", self.split, (1, 2, 3))
        else:
            check_range("annotations.split", self.split, 0, 999, note="a list file's split number, for names and reports")


@dataclass
class OptimConfig:
    """SGD and its schedule (paper 4.2; RGB defaults)."""

    optimizer: Literal["sgd", "adamw"] = "sgd"  # sgd: the paper's; adamw: common from scratch (no better on the demo)
    lr: float = 0.001                       # base learning rate (paper: 0.001 for both streams)
    momentum: float = 0.9                   # SGD momentum (adamw: beta1)
    weight_decay: float = 5e-4              # L2 weight decay (x decay_mult per group)
    epochs: int = 80                        # RGB 80, flow 340
    lr_steps: list[int] = field(default_factory=lambda: [30, 60])  # epochs where lr x lr_gamma; flow [190, 300]
    lr_gamma: float = 0.1                   # lr factor at each step
    schedule: Literal["step", "cosine"] = "step"  # step: x lr_gamma at lr_steps (paper); cosine: to 0 over the epochs
    clip_grad: float | None = 40.0       # max global gradient L2 norm (TSN: 40 RGB, 20 flow); null = off
    bn: Literal["partial", "frozen", "full"] = "partial"  # partial: TSN partial BN; frozen: no BN uses batch stats
    tsn_multipliers: bool = True            # per-group lr/decay multipliers (flow first conv lr x5, bias x10)

    def __post_init__(self) -> None:
        check_literals(self, "optim")
        # a large lr or lr_gamma is accepted: a run it makes diverge stops with the last good checkpoint
        check_range("optim.lr", self.lr, 0, lo_open=True, note="the paper's 0.001")
        check_range("optim.momentum", self.momentum, 0, 1, hi_open=True, note="SGD momentum or AdamW beta1; the paper's 0.9")
        check_range("optim.weight_decay", self.weight_decay, 0, 1, note="the paper's 5e-4")
        check_range("optim.epochs", self.epochs, 1, MAX_STEPS)
        for step in self.lr_steps:
            check_range("optim.lr_steps[]", step, 1, MAX_STEPS, note="epochs after which lr is multiplied by lr_gamma")
        check_range("optim.lr_gamma", self.lr_gamma, 0, lo_open=True, note="0.1: each step divides lr by 10")
        if self.clip_grad is not None:
            check_range("optim.clip_grad", self.clip_grad, 0, lo_open=True, note="TSN: 40 RGB, 20 flow; null: off")


@dataclass
class RunConfig:
    """Where and how the run executes."""

    out_dir: str = "runs/tstam"             # checkpoints, metrics, curves go here
    seed: int = 0                           # seeds the weights, the sampler and the clips; DDP rank r > 0 draws its own dropout masks
    eval_every: int = 1                     # validate every k epochs (and after the last); 0 = never
    ckpt_every_steps: int = 0               # also write last.pt every k steps (exact mid-epoch resume); 0 = epoch ends only
    max_steps: int = 0                      # stop after this many optimisation steps in total; 0 = run all epochs
    log_every: int = 20                     # read the running loss (progress, non-finite check) every k steps only
    device: str = "auto"                    # auto (CUDA if present), cpu, cuda, cuda:N
    amp: Literal["none", "bf16", "fp16"] = "none"  # autocast on CUDA (fp16 adds a gradient scaler; bf16 without native support runs fp16); a CPU says so and runs float32
    channels_last: bool = False             # channels_last memory format for the convolutions (CUDA; CPU oneDNN too)
    sync_bn: bool = False                   # SyncBatchNorm under DDP for the BN layers that train (CUDA only)
    compile: bool = False                   # torch.compile the model for the training steps (the first steps compile: tens of seconds to minutes); validation, test and checkpoints use the plain module
    init_weights: str | None = None      # backbone weights: a file, or imagenet / tsn_imagenet (downloaded once into the cache)
    tensorboard: bool = True                # write TensorBoard events under out_dir/tb

    def __post_init__(self) -> None:
        check_literals(self, "run")
        check_device_name(self.device, option="run.device")
        check_range("run.seed", self.seed, *SEED_RANGE, hi_open=True)
        for name in ("eval_every", "ckpt_every_steps", "max_steps"):
            check_range(f"run.{name}", getattr(self, name), 0, MAX_STEPS, note="0: never")
        check_range("run.log_every", self.log_every, 1, MAX_STEPS)


@dataclass
class TrainConfig:
    """One stream's training run: model, data, optimiser, run settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def shipped_presets() -> list[str]:
    """Names of every YAML preset shipped in ``tstam/configs`` (the paper's and any others)."""
    folder = resources.files("tstam") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of a shipped preset (``ucf101_rgb``, ...)."""
    names = shipped_presets()
    if name not in names:
        raise ConfigError(f"preset {name!r} does not exist; shipped presets: {', '.join(names)}")
    return Path(str(resources.files("tstam") / "configs" / f"{name}.yaml"))


def _drop_old_data_keys(raw: dict[str, Any]) -> None:
    """Accept configs stored by tstam 0.1, whose ``data`` repeated the model's clip keys."""
    model, data = raw.get("model"), raw.get("data")
    if not isinstance(model, dict) or not isinstance(data, dict):
        return  # from_dict reports the wrong type
    for key in _MODEL_KEYS_IN_OLD_DATA:
        if key in data:
            value = data.pop(key)
            if value is not None and model.get(key, value) != value or key not in model and value is not None:
                raise ConfigError(f"data.{key}={value!r}: what a clip is is set once, under model "
                                  f"(model.{key}={model.get(key)!r}); remove data.{key}")


def load_train_config(source: str | Path | dict[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """Build a TrainConfig from a preset name, a YAML file or a dict, then ``key=value`` overrides.

    Args:
        source: a preset name (see ``PRESETS``), a path to a YAML file, or a nested dict.
        overrides: e.g. ``["annotations.split=2", "optim.lr=0.01", "model.num_segments=3"]``.

    Raises:
        ConfigError: an unknown key (the message lists the valid ones) or a bad value.
    """
    if isinstance(source, dict):
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in source.items()}
    elif isinstance(source, str) and not source.endswith((".yaml", ".yml")) and source in shipped_presets():
        raw = load_yaml(preset_path(source))
    else:
        raw = load_yaml(source)
    raw = apply_overrides(raw, overrides)
    _drop_old_data_keys(raw)
    cfg = from_dict(TrainConfig, raw)
    cfg.data.check_crop(cfg.model.input_size)
    return cfg
