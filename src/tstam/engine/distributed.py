"""DDP set-up for runs launched with ``torchrun`` (single node or multi-node), and the rules every
rank keeps so that no rank waits for ever.

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them the run
is a plain single process. Backend: NCCL on CUDA (one process per GPU), gloo on CPU and when a node
runs more processes than it has GPUs (NCCL refuses two ranks on one GPU; ``benchmarks/gpu_check.py``
runs 2 processes on 1 GPU this way). A process group that the caller created already is used as it
is and left open at the end.

Failures: a check or a write that fails on one rank only (a checkpoint write on rank 0, a missing
file on one node) must end every rank, or the others wait in their next collective until the NCCL
timeout. ``all_ranks_agree()`` runs a block on every rank, then agrees on failure in one collective:
the failing rank raises its error, every other rank raises the same error (re-created from it).

BatchNorm under DDP: each process normalises its own part of the batch, so BN layers that use
batch statistics (the first backbone BN and the head's BNs under TSN partial BN, or every BN in
"full" mode) see a smaller batch than one process would. ``run.sync_bn`` converts exactly those
layers to SyncBatchNorm on CUDA (``tstam.engine.optim.convert_sync_bn``; PyTorch's SyncBatchNorm has
no CPU implementation, and each SyncBatchNorm layer adds one host sync per step); with
``optim.bn="frozen"`` no BN uses batch statistics and N processes compute the same update as one
process with the same global batch.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from tstam.device import resolve_device

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "all_ranks_agree", "raise_if_any_failed",
           "gather_to_main", "all_gather_objects", "all_reduce_sum", "all_gather_rows", "barrier", "configure_cuda"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False        # this call of init_distributed created the process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto", *, option: str = "--device") -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; pick this process's device.

    Args:
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N" (checked by
            ``tstam.device.resolve_device``). Under torchrun with CUDA, each process takes
            ``cuda:(LOCAL_RANK mod GPUs)``.
        option: how the user gave ``device`` (``--device``, ``run.device``), for the messages.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, option=option)
    if dev.type == "cuda":
        if world > 1:
            dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
        configure_cuda()
    create = world > 1 and not dist.is_initialized()
    if create:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        nccl = dev.type == "cuda" and local_world <= torch.cuda.device_count()
        if dev.type == "cuda" and not nccl:
            log.warning("%d processes share %d GPU(s) on this node: using gloo (NCCL needs one GPU per process)",
                        local_world, torch.cuda.device_count())
        dist.init_process_group(backend="nccl" if nccl else "gloo", rank=rank, world_size=world,
                                device_id=dev if nccl else None)
        log.info("DDP: rank %d of %d (%s, %s)", rank, world, dist.get_backend(), dev)
    return DistInfo(rank, local, world, owns_group=create), dev


def configure_cuda() -> None:
    """Fast CUDA defaults for fixed-size inputs: cuDNN picks its fastest kernels once per shape,
    and float32 matmuls and convolutions use TF32 tensor cores (about 1e-3 relative error)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if the ``init_distributed`` call that returned ``info`` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def raise_if_any_failed(error: BaseException | None) -> None:
    """Collective: every rank calls it with its error or None; if any rank failed, all raise.

    The failing rank raises its own error; the others raise a copy of the first failing rank's
    error (same type and message; a RuntimeError naming it when the type cannot be re-created).
    """
    if _world() == 1:
        if error is not None:
            raise error
        return
    sent: Any = None
    if error is not None:
        try:
            sent = pickle.loads(pickle.dumps(error))
        except Exception:
            sent = RuntimeError(f"{type(error).__name__}: {error}")
        sent.__traceback__ = None
    errors: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(errors, sent)
    if error is not None:
        raise error
    for r, e in enumerate(errors):
        if e is not None:
            if hasattr(e, "add_note"):
                e.add_note(f"(raised on rank {r} of {len(errors)}; rank {dist.get_rank()} stopped with it)")
            raise e


@contextlib.contextmanager
def all_ranks_agree() -> Iterator[None]:
    """Run the block on every rank, then end every rank if it failed on any (see module doc).

    The block must hold no collective of its own: a rank that fails before it would leave the
    others waiting there.
    """
    error: BaseException | None = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 - handed on by raise_if_any_failed
        error = e
    raise_if_any_failed(error)


def gather_to_main(obj: Any) -> list[Any] | None:
    """Collective: every rank's ``obj`` (picklable) in rank order on rank 0; None elsewhere."""
    if _world() == 1:
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather_objects(obj: Any) -> list[Any]:
    """Collective: every rank's ``obj`` (picklable) in rank order, on every rank."""
    if _world() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes, in place (no-op in a single process)."""
    if _world() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Collective: every rank's tensor ``t`` stacked in rank order, (world, *t.shape), on ``t``'s device."""
    if _world() == 1:
        return t[None]
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return torch.stack(out)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
