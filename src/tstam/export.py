"""Shipping one trained stream: ONNX (dynamic batch and segment count) and safetensors + JSON.

- ONNX: the stream's forward (input already cropped and normalised, (B, N, C, S, S) float32)
  with outputs ``logits`` (B, K) and, when the head has them, ``temporal`` (B, N) and ``spatial``
  (B, l, N, h, w): the attention the forward returns. Batch and segment count are dynamic (the
  temporal attention is a convolution over frames and the spatial pooling a mean, so any N
  works). Exported with ``torch.onnx.export(dynamo=True)``; the TorchScript exporter would bake
  the segment count into the reshapes. The class names and preprocessing go into the model's
  ``metadata_props`` (key ``tstam``, JSON).
- safetensors: the weights, with the same JSON in the file's metadata and beside it as
  ``<name>.json`` (model config, class names, preprocessing, frame size, flow settings). Loaded
  by ``tstam.load`` without any pickle.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tstam.checkpoint import LoadedStream, load_stream, stream_metadata
from tstam.errors import OutputError
from tstam.files import check_output_file

__all__ = ["MAX_SEGMENTS", "export_onnx", "export_safetensors", "check_onnx", "onnx_output_names"]

log = logging.getLogger(__name__)

MAX_SEGMENTS = 1024  # largest segment count the exported graph accepts (its dynamic dimension's range)


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
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=model.names,
                              dynamic_shapes={"x": {0: batch, 1: segs}}, dynamo=True, optimize=optimize,
                              verbose=False, **kwargs)
    finally:
        for name, lg in loggers.items():
            lg.setLevel(levels[name])
        log.debug("torch.onnx.export: %s", chatter.getvalue())
    proto = onnx.load(str(path))
    meta = stream_metadata(s)
    meta["outputs"] = model.names
    entry = proto.metadata_props.add()
    entry.key, entry.value = "tstam", json.dumps(meta)
    onnx.save(proto, str(path))
    log.info("wrote %s (outputs %s, dynamic batch and segments)", path, model.names)
    return path


def check_onnx(path: str | Path, stream: LoadedStream | str | Path, *, shapes: tuple[tuple[int, int], ...] = ((1, 6), (3, 25)),
               seed: int = 0) -> dict[str, float]:
    """Run an ONNX file with onnxruntime and PyTorch on the same random inputs.

    Returns:
        The largest absolute difference per output over all ``shapes`` (batch, segments).
    """
    import onnxruntime as ort

    s = _stream(stream)
    cfg = s.config
    model = _Outputs(copy.deepcopy(s.model).float().cpu().eval()).eval()  # a copy: the stream stays where it is
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    diffs = {n: 0.0 for n in model.names}
    for b, n in shapes:
        x = torch.randn(b, n, cfg.in_chans, cfg.input_size, cfg.input_size, generator=gen) * 50
        with torch.no_grad():
            ref = model(x)
        got = session.run(model.names, {"input": x.numpy()})
        for name, r, g in zip(model.names, ref, got):
            if tuple(r.shape) != tuple(g.shape):
                raise ValueError(f"{path}: output {name} has shape {g.shape}, PyTorch gives {tuple(r.shape)}")
            diffs[name] = max(diffs[name], float(np.abs(r.numpy() - g).max()))
    return diffs


def export_safetensors(stream: LoadedStream | str | Path, path: str | Path) -> tuple[Path, Path]:
    """Write the weights as safetensors and the config, class names and preprocessing as JSON.

    The JSON is stored twice: in the safetensors metadata (key ``tstam``), so the one file is
    enough, and as ``<name>.json`` beside it, for people and other tools.

    Returns:
        (safetensors path, JSON path).
    """
    from safetensors.torch import save_file

    s = _stream(stream)
    path = check_output_file(path, suffix=".safetensors")
    meta = stream_metadata(s)
    text = json.dumps(meta, indent=1)
    weights = {k: v.detach().cpu().contiguous() for k, v in s.model.state_dict().items()}
    try:
        save_file(weights, str(path), metadata={"tstam": text})
        side = path.with_suffix(".json")
        side.write_text(text)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    log.info("wrote %s and %s", path, side)
    return path, side
