"""Exact resume: a CPU run killed with SIGKILL in the middle of an epoch and resumed ends with
weights bit-identical to an uninterrupted run; a non-finite loss stops with the last good
checkpoint kept; a checkpoint of another stream or class count is refused."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tstam.checkpoint import CheckpointError, load_checkpoint
from tstam.engine.config import load_train_config
from tstam.engine.train import NonFiniteLossError, fit

from helpers.engine_store import make_store, tiny_config
from helpers.hostile import malformed_checkpoint

TESTS = Path(__file__).resolve().parent

DRIVER = r"""
import json, os, signal, sys
import torch
torch.set_num_threads(1)
from tstam.engine.config import load_train_config
from tstam.engine.train import fit
cfg = load_train_config(json.loads(sys.argv[1]))
kill_at, resume = int(sys.argv[2]), sys.argv[3] == "resume"
def killer(state):
    if state.step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as a crash or OOM kill
fit(cfg, resume=resume or None, callbacks=[killer] if kill_at else [])
"""


def _run(tmp_path: Path, cfg: dict, kill_at: int = 0, resume: bool = False) -> subprocess.CompletedProcess:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, str(script), json.dumps(cfg), str(kill_at), "resume" if resume else "fresh"],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    store = make_store(tmp_path / "store", n_train=12)  # 8 training videos (4 held out), batch 2 -> 4 steps per epoch
    common = {"optim": {"epochs": 2, "lr_steps": [1]}, "run": {"ckpt_every_steps": 2}}
    ref_cfg = tiny_config(store, tmp_path / "ref", **common)
    cut_cfg = tiny_config(store, tmp_path / "cut", **common)

    ref = _run(tmp_path, ref_cfg)
    assert ref.returncode == 0, ref.stderr
    killed = _run(tmp_path, cut_cfg, kill_at=7)  # step 7 = 3rd of 4 steps of epoch 2
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    mid = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (mid["epoch"], mid["epoch_step"], mid["step"]) == (1, 2, 6)  # step 7 died with the process
    resumed = _run(tmp_path, cut_cfg, resume=True)
    assert resumed.returncode == 0, resumed.stderr

    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 8)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), f"{k} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    rows_a = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_b] == [1, 2]
    for ra, rb in zip(rows_a, rows_b):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_top1"] == rb["val_top1"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    store = make_store(tmp_path / "store", n_train=12)  # 8 training videos, 4 held out
    # epoch 1 trains at lr 0.01 and writes last.pt; then lr x 1e32 blows the weights up
    cfg = load_train_config(tiny_config(store, tmp_path / "run", optim={"epochs": 3, "lr_steps": [1], "lr_gamma": 1e32,
                                                                         "clip_grad": None}))
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* last good checkpoint is .*last.pt"):
        fit(cfg)
    st = load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())
    assert (st["epoch"], st["epoch_step"], st["step"]) == (1, 0, 4)


def test_resume_refuses_other_stream_or_class_count(tmp_path):
    store = make_store(tmp_path / "store")
    fit(load_train_config(tiny_config(store, tmp_path / "run", optim={"epochs": 1}, run={"eval_every": 0})))
    flow = load_train_config(tiny_config(store, tmp_path / "run", modality="flow", optim={"epochs": 2}))
    with pytest.raises(CheckpointError, match="modality 'rgb' vs 'flow'"):
        fit(flow, resume=True)
    wide = load_train_config(tiny_config(store, tmp_path / "run", model={"width_mult": 0.25}))
    with pytest.raises(CheckpointError, match="width_mult 0.125 vs 0.25"):
        fit(wide, resume=True)
    st = load_checkpoint(tmp_path / "run" / "last.pt")
    assert st["classes"] == ["ApplyEyeMakeup", "BaseballPitch", "Clap", "Dive"] and st["flow"] is None
    assert st["config"]["model"]["width_mult"] == 0.125 and st["model_config"]["modality"] == "rgb"


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    store = make_store(root / "store")
    fit(load_train_config(tiny_config(store, root / "run", optim={"epochs": 1}, run={"eval_every": 0})))
    return store, root / "run"


@pytest.mark.parametrize("entries,message", [
    ({"epoch": "3"}, "entry 'epoch' is str; expected int"),
    ({"optimizer": None}, "entry 'optimizer' is NoneType; expected dict"),
    ({"step": -1}, "entry 'step' is -1; expected a count >= 0"),
    ({"best_top1": float("nan")}, "entry 'best_top1' is nan; expected a top-1 in [0, 1]"),
    ({"rng": {"not": "a list"}}, "entry 'rng' is dict; expected list"),
    ({"model": {"backbone.conv1.weight": [1, 2]}}, "model entry 'backbone.conv1.weight' is not a tensor"),
    ({"model": {"classifier.weight": torch.zeros(3)}}, "its weights do not fit its own model config"),
])
def test_resume_refuses_a_malformed_last_checkpoint_by_name(one_epoch_run, tmp_path, entries, message):
    # files torch.load(weights_only=True) reads but tstam never writes: refused as bad files (exit 2), by entry
    store, run = one_epoch_run
    shutil.copytree(run, tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    malformed_checkpoint(last, last, **entries)
    with pytest.raises(CheckpointError) as err:
        fit(load_train_config(tiny_config(store, tmp_path / "run", optim={"epochs": 2}, run={"eval_every": 0})),
            resume=True)
    assert str(err.value).startswith(f"{last}: ") and message in str(err.value), str(err.value)
