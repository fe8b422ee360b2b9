"""What a user sees when something goes wrong, in a real ``python -m tstam`` process: bad input
gives one message and exit status 2, no traceback (``--debug`` shows it); a diverged training run
exits 1 with its message; an unexpected error is a bug: traceback, a line saying so, status 3."""
from __future__ import annotations

import errno

import numpy as np
import pytest
import yaml

from tstam.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, main
from tstam.errors import InputError, OutputError, ScoreFileError

from helpers.cli import run_tstam
from helpers.engine_store import make_store, tiny_config
from helpers.models import CLIPS
from helpers.realdata import VIDEOS as REAL_VIDEOS


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
    import tstam.report

    monkeypatch.setattr(tstam.report, "build_report", bug)
    assert main(["report", f"{blocked}/x.npz"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"tstam report: internal error: {kind}" in err
    assert "This is a bug in tstam" in err and "please report it" in err


def test_a_plain_value_error_inside_tstam_is_a_bug(tmp_path, monkeypatch, capsys):
    """The kind of an error decides, not where it was raised: a shard of three numbers reaching
    ``select_shard`` fails there, inside tstam's own code, with Python's "too many values to
    unpack" ValueError. That is a bug (exit 3, the traceback into extract/sources.py), not bad input.
    The fault is injected into the real extract command's option parser; the rest runs as it is."""
    import tstam.cli.extract

    monkeypatch.setattr(tstam.cli.extract, "parse_shard", lambda text: (0, 1, 2))
    rc = main(["extract", str(REAL_VIDEOS / CLIPS[0]), "--out", str(tmp_path / "frames"), "--shard", "0/1",
               "--flow", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == EXIT_INTERNAL, err
    assert "Traceback (most recent call last)" in err and 'tstam/extract/sources.py", line' in err
    assert "tstam extract: internal error: ValueError: too many values to unpack" in err
    assert "This is a bug in tstam" in err


def _raises(error: BaseException):
    def fail(*args, **kwargs):
        raise error
    return fail


@pytest.mark.parametrize("error,status,message", [
    (InputError("--thing 7 is not valid; expected 1 to 5"), EXIT_USAGE,
     "tstam report: error: --thing 7 is not valid; expected 1 to 5"),
    (ScoreFileError("x.npz: probs hold NaN"), EXIT_USAGE, "tstam report: error: x.npz: probs hold NaN"),
    (OutputError("out/: output folder is not writable"), EXIT_USAGE,
     "tstam report: error: out/: output folder is not writable"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "gone.npz"), EXIT_USAGE,
     "tstam report: error: gone.npz: No such file or directory"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x.md"), EXIT_USAGE,
     "tstam report: error: /root/x.md: Permission denied"),
    (OSError(errno.ENOSPC, "No space left on device", "big.npz"), EXIT_USAGE,
     "tstam report: error: big.npz: No space left on device"),
    (OSError("something failed"), EXIT_INTERNAL, "tstam report: internal error: OSError: something failed"),
    (ValueError("probs must be (V, K)"), EXIT_INTERNAL, "tstam report: internal error: ValueError: probs must be (V, K)"),
    (RuntimeError("CUDA error: device-side assert"), EXIT_INTERNAL,
     "tstam report: internal error: RuntimeError: CUDA error: device-side assert"),
], ids=["InputError", "ScoreFileError", "OutputError", "missing-file", "no-permission", "disk-full",
        "OSError-without-file", "plain-ValueError", "RuntimeError"])
def test_the_type_of_the_error_decides_the_exit_status(blocked, monkeypatch, capsys, error, status, message):
    """A ``TstamError`` or an ``OSError`` naming a file is the user's: exit 2, its message in one
    line, no traceback. Anything else is a bug: exit 3 with the traceback. The errors are raised
    from this test file, outside tstam's code: where an error comes from does not matter."""
    import tstam.report

    monkeypatch.setattr(tstam.report, "build_report", _raises(error))
    assert main(["report", f"{blocked}/x.npz"]) == status
    err = capsys.readouterr().err
    assert message in err
    if status == EXIT_USAGE:
        assert err == message + "\n"
    else:
        assert "Traceback (most recent call last)" in err and "This is a bug in tstam" in err


def test_ctrl_c_exits_130(monkeypatch, capsys, blocked):
    import tstam.report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tstam.report, "build_report", interrupted)
    assert main(["report", f"{blocked}/x.npz"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "tstam report: interrupted\n"
