"""CUDA training with mixed precision and channels_last (skipped without a GPU)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from tstam.checkpoint import load_checkpoint
from tstam.engine.config import load_train_config
from tstam.engine.train import fit

from helpers.engine_store import make_store, tiny_config

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
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_fp16_step_that_overflows_leaves_the_model_as_it_was(tmp_path):
    """The GPU check's fp16 NaN: torch's fused SGD, handed the scaler's inf check, left its momentum
    uninitialised on an overflowing first step. The engine's optimiser must honour the skip: the
    weights stay, and the next finite step is finite, with uninitialised memory poisoned (NaN)."""
    from tstam.engine.train import prepare_run, train_step
    from tstam.models import build_model

    store = make_store(tmp_path / "store")
    cfg = load_train_config(tiny_config(store, tmp_path / "run", run={"device": "cuda", "amp": "fp16"}))
    torch.manual_seed(0)
    run = prepare_run(cfg, build_model(cfg.model).train(), torch.device("cuda"))
    x = torch.randint(0, 256, (2, cfg.model.num_segments, 3, 64, 64), dtype=torch.uint8)
    y = torch.tensor([0, 1])
    before = {k: v.clone() for k, v in run.bare.state_dict().items() if v.is_floating_point()}
    poisoned = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        run.scaler = torch.amp.GradScaler("cuda", init_scale=2.0**60)  # fp16 gradients overflow for sure
        train_step(run, x, y)
        assert run.scaler.get_scale() < 2.0**60                      # the scaler saw the overflow
        after = run.bare.state_dict()
        moved = [k for k, v in before.items() if "running" not in k and not torch.equal(after[k], v)]
        assert not moved, f"an overflowing step changed {moved[:3]}"
        run.scaler = torch.amp.GradScaler("cuda", init_scale=1.0)
        train_step(run, x, y)
    finally:
        torch.use_deterministic_algorithms(poisoned[0])
        torch.utils.deterministic.fill_uninitialized_memory = poisoned[1]
    params = [p for p in run.bare.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in params)
    assert any(not torch.equal(p, before[k]) for k, p in run.bare.named_parameters() if k in before)
