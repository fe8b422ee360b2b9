"""Metrics, score files, fusion, weight search and the report's tables, on hand-checkable numbers."""
from __future__ import annotations

import numpy as np
import pytest

from tstam.engine import metrics
from tstam.engine.fuse import fuse, search_weights
from tstam.engine.scores import ScoreSet, load_scores, save_scores
from tstam.report import build_report, gather

CLASSES = ["a", "b", "c"]


def _set(probs, labels, stream, split=1, ids=None):
    probs = np.array(probs, dtype=np.float32)
    ids = ids or [f"v{i}" for i in range(len(labels))]
    return ScoreSet(ids, np.array(labels), probs, np.log(probs + 1e-6), CLASSES, {"stream": stream, "split": split})


# 4 videos, labels 0 1 2 0. RGB right on v0, v1 (top-1 .5); flow right on v1, v2, v3 (top-1 .75).
RGB = [[.6, .3, .1], [.2, .7, .1], [.5, .4, .1], [.25, .6, .15]]
FLOW = [[.35, .4, .25], [.1, .8, .1], [.1, .2, .7], [.5, .3, .2]]
LABELS = [0, 1, 2, 0]
# flow as weak as RGB (right on v0, v1 only) with scores of its own: a copy of RGB's would be refused
WEAK_FLOW = [[.5, .4, .1], [.3, .6, .1], [.6, .3, .1], [.3, .5, .2]]


def test_metrics_by_hand():
    s = np.array(RGB)
    assert metrics.topk_accuracy(s, LABELS, 1) == 0.5
    assert metrics.topk_accuracy(s, LABELS, 2) == 0.75  # v3: label 0 is 2nd best; v2: label 2 is 3rd
    cm = metrics.confusion_matrix(s, LABELS)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert metrics.mean_class_accuracy(s, LABELS) == pytest.approx((0.5 + 1 + 0) / 3)
    assert metrics.summarize(s, LABELS)["top5"] == 1.0


def test_score_file_round_trip(tmp_path):
    s = _set(RGB, LABELS, "rgb")
    back = load_scores(save_scores(tmp_path / "rgb.npz", s))
    assert back.video_ids == s.video_ids and back.classes == CLASSES and back.meta["stream"] == "rgb"
    np.testing.assert_array_equal(back.probs, s.probs)
    with pytest.raises(ValueError, match="end in .npz"):
        save_scores(tmp_path / "x.pt", s)


def test_fuse_default_weights_one_to_three():
    fused = fuse([_set(RGB, LABELS, "rgb"), _set(FLOW, LABELS, "flow")])
    assert fused.meta["weights"] == [1.0, 3.0]
    # v0: (.6+1.05)/4=.4125, (.3+1.2)/4=.375, (.1+.75)/4=.2125 -> class 0: right (flow alone is wrong);
    # a weighted mean, so the fused row is still a probability vector
    np.testing.assert_allclose(fused.probs[0], [0.4125, 0.375, 0.2125], rtol=1e-6)
    # v3: .25+1.5=1.75, .6+.9=1.5 -> class 0: right. v1, v2 right as in flow. -> 1.0
    assert fused.summary()["top1"] == 1.0


def test_fuse_aligns_by_id_and_refuses_disagreement():
    rgb = _set(RGB, LABELS, "rgb")
    flow_rev = _set(FLOW[::-1], LABELS[::-1], "flow", ids=["v3", "v2", "v1", "v0"])
    fused = fuse([rgb, flow_rev], [1, 1])
    np.testing.assert_allclose(fused.probs[2], np.add(RGB[2], FLOW[2]) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="disagree on the labels of 1 video"):
        fuse([rgb, _set(FLOW, [0, 1, 2, 1], "flow")], names=["rgb.npz", "flow.npz"])
    with pytest.raises(ValueError, match="different videos"):
        fuse([rgb, _set(FLOW[:3], LABELS[:3], "flow")])
    with pytest.raises(ValueError, match="two or more"):
        fuse([rgb])


def test_search_prefers_default_on_ties_and_marks_test_search():
    sets = [_set(RGB, LABELS, "rgb"), _set(FLOW, LABELS, "flow")]
    res = search_weights(sets, grid=(0.0, 1.0, 3.0, 5.0))
    # top-1 by flow weight: 0 -> .5, 1 -> .75 (v3: .75 < .9 wrong), 3 -> 1, 5 -> 1 (v0: 2.35 > 2.3)
    assert [t for _, t in res.grid] == [0.5, 0.75, 1.0, 1.0]
    assert res.weights == [1.0, 3.0] and res.search_top1 == 1.0 and not res.optimistic
    assert search_weights(sets, grid=(0.0, 1.0), on_test=True).optimistic


def test_report_three_splits(tmp_path):
    paths = []
    for split in (1, 2, 3):
        flow = FLOW if split != 3 else WEAK_FLOW  # split 3: flow as weak as RGB
        paths.append(save_scores(tmp_path / f"rgb{split}.npz", _set(RGB, LABELS, "rgb", split)))
        paths.append(save_scores(tmp_path / f"flow{split}.npz", _set(flow, LABELS, "flow", split)))
    inputs = gather(paths)
    top1 = {st: {sp: e.scores.summary()["top1"] for sp, es in inputs.splits.items() for s2, e in es.items() if s2 == st}
            for st in ("rgb", "flow", "fused")}
    assert top1["rgb"] == {"1": 0.5, "2": 0.5, "3": 0.5}
    assert top1["flow"] == {"1": 0.75, "2": 0.75, "3": 0.5}
    assert top1["fused"]["1"] == 1.0 and top1["fused"]["3"] == 0.5   # 1:3 (no weights recorded, none given)
    assert inputs.fusion["1"].startswith("RGB:flow = 1:3, the paper's default")
    md, path = build_report(paths)
    assert path is None
    lines = md.splitlines()
    assert "| rgb | 50.0 | 50.0 | 50.0 | 50.0 | 0.0 |" in lines
    # flow: mean of 75, 75, 50 = 66.7, sample std = 14.4
    assert "| flow | 75.0 | 75.0 | 50.0 | 66.7 | 14.4 |" in lines
    assert lines.index("| rgb | 50.0 | 50.0 | 50.0 | 50.0 | 0.0 |") < [i for i, line in enumerate(lines) if line.startswith("| fused")][-1]
    # per split: top-1, top-5, mean class; RGB split 1: mean class (.5 + 1 + 0) / 3
    assert "| 1 | rgb | 50.0 | 100.0 | 50.0 | 4 | – |" in lines


def test_report_of_one_split_has_no_spread_and_takes_given_weights(tmp_path):
    """One split: no "± std" anywhere (a spread of one number means nothing); --weights 1 1 are used."""
    paths = [save_scores(tmp_path / "rgb.npz", _set(RGB, LABELS, "rgb")),
             save_scores(tmp_path / "flow.npz", _set(FLOW, LABELS, "flow"))]
    md, _ = build_report(paths, weights=[1, 1])
    assert "±" not in md and "std" not in md
    # 1:1 -> v3: (.25+.5)/2=.375 vs (.6+.3)/2=.45 -> wrong; v0: .475 vs .35 right; v1, v2 right -> 75 %
    assert "| fused | 75.0 |" in md and "Fusion: RGB:flow = 1:1, given." in md
