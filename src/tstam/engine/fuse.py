"""Weighted late fusion of per-stream score files, and a weight search (paper 4.3.3).

The fused score of a video is the weighted mean ``sum_s w_s scores_s / sum_s w_s`` over streams
(``tstam.models.fuse_scores``), on the per-stream softmax probabilities averaged over views (mode
"softmax", default) or on the raw averaged scores (mode "raw"). Default weights RGB:flow = 1:3
(``tstam.models.DEFAULT_FUSION_WEIGHTS``). Files must hold the same videos with the same labels and
classes; videos in a different order are aligned by id.

The weight search tries a grid on a *validation* score set and applies the best weights to the
test set. Searching on the test set itself is allowed only when asked for, and the result is then
marked ``optimistic`` (the chosen weights have seen the test labels).
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tstam.engine import metrics
from tstam.engine.scores import ScoreSet
from tstam.errors import InputError, ScoreFileError
from tstam.models.fusion import DEFAULT_FUSION_WEIGHTS, check_weights, fuse_scores

__all__ = ["DEFAULT_GRID", "SearchResult", "align", "fuse", "default_weights", "search_weights"]

log = logging.getLogger(__name__)

DEFAULT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)  # weights tried for each stream but the first


def align(sets: Sequence[ScoreSet], names: Sequence[str] | None = None) -> list[ScoreSet]:
    """Check that the score sets describe the same videos, labels and classes; reorder to the first.

    Raises:
        ScoreFileError: naming the files (``names``) and the first disagreement.
        InputError: fewer than two score sets.
    """
    if len(sets) < 2:
        raise InputError(f"fusion needs two or more score files, got {len(sets)}")
    names = list(names) if names is not None else [f"scores #{i}" for i in range(len(sets))]
    ref, ref_name = sets[0], names[0]
    index = {v: i for i, v in enumerate(ref.video_ids)}
    out = [ref]
    for s, name in zip(sets[1:], names[1:]):
        if s.classes != ref.classes:
            raise ScoreFileError(f"{name} and {ref_name} have different class lists "
                                 f"({len(s.classes)} vs {len(ref.classes)} classes, or another order)")
        if set(s.video_ids) != set(index) or len(s.video_ids) != len(ref.video_ids):
            only = sorted(set(s.video_ids) ^ set(index))[:3]
            raise ScoreFileError(f"{name} and {ref_name} hold different videos "
                                 f"({len(s.video_ids)} vs {len(ref.video_ids)}; e.g. {only})")
        order = np.array([s.video_ids.index(v) for v in ref.video_ids]) if s.video_ids != ref.video_ids \
            else np.arange(len(ref.video_ids))
        labels = s.labels[order]
        bad = np.nonzero(labels != ref.labels)[0]
        if bad.size:
            v = ref.video_ids[bad[0]]
            raise ScoreFileError(f"{name} and {ref_name} disagree on the labels of {bad.size} video(s), "
                                 f"e.g. {v}: {labels[bad[0]]} vs {ref.labels[bad[0]]}")
        out.append(ScoreSet(list(ref.video_ids), labels, s.probs[order], s.logits[order],
                            list(s.classes), dict(s.meta)))
    _refuse_self_fusion(out, names)
    return out


def _refuse_self_fusion(sets: Sequence[ScoreSet], names: Sequence[str]) -> None:
    """Refuse two aligned score sets with the same scores (one file twice, or a copy): their fusion
    is that stream's result, presented as a two-stream one. Two sets scored from the same checkpoint
    file (``meta["checkpoint"]``) with other settings (frames, crops) are fused with a warning: the
    file may have been retrained in between."""
    for i, j in itertools.combinations(range(len(sets)), 2):
        a, b = sets[i], sets[j]
        if np.array_equal(a.probs, b.probs) and np.array_equal(a.logits, b.logits):
            raise InputError(f"{names[j]} and {names[i]} hold the same scores: fusing a stream with itself gives "
                             "that stream's result, not a fusion of two streams; give score files of different "
                             "streams (e.g. RGB and flow)")
        ckpt = a.meta.get("checkpoint")
        if ckpt and ckpt == b.meta.get("checkpoint"):
            log.warning("%s and %s were both scored from the checkpoint %s: fusing a stream with itself (other "
                        "test settings) is not a two-stream result", names[j], names[i], ckpt)


def default_weights(sets: Sequence[ScoreSet]) -> list[float]:
    """1 for RGB, 3 for flow (by each file's ``stream``); 1 for anything else."""
    return [DEFAULT_FUSION_WEIGHTS.get(s.meta.get("stream", ""), 1.0) for s in sets]


def fuse(sets: Sequence[ScoreSet], weights: Sequence[float] | None = None, *, mode: str = "softmax",
         names: Sequence[str] | None = None) -> ScoreSet:
    """Weighted mean of aligned score sets; the result's ``meta`` records inputs, weights and mode."""
    sets = align(sets, names)
    weights = check_weights(default_weights(sets) if weights is None else weights, len(sets))
    for s in sets:
        s.scores(mode)  # validates mode
    fused_probs = fuse_scores([s.probs for s in sets], weights)
    fused_logits = fuse_scores([s.logits for s in sets], weights)
    meta = {
        "stream": "fused", "weights": weights, "mode": mode,
        "inputs": [s.meta.get("stream", n) for s, n in zip(sets, names or [""] * len(sets))],
        "split": sets[0].meta.get("split"),
    }
    return ScoreSet(list(sets[0].video_ids), sets[0].labels, fused_probs, fused_logits,
                    list(sets[0].classes), meta)


@dataclass
class SearchResult:
    """The chosen weights, the accuracy they reached where searched, and the full grid."""

    weights: list[float]
    search_top1: float
    optimistic: bool                    # True when searched on the test set itself
    grid: list[tuple[list[float], float]]  # (weights, top-1) for every point tried


def search_weights(sets: Sequence[ScoreSet], *, grid: Sequence[float] = DEFAULT_GRID, mode: str = "softmax",
                   on_test: bool = False, names: Sequence[str] | None = None) -> SearchResult:
    """Try every weight combination (first stream fixed at 1, the others from ``grid``).

    The best top-1 wins; ties go to the combination closest to the default weights (then the
    earliest in grid order), so a flat optimum keeps the paper's 1:3.

    Args:
        sets: validation score sets, one per stream.
        grid: weights tried for every stream but the first.
        mode: "softmax" or "raw".
        on_test: the caller searches on the test set; the result is marked optimistic.
    """
    if not on_test:
        tested = [n for s, n in zip(sets, names or [f"scores #{i}" for i in range(len(sets))])
                  if s.meta.get("subset") == "test"]
        if tested:
            raise InputError(f"{tested[0]} holds scores of the test list (subset 'test'): weights searched on it "
                             "have seen the test labels; search on validation scores (`tstam test --subset val`), "
                             "or pass --search-on-test for an optimistic result")
    sets = align(sets, names)
    default = np.array(default_weights(sets)) / default_weights(sets)[0]
    tried: list[tuple[list[float], float]] = []
    best: tuple[float, float, int] | None = None
    best_w: list[float] = []
    for i, rest in enumerate(itertools.product(grid, repeat=len(sets) - 1)):
        w = [1.0, *map(float, rest)]
        top1 = metrics.topk_accuracy(fuse_scores([s.scores(mode) for s in sets], w), sets[0].labels, 1)
        tried.append((w, top1))
        key = (-top1, float(np.abs(np.array(w) - default).sum()), i)
        if best is None or key < best:
            best, best_w = key, w
    assert best is not None
    if on_test:
        log.warning("fusion weights searched on the test set: the fused accuracy is optimistic")
    return SearchResult(best_w, -best[0], on_test, tried)
