"""The short way to use a trained model: ``tstam.load(path).predict(video)``.

    import tstam
    model = tstam.load("runs/rgb/best.pt", "runs/flow/best.pt")   # or one stream, or .safetensors
    pred = model.predict("v_Biking_g01_c01.avi")                   # or (T, H, W, 3) uint8 frames
    print(pred.label, pred.top(5))                                  # fused RGB:flow = 1:3
    pred.streams["flow"].temporal                                   # alpha over the 25 snippets

See ``tstam.inference`` for the pieces (``Recognizer``, ``Prediction``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from tstam.inference import LoadedStream, Prediction, Recognizer, StreamResult, load_stream

__all__ = ["load", "Recognizer", "Prediction", "StreamResult", "LoadedStream"]


def load(path: str | Path, *more: str | Path, weights: Sequence[float] | None = None,
         device: str | torch.device = "cpu") -> Recognizer:
    """Load one trained stream, or both, ready to predict.

    Each file is a tstam checkpoint (``.pt``, read with ``weights_only=True``) or a safetensors
    export (``tstam export --safetensors``); its stream (RGB or flow), class names, frame size,
    flow algorithm and normalisation come from the file.

    Args:
        path: the first checkpoint.
        *more: a second checkpoint, of the other stream.
        weights: fusion weights (RGB, flow); default: those ``tstam fuse --search`` recorded for
            these two checkpoints (``tstam.fusion_record``), else 1:3 (paper 4.3.3).
        device: where the models run ("cpu", "cuda", ...).

    Returns:
        A :class:`~tstam.inference.Recognizer`; ``.predict(video_or_frames)`` returns a
        :class:`~tstam.inference.Prediction` with ``label``, ``top(k)``, ``probabilities``,
        per-stream results and attention.
    """
    if len(more) > 1:
        raise ValueError(f"tstam.load takes one or two checkpoints (RGB and/or flow), got {1 + len(more)}")
    streams = [load_stream(p, device=device) for p in (path, *more)]
    return Recognizer(streams, weights=weights)
