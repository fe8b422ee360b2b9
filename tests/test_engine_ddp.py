"""DDP through real ``torchrun`` on CPU (gloo): 2 processes x batch 2 give the same weights as
1 process x batch 4 (the same global batch).

Tolerance: every parameter within atol 1e-5 + rtol 1e-4 (the only difference is the order of the
floating-point gradient sums). Conditions for equality, as documented in
``tstam.engine.distributed``: ``optim.bn=frozen`` (no BN layer uses per-process batch statistics;
SyncBatchNorm has no CPU implementation) and dropout 0 (each process draws its own masks).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine_store import make_store, tiny_config
from tstam.checkpoint import load_checkpoint

DRIVER = r"""
import json, sys
import torch
torch.set_num_threads(1)
from tstam.engine.config import load_train_config
from tstam.engine.train import fit
fit(load_train_config(json.loads(sys.argv[1])))
"""

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))


def _torchrun(tmp_path: Path, nproc: int, cfg: dict) -> None:
    script = tmp_path / "ddp_driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", str(script), json.dumps(cfg)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_same_global_batch(tmp_path):
    if not Path(TORCHRUN).exists():
        pytest.fail(f"torchrun not found beside {sys.executable}")
    store = make_store(tmp_path / "store", n_train=12)  # 8 train + 4 held out: 2 steps of a global batch of 4
    common = {"optim": {"epochs": 2, "lr_steps": [1], "bn": "frozen"}, "model": {"dropout": 0.0}}
    one = tiny_config(store, tmp_path / "one", data={"batch_size": 4}, **common)
    two = tiny_config(store, tmp_path / "two", data={"batch_size": 2}, **common)
    _torchrun(tmp_path, 1, one)
    _torchrun(tmp_path, 2, two)
    a, b = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(b["model"][k], v, atol=1e-5, rtol=1e-4, msg=f"{k} differs")
    rows_a = [json.loads(l) for l in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(l) for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(rows_a, rows_b):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-5)
        assert ra["val_clips"] == rb["val_clips"] == 4  # validation sharded without duplicates
        assert ra["val_top1"] == rb["val_top1"]
    assert rows_a[0]["train_loss"] != rows_a[1]["train_loss"]
