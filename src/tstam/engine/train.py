"""``tstam train``: the training loop of one stream (paper 4.2, DESIGN section 4).

``fit(cfg)`` builds everything from a ``TrainConfig`` and runs ``train_one_epoch`` /
``evaluate`` until ``optim.epochs``. Rank 0 writes ``last.pt`` (every epoch, and every
``run.ckpt_every_steps`` steps) and ``best.pt`` (best validation top-1), ``metrics.csv``,
``metrics.jsonl``, TensorBoard events and ``curves.png`` under ``run.out_dir``.

Resuming (``resume=True`` or a path) restores model, optimiser, scheduler, gradient scaler, every
RNG state and the sampler position, so a run killed anywhere continues to the same weights as an
uninterrupted one (CPU; see tests/test_engine_resume.py). Under DDP every process holds
``data.batch_size`` clips, so the global batch is ``world_size x data.batch_size``.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from tstam.config import ConfigError, to_dict
from tstam.data.loader import finish_batch
from tstam.files import write_text_atomic
from tstam.checkpoint import load_checkpoint, save_checkpoint
from tstam.engine.checkpoint import capture_rng, check_compatible, restore_rng
from tstam.engine.config import TrainConfig
from tstam.engine.distributed import DistInfo, all_reduce_sum, barrier, cleanup_distributed, init_distributed
from tstam.engine.evaluate import autocast, evaluate
from tstam.engine.optim import apply_bn_mode, build_optimizer, build_scheduler, current_lr
from tstam.engine.reports import MetricsLogger

__all__ = ["NonFiniteLossError", "TrainState", "train_one_epoch", "fit"]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainState:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0                  # epoch in progress (0-based)
    epoch_step: int = 0             # steps done in that epoch
    step: int = 0                   # steps done in total
    best_top1: Optional[float] = None
    sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "correct": 0.0, "clips": 0.0})


@dataclass
class _Run:
    cfg: TrainConfig
    model: nn.Module                # DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Optional[torch.amp.GradScaler]
    train_loader: Any
    val_loader: Any
    classes: list[str]
    flow: Optional[dict[str, Any]]
    dist: DistInfo
    device: torch.device
    out_dir: Path
    state: TrainState
    callbacks: Sequence[Callable[[TrainState], None]] = ()

    @property
    def bare(self) -> nn.Module:
        return self.model.module if hasattr(self.model, "module") else self.model


def _checkpoint_state(run: _Run) -> dict[str, Any]:
    st = run.state
    sampler = getattr(run.train_loader, "sampler", None)
    return {
        "model": run.bare.state_dict(),
        "model_config": to_dict(run.bare.cfg),
        "classes": list(run.classes),
        "flow": run.flow,
        "epoch": st.epoch,
        "epoch_step": st.epoch_step,
        "step": st.step,
        "best_top1": st.best_top1,
        "epoch_sums": dict(st.sums),
        "config": run.cfg.to_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "rng": capture_rng(),
        "sampler": sampler.state_dict() if hasattr(sampler, "state_dict") else None,
    }


def _save(run: _Run, name: str) -> None:
    """Write a checkpoint from rank 0, never one with non-finite weights (the last good one stays)."""
    if not run.dist.is_main:
        return
    bad = [n for n, p in run.bare.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise NonFiniteLossError(
            f"non-finite weights ({bad[0]} and {len(bad) - 1} more) at epoch {run.state.epoch + 1}, step "
            f"{run.state.step}; training stopped without overwriting {run.out_dir / name} (the last good checkpoint). "
            "Lower optim.lr or keep optim.clip_grad on."
        )
    save_checkpoint(run.out_dir / name, _checkpoint_state(run))


def train_one_epoch(run: _Run) -> dict[str, float]:
    """One pass over the training loader (from the sampler's position on resume).

    Returns:
        ``train_loss``, ``train_top1`` (on augmented clips), ``clips_per_s`` and ``lr``.
    """
    cfg, st, model = run.cfg, run.state, run.model
    model.train()
    apply_bn_mode(model, cfg.optim.bn)
    steps = st.epoch_step + len(run.train_loader)  # the loader skips what a resumed epoch already did
    bar = tqdm(total=steps, initial=st.epoch_step, desc=f"epoch {st.epoch + 1}/{cfg.optim.epochs}",
               disable=not (run.dist.is_main and sys.stderr.isatty()), leave=False, unit="batch")
    t0, clips_seen = time.perf_counter(), 0
    for x, y in run.train_loader:
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        x = finish_batch(run.train_loader, x)                         # flow of frame pairs on the device, if any
        x = run.bare.cfg.preprocess.normalize_clip(x)                # uint8 -> normalised float, on the device
        with autocast(run.device, cfg.run.amp):
            logits = model(x).logits                                  # (B, K)
            loss = F.cross_entropy(logits.float(), y)
        stats = torch.stack([loss.detach().float() * y.numel(), (logits.argmax(1) == y).sum().float(),
                             torch.tensor(float(y.numel()), device=run.device),
                             (~torch.isfinite(loss.detach())).float()])
        all_reduce_sum(stats)
        if stats[3] > 0:
            where = run.out_dir / "last.pt"
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at epoch {st.epoch + 1}, step {st.step + 1}; training stopped. "
                f"The last good checkpoint is {where if where.exists() else '(none written yet)'}. "
                "Lower optim.lr, keep optim.clip_grad on, or check the input frames."
            )
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is not None:
            run.scaler.scale(loss).backward()
            run.scaler.unscale_(run.optimizer)
        else:
            loss.backward()
        if cfg.optim.clip_grad:
            nn.utils.clip_grad_norm_(run.bare.parameters(), cfg.optim.clip_grad)
        if run.scaler is not None:
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            run.optimizer.step()
        st.step += 1
        st.epoch_step += 1
        for k, v in zip(("loss", "correct", "clips"), stats[:3].tolist()):
            st.sums[k] += v
        clips_seen += int(stats[2].item())
        rate = clips_seen / max(time.perf_counter() - t0, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{stats[0].item() / stats[2].item():.4f}", lr=f"{current_lr(run.optimizer):.2e}",
                        clips_s=f"{rate:.1f}")
        every = cfg.run.ckpt_every_steps
        if every and st.step % every == 0 and st.epoch_step < steps:
            _save(run, "last.pt")
        for cb in run.callbacks:
            cb(st)
        if cfg.run.max_steps and st.step >= cfg.run.max_steps:
            break
    bar.close()
    n = max(st.sums["clips"], 1.0)
    return {"train_loss": st.sums["loss"] / n, "train_top1": st.sums["correct"] / n,
            "clips_per_s": clips_seen / max(time.perf_counter() - t0, 1e-9), "lr": current_lr(run.optimizer)}


def _build(cfg: TrainConfig, resume: str | Path | bool | None,
           callbacks: Sequence[Callable[[TrainState], None]]) -> _Run:
    from tstam.engine.annotations import load_split, store_flow
    from tstam.engine.inputs import build_train_loaders
    from tstam.models import build_model, load_pretrained

    dist, device = init_distributed(cfg.run.device)
    torch.manual_seed(cfg.run.seed)  # same initial weights on every rank (DDP also broadcasts them)
    train_recs, val_recs, _test, classes = load_split(cfg.annotations, cfg.data)
    if cfg.model.num_classes != len(classes):
        raise ValueError(f"model.num_classes={cfg.model.num_classes} but the annotations list {len(classes)} "
                         f"classes; set model.num_classes={len(classes)}")
    flow = store_flow(train_recs, cfg.data).describe() if cfg.model.modality == "flow" else None
    out_dir = Path(cfg.run.out_dir)
    ckpt = None
    if resume:
        path = out_dir / "last.pt" if resume is True else Path(resume)
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, to_dict(cfg.model), path=path)
        log.info("resuming from %s (epoch %d, step %d)", path, ckpt["epoch"] + 1, ckpt["step"])

    if cfg.optim.bn == "partial" and not cfg.run.init_weights and ckpt is None:
        raise ConfigError(
            "optim.bn=partial (TSN partial BN) keeps every backbone BN but the first at the ImageNet statistics of "
            "run.init_weights; without them those layers would run with mean 0 / variance 1 and never learn "
            "(no normalisation at all). Set run.init_weights=<bn_inception-52deb4733.pth or a TSN file>, or "
            "optim.bn=full to train from scratch")
    model = build_model(cfg.model)
    if cfg.run.init_weights and ckpt is None:
        load_pretrained(model, cfg.run.init_weights)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    apply_bn_mode(model, cfg.optim.bn)
    model.to(device)
    if cfg.run.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    scaler = torch.amp.GradScaler("cuda") if cfg.run.amp == "fp16" and device.type == "cuda" else None
    net: nn.Module = model
    if dist.enabled:
        if cfg.run.sync_bn and device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    train_loader, val_loader = build_train_loaders(cfg, train_recs, val_recs, dist=dist)
    if dist.is_main:  # the hold-out, for the record (engine/annotations.py): never the test list
        write_text_atomic(out_dir / "validation.txt", "".join(f"{r.video_id}\n" for r in val_recs))
    state = TrainState()
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = TrainState(ckpt["epoch"], ckpt["epoch_step"], ckpt["step"], ckpt.get("best_top1"),
                           dict(ckpt.get("epoch_sums") or TrainState().sums))
        if ckpt.get("sampler") is not None and hasattr(train_loader.sampler, "load_state_dict"):
            train_loader.sampler.load_state_dict(ckpt["sampler"])
        restore_rng(ckpt["rng"])
    return _Run(cfg, net, optimizer, scheduler, scaler, train_loader, val_loader, classes, flow, dist, device,
                out_dir, state, callbacks)


def fit(cfg: TrainConfig, *, resume: str | Path | bool | None = None,
        callbacks: Sequence[Callable[[TrainState], None]] = ()) -> dict[str, Any]:
    """Train one stream as ``cfg`` says; resume from ``run.out_dir/last.pt`` (True) or a path.

    Args:
        cfg: the run's config.
        resume: None/False to start fresh, True for ``<out_dir>/last.pt``, or a checkpoint path.
        callbacks: called with the ``TrainState`` after every optimisation step.

    Returns:
        The last metrics row (epoch, step, train and validation metrics) and ``best_top1``.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        CheckpointError: a checkpoint could not be written or does not fit the config.
    """
    run = _build(cfg, resume, callbacks)
    st = run.state
    logger = MetricsLogger(run.out_dir, tensorboard=cfg.run.tensorboard, resume_epoch=st.epoch if resume else None) \
        if run.dist.is_main else None
    row: dict[str, Any] = {}
    try:
        if run.dist.is_main:
            run.out_dir.mkdir(parents=True, exist_ok=True)
        while st.epoch < cfg.optim.epochs:
            if hasattr(run.train_loader.sampler, "set_epoch"):
                run.train_loader.sampler.set_epoch(st.epoch)
            row = {"epoch": st.epoch + 1, **train_one_epoch(run)}  # epochs completed after this one
            stopping = bool(cfg.run.max_steps and st.step >= cfg.run.max_steps and st.epoch_step < len(run.train_loader))
            if stopping:  # max_steps reached mid-epoch: keep an exact resume point, no epoch row
                _save(run, "last.pt")
                break
            last = st.epoch + 1 == cfg.optim.epochs or (cfg.run.max_steps and st.step >= cfg.run.max_steps)
            if run.val_loader is not None and ((st.epoch + 1) % cfg.run.eval_every == 0 or last):
                row.update(evaluate(run.model, run.val_loader, device=run.device, amp=cfg.run.amp,
                                    preprocess=run.bare.cfg.preprocess))
            run.scheduler.step()
            row["step"] = st.step
            st.epoch, st.epoch_step = st.epoch + 1, 0
            st.sums = TrainState().sums
            improved = row.get("val_top1") is not None and (st.best_top1 is None or row["val_top1"] > st.best_top1)
            if improved:
                st.best_top1 = row["val_top1"]
            _save(run, "last.pt")
            if improved:
                _save(run, "best.pt")
            row["best_top1"] = st.best_top1
            if logger is not None:
                logger.log(row)
            log.info("epoch %d: %s", st.epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                        if isinstance(v, float) and math.isfinite(v)))
            if last:
                break
        barrier()
    finally:
        if logger is not None:
            logger.close()
        cleanup_distributed()
    return row
