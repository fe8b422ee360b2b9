"""Resuming a run: where it stands (``TrainState``), every RNG state as plain tensors, the check that a
checkpoint fits the run, and ``restore_run``.

The checkpoint file itself (format, atomic write, ``weights_only`` read) is ``tstam.checkpoint``.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tstam.checkpoint import CheckpointError, load_checkpoint
from tstam.engine.meter import StepMeter
from tstam.engine.optim import load_optimizer_state

if TYPE_CHECKING:
    from tstam.data.loader import ClipLoader
    from tstam.engine.distributed import DistInfo
    from tstam.engine.optim import Optimisation

__all__ = ["TrainState", "capture_rng", "restore_rng", "check_compatible", "check_resumable", "load_resumable", "restore_weights", "restore_run"]

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0                  # epoch in progress (0-based)
    epoch_step: int = 0             # steps done in that epoch
    step: int = 0                   # steps done in total
    best_top1: float | None = None


# what a training checkpoint holds besides the model config, and the type each entry must have to be
# resumed from; a file that loads with weights_only but holds something else is refused by name here
# rather than failing inside the optimiser or the sampler (a bug's exit status for a user's bad file)
_RESUME_ENTRIES: dict[str, tuple[type, ...]] = {
    "model": (dict,), "optimizer": (dict,), "scheduler": (dict,), "rng": (list,),
    "epoch": (int,), "epoch_step": (int,), "step": (int,),
    "best_top1": (float, int, type(None)), "epoch_sums": (dict, type(None)), "sampler": (dict, type(None)),
    "scaler": (dict, type(None)),
}


def check_resumable(ckpt: dict[str, Any], *, path: str | Path) -> None:
    """Refuse (CheckpointError naming ``path`` and the entry) a checkpoint that cannot be resumed:
    an entry missing or of another type, a negative count, a best top-1 outside [0, 1], weights
    that are not tensors."""
    for key, types in _RESUME_ENTRIES.items():
        value = ckpt.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            names = " or ".join("none" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(f"{path}: entry {key!r} is {type(value).__name__ if key in ckpt else 'missing'}; "
                                  f"expected {names}: not a training checkpoint tstam can resume")
    for key in ("epoch", "epoch_step", "step"):
        if ckpt[key] < 0:
            raise CheckpointError(f"{path}: entry {key!r} is {ckpt[key]}; expected a count >= 0")
    best = ckpt.get("best_top1")
    if best is not None and not 0 <= best <= 1:  # also refuses NaN
        raise CheckpointError(f"{path}: entry 'best_top1' is {best!r}; expected a top-1 in [0, 1] or none")
    bad = next((k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{path}: model entry {bad!r} is not a tensor")


def load_resumable(path: str | Path, model_config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at ``path``, checked to be resumable by a run of ``model_config``."""
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path=path)
    check_compatible(ckpt, model_config, path=path)
    return ckpt


def restore_weights(model: torch.nn.Module, ckpt: dict[str, Any], *, path: str | Path) -> None:
    """``ckpt``'s weights into ``model``; CheckpointError naming ``path`` when they do not fit."""
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:  # names or shapes that the model config the file carries does not make
        raise CheckpointError(f"{path}: its weights do not fit its own model config: {str(e)[:300]}") from None


def restore_run(ckpt: dict[str, Any], opt: Optimisation, train_loader: ClipLoader, dist: DistInfo,
                device: torch.device) -> tuple[TrainState, StepMeter]:
    """Optimiser, scheduler, scaler, sampler position and this rank's RNG from ``ckpt``; the
    state and the epoch's sums (the sums are over all ranks: carried by one)."""
    load_optimizer_state(opt.optimizer, ckpt["optimizer"])
    opt.scheduler.load_state_dict(ckpt["scheduler"])
    if opt.scaler is not None and ckpt.get("scaler"):
        opt.scaler.load_state_dict(ckpt["scaler"])
    state = TrainState(ckpt["epoch"], ckpt["epoch_step"], ckpt["step"], ckpt.get("best_top1"))
    if ckpt.get("sampler") is not None:
        train_loader.load_state_dict(ckpt["sampler"])
    restore_rng(ckpt["rng"], rank=dist.rank)
    return state, StepMeter(device, ckpt.get("epoch_sums") if dist.is_main else None)


def check_compatible(state: dict[str, Any], model_config: dict[str, Any], *, path: str | Path = "checkpoint") -> None:
    """Refuse to resume from a checkpoint whose model config differs from the run's (``to_dict``).

    The message lists every differing key with both values, e.g. ``width_mult 1.0 vs 0.5``.
    """
    saved = state.get("model_config") or {}
    diff = [f"{k} {saved.get(k)!r} vs {model_config.get(k)!r}" for k in sorted(set(saved) | set(model_config))
            if saved.get(k) != model_config.get(k)]
    if diff:
        raise CheckpointError(
            f"{path}: the checkpoint's model config differs from this run's (checkpoint vs run): "
            f"{'; '.join(diff)}; resume with the same model settings (e.g. the run's stored config)"
        )


# ---------------------------------------------------------------------------------- RNG states
# A checkpoint's "rng" is a list with one state per rank (rank order; ``tstam.engine.train`` gathers
# them to rank 0). Files written before DDP runs saved every rank hold one dict: rank 0's.

def capture_rng() -> dict[str, Any]:
    """This process's generator states as tensors, ints and lists (loadable with weights_only=True):
    Python, NumPy, torch's CPU generator and the current CUDA device's generator, if CUDA is in use."""
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
    }


def restore_rng(state: dict[str, Any] | list[dict[str, Any]], *, rank: int = 0) -> bool:
    """Restore rank ``rank``'s states from :func:`capture_rng` output (one dict, or a list per rank).

    Returns:
        False when the checkpoint holds no state for this rank (a run resumed on more processes
        than it was saved from); the rank then keeps the per-rank seed it started with.
    """
    states = state if isinstance(state, list) else [state]
    if rank >= len(states):
        log.info("rank %d: the checkpoint holds RNG states for %d process(es); keeping this rank's own seed",
                 rank, len(states))
        return False
    st = states[rank]
    py = st["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = st["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    torch.set_rng_state(st["torch"].cpu())
    cuda = st.get("cuda")
    if isinstance(cuda, torch.Tensor) and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())                     # this process's current device
    elif isinstance(cuda, list) and cuda and torch.cuda.is_available():  # files from before: every device
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            log.warning("checkpoint has CUDA RNG states for %d devices, this machine has %d; "
                        "CUDA RNG not restored", len(cuda), torch.cuda.device_count())
    return True
