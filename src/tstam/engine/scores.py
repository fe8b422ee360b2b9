"""Per-video score files: what ``tstam test`` writes and ``tstam fuse`` / ``tstam report`` read.

A score file is a ``.npz`` read with ``allow_pickle=False`` (safe to open from anyone) holding:
``video_ids`` (V,) str, ``labels`` (V,) int64, ``probs`` (V, K) float32 (softmax probabilities
averaged over frames-crops views; what fusion uses by default), ``logits`` (V, K) float32 (raw
scores averaged over views; ``--mode raw``), ``classes`` (K,) str, and ``meta``: a JSON string
(stream, split, protocol, the model/data config, fusion weights, ...).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tstam.engine import metrics
from tstam.files import atomic_write

__all__ = ["ScoreSet", "save_scores", "load_scores"]

_KEYS = ("video_ids", "labels", "probs", "logits", "classes", "meta")


@dataclass
class ScoreSet:
    """Scores of one stream (or a fusion) on a list of videos."""

    video_ids: list[str]
    labels: np.ndarray          # (V,) int64
    probs: np.ndarray           # (V, K) float32, mean of per-view softmax
    logits: np.ndarray          # (V, K) float32, mean of per-view raw scores
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.probs = np.asarray(self.probs, dtype=np.float32)
        self.logits = np.asarray(self.logits, dtype=np.float32)
        v, k = len(self.video_ids), len(self.classes)
        if self.labels.shape != (v,) or self.probs.shape != (v, k) or self.logits.shape != (v, k):
            raise ValueError(
                f"inconsistent score set: {v} video ids, {k} classes, labels {self.labels.shape}, "
                f"probs {self.probs.shape}, logits {self.logits.shape}"
            )

    def scores(self, mode: str = "softmax") -> np.ndarray:
        """``probs`` for mode "softmax", ``logits`` for mode "raw"."""
        if mode == "softmax":
            return self.probs
        if mode == "raw":
            return self.logits
        raise ValueError(f"score mode {mode!r} is not valid; expected 'softmax' or 'raw'")

    def summary(self, mode: str = "softmax") -> dict[str, float]:
        return metrics.summarize(self.scores(mode), self.labels)

    def name(self) -> str:
        """A short label for tables: the stream (or 'fused')."""
        return str(self.meta.get("stream", "scores"))


def save_scores(path: str | Path, s: ScoreSet) -> Path:
    """Write a score file atomically (``tstam.files.atomic_write``)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: score files end in .npz")
    return atomic_write(path, lambda f: np.savez(
        f, video_ids=np.array(s.video_ids, dtype=str), labels=s.labels, probs=s.probs, logits=s.logits,
        classes=np.array(s.classes, dtype=str), meta=np.array(json.dumps(s.meta, sort_keys=True, default=str))))


def load_scores(path: str | Path) -> ScoreSet:
    """Read a score file written by :func:`save_scores` (no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: score file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a tstam score file (missing {', '.join(missing)})")
            return ScoreSet(
                video_ids=[str(v) for v in z["video_ids"]], labels=z["labels"], probs=z["probs"],
                logits=z["logits"], classes=[str(c) for c in z["classes"]],
                meta=json.loads(str(z["meta"])),
            )
    except (OSError, ValueError) as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path}: cannot read score file: {e}") from e
