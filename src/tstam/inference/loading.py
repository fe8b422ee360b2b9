"""Loading a trained stream for prediction: a tstam checkpoint or a safetensors export.

Two file kinds are accepted, and neither is ever unpickled:

- ``*.pt`` / ``*.pth``: a checkpoint of ``tstam.engine.checkpoint`` (read by its
  ``load_checkpoint``, ``torch.load(weights_only=True)``); keys ``model``, ``model_config``,
  ``classes``, ``flow`` and, for training files, ``config`` (whose ``data`` gives the frame size
  and the number of test frames used in training).
- ``*.safetensors``: the weights, with the same facts as JSON in the file's metadata (key
  ``tstam``) and beside it as ``<name>.json`` (written by ``tstam.export.export_safetensors``).

The result is a :class:`LoadedStream`: the model in eval mode plus everything prediction needs
so that a video is sampled, resized, given flow and normalised exactly as in training.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from tstam.config import ConfigError, from_dict, to_dict
from tstam.models import TSTAM, ModelConfig, build_model

__all__ = ["LoadedStream", "load_stream", "stream_metadata", "flow_config_from_dict",
           "EXPORT_FORMAT", "EXPORT_VERSION", "CHECKPOINT_SUFFIXES"]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "tstam-export"
EXPORT_VERSION = 1
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")


@dataclass
class LoadedStream:
    """One trained stream, ready to predict."""

    model: TSTAM                           # eval mode, on ``device``
    classes: list[str]                     # class names, index = label
    flow: Optional[dict[str, Any]]         # FlowConfig.describe() of the training flow (flow stream), or None
    resize: list[int] = field(default_factory=lambda: [240, 320])  # H, W frames are decoded at
    test_frames: int = 25                  # snippets sampled per video (paper 4.2)
    source: str = ""                       # the file it was loaded from

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
        "flow": stream.flow,
        "data": {"resize": list(stream.resize), "test_frames": int(stream.test_frames)},
        "preprocess": to_dict(cfg.preprocess),
        "input": {"shape": ["batch", "segments", cfg.in_chans, cfg.input_size, cfg.input_size],
                  "dtype": "float32", "layout": "normalised with 'preprocess' after cropping"},
    }


def flow_config_from_dict(flow: Optional[dict[str, Any]], *, source: str = "checkpoint"):
    """``FlowConfig`` from the ``{"algorithm", "bound", "params"}`` a checkpoint records.

    None gives the default (our tuned TV-L1) with a warning: the flow may differ from training.
    """
    from tstam.flow import FlowConfig

    if not flow:
        log.warning("%s records no flow settings; computing the default flow (TV-L1, bound 20)", source)
        return FlowConfig()
    algorithm = flow.get("algorithm", "tvl1")
    data: dict[str, Any] = {"algorithm": algorithm, "bound": float(flow.get("bound", 20.0))}
    if flow.get("params"):
        data[algorithm] = dict(flow["params"])
    try:
        return from_dict(FlowConfig, data)
    except (ConfigError, TypeError) as e:
        if algorithm not in ("tvl1", "dis", "farneback"):
            raise ValueError(f"{source}: flow algorithm {algorithm!r} is not known; expected tvl1, dis or "
                             "farneback") from None
        log.warning("%s: flow parameters %s not understood (%s); using the defaults of %s",
                    source, flow.get("params"), e, algorithm)
        data.pop(algorithm, None)
        return from_dict(FlowConfig, data)


def _from_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from tstam.engine.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    missing = [k for k in ("model", "model_config", "classes") if k not in state]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}; expected a tstam training checkpoint")
    data = ((state.get("config") or {}).get("data") or {})
    meta = {"model_config": state["model_config"], "classes": state["classes"], "flow": state.get("flow"),
            "data": {k: data[k] for k in ("resize", "test_frames") if k in data}}
    return state["model"], meta


def _from_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get("tstam")
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    sidecar = path.with_suffix(".json")
    if text is None and sidecar.is_file():
        text = sidecar.read_text()
    if text is None:
        raise ValueError(f"{path}: safetensors file without tstam metadata (no 'tstam' metadata key and no "
                         f"{sidecar.name}); export it with `tstam export --safetensors`")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: tstam metadata is not valid JSON ({e})") from None
    if meta.get("format") != EXPORT_FORMAT or meta.get("version") != EXPORT_VERSION:
        raise ValueError(f"{path}: metadata format {meta.get('format')!r} v{meta.get('version')!r} is not "
                         f"{EXPORT_FORMAT!r} v{EXPORT_VERSION}")
    return weights, meta


def load_stream(path: str | Path, *, modality: Optional[str] = None, device: str | torch.device = "cpu") -> LoadedStream:
    """Load one trained stream from a tstam checkpoint or a safetensors export.

    Args:
        path: ``.pt``/``.pth``/``.ckpt`` checkpoint or ``.safetensors`` export.
        modality: "rgb" or "flow" to refuse a checkpoint of the other stream (e.g. ``--rgb``).
        device: where the model runs.

    Returns:
        The model in eval mode with its class names, flow settings and frame size.

    Raises:
        ValueError: missing file, another format, a file that would need unpickling, weights that
            do not fit the recorded config, or a stream other than ``modality``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"{path}: unsupported checkpoint type {path.suffix!r}; expected a tstam checkpoint "
                         f"(.pt, .pth, .ckpt) or a safetensors export (.safetensors)")
    if path.suffix.lower() == ".safetensors":
        weights, meta = _from_safetensors(path)
    else:
        weights, meta = _from_checkpoint(path)
    try:
        cfg = from_dict(ModelConfig, dict(meta["model_config"]))
    except (ConfigError, TypeError) as e:
        raise ValueError(f"{path}: model_config is not valid: {e}") from None
    if modality is not None and cfg.modality != modality:
        raise ValueError(f"{path}: this is a {cfg.modality!r} stream checkpoint but it was given as the "
                         f"{modality!r} stream; pass it as --{cfg.modality}")
    classes = [str(c) for c in meta["classes"]]
    if len(classes) != cfg.num_classes:
        raise ValueError(f"{path}: {len(classes)} class names for a model with {cfg.num_classes} classes")
    model = build_model(cfg)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the recorded model_config: {str(e)[:400]}") from None
    model.eval().to(device)
    data = meta.get("data") or {}
    resize = [int(v) for v in data.get("resize") or _default_resize(cfg.input_size)]
    if min(resize) < cfg.input_size:
        raise ValueError(f"{path}: frame size {resize} is smaller than the crop {cfg.input_size}")
    stream = LoadedStream(model=model, classes=classes, flow=meta.get("flow"), resize=resize,
                          test_frames=int(data.get("test_frames", 25)), source=str(path))
    log.info("loaded %s stream from %s: %d classes, %dx%d crops, frames %s", cfg.modality, path,
             len(classes), cfg.input_size, cfg.input_size, resize)
    return stream
