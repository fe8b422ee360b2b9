"""DDP through real ``torchrun`` on CPU (gloo). One launch of 2 processes runs every 2-process
scenario in turn (the process group is created once by the driver; ``fit`` and ``run_test`` use it
and leave it open); the 1-process runs happen in this process.

Store: 13 training videos of which validation holds out 1 (class 0's videos are 4 groups, the
other classes one group each), so rank 1 has no validation video; 12 train (2 ranks x batch 1:
6 steps per epoch; 1 process: 12); 5 test videos (sharded 3 + 2).

- 2 processes x batch 2 give the same weights as 1 process x batch 4 (the same global batch).
  Tolerance: atol 1e-5 + rtol 1e-4 per parameter (the order of the floating-point gradient sums
  differs). Conditions, as ``tstam.engine.distributed`` documents: ``optim.bn=frozen`` (no BN uses
  per-process batch statistics) and dropout 0 (each rank draws its own masks).
- A checkpoint write failing on rank 0, and a bad input on rank 1 only, end both ranks with the
  message (the launch has a timeout: a hang fails the test).
- With dropout, each rank's RNG differs and is saved; stopped at step 2 and resumed, a 2-process
  run ends bit-identical to an uninterrupted one (needs every rank's own RNG state back).
- Stopped mid-epoch on 2 processes and resumed on 1 (and the reverse), each clip of the epoch is
  trained on once.
- ``tstam test``'s protocol sharded over 2 ranks gives the 1-process scores, in order, no duplicate.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tstam.checkpoint import load_checkpoint
from tstam.engine.config import load_train_config
from tstam.engine.scores import load_scores
from tstam.engine.testing import run_test
from tstam.engine.train import fit

from helpers.engine_store import make_store, record_clips, tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a torchrun launch of up to 420 s, then 1-process runs

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
TESTS = Path(__file__).resolve().parent

DRIVER = r"""
import json, shutil, sys
import torch
torch.set_num_threads(1)
import torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
from helpers.engine_store import record_clips
from tstam.engine.config import load_train_config
from tstam.engine.testing import run_test
from tstam.engine.train import fit
for item in json.loads(open(sys.argv[1]).read()):
    seen, error = [], None
    try:
        with record_clips(seen, rank):
            if "test" in item:
                run_test(**item["test"])
            else:
                cfg = item.get("cfg_rank1", item["cfg"]) if rank == 1 else item["cfg"]
                fit(load_train_config(cfg), resume=item.get("resume"))
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    with open(f"{item['report']}.rank{rank}.json", "w") as f:
        json.dump({"error": error, "seen": seen}, f)
    if rank == 0 and "copy" in item:
        shutil.copyfile(*item["copy"])
    dist.barrier()
dist.destroy_process_group()
"""


def _cfg(store, out: Path, **sections) -> dict:
    base = {"run": {"tensorboard": False}, "optim": {"epochs": 1}, "data": {"batch_size": 1}}
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return tiny_config(store, out, **base)


def _report(path: Path, rank: int) -> dict:
    return json.loads(Path(f"{path}.rank{rank}.json").read_text())


def _trained(seen) -> Counter:
    return Counter(v for _rank, mode, _epoch, v in seen if mode == "train")


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    if not Path(TORCHRUN).exists():
        pytest.fail(f"torchrun not found beside {sys.executable}")
    tmp = tmp_path_factory.mktemp("ddp")
    store = make_store(tmp / "store", n_train=13, n_test=5, group=lambda v: v if v % 4 == 0 else 50 + v % 4)
    dropout = {"model": {"dropout": 0.5}}
    cfg = {
        "one": _cfg(store, tmp / "one", data={"batch_size": 4}, optim={"epochs": 2, "lr_steps": [1], "bn": "frozen"},
                    model={"dropout": 0.0}),
        "two": _cfg(store, tmp / "two", data={"batch_size": 2}, optim={"epochs": 2, "lr_steps": [1], "bn": "frozen"},
                    model={"dropout": 0.0}),
        "full": _cfg(store, tmp / "full", **dropout),
        "cut": _cfg(store, tmp / "cut", run={"max_steps": 2, "tensorboard": False}, **dropout),
        "cut_resumed": _cfg(store, tmp / "cut", **dropout),
        "p1": _cfg(store, tmp / "p1", run={"max_steps": 4, "tensorboard": False}, **dropout),
        "p1_on_2": _cfg(store, tmp / "p1_on_2", **dropout),
        "p2_on_1": _cfg(store, tmp / "p2_on_1", **dropout),
        "fail_write": _cfg(store, tmp / "fail_write"),
    }
    # 1 process, before the launch: the reference of the same global batch; a run stopped at step 4
    fit(load_train_config(cfg["one"]))
    seen = {"p1": []}
    with record_clips(seen["p1"]):
        fit(load_train_config(cfg["p1"]))
    (tmp / "p1_on_2").mkdir()
    shutil.copyfile(tmp / "p1" / "last.pt", tmp / "p1_on_2" / "last.pt")
    (tmp / "fail_write" / "last.pt").mkdir(parents=True)  # rank 0 cannot replace a folder by a file
    bad_rank1 = {**cfg["full"], "annotations": {**cfg["full"]["annotations"], "path": str(tmp / "missing.csv")}}
    plan = [
        {"report": str(tmp / "fail_write"), "cfg": cfg["fail_write"]},
        {"report": str(tmp / "fail_input"), "cfg": _cfg(store, tmp / "fail_input"), "cfg_rank1": bad_rank1},
        {"report": str(tmp / "two"), "cfg": cfg["two"]},
        {"report": str(tmp / "full"), "cfg": cfg["full"]},
        {"report": str(tmp / "cut"), "cfg": cfg["cut"], "copy": [str(tmp / "cut" / "last.pt"), str(tmp / "cut2.pt")]},
        {"report": str(tmp / "cut_resumed"), "cfg": cfg["cut_resumed"], "resume": True},
        {"report": str(tmp / "p1_on_2"), "cfg": cfg["p1_on_2"], "resume": True},
        {"report": str(tmp / "test2"), "test": {"checkpoint": str(tmp / "full" / "last.pt"), "device": "cpu",
                                                "out": str(tmp / "scores2.npz")}},
    ]
    (tmp / "plan.json").write_text(json.dumps(plan))
    (tmp / "driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node=2", str(tmp / "driver.py"), str(tmp / "plan.json")],
                          env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # 1 process, after: resume the 2-process run stopped at step 2; the protocol unsharded
    (tmp / "p2_on_1").mkdir()
    shutil.copyfile(tmp / "cut2.pt", tmp / "p2_on_1" / "last.pt")
    seen["p2_on_1"] = []
    with record_clips(seen["p2_on_1"]):
        fit(load_train_config(cfg["p2_on_1"]), resume=True)
    run_test(tmp / "full" / "last.pt", device="cpu", out=tmp / "scores1.npz")
    return tmp, seen, store


def test_two_processes_match_one_process_same_global_batch(ddp):
    tmp, _, _ = ddp
    assert _report(tmp / "two", 0)["error"] is None and _report(tmp / "two", 1)["error"] is None
    a, b = load_checkpoint(tmp / "one" / "last.pt"), load_checkpoint(tmp / "two" / "last.pt")
    assert a["step"] == b["step"] == 6 and a["world_size"] == 1 and b["world_size"] == 2
    for k, v in a["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(b["model"][k], v, atol=1e-5, rtol=1e-4, msg=f"{k} differs")
    rows_a = [json.loads(line) for line in (tmp / "one" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (tmp / "two" / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(rows_a, rows_b):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-5)
        assert ra["val_clips"] == rb["val_clips"] == 1  # rank 1 had no validation video, and did not hang
        assert ra["val_top1"] == rb["val_top1"]
    assert rows_a[0]["train_loss"] != rows_a[1]["train_loss"]


def test_a_failed_checkpoint_write_on_rank0_ends_both_ranks(ddp):
    tmp, _, _ = ddp
    for rank in (0, 1):
        err = _report(tmp / "fail_write", rank)["error"]
        assert err and err.startswith("CheckpointError") and "could not write checkpoint" in err, (rank, err)
        assert str(tmp / "fail_write" / "last.pt") in err


def test_a_bad_input_on_rank1_only_ends_both_ranks(ddp):
    tmp, _, _ = ddp
    errors = [_report(tmp / "fail_input", rank)["error"] for rank in (0, 1)]
    assert errors[0] == errors[1] and "missing.csv" in errors[0], errors
    assert not (tmp / "fail_input" / "last.pt").exists()


def test_each_rank_has_its_own_rng_and_resume_restores_it(ddp):
    tmp, _, _ = ddp
    full, resumed, cut = (load_checkpoint(p) for p in (tmp / "full" / "last.pt", tmp / "cut" / "last.pt", tmp / "cut2.pt"))
    assert cut["step"] == 2 and cut["epoch_step"] == 2 and len(cut["rng"]) == 2
    assert not torch.equal(cut["rng"][0]["torch"], cut["rng"][1]["torch"])  # dropout masks differ per rank
    assert full["step"] == resumed["step"] == 6
    for k, v in full["model"].items():  # dropout 0.5: equal only if each rank got its own RNG back
        assert torch.equal(v, resumed["model"][k]), f"{k} differs after resume"
    rows_f = [json.loads(line) for line in (tmp / "full" / "metrics.jsonl").read_text().splitlines()]
    rows_r = [json.loads(line) for line in (tmp / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in rows_f] == [r["train_loss"] for r in rows_r]


def test_mid_epoch_resume_on_another_number_of_processes_trains_each_clip_once(ddp):
    tmp, seen, store = ddp
    listed = [line.split(",")[0] for line in store["train"].read_text().splitlines()[1:]]
    held = (tmp / "full" / "validation.txt").read_text().split()
    every = Counter(v for v in listed if v not in held)
    assert len(held) == 1 and sum(every.values()) == 12
    # 1 process, 4 steps of batch 1, then 2 processes: 8 clips left, 4 per rank
    first, rest = _trained(seen["p1"]), Counter()
    for rank in (0, 1):
        rest += _trained(_report(tmp / "p1_on_2", rank)["seen"])
    assert sum(first.values()) == 4 and sum(rest.values()) == 8
    assert first + rest == every  # every clip of the epoch once
    # 2 processes, 2 steps each (4 clips), then 1 process: the other 8
    before = _trained(_report(tmp / "cut", 0)["seen"]) + _trained(_report(tmp / "cut", 1)["seen"])
    after = _trained(seen["p2_on_1"])
    assert sum(before.values()) == 4 and sum(after.values()) == 8
    assert before + after == every
    assert load_checkpoint(tmp / "p2_on_1" / "last.pt")["step"] == 2 + 8


def test_test_protocol_sharded_over_ranks_equals_one_process(ddp):
    tmp, _, _ = ddp
    assert _report(tmp / "test2", 0)["error"] is None and _report(tmp / "test2", 1)["error"] is None
    loaded = [_report(tmp / "test2", r)["seen"] for r in (0, 1)]
    assert [len(s) for s in loaded] == [3, 2]  # test videos 1, 3, 5 and 2, 4: no padding
    one, two = load_scores(tmp / "scores1.npz"), load_scores(tmp / "scores2.npz")
    assert two.video_ids == one.video_ids and len(set(two.video_ids)) == 5
    np.testing.assert_array_equal(two.labels, one.labels)
    np.testing.assert_allclose(two.probs, one.probs, atol=1e-6)
    np.testing.assert_allclose(two.logits, one.logits, atol=1e-5)
