"""What a user sees when something goes wrong, in a real ``python -m tstam`` process: bad input
gives one message and exit status 2, no traceback (``--debug`` shows it); a diverged training run
exits 1 with its message; an unexpected error is a bug: traceback, a line saying so, status 3."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from tstam.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, main

from helpers.cli import run_tstam
from helpers.engine_store import make_store, tiny_config


@pytest.fixture
def blocked(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty.npz").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("argv,message", [  # one process each: the fast tier keeps the first
    (["fuse", "{d}/empty.npz", "{d}/empty.npz"], "{d}/empty.npz: an empty file (0 bytes)"),
    pytest.param(["train", "--config", "synthetic_rgb", "data.resize=[40,", "40]"],
                 "override 'data.resize=[40,': the value", marks=pytest.mark.slow),
    pytest.param(["synth", "--out", "{d}/a_file/bench", "--preset", "tiny"],
                 "{d}/a_file/bench: output folder is not writable", marks=pytest.mark.slow),
    pytest.param(["predict", "{d}/clip.avi", "--rgb", "{d}/a_file", "--device", "cuda:x"],
                 "--device 'cuda:x' is not valid", marks=pytest.mark.slow),
], ids=["zero-byte-score-file", "unbalanced-override", "output-under-a-file", "bad-device"])
def test_user_errors_show_no_traceback(blocked, argv, message):
    res = run_tstam([a.format(d=blocked) for a in argv])
    assert res.returncode == 2, res.stderr
    assert message.format(d=blocked) in res.stderr
    assert "Traceback" not in res.stderr and "bug" not in res.stderr


@pytest.mark.slow
def test_debug_shows_the_traceback_and_the_same_message(blocked):
    for argv in (["--debug", "fuse", f"{blocked}/empty.npz", f"{blocked}/empty.npz"],
                 ["fuse", f"{blocked}/empty.npz", f"{blocked}/empty.npz", "--debug"]):
        res = run_tstam(argv)
        assert res.returncode == 2
        assert "Traceback (most recent call last)" in res.stderr and 'scores.py", line' in res.stderr
        assert res.stderr.rstrip().endswith(f"tstam fuse: error: {blocked}/empty.npz: an empty file (0 bytes); "
                                            "expected a score file written by tstam test or tstam fuse")


@pytest.mark.slow
def test_diverged_training_exits_1_with_its_message_and_no_traceback(tmp_path):
    store = make_store(tmp_path / "store")
    # epoch 1 trains at lr 0.01 and writes last.pt; then lr x 1e32 blows the weights up
    cfg = tiny_config(store, tmp_path / "run", optim={"epochs": 3, "lr_steps": [1], "lr_gamma": 1e32, "clip_grad": None})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = run_tstam(["train", "--config", str(tmp_path / "c.yaml")])
    assert res.returncode == 1, res.stderr
    last = res.stderr.rstrip().splitlines()[-1]
    assert last.startswith("tstam train: error: non-finite loss") and f"{tmp_path / 'run' / 'last.pt'}" in last
    assert "Traceback" not in res.stderr


def _library_bug(*args, **kwargs):
    return np.zeros(-1)  # numpy raises ValueError("negative dimensions are not allowed")


def _lookup_bug(*args, **kwargs):
    return {}["probs"]


@pytest.mark.parametrize("bug,kind", [(_library_bug, "ValueError: negative dimensions are not allowed"),
                                      (_lookup_bug, "KeyError: 'probs'")])
def test_an_unexpected_error_is_reported_as_a_bug(blocked, monkeypatch, capsys, bug, kind):
    """A ValueError escaping from a library (not worded by tstam) or any other exception is a bug:
    exit 3, the traceback, and a line saying where to report it. The fault is injected into the
    real report command's library call, as a bug there would surface."""
    import tstam.engine.split_report

    monkeypatch.setattr(tstam.engine.split_report, "build_report", bug)
    assert main(["report", f"{blocked}/x.npz"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"tstam report: internal error: {kind}" in err
    assert "This is a bug in tstam" in err and "please report it" in err


def test_ctrl_c_exits_130(monkeypatch, capsys, blocked):
    import tstam.engine.split_report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tstam.engine.split_report, "build_report", interrupted)
    assert main(["report", f"{blocked}/x.npz"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "tstam report: interrupted\n"
