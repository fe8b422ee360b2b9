"""``run.compile``: the training steps run through ``torch.compile`` and reach the weights the
eager steps reach (dropout 0, frozen BN: no random draw differs), and what is saved is the plain
module. On a CPU, Inductor compiles C++ for the first step: tens of seconds."""
from __future__ import annotations

import pytest
import torch

from tstam.checkpoint import load_checkpoint
from tstam.engine.config import load_train_config
from tstam.engine.train import fit
from tstam.models import build_model

from helpers.engine_store import make_store, tiny_config


@pytest.mark.slow
@pytest.mark.timeout(900)  # 437 s on 2 cores shared with other work; Inductor compiles C++ for forward and backward
def test_compiled_training_reaches_the_eager_weights(tmp_path):
    store = make_store(tmp_path / "store", n_train=4, n_test=2, frames=6)
    out, cfgs = {}, {}
    for compiled in (False, True):
        cfg = tiny_config(store, tmp_path / f"run_{compiled}", model={"dropout": 0.0},
                          optim={"epochs": 1, "lr_steps": [], "bn": "frozen"},
                          run={"compile": compiled, "max_steps": 2, "eval_every": 0, "tensorboard": False})
        cfgs[compiled] = load_train_config(cfg)
        fit(cfgs[compiled], progress=False)
        out[compiled] = load_checkpoint(tmp_path / f"run_{compiled}" / "last.pt")
    eager, comp = out[False], out[True]
    assert comp["step"] == eager["step"] == 2
    assert set(comp["model"]) == set(eager["model"])  # no "_orig_mod." prefix: the plain module was saved
    torch.manual_seed(0)  # the initial weights, as fit draws them (run.seed 0)
    init = build_model(cfgs[True].model).state_dict()
    floats = [k for k, v in eager["model"].items() if v.is_floating_point()]
    assert all(bool(torch.isfinite(comp["model"][k]).all()) for k in floats)
    diff = max(float((comp["model"][k] - eager["model"][k]).abs().max()) for k in floats)
    update = max(float((eager["model"][k] - init[k]).abs().max()) for k in floats)
    assert update > 0 and diff <= 1e-3 * update, (diff, update)
