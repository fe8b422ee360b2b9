"""``tstam train``: the training loop of one stream (paper 4.2, docs/design.md, Training recipe).

``fit(cfg)`` builds everything from a ``TrainConfig`` and runs ``train_one_epoch`` /
``evaluate`` until ``optim.epochs``. Rank 0 writes ``last.pt`` (every epoch, and every
``run.ckpt_every_steps`` steps) and ``best.pt`` (best validation top-1), ``metrics.csv``,
``metrics.jsonl``, TensorBoard events and ``curves.png`` under ``run.out_dir``.

Resuming (``resume=True`` or a path) restores model, optimiser, scheduler, gradient scaler, every
rank's RNG states and the sampler position, so a run killed anywhere continues to the same weights
as an uninterrupted one (CPU; see tests/test_engine_resume.py). It may resume on another number of
processes: at an epoch boundary as if nothing changed, mid-epoch with the rest of that epoch
re-sharded over the new ranks (``tstam.data.loader.ShardSampler``).

``train_step`` reads nothing back from the GPU: the loss, accuracy and a non-finite flag go into a
device-side ``StepMeter`` that is read every ``run.log_every`` steps, at checkpoints and at epoch
ends (``tstam.engine.meter``). A NaN/inf loss therefore stops the run at the next read, naming the
step where it first happened, and no checkpoint with non-finite weights is ever written.

DDP (torchrun): every process holds ``data.batch_size`` clips, so the global batch is
``world_size x data.batch_size``. Initial weights come from ``run.seed`` on every rank; then rank
r > 0 reseeds torch from (seed, r), so dropout masks differ between ranks while rank 0 draws
exactly what a single process draws. Checks that can fail on one rank only and checkpoint writes
end every rank together (``tstam.engine.distributed.all_ranks_agree``).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tstam.checkpoint import save_checkpoint
from tstam.config import to_dict
from tstam.data.loader import ClipLoader, finish_batch
from tstam.engine.checkpoint import TrainState, capture_rng, load_resumable, restore_run, restore_weights
from tstam.engine.config import TrainConfig
from tstam.engine.distributed import (
    DistInfo,
    all_ranks_agree,
    barrier,
    cleanup_distributed,
    gather_to_main,
    init_distributed,
)
from tstam.engine.evaluate import autocast, evaluate
from tstam.engine.meter import Progress, StepMeter, format_seconds, run_plan
from tstam.engine.optim import (
    Optimisation,
    apply_bn_mode,
    convert_sync_bn,
    current_lr,
    setup_optimisation,
)
from tstam.engine.rundir import RunDir, claim_run_dir
from tstam.errors import ConfigError, NonFiniteLossError
from tstam.files import write_text_atomic

if TYPE_CHECKING:
    from tstam.engine.reports import MetricsLogger

__all__ = ["NonFiniteLossError", "TrainState", "TrainRun", "prepare_run", "train_step", "train_one_epoch", "fit"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TrainRun:
    """Everything one training process works with, complete when made by ``prepare_run`` (the one
    place one is made). ``state`` and ``meter`` change as it trains; the other fields stay."""

    cfg: TrainConfig
    model: nn.Module                            # DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None         # fp16 only
    amp: str                                    # the precision used ("none" off CUDA; bf16 may become fp16)
    device: torch.device
    dist: DistInfo
    train_loader: ClipLoader | None             # None: batches are handed to train_step (tests, benchmarks)
    val_loader: ClipLoader | None               # None: no validation (run.eval_every = 0, or no data)
    classes: list[str]                          # class names, index = label (saved in checkpoints)
    flow: dict[str, Any] | None                 # a flow stream's flow settings (saved in checkpoints)
    out_dir: Path
    logger: MetricsLogger | None                # rank 0 of a run with data
    callbacks: Sequence[Callable[[TrainState], None]]
    state: TrainState
    meter: StepMeter                            # this epoch's sums; a new one every epoch
    progress: Progress                          # what rank 0 shows (bars or log lines)

    @property
    def bare(self) -> nn.Module:
        """The model without its torch.compile and DDP wrappers (what checkpoints and validation use)."""
        model = getattr(self.model, "_orig_mod", self.model)
        return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def prepare_run(cfg: TrainConfig, model: nn.Module, device: torch.device, *, optimisation: Optimisation | None = None,
                dist: DistInfo | None = None, loaders: tuple[ClipLoader, ClipLoader | None] | None = None,
                classes: Sequence[str] = (), flow: dict[str, Any] | None = None, out_dir: Path = Path("."),
                logger: MetricsLogger | None = None, callbacks: Sequence[Callable[[TrainState], None]] = (),
                state: TrainState | None = None, meter: StepMeter | None = None,
                progress: Progress | None = None) -> TrainRun:
    """A complete ``TrainRun``. Given only ``cfg``, ``model`` and ``device`` (tests, benchmarks): one
    process without data or output, the model set up by ``setup_optimisation``, for ``train_step``
    on batches given by hand. ``fit`` passes everything it built (``_build``)."""
    opt = optimisation if optimisation is not None else setup_optimisation(cfg, model, device)
    train_loader, val_loader = loaders or (None, None)
    if cfg.run.compile:  # the same parameters: the optimiser built above keeps them
        model = torch.compile(model)
    return TrainRun(cfg=cfg, model=model, optimizer=opt.optimizer, scheduler=opt.scheduler, scaler=opt.scaler,
                    amp=opt.amp, device=device, dist=dist or DistInfo(), train_loader=train_loader,
                    val_loader=val_loader, classes=list(classes), flow=flow, out_dir=Path(out_dir), logger=logger,
                    callbacks=callbacks, state=state if state is not None else TrainState(),
                    meter=meter if meter is not None else StepMeter(device),
                    progress=progress if progress is not None else Progress(enabled=False))


def train_step(run: TrainRun, x: torch.Tensor, y: torch.Tensor) -> None:
    """One optimisation step on a batch of uint8 clips ``x`` (B, N, C, H, W) and labels ``y`` (B,),
    without a host sync: normalised on the device, mixed precision, gradient scaling and
    clipping; loss and accuracy go into ``run.meter``."""
    x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
    x = finish_batch(run.train_loader, x)                          # flow of frame pairs on the device, if any
    x = run.bare.cfg.preprocess.normalize_clip(x)                  # uint8 -> normalised float, on the device
    with autocast(run.device, run.amp):
        out = run.model(x)
        logits, loss = out.logits, run.bare.loss(out, y)           # (B, K); + lambda x aux loss (ModelConfig)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        loss.backward()
    if run.cfg.optim.clip_grad:
        nn.utils.clip_grad_norm_(run.bare.parameters(), run.cfg.optim.clip_grad)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)                             # fused optimiser on CUDA: no sync
        run.scaler.update()
    else:
        run.optimizer.step()
    run.meter.add(loss, logits, y, run.state.step + 1)


def _read(run: TrainRun) -> dict[str, float]:
    """Collective: the epoch's sums over all ranks; every rank raises if a loss was not finite."""
    sums = run.meter.read()
    if sums["bad"]:
        where = run.out_dir / "last.pt"
        raise NonFiniteLossError(
            f"non-finite loss ({sums['bad_loss']}) at epoch {run.state.epoch + 1}, step {sums['bad_step']}; training "
            f"stopped. The last good checkpoint is {where if where.exists() else '(none written yet)'}. "
            "Lower optim.lr, keep optim.clip_grad on, or check the input frames."
        )
    return sums


def train_one_epoch(run: TrainRun) -> tuple[dict[str, float], bool]:
    """One pass over the training loader (from the sampler's position on resume).

    Returns:
        (``train_loss``, ``train_top1`` (on augmented clips), ``clips_per_s``, ``lr``; whether the
        epoch finished, i.e. ``run.max_steps`` did not stop it).
    """
    cfg, st, bar = run.cfg, run.state, run.progress
    run.model.train()
    apply_bn_mode(run.bare, cfg.optim.bn)
    todo = len(run.train_loader)  # batches left in this epoch (fewer when resumed mid-epoch)
    run_steps, validations = run_plan(epochs=cfg.optim.epochs, epoch_len=st.epoch_step + todo, epoch=st.epoch,
                                      max_steps=cfg.run.max_steps,
                                      eval_every=cfg.run.eval_every if run.val_loader is not None else 0)
    bar.start_epoch(f"epoch {st.epoch + 1}/{cfg.optim.epochs}", total=st.epoch_step + todo, initial=st.epoch_step,
                    step=st.step, run_steps=run_steps, validations_left=validations)
    t0, done, clips = time.perf_counter(), 0, 0
    for x, y in run.train_loader:
        train_step(run, x, y)
        st.step, st.epoch_step, done = st.step + 1, st.epoch_step + 1, done + 1
        clips += len(y) * run.dist.world_size  # every rank holds the same batch size
        bar.step()  # counts on the host; the loss is read below, every run.log_every steps only
        if st.step % cfg.run.log_every == 0:
            bar.show(st.epoch_step, _read(run), lr=current_lr(run.optimizer), clips=clips)
        stop = bool(cfg.run.max_steps and st.step >= cfg.run.max_steps)
        every = cfg.run.ckpt_every_steps
        if every and st.step % every == 0 and done < todo and not stop:
            _save(run, "last.pt")
        for cb in run.callbacks:
            cb(st)
        if stop:
            break
    sums = _read(run)
    bar.end_epoch()
    n = max(sums["clips"], 1.0)
    return ({"train_loss": sums["loss"] / n, "train_top1": sums["correct"] / n,
             "clips_per_s": clips / max(time.perf_counter() - t0, 1e-9), "lr": current_lr(run.optimizer)},
            done == todo)


def _checkpoint_state(run: TrainRun, sums: dict[str, float], rng: list[dict[str, Any]]) -> dict[str, Any]:
    st = run.state
    return {
        "model": run.bare.state_dict(),
        "model_config": to_dict(run.bare.cfg),
        "classes": list(run.classes),
        "flow": run.flow,
        "epoch": st.epoch,
        "epoch_step": st.epoch_step,
        "step": st.step,
        "best_top1": st.best_top1,
        "epoch_sums": {k: sums[k] for k in ("loss", "correct", "clips")},
        "world_size": run.dist.world_size,
        "config": run.cfg.to_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "rng": rng,                                                # one state per rank, rank order
        "sampler": run.train_loader.state_dict(),
    }


def _save(run: TrainRun, *names: str) -> None:
    """Collective: write the checkpoint from rank 0 under each name; a failure ends every rank.
    Never writes non-finite weights (the last good checkpoint stays)."""
    sums = _read(run)
    rng = gather_to_main(capture_rng())
    with all_ranks_agree():
        if run.dist.is_main:
            params = dict(run.bare.named_parameters())
            finite = torch.stack([torch.isfinite(p).all() for p in params.values()]).tolist()
            bad = [n for n, ok in zip(params, finite) if not ok]
            if bad:
                raise NonFiniteLossError(
                    f"non-finite weights ({bad[0]} and {len(bad) - 1} more) at epoch {run.state.epoch + 1}, step "
                    f"{run.state.step}; training stopped without overwriting {run.out_dir / names[0]} (the last good "
                    "checkpoint). Lower optim.lr or keep optim.clip_grad on."
                )
            state = _checkpoint_state(run, sums, rng)
            for name in names:
                save_checkpoint(run.out_dir / name, state)


def _init_weights(cfg: TrainConfig, dist: DistInfo) -> Path | None:
    """Collective: the file of ``run.init_weights``, downloaded into the cache first by each node's
    first process (the others wait, then find it there)."""
    from tstam.models import weights_file

    if not cfg.run.init_weights:
        return None
    path = None
    with all_ranks_agree():
        if dist.local_rank == 0:
            path = weights_file(cfg.run.init_weights)
    return path or weights_file(cfg.run.init_weights)


def _build(cfg: TrainConfig, dist: DistInfo, device: torch.device, resume: str | Path | bool | None,
           callbacks: Sequence[Callable[[TrainState], None]]) -> TrainRun:
    from tstam.engine.annotations import config_from_data, load_split, store_flow
    from tstam.engine.inputs import build_train_loaders
    from tstam.engine.reports import MetricsLogger
    from tstam.models import build_model, load_pretrained

    with all_ranks_agree():  # what can fail on one rank only; no collective inside
        train_recs, val_recs, _test, classes = load_split(cfg.annotations, cfg.data)
        cfg = config_from_data(cfg, train_recs, classes)
        flow = store_flow(train_recs, cfg.data).describe() if cfg.model.modality == "flow" else None
        out_dir = Path(cfg.run.out_dir)
        ckpt = None
        if resume:
            path = out_dir / "last.pt" if resume is True else Path(resume)
            ckpt = load_resumable(path, to_dict(cfg.model))
            log.info("resuming from %s (epoch %d, step %d, %d process(es) -> %d)", path, ckpt["epoch"] + 1,
                     ckpt["step"], ckpt.get("world_size", 1), dist.world_size)
        if cfg.optim.bn == "partial" and not cfg.run.init_weights and ckpt is None:
            raise ConfigError(
                "optim.bn=partial (TSN partial BN) keeps every backbone BN but the first at the ImageNet statistics of "
                "run.init_weights; without them those layers would run with mean 0 / variance 1 and never learn "
                "(no normalisation at all). Set run.init_weights=imagenet (downloads bn_inception-52deb4733.pth once) "
                "or a weight file, or optim.bn=full to train from scratch")
    init = _init_weights(cfg, dist) if ckpt is None else None  # after the checks: no download for a bad run
    with all_ranks_agree():
        torch.manual_seed(cfg.run.seed)  # the same initial weights on every rank
        model = build_model(cfg.model)
        if init is not None:
            load_pretrained(model, init)
        if dist.rank:  # then each rank its own dropout masks (rank 0 draws what one process draws)
            torch.manual_seed(int(np.random.SeedSequence([cfg.run.seed, dist.rank]).generate_state(1)[0]))
        if ckpt is not None:
            restore_weights(model, ckpt, path=path)
        opt = setup_optimisation(cfg, model, device)
        if dist.enabled and cfg.run.sync_bn and device.type == "cuda":
            convert_sync_bn(model, cfg.optim.bn)  # the same parameter objects: the optimiser keeps them
        elif cfg.run.sync_bn and dist.is_main:
            log.warning("run.sync_bn has no effect here (%s): it syncs BN statistics across the processes of a DDP "
                        "run on CUDA", "one process" if not dist.enabled else device.type)
        loaders = build_train_loaders(cfg, train_recs, val_recs, dist=dist)
        state, meter = restore_run(ckpt, opt, loaders[0], dist, device) if ckpt is not None else (None, None)
    logger = None
    with all_ranks_agree():
        if dist.is_main:
            # the hold-out, for the record (engine/annotations.py): never the test list
            write_text_atomic(out_dir / "validation.txt", "".join(f"{r.video_id}\n" for r in val_recs))
            logger = MetricsLogger(out_dir, tensorboard=cfg.run.tensorboard,
                                   resume_epoch=state.epoch if state is not None else None)
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,        # validation runs the bare module; BN statistics stay per rank
            gradient_as_bucket_view=True)   # gradients live in the all-reduce buckets: no copy, less memory
    return prepare_run(cfg, model, device, optimisation=opt, dist=dist, loaders=loaders, classes=classes, flow=flow,
                       out_dir=out_dir, logger=logger, callbacks=callbacks, state=state, meter=meter)


def fit(cfg: TrainConfig, *, resume: str | Path | bool | None = None, force: bool = False,
        progress: bool | None = None, callbacks: Sequence[Callable[[TrainState], None]] = ()) -> dict[str, Any]:
    """Train one stream as ``cfg`` says; resume from ``run.out_dir/last.pt`` (True) or a path.

    ``run.out_dir`` is claimed first (``tstam.engine.rundir``): a folder holding a run is refused
    unless resumed or ``force``d (moved aside), and a new run that fails before its first
    checkpoint leaves nothing behind.

    Args:
        cfg: the run's config.
        resume: None/False to start fresh, True for ``<out_dir>/last.pt``, or a checkpoint path.
        force: start over in a folder that holds a run: it is moved to ``<out_dir>.old-<time>``.
        progress: progress bars on stderr (True), log lines only (False), bars on a terminal (None).
        callbacks: called with the ``TrainState`` after every optimisation step.

    Returns:
        The last metrics row (epoch, step, train and validation metrics, ``epoch_s``) and
        ``best_top1``; ``previous_run``: where ``force`` moved the old run (absent otherwise).

    Raises:
        OutputError: ``run.out_dir`` holds a run (neither ``resume`` nor ``force``) or is not writable.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        CheckpointError: a checkpoint could not be written or does not fit the config.
    """
    row: dict[str, Any] = {}
    run: TrainRun | None = None
    claimed: RunDir | None = None
    ok = False
    dist, device = init_distributed(cfg.run.device, option="run.device")
    try:
        with all_ranks_agree():
            if dist.is_main:
                claimed = claim_run_dir(cfg.run.out_dir, resume=bool(resume), force=force)
        run = _build(cfg, dist, device, resume, callbacks)
        run.progress = Progress(enabled=dist.is_main, bars=progress)
        st = run.state
        while st.epoch < cfg.optim.epochs:
            t0 = time.perf_counter()
            run.train_loader.set_epoch(st.epoch)
            metrics, finished = train_one_epoch(run)
            row = {"epoch": st.epoch + 1, **metrics}  # epochs completed after this one
            if not finished:  # max_steps reached mid-epoch: keep an exact resume point, no epoch row
                _save(run, "last.pt")
                row.update(step=st.step, best_top1=st.best_top1)
                break
            last = st.epoch + 1 == cfg.optim.epochs or bool(cfg.run.max_steps and st.step >= cfg.run.max_steps)
            if run.val_loader is not None and ((st.epoch + 1) % cfg.run.eval_every == 0 or last):
                row.update(evaluate(run.bare, run.val_loader, device=run.device, amp=run.amp,
                                    preprocess=run.bare.cfg.preprocess,
                                    progress=lambda it: run.progress.validation(it, desc=f"validation {st.epoch + 1}")))
            run.scheduler.step()
            row["step"] = st.step
            st.epoch, st.epoch_step = st.epoch + 1, 0
            improved = row.get("val_top1") is not None and (st.best_top1 is None or row["val_top1"] > st.best_top1)
            if improved:
                st.best_top1 = row["val_top1"]
            run.meter = StepMeter(run.device)  # the next epoch's sums (the last one was read above)
            _save(run, "last.pt", *(["best.pt"] if improved else []))
            row["best_top1"] = st.best_top1
            row["epoch_s"] = time.perf_counter() - t0  # training, validation and checkpoint
            with all_ranks_agree():
                if run.logger is not None:
                    run.logger.log(row)
            log.info("epoch %d in %.1f s: %s; run ETA %s", st.epoch, row["epoch_s"], ", ".join(
                f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float) and math.isfinite(v) and k != "epoch_s"),
                format_seconds(run.progress.eta() if not last else 0.0))
            if last:
                break
        barrier()
        ok = True
    finally:
        if run is not None and run.logger is not None:
            run.logger.close()
        if not ok and claimed is not None and not resume:
            claimed.discard_if_unstarted()
        cleanup_distributed(dist)
    if claimed is not None and claimed.moved_to is not None:
        row["previous_run"] = str(claimed.moved_to)
    return row
