"""Batches of clips: a seedable, DDP-aware, resumable sampler and ``build_loader`` (docs/design.md, Data flow).

``ShardSampler`` yields ``(index, epoch)`` keys; the datasets seed each item from
``(seed, epoch, index)``, so clips depend neither on the number of workers nor on the rank that
loads them. The order of an epoch is a permutation drawn from ``(seed, epoch)``; rank r of w takes
every w-th position of it (disjoint shards), so after every rank has taken c items the first
``c * w`` positions of the order are done. ``state_dict()`` records that position; a run resumed
from it continues the same epoch with the same order from there, re-sharded over however many
processes it now has: the new ranks together take exactly the positions not yet done (trimmed, as
every epoch is, to what splits evenly over the ranks).
"""
from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.context
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tstam.errors import CheckpointError

from ..watchdog import exit_with

__all__ = ["ShardSampler", "ClipLoader", "build_loader", "worker_init", "finish_batch"]

log = logging.getLogger(__name__)


class ShardSampler(Sampler):
    """Seeded (optionally shuffled) order of ``num_samples`` items, this rank's shard of it.

    Args:
        num_samples: dataset length.
        shuffle: a new permutation per epoch (from ``(seed, epoch)``), else 0..n-1.
        seed: the order's seed (the same on every rank).
        rank, world_size: this process's shard (rank r takes positions r, r + w, ...).
        drop_last: drop the tail so that every rank gets ``n // w`` items; otherwise, when
            ``pad`` is set, repeat the start of the order so every rank gets ``ceil(n / w)``
            (DDP needs equal step counts in training); with neither, shards differ by at most one.
        pad: see ``drop_last``; defaults to ``shuffle`` (training pads, evaluation does not, so
            that no video is counted twice).
    """

    def __init__(self, num_samples: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, pad: bool | None = None):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size} is not valid; expected 0 <= rank < world_size")
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.pad = shuffle if pad is None else pad
        self.epoch = 0
        self.start = 0         # position in the epoch's order where this process's shards begin (resume)
        self.consumed = 0      # items of this rank's shard delivered to the training loop (set by ClipLoader)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order. Calling it with the epoch just restored keeps the resume point."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self.start = self.consumed = 0

    def order(self) -> np.ndarray:
        """The whole epoch's order (every rank's), before sharding."""
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        return np.arange(self.num_samples)

    def shard(self) -> np.ndarray:
        """This rank's indices for the current epoch (from ``start`` on), in order."""
        w = self.world_size
        rest = self.order()[self.start:]
        n = len(rest)
        if self.drop_last:
            rest = rest[: n - n % w]
        elif self.pad and n % w and n:
            rest = np.concatenate([rest, np.resize(rest, w - n % w)])
        return rest[self.rank::w]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for i in self.shard():
            yield int(i), epoch

    def __len__(self) -> int:
        return len(self.shard())

    def position(self) -> int:
        """Positions of the epoch's order done by all ranks together (every rank took ``consumed``)."""
        return self.start + self.consumed * self.world_size

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position(), "num_samples": self.num_samples,
                "world_size": self.world_size, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch from its position (same seed and data; any number of processes)."""
        for key in ("seed", "num_samples", "shuffle"):
            if state[key] != getattr(self, key):
                raise CheckpointError(f"sampler state has {key}={state[key]!r} but this run has {getattr(self, key)!r}; "
                                      "resume with the same data and seed")
        # files written before positions were saved hold what each rank had consumed
        position = state["position"] if "position" in state else state["consumed"] * state["world_size"]
        if state["world_size"] != self.world_size and position:
            log.info("epoch %d was saved by %d process(es) at position %d of %d; re-sharding the rest over %d",
                     state["epoch"] + 1, state["world_size"], position, self.num_samples, self.world_size)
        self.epoch = int(state["epoch"])
        self.start, self.consumed = int(position), 0


def worker_init(worker_id: int, main_pid: int | None = None) -> None:
    """Seed Python, numpy and torch in a worker from torch's per-worker seed; one thread per worker.

    With ``main_pid``, the worker also exits when that process is gone: a worker started by the
    fork server is the fork server's child, so torch's own watchdog (which watches the parent)
    would leave it running for ever after the training process is killed (e.g. SIGKILL).
    """
    if main_pid is not None:
        exit_with(main_pid)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def _batch_len(batch: Any) -> int:
    """Clips in a batch: the length of its labels ((clip, label) items), or of the batch itself."""
    return len(batch[-1]) if isinstance(batch, (tuple, list)) else len(batch)


def finish_batch(loader: Any, x: Any) -> Any:
    """A batch moved to the training device, finished there by its dataset's ``batch_transform``:
    clips stay as they are; ``TrainCrops`` (training, ``data.crop_resize_on = "device"``) are
    resized to the input size and flipped there; ``FlowPairs`` (``VideoDataset``,
    ``data.flow_on = "device"``) become flow clips computed there. The one call the training and
    evaluation loops make."""
    finish = getattr(getattr(loader, "dataset", None), "batch_transform", None)
    return x if finish is None else finish(x)


class ClipLoader(DataLoader):
    """A DataLoader that tells its ``ShardSampler`` how many samples the loop has received."""

    sampler: ShardSampler

    def __iter__(self):
        sampler = self.sampler
        sampler.consumed = 0
        for batch in super().__iter__():
            sampler.consumed += _batch_len(batch)
            yield batch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def _dist_rank_world(distributed: bool | tuple[int, int] | None) -> tuple[int, int]:
    if isinstance(distributed, tuple):
        return distributed
    if distributed is False:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if distributed:
        raise ValueError("distributed=True but torch.distributed is not initialised; call init_process_group first")
    return 0, 1


def build_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, workers: int, seed: int = 0,
                 drop_last: bool = False, distributed: bool | tuple[int, int] | None = None) -> ClipLoader:
    """A loader over ``dataset`` with a ``ShardSampler``.

    Args:
        dataset: a map-style dataset taking ``(index, epoch)`` keys (``FrameDataset``, ``VideoDataset``).
        batch_size: clips per batch on this process.
        shuffle: a seeded new order every epoch (training) or the dataset order (evaluation).
        workers: loader processes (0: load in this process).
        seed: the order's seed; the same on every rank.
        drop_last: drop the last incomplete batch (and the tail that does not split evenly over ranks).
        distributed: None: shard over the initialised ``torch.distributed`` group, if any;
            False: no sharding; True: require a group; ``(rank, world_size)``: explicit.

    Returns:
        ClipLoader; call ``set_epoch(e)`` before each epoch and keep ``state_dict()`` in checkpoints.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is not valid; expected >= 1")
    if workers < 0:
        raise ValueError(f"workers={workers} is not valid; expected >= 0")
    rank, world = _dist_rank_world(distributed)
    sampler = ShardSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world,  # type: ignore[arg-type]
                           drop_last=drop_last)
    generator = torch.Generator()
    generator.manual_seed(seed * 1000 + rank)
    return ClipLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
        pin_memory=torch.cuda.is_available(), worker_init_fn=functools.partial(worker_init, main_pid=os.getpid()) if workers else None,
        generator=generator, persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
        multiprocessing_context=_worker_context() if workers else None,
    )


def _worker_context() -> multiprocessing.context.BaseContext | None:
    """Start workers from a fork server, not by forking this (threaded) process.

    Forking a process whose OpenMP / OpenCV / tqdm threads may hold a lock at that instant can
    leave a worker waiting forever on that lock (seen here: a loader built after in-process loading
    hung intermittently). The fork server is a fresh single-threaded process that has imported
    torch and tstam.data once, so workers still start fast.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None  # Windows / macOS spawn by default, which is safe
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "tstam.data"])
    return ctx
