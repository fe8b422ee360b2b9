"""SGD (or AdamW) with TSN's parameter groups, the step (or cosine) learning-rate schedule, and BatchNorm modes.

Paper 4.2: SGD, momentum 0.9, weight decay 5e-4, lr divided by 10 at fixed epochs. TSN's
practices (docs/design.md, Training recipe): per-group lr and decay multipliers from ``TSTAM.optim_groups`` (first conv
weight x5 and bias x10 for flow, biases x2 without decay, BN without decay) and partial BN.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm  # BatchNorm1d/2d and SyncBatchNorm alike

from tstam.engine.evaluate import resolve_amp

if TYPE_CHECKING:
    from tstam.engine.config import OptimConfig, TrainConfig

__all__ = ["Optimisation", "setup_optimisation", "build_optimizer", "load_optimizer_state", "build_scheduler",
           "apply_bn_mode", "convert_sync_bn", "current_lr"]


def build_optimizer(model: nn.Module, cfg: OptimConfig, *, grad_scaler: bool = False) -> torch.optim.Optimizer:
    """SGD (or AdamW) over ``model.optim_groups()``; group lr = lr x lr_mult, decay = wd x decay_mult.

    With ``cfg.tsn_multipliers=False`` every group gets multiplier 1 (plain SGD, all decayed).
    AdamW uses ``momentum`` as beta1 and decays decoupled from the gradient (its weight decay is
    multiplied by the lr, so it needs a larger value than SGD's L2 term for the same effect).
    On CUDA the fused implementation is used (one kernel per step), except SGD under an fp16
    gradient scaler (``grad_scaler=True``): torch's fused SGD, handed the scaler's inf check,
    leaves the momentum buffers uninitialised when the first step overflows (the scaler's
    usual start) and later steps read that garbage (NaN weights; ``tests/test_optim_fused.py``
    shows it on the CPU). Unfused, the scaler skips such steps itself, at the cost of one host read per step.
    """
    groups = []
    for g in model.optim_groups():
        lr_mult = g["lr_mult"] if cfg.tsn_multipliers else 1.0
        decay_mult = g["decay_mult"] if cfg.tsn_multipliers else 1.0
        params = [p for p in g["params"] if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": cfg.lr * lr_mult, "weight_decay": cfg.weight_decay * decay_mult,
                           "name": g["name"], "lr_mult": lr_mult, "decay_mult": decay_mult})
    on_cuda = bool(groups) and all(p.is_cuda for g in groups for p in g["params"])
    fused = {"fused": True} if on_cuda and not (cfg.optimizer == "sgd" and grad_scaler) else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fused)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)``, keeping this optimiser's implementation: the saved
    groups carry the saving run's ``fused`` flag, which torch would restore (e.g. a fused SGD saved
    on a GPU without a gradient scaler, resumed under one; see ``build_optimizer``)."""
    fused = [g.get("fused") for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for g, f in zip(optimizer.param_groups, fused):
        g["fused"] = f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: lr x gamma at each epoch in ``lr_steps`` ("step"), or a cosine from
    lr down to 0 over ``epochs`` ("cosine"; ``lr_steps`` is then unused)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.lr_steps), gamma=cfg.lr_gamma)


def apply_bn_mode(model: nn.Module, mode: str) -> None:
    """Set BatchNorm behaviour after ``model.train()``.

    "partial": TSN partial BN (the model's ``set_partial_bn``: only the first backbone BN uses
    batch statistics and trains); "frozen": every BN layer uses its running statistics (eval mode;
    affine parameters still train), which makes N-process DDP equal to one process; "full": all
    BN layers train as usual.
    """
    target = model.module if hasattr(model, "module") else model
    if hasattr(target, "set_partial_bn"):
        target.set_partial_bn(mode == "partial")
    if mode == "frozen" and target.training:
        for m in target.modules():
            if isinstance(m, _BatchNorm):
                m.eval()


def convert_sync_bn(model: nn.Module, mode: str) -> nn.Module:
    """Convert to SyncBatchNorm exactly the BN layers that use batch statistics in training under
    BN ``mode`` (those ``apply_bn_mode`` leaves in train mode): the first backbone BN and the
    head's BNs for "partial", none for "frozen", all for "full". Frozen layers keep their
    ImageNet statistics and cost no collective. In place; the parameters stay the same objects.
    """
    was_training = model.training
    model.train()
    apply_bn_mode(model, mode)
    training = {id(m) for m in model.modules() if isinstance(m, _BatchNorm) and m.training}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in training and not isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    model.train(was_training)
    apply_bn_mode(model, mode)
    return model


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The base lr (of the group with multiplier 1, else the first group)."""
    for g in optimizer.param_groups:
        if g.get("lr_mult", 1.0) == 1.0:
            return float(g["lr"])
    return float(optimizer.param_groups[0]["lr"])


class Optimisation(NamedTuple):
    """What ``setup_optimisation`` makes for a model."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    amp: str


def setup_optimisation(cfg: TrainConfig, model: nn.Module, device: torch.device) -> Optimisation:
    """``model`` on ``device`` as ``cfg`` says (BN mode, channels_last), with its optimiser,
    scheduler and gradient scaler."""
    apply_bn_mode(model, cfg.optim.bn)
    model.to(device)
    if cfg.run.channels_last:
        model.to(memory_format=torch.channels_last)
        model.channels_last = True  # the frames too, not only the weights
    amp = resolve_amp(device, cfg.run.amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    optimizer = build_optimizer(model, cfg.optim, grad_scaler=scaler is not None)
    return Optimisation(optimizer, build_scheduler(optimizer, cfg.optim), scaler, amp)
