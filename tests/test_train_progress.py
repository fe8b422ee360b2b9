"""Training shows where it is: a bar per epoch that moves at every step, the run's ETA, a
validation bar, the epoch's seconds; the meter is still read only every ``run.log_every`` steps
and at epoch ends (no read added to the step); settings that do nothing on a CPU are said once."""
from __future__ import annotations

import functools
import json
import logging
import re

from tqdm import tqdm

from tstam.engine import meter as meter_module
from tstam.engine import train as train_module
from tstam.engine.config import load_train_config
from tstam.engine.meter import StepMeter, format_seconds, run_plan
from tstam.engine.train import fit

from helpers.engine_store import make_store, tiny_config


def test_run_plan_counts_steps_and_validations():
    """By hand from fit's schedule: validate after epochs k with k % eval_every == 0 and after the
    last complete epoch; an epoch cut by max_steps is not validated."""
    # 3 epochs of 4 steps, eval every 2: after epoch 2 and after epoch 3 (the last)
    assert run_plan(epochs=3, epoch_len=4, epoch=0, max_steps=0, eval_every=2) == (12, 2)
    assert run_plan(epochs=3, epoch_len=4, epoch=2, max_steps=0, eval_every=2) == (12, 1)  # from epoch 3 on
    # max_steps 10: epochs 1, 2 complete (validation after 2), epoch 3 cut after 2 steps: none
    assert run_plan(epochs=3, epoch_len=4, epoch=0, max_steps=10, eval_every=2) == (10, 1)
    # max_steps 8 ends at the end of epoch 2, which is then the last: validated
    assert run_plan(epochs=3, epoch_len=4, epoch=0, max_steps=8, eval_every=5) == (8, 1)
    assert run_plan(epochs=3, epoch_len=4, epoch=0, max_steps=0, eval_every=0) == (12, 0)  # no validation set
    assert [format_seconds(s) for s in (None, 59.4, 61, 3725)] == ["?", "0:59", "1:01", "1:02:05"]


def test_bar_moves_every_step_with_eta_and_reads_stay_at_log_points(tmp_path, monkeypatch, capsys, caplog):
    """``progress=True`` draws the bars into the captured stderr (as on a terminal; redrawn at every
    update). The meter is read at steps 2 and 4 (log_every 2), at the epoch's end and by
    the checkpoint write: 4 reads for 4 steps, none between the log points."""
    store = make_store(tmp_path / "store", n_train=12, n_test=4)  # 8 training videos (4 held out), batch 2: 4 steps
    cfg = load_train_config(tiny_config(store, tmp_path / "run", optim={"epochs": 1},
                                        run={"log_every": 2, "amp": "bf16", "sync_bn": True,
                                                                  "tensorboard": False}))
    # tqdm redraws at most every 0.1 s (its mininterval, read at import: TQDM_ variables set now are
    # ignored); a tiny step is faster, so the real bars draw every update here
    monkeypatch.setattr(meter_module, "tqdm", functools.partial(tqdm, mininterval=0, miniters=1))
    steps: list[int] = []  # one entry per train_step call (the real one runs)
    reads: list[int] = []  # steps done at each meter read (the real read runs)
    real_step, real_read = train_module.train_step, StepMeter.read

    def counted_step(*args):
        real_step(*args)
        steps.append(len(steps) + 1)

    def counted_read(self):
        reads.append(len(steps))
        return real_read(self)

    monkeypatch.setattr(train_module, "train_step", counted_step)
    monkeypatch.setattr(StepMeter, "read", counted_read)
    with caplog.at_level(logging.INFO):
        row = fit(cfg, progress=True)
    err = capsys.readouterr().err
    assert steps == [1, 2, 3, 4]
    assert reads == [2, 4, 4, 4]  # log points 2 and 4, the epoch's end, the checkpoint
    frames = re.split(r"[\r\n]", err)
    for k in range(5):  # the bar at every step, 0/4 to 4/4
        assert any(re.search(rf"epoch 1/1: +\d+%\|.*\| {k}/4 \[", f) for f in frames), (k, err[-2000:])
    after = [f for f in frames if re.search(r"epoch 1/1: .* [34]/4 \[", f)]
    assert after and all(re.search(r"loss \d+\.\d{4}, lr 1\.00e-02, [\d.]+ clips/s, run ETA \d+:\d\d", f) for f in after)
    assert any(re.search(r"validation 1: +100%\|.*\| 2/2 \[", f) for f in frames), err[-2000:]
    # the epoch's seconds: in the row, the metrics file and the log line
    saved = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert 0 < row["epoch_s"] == saved["epoch_s"]
    assert re.search(r"epoch 1 in \d+\.\d s: train_loss=.*; run ETA 0:00", caplog.text)
    # settings that do nothing here are said once (not silently ignored); the run is float32
    assert caplog.text.count("run.amp=bf16 has no effect on cpu: autocast is used on CUDA only; running in float32") == 1
    assert caplog.text.count("run.sync_bn has no effect here (one process)") == 1


def test_without_bars_a_log_line_every_log_every_steps(tmp_path, caplog, capsys):
    store = make_store(tmp_path / "store", n_train=4, n_test=4)
    cfg = load_train_config(tiny_config(store, tmp_path / "run", optim={"epochs": 1},
                                        run={"log_every": 1, "max_steps": 2, "eval_every": 0, "tensorboard": False}))
    with caplog.at_level(logging.INFO):
        fit(cfg, progress=False)
    lines = re.findall(r"epoch 1/1 \[(\d)/\d\] loss [\d.]+ lr [\d.e+-]+ [\d.]+ clips/s, run ETA (\S+)", caplog.text)
    assert [n for n, _ in lines] == ["1", "2"] and all(re.fullmatch(r"\d+:\d\d", eta) for _, eta in lines)
    assert "%|" not in capsys.readouterr().err  # no bar
