"""Validation during training: clips of N centre segments, one centre crop, top-1/top-5 and loss
summed over processes (each process holds a disjoint part of the validation set)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from tstam.data.loader import finish_batch
from tstam.engine.distributed import all_reduce_sum
from tstam.preprocess import Preprocess

__all__ = ["autocast", "evaluate"]

_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (``amp`` "bf16" or "fp16"); a no-op otherwise."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_AMP[amp])


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Any], *, device: torch.device, preprocess: Preprocess,
             amp: str = "none") -> dict[str, float]:
    """Mean loss, top-1 and top-5 over the validation clips (batches of (uint8 clip, label),
    normalised on ``device`` with the model's ``preprocess``).

    Returns:
        ``val_loss``, ``val_top1``, ``val_top5`` (fractions) and ``val_clips``.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, clips
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = finish_batch(loader, x)                              # flow of frame pairs on the device, if any
        x = preprocess.normalize_clip(x)
        with autocast(device, amp):
            logits = model(x).logits.float()                     # (B, K)
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices                      # (B, k)
        hit = top == y[:, None]
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), hit[:, 0].sum().double(),
                             hit.any(1).sum().double(), torch.tensor(float(y.numel()), device=device).double()])
    all_reduce_sum(sums)
    model.train(was_training)
    n = max(sums[3].item(), 1.0)
    return {"val_loss": sums[0].item() / n, "val_top1": sums[1].item() / n, "val_top5": sums[2].item() / n,
            "val_clips": int(sums[3].item())}
