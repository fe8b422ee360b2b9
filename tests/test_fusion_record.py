"""Fusion weights chosen on validation travel with the checkpoints: ``tstam fuse --search --val``
records them in ``fusion.json`` beside each checkpoint, and predict (the recogniser), visualize,
serve and report use them for exactly those checkpoints; ``tstam fuse`` prints text, or one JSON
object with ``--json``."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from tstam.cli import main
from tstam.engine.scores import ScoreSet, save_scores
from tstam.fusion_record import FUSION_FILE, find_record, read_record
from tstam.inference import Recognizer

from helpers.models import CLASSES, CLIPS, make_checkpoint, make_checkpoints
from helpers.realdata import VIDEOS as REAL_VIDEOS

LABELS = np.array([0, 1, 2, 0, 1, 2])


def _probs(right: float, wrong_shift: int) -> np.ndarray:
    """(6, 3) probabilities: ``right`` on the true class, or with ``wrong_shift`` the most on the
    class that many places after it."""
    p = np.full((6, 3), (1 - right) / 2, dtype=np.float32)
    p[np.arange(6), (LABELS + wrong_shift) % 3] = right
    return p


def _scores(path: Path, stream: str, ckpt: Path, probs: np.ndarray, subset: str) -> Path:
    return save_scores(path, ScoreSet([f"v{i}" for i in range(6)], LABELS, probs, np.log(probs), list(CLASSES),
                                      {"stream": stream, "split": 1, "subset": subset, "checkpoint": str(ckpt)}))


@pytest.fixture()
def runs(tmp_path) -> dict[str, Path]:
    """An RGB and a flow checkpoint in run folders, with validation and test score files that name
    them. RGB is right (0.6 on the true class), flow is wrong (0.7 on another): the fused top-1 is 1
    for flow weights below 0.4 / 0.55 = 0.727 and the search's grid picks 0.5 (of 0 and 0.5, the
    closer to the default 1:3)."""
    out = {}
    for m, seed in (("rgb", 1), ("flow", 2)):
        (tmp_path / m).mkdir()
        out[m] = make_checkpoint(tmp_path / m / "best.pt", m, seed=seed, sharpen=20.0)
    probs = {"rgb": _probs(0.6, 0), "flow": _probs(0.7, 1)}
    for m in ("rgb", "flow"):
        for subset in ("val", "test"):
            out[f"{m}_{subset}"] = _scores(tmp_path / m / f"scores_{m}_{subset}.npz", m, out[m], probs[m], subset)
    return out


@pytest.mark.slow  # two predictions of a real clip with flow
def test_search_on_validation_records_the_weights_and_predict_uses_them(runs, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    assert main(["fuse", str(runs["rgb_test"]), str(runs["flow_test"]), "--search",
                 "--val", str(runs["rgb_val"]), str(runs["flow_val"])]) == 0
    out = capsys.readouterr().out
    assert "search: weights [1.0, 0.5]" in out and not out.lstrip().startswith("{")  # text only, no JSON line
    for m in ("rgb", "flow"):
        assert f"weights recorded for predict, serve and report: {tmp_path / m / FUSION_FILE}" in out
        rec = read_record(tmp_path / m / FUSION_FILE)
        assert rec.weights == {"rgb": 1.0, "flow": 0.5} and rec.val_top1 == 1.0 and rec.val_videos == 6
    rec = Recognizer.from_paths(rgb=runs["rgb"], flow=runs["flow"])
    assert rec.weights == {"rgb": 1.0, "flow": 0.5}
    assert rec.weights_source.startswith("RGB:flow = 1:0.5, chosen on validation by tstam fuse --search")
    video = str(REAL_VIDEOS / CLIPS[1])
    assert main(["predict", video, "--rgb", str(runs["rgb"]), "--flow", str(runs["flow"]), "--json",
                 str(tmp_path / "p.json")]) == 0
    pred = json.loads((tmp_path / "p.json").read_text())["predictions"][0]
    assert pred["weights"] == {"rgb": 1.0, "flow": 0.5}
    fused = (np.array(pred["probabilities"]["rgb"]) + 0.5 * np.array(pred["probabilities"]["flow"])) / 1.5
    np.testing.assert_allclose(pred["probabilities"]["fused"], fused, atol=1e-6)
    assert any("fusion weights RGB:flow = 1:0.5, chosen on validation" in r.getMessage() for r in caplog.records)
    # --weights still decides
    assert main(["predict", video, "--rgb", str(runs["rgb"]), "--flow", str(runs["flow"]), "--weights", "1", "3",
                 "--json", str(tmp_path / "q.json")]) == 0
    assert json.loads((tmp_path / "q.json").read_text())["predictions"][0]["weights"] == {"rgb": 1.0, "flow": 3.0}


def test_recorded_weights_apply_to_those_checkpoints_only(runs, tmp_path):
    assert main(["fuse", str(runs["rgb_test"]), str(runs["flow_test"]), "--search",
                 "--val", str(runs["rgb_val"]), str(runs["flow_val"])]) == 0
    assert find_record({"rgb": runs["rgb"], "flow": runs["flow"]}).ordered() == [1.0, 0.5]
    # another checkpoint of the same run folder (last.pt beside best.pt): the paper's 1:3
    other = make_checkpoint(tmp_path / "flow" / "last.pt", "flow", seed=9)
    rec = Recognizer.from_paths(rgb=runs["rgb"], flow=other)
    assert rec.weights == {"rgb": 1.0, "flow": 3.0} and "the paper's default" in rec.weights_source
    # the same folders moved elsewhere: found by content, not by path
    moved = tmp_path / "moved"
    for m in ("rgb", "flow"):
        shutil.copytree(tmp_path / m, moved / m)
    assert Recognizer.from_paths(rgb=moved / "rgb" / "best.pt", flow=moved / "flow" / "best.pt").weights["flow"] == 0.5
    # a checkpoint retrained in place is another model
    make_checkpoint(runs["flow"], "flow", seed=3)
    assert Recognizer.from_paths(rgb=runs["rgb"], flow=runs["flow"]).weights["flow"] == 3.0
    # one stream: no fusion
    assert Recognizer.from_paths(rgb=runs["rgb"]).weights_source == "one stream, no fusion"


def test_weights_searched_on_test_or_raw_scores_are_not_recorded(runs, tmp_path, capsys):
    assert main(["fuse", str(runs["rgb_test"]), str(runs["flow_test"]), "--search", "--search-on-test"]) == 0
    assert main(["fuse", str(runs["rgb_test"]), str(runs["flow_test"]), "--search", "--mode", "raw",
                 "--val", str(runs["rgb_val"]), str(runs["flow_val"])]) == 0
    assert "weights recorded" not in capsys.readouterr().out
    assert not list(tmp_path.rglob(FUSION_FILE))


def test_fuse_json_is_one_object_and_text_has_none(runs, tmp_path, capsys):
    out = tmp_path / "fused.npz"
    assert main(["fuse", str(runs["rgb_test"]), str(runs["flow_test"]), "-o", str(out), "--json"]) == 0
    printed = capsys.readouterr().out
    data = json.loads(printed)  # the whole output is one JSON object
    # default 1:3: every video's flow-favoured class wins ((0.2 + 3 * 0.7) / 4 > (0.6 + 3 * 0.15) / 4)
    assert data["weights"] == [1.0, 3.0] and data["top1"] == 0.0 and data["videos"] == 6 and data["out"] == str(out)
    assert [f["stream"] for f in data["files"]] == ["rgb", "flow"] and data["files"][0]["top1"] == 1.0
    assert main(["fuse", str(runs["rgb_test"]), str(runs["flow_test"])]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("fused ['rgb', 'flow'] weights [1.0, 3.0] (softmax): top-1 0.00")
    assert not any(line.lstrip().startswith("{") for line in text)


def test_a_fusion_file_for_other_checkpoints_is_left_alone(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ckpts = make_checkpoints(tmp_path)
    (tmp_path / FUSION_FILE).write_text(json.dumps({
        "format": "tstam-fusion", "version": 1, "weights": {"rgb": 1, "flow": 2}, "mode": "softmax",
        "checkpoints": {m: {"path": "/elsewhere/x.pt", "sha256": "0" * 64} for m in ("rgb", "flow")}}))
    rec = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"])
    assert rec.weights == {"rgb": 1.0, "flow": 3.0}
    assert any("not for these checkpoints; not used" in r.getMessage() for r in caplog.records)
