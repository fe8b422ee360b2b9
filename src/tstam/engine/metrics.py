"""Classification metrics of the paper (section 4): top-1 (its metric), top-5, mean class accuracy,
and the confusion matrix. Pure functions of score arrays, no torch needed."""
from __future__ import annotations

import numpy as np

__all__ = ["topk_accuracy", "mean_class_accuracy", "confusion_matrix", "summarize"]


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (V, K) and labels (V,), got {scores.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got {labels.min()}..{labels.max()}")
    return scores, labels


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores (ties: lower index first)."""
    scores, labels = _check(scores, labels)
    if scores.shape[0] == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (V, k)
    return float((order == labels[:, None]).any(axis=1).mean())


def confusion_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class (argmax, first on ties)."""
    scores, labels = _check(scores, labels)
    k = scores.shape[1]
    pred = scores.argmax(axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of each class's top-1 accuracy."""
    cm = confusion_matrix(scores, labels)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / support[present]).mean())


def summarize(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top1, top5 and mean_class accuracy in [0, 1], and the number of videos."""
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class": mean_class_accuracy(scores, labels),
        "videos": int(np.asarray(labels).shape[0]),
    }
