"""CUDA training with mixed precision and channels_last (skipped without a GPU)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from engine_store import make_store, tiny_config
from tstam.checkpoint import load_checkpoint
from tstam.engine.config import load_train_config
from tstam.engine.train import fit

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_channels_last_training(tmp_path, amp):
    store = make_store(tmp_path / "store")
    cfg = load_train_config(tiny_config(store, tmp_path / "run", run={"device": "cuda", "amp": amp, "channels_last": True},
                                        optim={"epochs": 2}))
    row = fit(cfg)
    assert math.isfinite(row["train_loss"]) and row["val_clips"] == 4
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (ck["scaler"] is not None) == (amp == "fp16")
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
