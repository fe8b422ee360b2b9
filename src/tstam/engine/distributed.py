"""DDP set-up for runs launched with ``torchrun`` (single node or multi-node).

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them the run
is a plain single process. Backend: NCCL on CUDA, gloo on CPU.

BatchNorm under DDP: each process normalises its own part of the batch, so BN layers that use
batch statistics (the first BN under TSN partial BN, or every BN in "full" mode) see a smaller
batch than one process would. ``run.sync_bn`` converts them to SyncBatchNorm on CUDA (PyTorch's
SyncBatchNorm has no CPU implementation); with ``optim.bn="frozen"`` no BN uses batch statistics
and N processes compute the same update as one process with the same global batch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "all_reduce_sum", "barrier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; pick this process's device.

    Args:
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N". Under torchrun
            with CUDA, each process takes ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError(f"run.device={device!r} but CUDA is not available; use 'cpu' or 'auto'")
    if use_cuda:
        dev = torch.device("cuda", local) if world > 1 or device in ("auto", "cuda") else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    info = DistInfo(rank, local, world)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        log.info("DDP: rank %d of %d (%s, %s)", rank, world, backend, dev)
    return info, dev


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes (no-op in a single process)."""
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
