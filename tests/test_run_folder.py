"""A run folder is never silently replaced: ``tstam train`` into a folder holding a run refuses and
names ``--resume`` and ``--force``; ``--force`` moves the old run aside; a run that fails before its
first checkpoint leaves nothing behind; score files name their protocol."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tstam.checkpoint import load_checkpoint
from tstam.cli import main
from tstam.engine.config import load_train_config
from tstam.engine.scores import load_scores
from tstam.engine.train import fit

from helpers.engine_store import make_store, tiny_config


def _tree(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")}


def _config(tmp_path: Path, out: Path, **sections) -> Path:
    store = make_store(tmp_path / "store", n_train=4, n_test=4)
    cfg = tiny_config(store, out, **{"optim": {"epochs": 1}, "run": {"eval_every": 0}, **sections})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing(tmp_path, capsys):
    # a folder the run creates (and its parent): removed when the annotations turn out missing
    cfg = _config(tmp_path, tmp_path / "new" / "run", annotations={"path": str(tmp_path / "nope.csv")})
    assert main(["train", "--config", str(cfg)]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # an existing folder keeps what it held, and only that
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    assert main(["train", "--config", str(cfg), f"run.out_dir={tmp_path / 'mine'}"]) == 2
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_interrupted_in_the_first_epoch_leaves_nothing(tmp_path):
    """Ctrl-C at the first step, after the folder, validation.txt, metrics and TensorBoard events
    were written: all of it goes."""
    cfg = load_train_config(yaml.safe_load(_config(tmp_path, tmp_path / "run").read_text()))

    def interrupt(state):
        assert (tmp_path / "run" / "metrics.csv").is_file() and (tmp_path / "run" / "tb").is_dir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, callbacks=[interrupt])
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_refused_forced_resumed_and_protocols_in_score_names(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = str(_config(tmp_path, out))
    assert main(["train", "--config", cfg, "run.max_steps=1"]) == 0
    assert "no validation yet" in capsys.readouterr().out
    first = load_checkpoint(out / "last.pt")
    before = _tree(tmp_path)
    # again without --resume: refused before any work, nothing changed
    assert main(["train", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert (f"tstam train: error: {out}: holds a run (last.pt, metrics.csv, metrics.jsonl, tb); continue it with "
            f"--resume, or start over with --force (moves it to {out}.old-<date-time>)") in err
    assert _tree(tmp_path) == before
    assert main(["train", "--config", cfg, "--resume", "--force"]) == 2
    assert "give one of them" in capsys.readouterr().err and _tree(tmp_path) == before
    # --resume continues it
    assert main(["train", "--config", cfg]) == 2
    capsys.readouterr()
    assert main(["train", "--config", cfg, "--resume"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 2  # 4 videos, batch 2: the epoch's second step
    # --force moves it aside whole and starts over; the new run has its own TensorBoard folder
    assert main(["train", "--config", cfg, "--force"]) == 0
    printed = capsys.readouterr().out
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and f"the previous run is in {old[0]} (--force)" in printed
    assert load_checkpoint(old[0] / "last.pt")["step"] == 2
    assert load_checkpoint(out / "last.pt")["step"] == 2 and load_checkpoint(out / "last.pt")["epoch"] == 1
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    assert len(list((old[0] / "tb").glob("events.out.tfevents.*"))) == 2  # the first attempt and its resume
    assert first["step"] == 1
    # two protocols, two score files (and their confusion matrices), each saying what it holds
    for crops in (1, 3):
        assert main(["test", "--checkpoint", str(out / "last.pt"), "--frames", "2", "--crops", str(crops)]) == 0
        assert f"scores: {out / f'scores_rgb_split1_test_2x{crops}.npz'}" in capsys.readouterr().out
    for crops in (1, 3):
        s = load_scores(out / f"scores_rgb_split1_test_2x{crops}.npz")
        assert (s.meta["test_frames"], s.meta["test_crops"]) == (2, crops)
        assert (out / f"scores_rgb_split1_test_2x{crops}_confusion.csv").is_file()
