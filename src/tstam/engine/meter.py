"""Running training metrics kept on the device, and the progress display that reads them.

A training step must not wait for the GPU: reading a loss (``.item()``, ``.tolist()``, ``if
tensor``) or creating a tensor from Python numbers on the GPU stops the host until every queued
kernel has run, so the next step cannot be queued behind the current one. ``StepMeter.add`` only
queues additions to a few device tensors; ``StepMeter.read`` gathers them over the ranks and reads
them once, every ``run.log_every`` steps, at checkpoints and at the end of an epoch, as
torchvision's reference scripts update their MetricLogger every ``print_freq`` steps.
"""
from __future__ import annotations

import logging
import math
import sys
import time

import torch
from tqdm import tqdm

from tstam.engine.distributed import all_gather_rows

__all__ = ["StepMeter", "Progress"]

log = logging.getLogger(__name__)


class StepMeter:
    """One epoch's sums on ``device``: loss x clips, correct top-1, clips, non-finite losses, and the
    first step whose loss was not finite (with that loss).

    Args:
        device: where the sums live.
        start: sums carried over (a run resumed mid-epoch; given on one rank only, since ``read``
            adds the ranks up).
    """

    def __init__(self, device: torch.device, start: dict[str, float] | None = None):
        s = start or {}
        init = [s.get("loss", 0.0), s.get("correct", 0.0), s.get("clips", 0.0), 0.0, math.inf, 0.0]
        # loss x clips, correct, clips, non-finite count, first non-finite step, its loss
        self.sums = torch.tensor(init, dtype=torch.float64).to(device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        """Queue one step's numbers (``loss`` the batch mean, ``logits`` (B, K), labels (B,)); no sync."""
        loss = loss.detach().double()
        bad = ~torch.isfinite(loss)
        first = bad & torch.isinf(self.sums[4])
        self.sums[0] += loss * y.shape[0]
        self.sums[1] += (logits.detach().argmax(1) == y).sum()
        self.sums[2] += y.shape[0]
        self.sums[3] += bad
        self.sums[4] = torch.where(first, step, self.sums[4])
        self.sums[5] = torch.where(first, loss, self.sums[5])

    def read(self) -> dict[str, float]:
        """Collective: the sums over all ranks (one gather, one host read).

        Returns:
            ``loss``, ``correct``, ``clips``, ``bad`` (non-finite losses), and when ``bad``:
            ``bad_step`` (the first, over ranks) and ``bad_loss``.
        """
        rows = all_gather_rows(self.sums).cpu()                    # (world, 6)
        loss, correct, clips, bad = rows[:, :4].sum(0).tolist()
        out = {"loss": loss, "correct": correct, "clips": clips, "bad": bad}
        if bad:
            first = int(rows[:, 4].argmin())
            out.update(bad_step=int(rows[first, 4]), bad_loss=float(rows[first, 5]))
        return out


class Progress:
    """Progress of one epoch for rank 0: a tqdm bar on a terminal, else a log line, each updated
    only when the caller has read the meter (every ``run.log_every`` steps)."""

    def __init__(self, *, total: int, initial: int, desc: str, enabled: bool):
        self.tty = enabled and sys.stderr.isatty()
        self.enabled, self.desc, self.total, self.shown = enabled, desc, total, initial
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not self.tty, leave=False, unit="batch")
        self.t0 = time.perf_counter()

    def show(self, step: int, sums: dict[str, float], *, lr: float, clips: int) -> None:
        """``step``: steps done in the epoch; ``clips``: clips trained on (all ranks) since the start."""
        rate = clips / max(time.perf_counter() - self.t0, 1e-9)
        loss = sums["loss"] / max(sums["clips"], 1.0)
        if self.tty:
            self.bar.update(step - self.shown)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
        elif self.enabled:
            log.info("%s [%d/%d] loss %.4f lr %.2e %.1f clips/s", self.desc, step, self.total, loss, lr, rate)
        self.shown = step

    def close(self) -> None:
        self.bar.close()
