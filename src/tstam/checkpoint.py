"""Checkpoints, and the one way from a file to a ready trained stream.

A checkpoint is a plain dict of tensors, lists, dicts, strings and numbers, written atomically
(``tstam.files.atomic_write``) and read with ``torch.load(weights_only=True)`` only
(``tstam.models.weights.read_torch_file``), so an untrusted file can be opened safely. Keys:

``format``        ``"tstam-checkpoint"``
``version``       ``CHECKPOINT_VERSION`` (int)
``model``         the model's ``state_dict()`` (no ``module.`` prefix)
``model_config``  ``tstam.models.ModelConfig`` as a dict (includes its ``preprocess`` and SE gate)
``classes``       class names, index = label (list[str])
``flow``          ``FlowConfig.describe()`` of the flow the model was trained on (flow streams), else None
``config``        the whole ``TrainConfig`` as a dict (training files only; its ``data`` gives the
                  frame size and the number of test frames)
``epoch``, ``epoch_step``, ``step``, ``optimizer``, ``scheduler``, ``rng``, ``sampler``,
``best_top1``, ...: the training state (``tstam.engine.train``).

:func:`load_stream` turns a checkpoint or a safetensors export (``tstam export``: the weights,
with the same facts as JSON in the file's metadata key ``tstam`` and beside it as ``<name>.json``)
into a :class:`LoadedStream`: the model in eval mode plus everything needed to feed it exactly as
in training. ``tstam test``, ``predict``, ``export``, ``tstam.load``, the demo and the ablations
all load through it; foreign ImageNet/TSN weight files go through ``tstam.models.load_pretrained``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tstam.config import MAX_CONFIG_BYTES, ConfigError, from_dict, short_repr, to_dict
from tstam.data.config import DataConfig
from tstam.device import resolve_device
from tstam.errors import CheckpointError
from tstam.files import atomic_write
from tstam.flow import FlowConfig
from tstam.models import TSTAM, ModelConfig, build_model
from tstam.models.weights import read_torch_file

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CHECKPOINT_SUFFIXES", "EXPORT_FORMAT", "EXPORT_VERSION",
    "CheckpointError", "save_checkpoint", "load_checkpoint", "LoadedStream", "load_stream", "stream_metadata",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "tstam-checkpoint"
CHECKPOINT_VERSION = 1
EXPORT_FORMAT = "tstam-export"
EXPORT_VERSION = 1
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (``format`` and ``version`` are added when missing).

    If anything fails (disk full, an unserialisable value), the file already at ``path`` (the
    previous checkpoint) is left untouched and CheckpointError is raised.
    """
    path = Path(path)
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    try:
        return atomic_write(path, lambda f: torch.save(state, f))
    except Exception as e:
        raise CheckpointError(
            f"{path}: could not write checkpoint ({type(e).__name__}: {e}); "
            "the previous checkpoint at this path, if any, is intact"
        ) from e


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a tstam checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, not loadable safely, or not a tstam checkpoint of a
            supported version.
    """
    path = Path(path)
    state = read_torch_file(path, error=CheckpointError, map_location=map_location)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a tstam checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "to start from foreign weights use run.init_weights (ImageNet / TSN files)"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state.get('version')!r} is not supported "
            f"(this tstam reads version {CHECKPOINT_VERSION})"
        )
    return state


@dataclass
class LoadedStream:
    """One trained stream, ready to predict or test."""

    model: TSTAM                           # eval mode, on the device it was loaded to
    classes: list[str]                     # class names, index = label
    flow: FlowConfig | None             # the flow the model was trained on (flow streams), or None
    resize: list[int] = field(default_factory=lambda: [240, 320])  # H, W frames are decoded at
    test_frames: int = 25                  # snippets sampled per video (paper 4.2)
    source: str = ""                       # the file it was loaded from
    train_config: dict[str, Any] | None = None  # the TrainConfig dict of a training checkpoint

    @property
    def config(self) -> ModelConfig:
        return self.model.cfg

    @property
    def modality(self) -> str:
        return self.model.cfg.modality


def _default_resize(input_size: int) -> list[int]:
    """The paper's 240x320 frame for 224 crops, scaled to other crop sizes (multiples of 2)."""
    return [2 * round(input_size * 240 / 224 / 2), 2 * round(input_size * 320 / 224 / 2)]


def stream_metadata(stream: LoadedStream) -> dict[str, Any]:
    """The JSON-able facts of a stream (everything but the weights): what an export carries."""
    cfg = stream.config
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "model_config": to_dict(cfg),
        "classes": list(stream.classes),
        "flow": stream.flow.describe() if stream.flow is not None else None,
        "data": {"resize": list(stream.resize), "test_frames": int(stream.test_frames)},
        "preprocess": to_dict(cfg.preprocess),
        "input": {"shape": ["batch", "segments", cfg.in_chans, cfg.input_size, cfg.input_size],
                  "dtype": "float32", "layout": "normalised with 'preprocess' after cropping"},
    }


def _from_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = load_checkpoint(path)
    missing = [k for k in ("model", "model_config", "classes") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; expected a tstam training checkpoint")
    weights = state["model"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise CheckpointError(f"{path}: model is not a state dict (parameter names -> tensors)")
    config = state.get("config") or None
    data = config.get("data") if isinstance(config, dict) else None  # _check_meta names a bad config
    data = data if isinstance(data, dict) else {}
    meta = {"model_config": state["model_config"], "classes": state["classes"], "flow": state.get("flow"),
            "data": {k: data[k] for k in ("resize", "test_frames") if k in data}, "config": config}
    return weights, meta


def _from_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get("tstam")
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    sidecar = path.with_suffix(".json")
    if text is None and sidecar.is_file():
        if sidecar.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{sidecar}: {sidecar.stat().st_size:,} bytes is more than tstam metadata may hold "
                                  f"({MAX_CONFIG_BYTES:,})")
        try:
            text = sidecar.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError(f"{sidecar}: not UTF-8 JSON ({e})") from None
    if text is None:
        raise CheckpointError(f"{path}: safetensors file without tstam metadata (no 'tstam' metadata key and no "
                              f"{sidecar.name}); export it with `tstam export --safetensors`")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: tstam metadata is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: tstam metadata is a JSON {type(meta).__name__}; expected a JSON object "
                              f"with format {EXPORT_FORMAT!r}")
    if meta.get("format") != EXPORT_FORMAT or meta.get("version") != EXPORT_VERSION:
        raise CheckpointError(f"{path}: metadata format {meta.get('format')!r} v{meta.get('version')!r} is not "
                              f"{EXPORT_FORMAT!r} v{EXPORT_VERSION}")
    return weights, meta


def _check_meta(path: Path, meta: dict[str, Any]) -> tuple[ModelConfig, list[str], dict[str, Any] | None,
                                                          DataConfig, dict[str, Any] | None]:
    """The facts of a checkpoint or export, each checked where it enters: the model config, class
    names, flow settings and frame size through the config dataclasses (their ranges), the training
    config through ``load_train_config``.

    Returns:
        (model config, class names, flow entry, data config holding resize and test_frames, training config).

    Raises:
        CheckpointError: starting with the file and naming the key, for any value tstam would not write.
    """
    from tstam.engine.config import TrainConfig, load_train_config

    def section(key: str, *, optional: bool = False) -> dict[str, Any] | None:
        value = meta.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: {key} is {short_repr(value)}; expected a mapping of its settings")
        return value

    try:
        cfg = from_dict(ModelConfig, dict(section("model_config")))
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: model_config is not valid: {e}") from None
    classes = meta.get("classes")
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise CheckpointError(f"{path}: classes is {short_repr(classes)}; expected a list of class names (strings)")
    if len(set(classes)) != len(classes):
        dup = next(c for i, c in enumerate(classes) if c in classes[:i])
        raise CheckpointError(f"{path}: classes lists {short_repr(dup)} twice; each class has one name")
    flow = section("flow", optional=True)
    data = section("data", optional=True) or {}
    known = {k: data[k] for k in ("resize", "test_frames") if k in data}
    try:  # as a TrainConfig's data section, so that messages name data.resize, data.test_frames
        frames = from_dict(TrainConfig, {"data": {"resize": _default_resize(cfg.input_size), **known}}).data
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if min(frames.resize) < cfg.input_size:
        raise CheckpointError(f"{path}: frame size {frames.resize} is smaller than the crop {cfg.input_size}")
    train = section("config", optional=True) or None
    if train is not None:
        try:
            load_train_config({**train, "model": meta["model_config"]})  # its model is the one checked above
        except (ConfigError, TypeError) as e:
            raise CheckpointError(f"{path}: the stored training config is not valid: {e}") from None
    return cfg, list(classes), flow, frames, train


def load_stream(path: str | Path, *, modality: str | None = None, device: str | torch.device = "cpu") -> LoadedStream:
    """Load one trained stream from a tstam checkpoint or a safetensors export.

    Args:
        path: ``.pt``/``.pth``/``.ckpt`` checkpoint or ``.safetensors`` export.
        modality: "rgb" or "flow" to refuse a checkpoint of the other stream (e.g. ``--rgb``).
        device: where the model runs.

    Returns:
        The model in eval mode with its class names, flow settings and frame size.

    Raises:
        CheckpointError: missing file, another format, a file that would need unpickling, weights
            that do not fit the recorded config or are not finite, flow settings this version
            cannot reproduce, or a stream other than ``modality``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"{path}: unsupported checkpoint type {path.suffix!r}; expected a tstam checkpoint "
                              f"(.pt, .pth, .ckpt) or a safetensors export (.safetensors)")
    weights, meta = _from_safetensors(path) if path.suffix.lower() == ".safetensors" else _from_checkpoint(path)
    cfg, classes, flow_entry, frames, train_config = _check_meta(path, meta)
    if modality is not None and cfg.modality != modality:
        raise CheckpointError(f"{path}: this is a {cfg.modality!r} stream checkpoint but it was given as the "
                              f"{modality!r} stream; pass it as --{cfg.modality}")
    if len(classes) != cfg.num_classes:
        raise CheckpointError(f"{path}: {len(classes)} class names for a model with {cfg.num_classes} classes")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {bad[0]}" +
                              (f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else "") +
                              "; the run that wrote it diverged: use an earlier checkpoint")
    flow = FlowConfig.from_describe(flow_entry, source=str(path)) if flow_entry else None
    model = build_model(cfg)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the recorded model_config: {str(e)[:400]}") from None
    model.eval().to(resolve_device(device))
    resize = list(frames.resize)
    stream = LoadedStream(model=model, classes=classes, flow=flow, resize=resize, test_frames=frames.test_frames,
                          source=str(path), train_config=train_config)
    log.info("loaded %s stream from %s: %d classes, %dx%d crops, frames %s", cfg.modality, path,
             len(classes), cfg.input_size, cfg.input_size, resize)
    return stream
