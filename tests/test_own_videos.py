"""The README's "Train on your own videos", run exactly as written (tiny sizes added by the test:
a smaller --size, a tiny model and two epochs) on a generated folder of class folders: class names
with spaces and capitals, file names repeated across classes, .mp4 and .avi mixed. Each command's
output is checked; serve is started on a free loopback port and asked for a prediction."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tstam.checkpoint import load_checkpoint
from tstam.cli import main
from tstam.data.store import read_meta
from tstam.engine.scores import load_scores

from helpers.own_videos import PICKED, make_folder_dataset
from helpers.readme import bash_commands
from helpers.serve import start_server, stop_server

SECTION = "Train on your own videos"
TINY = ["model.width_mult=0.125", "model.input_size=64", "model.num_segments=2", "model.attention_hidden=16",
        "model.num_heads=2", "optim.epochs=2", "optim.lr_steps=[1]", "data.batch_size=4", "data.workers=0",
        "run.device=cpu", "run.tensorboard=false"]


def overrides(cmd: list[str]) -> list[str]:
    return [a for a in cmd[2:] if "=" in a and not a.startswith("-")]


def test_readme_walkthrough_is_short():
    cmds = bash_commands(SECTION)
    assert len(cmds) <= 8 and all(c[0] == "tstam" for c in cmds)
    assert [c[1] for c in cmds] == ["extract", "train", "train", "test", "fuse", "report", "predict", "serve"]
    assert all(len(overrides(c)) <= 3 for c in cmds), [overrides(c) for c in cmds]


@pytest.mark.slow
def test_readme_walkthrough_on_a_folder_of_class_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    clips = make_folder_dataset(tmp_path / "mydata")
    classes = sorted(set(clips.values()))
    cmds = bash_commands(SECTION)
    ran = []
    for cmd in cmds[:-1]:
        argv = list(cmd[1:])
        if argv[0] == "extract":  # tiny: the generated clips are 48 px
            argv[argv.index("--size") + 1] = "64x64"
            argv += ["--no-progress"]
        if argv[0] == "train":
            argv += [*TINY, "--no-progress"]
        assert main(argv) == 0, argv
        ran.append((argv[0], capsys.readouterr().out))
    out = dict(ran[3:])

    # extract: one folder per clip, repeated names told apart by their folders, every source once
    metas = {p.parent.name: read_meta(p.parent) for p in (tmp_path / "frames").glob("*/meta.json")}
    assert len(metas) == len(clips) == 15
    assert sorted(Path(m["source"]).resolve() for m in metas.values()) == \
        sorted((tmp_path / "mydata" / rel).resolve() for rel in clips)
    assert Path(metas["IMG_2041"]["source"]).name == "IMG_2041.mp4"  # a unique stem keeps its name
    assert Path(metas["Jump Rope__phone__IMG_0000"]["source"]).parent.parent.name == "Jump Rope"
    assert Path(metas["clap__IMG_0001"]["source"]).parent.name == "clap"

    # train: classes from the folder, frame size and flow settings from the store
    for stream in ("rgb", "flow"):
        ck = load_checkpoint(tmp_path / "runs" / stream / "best.pt")
        assert ck["classes"] == classes and ck["model_config"]["num_classes"] == 3
        assert ck["config"]["data"]["resize"] == [64, 64]
        if stream == "flow":
            assert ck["flow"] == metas["IMG_2041"]["flow"]
        val = (tmp_path / "runs" / stream / "validation.txt").read_text().splitlines()
        assert len(val) == 3 and all(v in metas for v in val)  # one clip of each class of 5

    # test: one score file per stream, the protocol in its name; the test clips are one per class
    scores = {s: load_scores(tmp_path / "runs" / s / f"scores_{s}_split1_test_25x1.npz") for s in ("rgb", "flow")}
    for s in scores.values():
        assert s.probs.shape == (3, 3) and sorted(s.labels.tolist()) == [0, 1, 2]
        assert not set(s.video_ids) & set(val)
    assert "runs/rgb/best.pt: top-1" in out["test"] and "runs/flow/best.pt: top-1" in out["test"]
    assert "fused ['rgb', 'flow']" in out["fuse"]

    # report: the user's classes in the per-class table, the pictures beside it
    report = (tmp_path / "report" / "report.md").read_text()
    assert all(c in report for c in classes)
    assert (tmp_path / "report" / "confusion_fused.png").stat().st_size > 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary

    # predict: a table of the user's class names for the clip
    assert PICKED.split("/")[-1] in out["predict"] and sum(c in out["predict"] for c in classes) == 3

    # serve: the README's arguments, on a free loopback port; the API answers with the classes
    serve = cmds[-1][1:]
    assert serve[0] == "serve" and serve[1:] == ["--rgb", "runs/rgb/best.pt", "--flow", "runs/flow/best.pt"]
    server = start_server(tmp_path, {"rgb": tmp_path / serve[2], "flow": tmp_path / serve[4]})
    try:
        assert server.get("/api/model").json()["classes"] == classes
        pred = server.predict(tmp_path / "mydata" / PICKED).json()
        assert pred["label"] in classes
    finally:
        assert stop_server(server) == 0


def test_split_command_writes_the_documented_csv(tmp_path, capsys):
    clips = make_folder_dataset(tmp_path / "mydata", classes=3, per_class=5, frames=4, size=32)
    args = ["split", str(tmp_path / "mydata"), "--out", str(tmp_path / "splits"), "--test", "0.2", "--val", "0.2"]
    assert main([*args, "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    rows = {}
    for name in ("train", "val", "test"):
        with open(tmp_path / "splits" / f"{name}.csv", newline="") as f:
            rows[name] = list(csv.DictReader(f))
        assert all(set(r) == {"path", "label", "video_id"} for r in rows[name])
    every = [r["path"] for part in rows.values() for r in part]
    assert sorted(every) == sorted(clips)  # each clip once
    assert all(r["label"] == clips[r["path"]] for part in rows.values() for r in part)
    for c in set(clips.values()):  # stratified: 5 clips -> 3 / 1 / 1 per class
        assert [sum(r["label"] == c for r in rows[k]) for k in ("train", "val", "test")] == [3, 1, 1]
        assert f"{c}" in printed
    first = {k: (tmp_path / "splits" / f"{k}.csv").read_text() for k in rows}
    assert main([*args, "--seed", "0"]) == 0  # deterministic for a seed
    assert {k: (tmp_path / "splits" / f"{k}.csv").read_text() for k in rows} == first
    assert main([*args, "--seed", "1"]) == 0
    assert {k: (tmp_path / "splits" / f"{k}.csv").read_text() for k in rows} != first
    assert main([*args, "--seed", "0"]) == 0  # back to the split read above
    capsys.readouterr()
    # the written split is what training reads with annotations.split_dir
    from tstam.engine.annotations import load_split
    from tstam.engine.config import load_train_config

    cfg = load_train_config("scratch_rgb", [f"annotations.path={tmp_path / 'mydata'}",
                                            f"annotations.split_dir={tmp_path / 'splits'}"])
    train, val, test, names = load_split(cfg.annotations, cfg.data)
    assert names == sorted(set(clips.values()))
    assert sorted(r.path for r in test) == sorted(r["path"] for r in rows["test"])
    assert sorted(r.video_id for r in val) == sorted(r["video_id"] for r in rows["val"])


def test_split_refuses_a_class_with_too_few_clips(tmp_path, capsys):
    make_folder_dataset(tmp_path / "mydata", classes=2, per_class=2, frames=4, size=32)
    assert main(["split", str(tmp_path / "mydata"), "--out", str(tmp_path / "splits")]) == 2
    err = capsys.readouterr().err
    assert "class 'Jump Rope' has 2 clip(s)" in err and "needs at least 3 per class" in err
    assert "Traceback" not in err and not (tmp_path / "splits").exists()
