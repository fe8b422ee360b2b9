"""Shipping one trained stream: ONNX (dynamic batch and segment count) and safetensors + JSON.

- ONNX: the stream's forward (input already cropped and normalised, (B, N, C, S, S) float32)
  with outputs ``logits`` (B, K) and, when the head has them, ``temporal`` (B, N) and ``spatial``
  (B, l, N, h, w): the attention the forward returns. Batch and segment count are dynamic (the
  temporal attention is a convolution over frames and the spatial pooling a mean, so any N
  works). Exported with ``torch.onnx.export(dynamo=True)``; the TorchScript exporter would bake
  the segment count into the reshapes. The class names and preprocessing go into the model's
  ``metadata_props`` (key ``tstam``, JSON). One self-contained file: the weights are stored
  inside it, not in an external ``.onnx.data`` file (these models are far below ONNX's 2 GB
  limit for one file).
- safetensors: the weights, with the same JSON in the file's metadata and beside it as
  ``<name>.json`` (model config, class names, preprocessing, frame size, flow settings). Loaded
  by ``tstam.load`` without any pickle.

Every file is written atomically with the permissions of any new file (``tstam.files``).
:func:`read_metadata` reads that JSON back from any of these files;
``tstam.inference.prepare_clip`` turns a video into the ONNX input with it.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tstam.checkpoint import (
    CHECKPOINT_SUFFIXES,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    LoadedStream,
    load_stream,
    stream_metadata,
)
from tstam.errors import CheckpointError, OutputError
from tstam.files import atomic_write, check_output_file, write_text_atomic

__all__ = ["MAX_SEGMENTS", "CHECK_RTOL", "CHECK_ATOL", "OnnxCheck", "export_onnx", "export_safetensors", "check_onnx",
           "onnx_output_names", "read_metadata"]

log = logging.getLogger(__name__)

MAX_SEGMENTS = 1024  # largest segment count the exported graph accepts (its dynamic dimension's range)
# ``check_onnx`` passes an output when max|onnx - torch| <= CHECK_RTOL * max|torch| + CHECK_ATOL. Runtimes
# that sum in another order differ in the last float32 digits of the output's scale (logits near 800 by
# ~6e-5 absolute; a full-width model's outputs by 1e-6 to 2e-5 of their largest value), while a wrong graph
# or wrong weights are off by a part of the logits' spread. The absolute floor keeps attention maps, whose
# values are a fraction of 1, to the 1e-4 they always had.
CHECK_RTOL = 1e-4
CHECK_ATOL = 1e-4


class _Outputs(nn.Module):
    """The stream's forward as a tuple of tensors (ONNX outputs cannot be None)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = onnx_output_names(model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(getattr(out, n) for n in self.names)


def onnx_output_names(model: nn.Module) -> list[str]:
    """``logits`` plus ``temporal`` / ``spatial`` when the model's head computes them."""
    names = ["logits"]
    if getattr(model, "temporal_att", None) is not None:
        names.append("temporal")
    if getattr(model, "spatial_att", None) is not None:
        names.append("spatial")
    return names


def _stream(stream: LoadedStream | str | Path) -> LoadedStream:
    return stream if isinstance(stream, LoadedStream) else load_stream(stream)


def export_onnx(stream: LoadedStream | str | Path, path: str | Path, *, segments: int = 6,
                opset: int | None = None, optimize: bool = False) -> Path:
    """Export one stream to ONNX with dynamic batch and segment count.

    Args:
        stream: a loaded stream, or a checkpoint / safetensors path.
        path: the ``.onnx`` file to write.
        segments: segment count of the example input used for tracing (any count runs later).
        opset: ONNX opset (None: the exporter's default).
        optimize: let the exporter optimise the graph (slower export; onnxruntime optimises
            at load time anyway).

    Returns:
        The path written.
    """
    import onnx

    if not 1 <= segments <= MAX_SEGMENTS:
        raise ValueError(f"segments={segments} is not valid; expected 1 to {MAX_SEGMENTS}")
    path = check_output_file(path, suffix=".onnx")
    s = _stream(stream)
    cfg = s.config
    model = _Outputs(copy.deepcopy(s.model).float().cpu().eval()).eval()  # a copy: the stream stays where it is
    x = torch.zeros(2, segments, cfg.in_chans, cfg.input_size, cfg.input_size)
    batch, segs = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("segments", min=1, max=MAX_SEGMENTS)
    kwargs = {} if opset is None else {"opset_version": opset}
    chatter = io.StringIO()  # the exporter prints its progress; keep it for the debug log
    # quiet: "torchvision is not installed. Skipping torchvision::nms", onnx_ir pass reports, FutureWarnings
    loggers = {name: logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")}
    levels = {name: lg.level for name, lg in loggers.items()}
    for lg in loggers.values():
        lg.setLevel(logging.ERROR)
    # the exporter writes into a scratch folder (whatever side files it makes stay there); the one
    # self-contained file then replaces ``path`` atomically
    with tempfile.TemporaryDirectory(prefix="tstam-onnx-") as scratch:
        raw = Path(scratch) / "model.onnx"
        try:
            with torch.no_grad(), contextlib.redirect_stdout(chatter), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.onnx.export(model, (x,), str(raw), input_names=["input"], output_names=model.names,
                                  dynamic_shapes={"x": {0: batch, 1: segs}}, dynamo=True, optimize=optimize,
                                  external_data=False, verbose=False, **kwargs)
        finally:
            for name, lg in loggers.items():
                lg.setLevel(levels[name])
            log.debug("torch.onnx.export: %s", chatter.getvalue())
        proto = onnx.load(str(raw))  # also reads an external-data file, if the exporter made one anyway
    meta = stream_metadata(s)
    meta["outputs"] = model.names
    entry = proto.metadata_props.add()
    entry.key, entry.value = "tstam", json.dumps(meta)
    data = proto.SerializeToString()
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    log.debug("wrote %s (outputs %s, dynamic batch and segments)", path, model.names)
    return path


@dataclass
class OnnxCheck:
    """How far an ONNX file's outputs are from PyTorch's on the same inputs, per output."""

    max_abs: dict[str, float]   # max |onnx - torch|
    max_ref: dict[str, float]   # max |torch|: the output's scale
    rtol: float = CHECK_RTOL
    atol: float = CHECK_ATOL

    @property
    def relative(self) -> dict[str, float]:
        """max |onnx - torch| / max |torch| per output."""
        return {k: v / max(self.max_ref[k], 1e-30) for k, v in self.max_abs.items()}

    @property
    def max_relative(self) -> float:
        return max(self.relative.values())

    @property
    def ok(self) -> bool:
        """Every output within ``rtol`` of its scale (plus ``atol``)."""
        return all(v <= self.rtol * self.max_ref[k] + self.atol for k, v in self.max_abs.items())


def check_onnx(path: str | Path, stream: LoadedStream | str | Path, *, shapes: tuple[tuple[int, int], ...] = ((1, 6), (3, 25)),
               seed: int = 0) -> OnnxCheck:
    """Run an ONNX file with onnxruntime and PyTorch on the same random inputs (normal, std 50:
    the range of normalised Caffe-style input).

    Returns:
        The largest absolute difference and the largest PyTorch magnitude per output over all
        ``shapes`` (batch, segments); ``.ok`` says whether it passes (``CHECK_RTOL``).
    """
    import onnxruntime as ort

    s = _stream(stream)
    cfg = s.config
    model = _Outputs(copy.deepcopy(s.model).float().cpu().eval()).eval()  # a copy: the stream stays where it is
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    diffs = {n: 0.0 for n in model.names}
    scale = {n: 0.0 for n in model.names}
    for b, n in shapes:
        x = torch.randn(b, n, cfg.in_chans, cfg.input_size, cfg.input_size, generator=gen) * 50
        with torch.no_grad():
            ref = model(x)
        got = session.run(model.names, {"input": x.numpy()})
        for name, r, g in zip(model.names, ref, got):
            if tuple(r.shape) != tuple(g.shape):
                raise ValueError(f"{path}: output {name} has shape {g.shape}, PyTorch gives {tuple(r.shape)}")
            diffs[name] = max(diffs[name], float(np.abs(r.numpy() - g).max()))
            scale[name] = max(scale[name], float(np.abs(r.numpy()).max()))
    return OnnxCheck(diffs, scale)


def export_safetensors(stream: LoadedStream | str | Path, path: str | Path) -> tuple[Path, Path]:
    """Write the weights as safetensors and the config, class names and preprocessing as JSON.

    The JSON is stored twice: in the safetensors metadata (key ``tstam``), so the one file is
    enough, and as ``<name>.json`` beside it, for people and other tools.

    Returns:
        (safetensors path, JSON path).
    """
    from safetensors.torch import save

    s = _stream(stream)
    path = check_output_file(path, suffix=".safetensors")
    meta = stream_metadata(s)
    text = json.dumps(meta, indent=1)
    weights = {k: v.detach().cpu().contiguous() for k, v in s.model.state_dict().items()}
    data = save(weights, metadata={"tstam": text})  # bytes: written like every other output
    side = path.with_suffix(".json")
    try:
        atomic_write(path, lambda f: f.write(data))
        write_text_atomic(side, text)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    log.debug("wrote %s and %s", path, side)
    return path, side


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON facts of an exported stream (``tstam.checkpoint.stream_metadata``: class names,
    model config, preprocessing, frame size, flow settings) from an ``.onnx`` or ``.safetensors``
    export, its ``.json``, or a tstam checkpoint.

    Raises:
        CheckpointError: naming the file: missing, not one of these, or without tstam metadata.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if suffix in CHECKPOINT_SUFFIXES:
        return stream_metadata(load_stream(path))
    if suffix == ".onnx":
        import onnx

        try:
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception as e:  # onnx raises DecodeError and others for what is not an ONNX model
            raise CheckpointError(f"{path}: not a readable ONNX file ({type(e).__name__}: {e})") from None
        text = props.get("tstam")
    elif suffix == ".json":
        text = path.read_text()
    else:
        raise CheckpointError(f"{path}: expected an .onnx or .safetensors export, its .json, or a checkpoint")
    if text is None:
        raise CheckpointError(f"{path}: holds no tstam metadata; export it with `tstam export`")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: tstam metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT or meta.get("version") != EXPORT_VERSION:
        raise CheckpointError(f"{path}: metadata is not {EXPORT_FORMAT!r} version {EXPORT_VERSION}")
    return meta
