"""The training run's loaders: ``FrameDataset`` clips (or ``VideoDataset`` ones with
``data.input = "video"``; ``tstam.data.datasets.build_dataset``) through ``build_loader`` (seeded, sharded
over DDP ranks, resumable mid-epoch). Training drops the last incomplete batch (as TSN);
validation uses the part of the training list held out by ``annotations.val_fraction`` with N
centre segments and one centre crop, unpadded (no validation loader when nothing is held out)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tstam.data.datasets import build_dataset
from tstam.data.loader import ClipLoader, build_loader
from tstam.data.records import VideoRecord
from tstam.engine.distributed import DistInfo
from tstam.errors import ConfigError

__all__ = ["build_train_loaders"]


def build_train_loaders(cfg: Any, train: Sequence[VideoRecord], val: Sequence[VideoRecord], *,
                        dist: DistInfo) -> tuple[ClipLoader, ClipLoader | None]:
    """(train loader, validation loader or None when ``run.eval_every`` is 0); uint8 clips."""
    shard = (dist.rank, dist.world_size)
    train_ds = build_dataset(train, mode="train", data=cfg.data, model=cfg.model, seed=cfg.run.seed)
    if len(train_ds) < cfg.data.batch_size * dist.world_size:
        raise ConfigError(f"{len(train_ds)} training videos are fewer than one global batch "
                          f"({dist.world_size} x data.batch_size={cfg.data.batch_size}); lower data.batch_size")
    train_loader = build_loader(train_ds, batch_size=cfg.data.batch_size, shuffle=True, workers=cfg.data.workers,
                                seed=cfg.run.seed, drop_last=True, distributed=shard)
    val_loader = None
    if cfg.run.eval_every and val:
        val_ds = build_dataset(val, mode="val", data=cfg.data, model=cfg.model, seed=cfg.run.seed)
        val_loader = build_loader(val_ds, batch_size=cfg.data.batch_size, shuffle=False, workers=cfg.data.workers,
                                  seed=cfg.run.seed, drop_last=False, distributed=shard)
    return train_loader, val_loader
