"""``tstam report`` on real tiny runs: the report folder of two run folders (RGB, flow) holds the
accuracy per stream and fused, per class, the confusion matrices, the training curves and attention
pictures of test clips, with every number equal to one computed here from the score files alone
(plain numpy, and the fusion weights read from the recorded ``fusion.json``)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tstam.cli import main
from tstam.engine.scores import load_scores

from helpers.engine_store import CLASSES, make_store, tiny_config


def _hand(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top-1, top-5 and mean class accuracy, and the confusion counts, by hand."""
    order = np.argsort(-probs, axis=1, kind="stable")
    k = probs.shape[1]
    cm = np.zeros((k, k), dtype=int)
    for t, p in zip(labels, order[:, 0]):
        cm[t, p] += 1
    present = cm.sum(1) > 0
    return {"top1": float(np.mean(order[:, 0] == labels)), "top5": float(np.mean((order[:, :5] == labels[:, None]).any(1))),
            "mean_class": float(np.mean(np.diag(cm)[present] / cm.sum(1)[present])), "cm": cm}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """RGB and flow runs on a real tiny frame store (half of the training list held out), each
    tested twice (1 x 1 and 3 x 3 views: the report takes the fuller), scored on validation, and the
    fusion weights searched on validation (recorded in fusion.json)."""
    d = tmp_path_factory.mktemp("report")
    store = make_store(d / "store", n_train=8, n_test=8)
    out = {}
    for m in ("rgb", "flow"):
        cfg = d / f"{m}.yaml"
        cfg.write_text(yaml.safe_dump(tiny_config(store, d / m, modality=m)))
        assert main(["train", "--config", str(cfg), "optim.epochs=2", "annotations.val_fraction=0.5"]) == 0
        ck = d / m / "best.pt"
        assert main(["test", "--checkpoint", str(ck), "--frames", "1", "--crops", "1", "-o", str(d / m / "quick.npz")]) == 0
        assert main(["test", "--checkpoint", str(ck), "--frames", "3", "--crops", "3", "-o", str(d / m / "full.npz")]) == 0
        assert main(["test", "--checkpoint", str(ck), "--frames", "3", "--crops", "1", "--subset", "val",
                     "-o", str(d / m / "val.npz")]) == 0
        out[m] = d / m
    assert main(["fuse", str(d / "rgb" / "full.npz"), str(d / "flow" / "full.npz"), "--search",
                 "--val", str(d / "rgb" / "val.npz"), str(d / "flow" / "val.npz")]) == 0
    out["dir"] = d
    return out


@pytest.mark.slow
def test_report_of_two_run_folders(runs, capsys):
    d = runs["dir"]
    capsys.readouterr()
    assert main(["report", str(runs["rgb"]), str(runs["flow"]), "-o", str(d / "rep"), "--clips", "2",
                 "--title", "My clips"]) == 0
    printed = capsys.readouterr().out
    rep = d / "rep"
    assert printed.splitlines()[-1] == f"report: {rep / 'report.md'}"
    names = sorted(p.name for p in rep.iterdir())
    for stream in ("rgb", "flow", "fused"):
        assert f"confusion_{stream}.png" in names and f"confusion_{stream}.csv" in names
    for stream in ("rgb", "flow"):
        assert (rep / f"curves_{stream}.png").stat().st_size > 1000
    pictures = [n for n in names if n.startswith("attention_")]
    assert len(pictures) == 2 and all((rep / n).stat().st_size > 1000 for n in pictures)
    md = (rep / "report.md").read_text()
    assert md.startswith("# My clips\n")
    for n in pictures + ["confusion_fused.png", "curves_rgb.png", "curves_flow.png"]:
        assert f"]({n})" in md, n

    # the independent truth: the fuller test score files, and the recorded weights
    rgb, flow = load_scores(d / "rgb" / "full.npz"), load_scores(d / "flow" / "full.npz")
    assert rgb.meta["test_crops"] == 3 and rgb.video_ids == flow.video_ids and len(rgb.video_ids) == 8
    rec = json.loads((d / "rgb" / "fusion.json").read_text())["weights"]
    w_rgb, w_flow = rec["rgb"], rec["flow"]
    fused = (w_rgb * rgb.probs.astype(np.float64) + w_flow * flow.probs) / (w_rgb + w_flow)
    truth = {"rgb": _hand(rgb.probs, rgb.labels), "flow": _hand(flow.probs, flow.labels),
             "fused": _hand(fused, rgb.labels)}
    assert f"`{d / 'rgb' / 'full.npz'}` | 3 x 3 |" in md and "quick.npz" not in md and "val.npz` |" not in md
    assert f"Fusion: RGB:flow = {w_rgb:g}:{w_flow:g}, chosen on validation by tstam fuse --search" in md

    summary = json.loads((rep / "summary.json").read_text())
    for stream, t in truth.items():
        for key in ("top1", "top5", "mean_class"):
            assert summary[key][stream] == pytest.approx(t[key], abs=1e-9), (stream, key)
        row = f"| {stream} | {100 * t['top1']:.1f} | {100 * t['top5']:.1f} | {100 * t['mean_class']:.1f} | 8 |"
        assert row in md, row
        with open(rep / f"confusion_{stream}.csv") as f:
            counts = [[int(x) for x in r[1:]] for r in list(csv.reader(f))[1:]]
        assert counts == truth[stream]["cm"].tolist()
    # per class: each class's share of its videos that each stream puts first
    for k, name in enumerate(CLASSES):
        cells = [f"{100 * truth[s]['cm'][k, k] / truth[s]['cm'][k].sum():.1f}" for s in ("rgb", "flow", "fused")]
        assert f"| {name} | 2 | {' | '.join(cells)} |" in md, name
    assert "±" not in md  # one split: no spread

    # a mix of a run folder and a score file gives the same tables; without -o, only the tables
    assert main(["report", str(runs["rgb"]), str(d / "flow" / "full.npz")]) == 0
    tables = capsys.readouterr().out
    assert tables.startswith("## Accuracy") and "report:" not in tables
    for stream, t in truth.items():
        assert f"| {stream} | {100 * t['top1']:.1f} | {100 * t['top5']:.1f} |" in tables
