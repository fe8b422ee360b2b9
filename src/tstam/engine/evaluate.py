"""Validation during training: clips of N centre segments, one centre crop, top-1/top-5 and loss
summed over processes (each process holds a disjoint part of the validation set, possibly none),
and the mixed-precision settings shared by training, validation and testing."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tstam.data.loader import finish_batch
from tstam.engine.distributed import all_reduce_sum
from tstam.preprocess import Preprocess

__all__ = ["autocast", "resolve_amp", "evaluate"]

log = logging.getLogger(__name__)

_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_amp(device: torch.device, amp: str, *, option: str = "run.amp") -> str:
    """The precision a run uses: ``amp`` ("none", "bf16", "fp16"), except that bf16 on a GPU
    without native bf16 (before Ampere, compute capability < 8.0) becomes fp16, with a warning;
    off CUDA, autocast is not used at all ("none"), and a precision asked for there is said once
    in the log: CPU autocast to bf16 exists, but on CPUs without bf16 units (most without AMX) it
    runs slower than float32, and a CPU run stays comparable with the float32 runs and tests."""
    if amp != "none" and device.type != "cuda":
        log.warning("%s=%s has no effect on %s: autocast is used on CUDA only; running in float32", option, amp,
                    device.type)
    if amp == "none" or device.type != "cuda":
        return "none"
    if amp == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        name = torch.cuda.get_device_name(device)
        cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
        log.warning("run.amp=bf16, but %s (compute capability %s) has no native bf16: using fp16 with a "
                    "gradient scaler instead (set run.amp=fp16 to silence this)", name, cap)
        return "fp16"
    return amp


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (``amp`` "bf16" or "fp16"); a no-op otherwise."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_AMP[amp])


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Any], *, device: torch.device, preprocess: Preprocess,
             amp: str = "none", progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> dict[str, float]:
    """Mean loss, top-1 and top-5 over the validation clips (batches of (uint8 clip, label),
    normalised on ``device`` with the model's ``preprocess``); ``progress`` wraps the loader's
    iteration for a display (``tstam.engine.meter.Progress.validation``).

    Pass the bare model, not its DDP wrapper: a wrapped forward would broadcast buffers, a
    collective that a rank with fewer (or no) validation batches never joins. The one collective
    here, the final sum, every rank reaches.

    Returns:
        ``val_loss``, ``val_top1``, ``val_top5`` (fractions) and ``val_clips``.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, clips; read once at the end
    for x, y in (progress(loader) if progress is not None else loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = finish_batch(loader, x)                              # flow of frame pairs on the device, if any
        x = preprocess.normalize_clip(x)
        with autocast(device, amp):
            logits = model(x).logits.float()                     # (B, K)
        k = min(5, logits.shape[1])
        hit = logits.topk(k, dim=1).indices == y[:, None]        # (B, k)
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        sums[1] += hit[:, 0].sum()
        sums[2] += hit.any(1).sum()
        sums[3] += y.numel()
    all_reduce_sum(sums)
    model.train(was_training)
    loss, top1, top5, clips = sums.tolist()
    n = max(clips, 1.0)
    return {"val_loss": loss / n, "val_top1": top1 / n, "val_top5": top5 / n, "val_clips": int(clips)}
