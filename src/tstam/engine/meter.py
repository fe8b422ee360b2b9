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
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
from tqdm import tqdm

from tstam.engine.distributed import all_gather_rows

__all__ = ["StepMeter", "Progress", "format_seconds", "run_plan"]

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    """What rank 0 shows of a run (the other ranks show nothing).

    On a terminal (or with ``bars=True``): one tqdm bar per epoch on stderr that moves at every step
    (``step`` only counts on the host: no tensor is read), with the loss, learning rate and clips/s
    of the last meter read (``show``, every ``run.log_every`` steps) and the whole run's ETA; and a
    validation bar (``validation``). Otherwise a log line at each ``show``. ``bars=False`` (``tstam
    train --no-progress``) keeps the log lines only.

    The ETA is the steps left times the mean seconds per step this process has taken so far (its
    loading and checkpoints included), plus the validations left times the last one's seconds.

    Args:
        enabled: this process reports (rank 0).
        bars: bars instead of log lines; None: when stderr is a terminal.
    """

    def __init__(self, *, enabled: bool, bars: bool | None = None):
        self.enabled = enabled
        self.bars = enabled and (sys.stderr.isatty() if bars is None else bars)
        self.total_steps, self.first, self.done = 0, -1, 0  # steps of the run; done when this process began; done
        self.t0 = time.perf_counter()
        self.val_s: float | None = None     # the last validation's seconds
        self.val_total, self.val_left = 0.0, 0  # seconds of validation in this process; validations to come
        self.bar: tqdm | None = None
        self.desc, self.epoch_total, self.epoch_t0 = "", 0, self.t0

    def start_epoch(self, desc: str, *, total: int, initial: int, step: int, run_steps: int,
                    validations_left: int) -> None:
        """A new epoch bar: ``total`` steps, ``initial`` of them done (resumed mid-epoch); ``step``
        steps of the run done, ``run_steps`` in all, ``validations_left`` from this epoch on."""
        self.desc, self.epoch_total, self.val_left = desc, total, validations_left
        self.total_steps, self.done = run_steps, step
        self.epoch_t0 = time.perf_counter()
        if self.first < 0:
            self.first, self.t0 = step, self.epoch_t0
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not self.bars, leave=False, unit="step",
                        dynamic_ncols=True)

    def step(self) -> None:
        """One optimisation step done (host-side counting only)."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def eta(self) -> float | None:
        """Seconds the run still needs, or None before its first step."""
        steps = self.done - self.first
        if self.first < 0 or steps <= 0:
            return None
        per_step = (time.perf_counter() - self.t0 - self.val_total) / steps
        return max(self.total_steps - self.done, 0) * max(per_step, 0.0) + (self.val_s or 0.0) * self.val_left

    def show(self, epoch_step: int, sums: dict[str, float], *, lr: float, clips: int) -> None:
        """The meter's latest read: ``epoch_step`` steps done in the epoch, ``clips`` trained on (all
        ranks) since the epoch started."""
        rate = clips / max(time.perf_counter() - self.epoch_t0, 1e-9)
        loss = sums["loss"] / max(sums["clips"], 1.0)
        eta = format_seconds(self.eta())
        if self.bars and self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}, lr {lr:.2e}, {rate:.1f} clips/s, run ETA {eta}")
        elif self.enabled:
            log.info("%s [%d/%d] loss %.4f lr %.2e %.1f clips/s, run ETA %s", self.desc, epoch_step, self.epoch_total,
                     loss, lr, rate, eta)

    def end_epoch(self) -> float:
        """Close the epoch bar; the epoch's seconds so far (its training)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        return time.perf_counter() - self.epoch_t0

    def validation(self, loader: Iterable[T], *, desc: str) -> Iterator[T]:
        """Iterate ``loader`` under a validation bar (on a terminal), timing it for the ETA."""
        t = time.perf_counter()
        total = len(loader) if hasattr(loader, "__len__") else None
        yield from tqdm(loader, total=total, desc=desc, disable=not self.bars, leave=False, unit="batch",
                        dynamic_ncols=True)
        self.val_s = time.perf_counter() - t
        self.val_total += self.val_s
        self.val_left = max(self.val_left - 1, 0)


def format_seconds(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03`` for a duration, ``?`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def run_plan(*, epochs: int, epoch_len: int, epoch: int, max_steps: int, eval_every: int) -> tuple[int, int]:
    """(optimisation steps of the whole run, validations from ``epoch`` (0-based) on) as
    ``tstam.engine.train.fit`` runs them: every ``eval_every`` epochs (0: never) and after the last;
    ``max_steps`` (0: none) may cut the last epoch, which is then not validated."""
    total = epochs * epoch_len
    if max_steps:
        total = min(total, max_steps)
    full, cut = divmod(total, max(epoch_len, 1))  # complete epochs; steps of a last, cut epoch
    if not eval_every:
        return total, 0
    return total, sum((e + 1) % eval_every == 0 or (e == full - 1 and not cut) for e in range(epoch, full))
