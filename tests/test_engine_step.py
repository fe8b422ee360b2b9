"""The training step reads nothing back to the host; the device-side meter sums what the steps
computed and remembers the first non-finite loss. On a GPU, ``benchmarks/gpu_check.py`` counts the
host syncs themselves (``torch.cuda.set_sync_debug_mode``); here every op that copies a tensor's
value into Python (``.item()``, ``float(t)``, ``if t``: ``aten._local_scalar_dense``) is counted."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from tstam.engine.config import load_train_config
from tstam.engine.optim import apply_bn_mode
from tstam.engine.train import prepare_run, train_step
from tstam.models import build_model

from helpers.engine_store import CLASSES

CFG = {"model": {"num_classes": len(CLASSES), "num_segments": 2, "input_size": 64, "width_mult": 0.125, "num_heads": 2,
                 "attention_hidden": 16, "dropout": 0.0},
       "optim": {"lr": 0.01, "clip_grad": 40.0, "bn": "frozen"}, "run": {"device": "cpu"}}


class ScalarReads(TorchDispatchMode):
    """Counts ops that read a tensor value to the host."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default):
            self.count += 1
        return func(*args, **(kwargs or {}))


def _run_and_batch(seed: int = 0):
    cfg = load_train_config(CFG)
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    model.train()
    apply_bn_mode(model, cfg.optim.bn)  # frozen: every BN on its running statistics, as in eval mode
    run = prepare_run(cfg, model, torch.device("cpu"))
    x = torch.randint(0, 256, (3, 2, 3, 64, 64), dtype=torch.uint8)
    y = torch.tensor([0, 1, 3])
    return run, x, y


def test_ten_steps_read_nothing_back():
    run, x, y = _run_and_batch()
    with ScalarReads() as reads:
        for _ in range(10):
            train_step(run, x, y)
            run.state.step += 1
    assert reads.count == 0
    assert run.meter.read()["clips"] == 30


def test_meter_sums_what_the_step_computed():
    run, x, y = _run_and_batch()
    before = copy.deepcopy(run.model).eval()  # frozen BN, no dropout: the step's forward, independently
    with torch.no_grad():
        logits = before(run.model.cfg.preprocess.normalize_clip(x)).logits
        loss = F.cross_entropy(logits, y).item()
        correct = (logits.argmax(1) == y).sum().item()
    train_step(run, x, y)
    sums = run.meter.read()
    assert sums["clips"] == 3 and sums["correct"] == correct and sums["bad"] == 0
    assert abs(sums["loss"] / 3 - loss) < 1e-5


def test_a_non_finite_loss_is_remembered_with_its_step():
    run, x, y = _run_and_batch()
    train_step(run, x, y)                                  # step 1: finite
    run.state.step = 1
    with torch.no_grad():
        run.model.fc.bias[0] = float("nan")               # as after an overflowing update
    for step in (2, 3):
        train_step(run, x, y)                              # no exception: nothing is read in the step
        run.state.step = step
    sums = run.meter.read()
    assert sums["bad"] == 2 and sums["bad_step"] == 2 and sums["bad_loss"] != sums["bad_loss"]  # NaN
