"""train -> test -> fuse -> report end to end through the ``tstam`` CLI on real frames (tiny
config), and the test protocol's chunking and crop averaging."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tstam.checkpoint import load_stream
from tstam.cli import main
from tstam.data.config import DataConfig
from tstam.data.records import VideoRecord
from tstam.engine.scores import load_scores
from tstam.engine.testing import chunk_frames_for, predict_views, score_stream

from helpers.engine_store import CLASSES, make_store, tiny_config


def _write_yaml(path: Path, cfg: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_train_test_fuse_report_cli(tmp_path, capsys):
    store = make_store(tmp_path / "store")
    scores = {}
    for mod in ("rgb", "flow"):
        cfg = _write_yaml(tmp_path / f"{mod}.yaml", tiny_config(store, tmp_path / mod, modality=mod))
        # half of each class's groups held out for validation (and for the fusion-weight search)
        assert main(["train", "--config", str(cfg), "optim.epochs=1", "annotations.val_fraction=0.5"]) == 0
        assert json.loads((tmp_path / mod / "metrics.jsonl").read_text())["val_clips"] == 4
        out = tmp_path / mod
        for name in ("last.pt", "best.pt", "metrics.csv", "metrics.jsonl", "curves.png"):
            assert (out / name).is_file(), name
        assert list((out / "tb").glob("events.out.tfevents.*"))
        assert main(["test", "--checkpoint", str(out / "best.pt"), "--crops", "3", "--frames", "4"]) == 0
        printed = capsys.readouterr().out
        assert "top-1" in printed and "mean class" in printed
        scores[mod] = out / f"scores_{mod}_split1_test_4x3.npz"
        assert main(["test", "--checkpoint", str(out / "best.pt"), "--crops", "1", "--frames", "4", "--subset", "val"]) == 0
        scores[mod + "_val"] = out / f"scores_{mod}_split1_val_4x1.npz"
        assert not set(load_scores(scores[mod + "_val"]).video_ids) & set(load_scores(scores[mod]).video_ids)
        s = load_scores(scores[mod])
        assert s.classes == CLASSES and len(s.video_ids) == 4 and s.meta["test_crops"] == 3
        np.testing.assert_allclose(s.probs.sum(1), 1.0, rtol=1e-5)  # mean of softmax stays a distribution
        cm = (out / f"scores_{mod}_split1_test_4x3_confusion.csv").read_text().splitlines()
        assert cm[0].split(",")[1:] == CLASSES and len(cm) == 1 + len(CLASSES)
        assert (out / f"scores_{mod}_split1_test_4x3_confusion.png").stat().st_size > 0
    flow_meta = load_scores(scores["flow"]).meta
    assert flow_meta["flow"]["algorithm"] == "tvl1"  # the store's flow settings travel with the model

    fused = tmp_path / "fused.npz"
    capsys.readouterr()  # what tstam test printed
    assert main(["fuse", str(scores["rgb"]), str(scores["flow"]), "-o", str(fused), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == [1.0, 3.0]
    f = load_scores(fused)
    r, fl = load_scores(scores["rgb"]), load_scores(scores["flow"])
    np.testing.assert_allclose(f.probs, (r.probs + 3 * fl.probs) / 4, rtol=1e-6)

    assert main(["fuse", str(scores["rgb"]), str(scores["flow"]), "--search",
                 "--val", str(scores["rgb_val"]), str(scores["flow_val"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["optimistic"] is False
    assert main(["fuse", str(scores["rgb"]), str(scores["flow"]), "--search"]) == 2  # no --val: refused
    assert "search-on-test" in capsys.readouterr().err
    assert main(["fuse", str(scores["rgb"]), str(scores["flow"]), "--search", "--search-on-test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["optimistic"] is True

    report = tmp_path / "report"
    assert main(["report", str(scores["rgb"]), str(scores["flow"]), "-o", str(report), "--clips", "0"]) == 0
    md = (report / "report.md").read_text()
    for stream in ("rgb", "flow", "fused"):
        assert f"| {stream} |" in md


def test_protocol_chunks_and_crop_average(tmp_path):
    store = make_store(tmp_path / "store", n_train=4, n_test=2)
    main(["train", "--config", str(_write_yaml(tmp_path / "c.yaml", tiny_config(
        store, tmp_path / "run", optim={"epochs": 1}, run={"eval_every": 0}, model={"dropout": 0.0})))])
    ckpt = tmp_path / "run" / "last.pt"
    stream = load_stream(ckpt)
    model = stream.model
    views = torch.randint(0, 256, (10, 5, 3, 64, 64), dtype=torch.uint8)  # 10 crops x 5 frames
    p_all, l_all = predict_views(model, views, chunk_frames=50)    # all crops in one forward
    p_one, l_one = predict_views(model, views, chunk_frames=5)     # one crop per forward
    torch.testing.assert_close(p_all, p_one, rtol=1e-5, atol=1e-6)
    x = model.cfg.preprocess.normalize_clip(views)
    by_hand = torch.stack([model(x[i:i + 1]).logits[0].softmax(-1) for i in range(10)]).mean(0)
    torch.testing.assert_close(p_one, by_hand.detach(), rtol=1e-5, atol=1e-6)
    assert chunk_frames_for(model, frames=25, max_memory_mb=0.001) == 25  # never less than one crop
    assert chunk_frames_for(model, frames=25, max_memory_mb=1e6) % 25 == 0

    recs = [VideoRecord(f"v_{CLASSES[v % 4]}_g{v:02d}_c01", f"v_{CLASSES[v % 4]}_g{v:02d}_c01", v % 4) for v in (4, 5)]
    data = DataConfig(root=str(store["root"]), resize=[72, 96], test_frames=5, test_crops=10, workers=0)
    a = score_stream(stream, recs, root=store["root"], data=data, chunk_frames=250)
    b = score_stream(stream, recs, root=store["root"], data=data, max_memory_mb=0.5)
    assert a.video_ids == [r.video_id for r in recs] and a.labels.tolist() == [0, 1]
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="same class list"):
        score_stream(stream, recs, root=store["root"], data=data, classes=["x", "y", "z", "w"])
