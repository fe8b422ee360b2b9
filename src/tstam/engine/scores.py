"""Per-video score files: what ``tstam test`` writes and ``tstam fuse`` / ``tstam report`` read.

A score file is a ``.npz`` read with ``allow_pickle=False`` (safe to open from anyone) holding:
``video_ids`` (V,) str, ``labels`` (V,) int64, ``probs`` (V, K) float32 (softmax probabilities
averaged over frames-crops views; what fusion uses by default), ``logits`` (V, K) float32 (raw
scores averaged over views; ``--mode raw``), ``classes`` (K,) str, and ``meta``: a JSON string
(stream, split, protocol, the model/data config, fusion weights, ...).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tstam.config import short_repr
from tstam.engine import metrics
from tstam.errors import ScoreFileError
from tstam.files import atomic_write

__all__ = ["ScoreSet", "save_scores", "load_scores", "check_scores", "MAX_SCORE_BYTES"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a .npz is a zip archive (first entry, or empty)
_PROB_TOL = 1e-3                              # probabilities: float32 means of softmaxes sum to 1 within 1e-6
_KEYS = ("video_ids", "labels", "probs", "logits", "classes", "meta")
# The arrays of a score file once unpacked (a compressed .npz could unpack a few kB into GBs):
# UCF101's test list takes 3 MB, Kinetics-700's validation set (35,000 videos x 700 classes) 200 MB.
MAX_SCORE_BYTES = 1 << 30
# meta entries that tstam reads back (tstam report, fuse), with the types tstam writes
_META_TYPES: dict[str, tuple[type, ...]] = {"stream": (str,), "split": (int, str, type(None)), "mode": (str,),
                                            "subset": (str,), "checkpoint": (str, type(None))}


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
    """Write a score file atomically (``tstam.files.atomic_write``), after ``check_scores``: a set
    that ``load_scores`` would refuse is not written (ScoreFileError naming the file)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: score files end in .npz")
    check_scores(s, f"{path} (not written)")
    return atomic_write(path, lambda f: np.savez(
        f, video_ids=np.array(s.video_ids, dtype=str), labels=s.labels, probs=s.probs, logits=s.logits,
        classes=np.array(s.classes, dtype=str), meta=np.array(json.dumps(s.meta, sort_keys=True, default=str))))


def check_scores(s: ScoreSet, where: str | Path) -> None:
    """Refuse what no ``tstam test`` writes: no videos, non-finite scores, probabilities outside [0, 1]
    or rows not summing to 1, labels outside the classes, empty or repeated video ids or class names,
    a meta whose entries tstam reads have other types. ``load_scores`` checks every file it reads
    with it and ``save_scores`` every set before it writes one, so tstam never writes a score file
    it would refuse to read.

    Raises:
        ScoreFileError: starting with ``where`` (the file).
    """
    if not s.video_ids:
        raise ScoreFileError(f"{where}: holds no videos; a score file holds the scores of one or more videos "
                             "(an accuracy over none is not a number)")
    for name, arr in (("probs", s.probs), ("logits", s.logits)):
        bad = np.nonzero(~np.isfinite(arr).all(1))[0]
        if bad.size:
            raise ScoreFileError(f"{where}: {name} of {bad.size} video(s) hold NaN or infinite values, e.g. "
                                 f"{s.video_ids[bad[0]]}; a score file holds finite numbers (rerun tstam test)")
    bad = np.nonzero(((s.probs < 0) | (s.probs > 1 + _PROB_TOL)).any(1)
                     | (np.abs(s.probs.sum(1, dtype=np.float64) - 1) > _PROB_TOL))[0]
    if bad.size:
        raise ScoreFileError(f"{where}: probs of {bad.size} video(s) are not probabilities (each in [0, 1], summing to 1), "
                             f"e.g. {s.video_ids[bad[0]]}: {np.array2string(s.probs[bad[0]], precision=3, threshold=6)}")
    bad = np.nonzero((s.labels < 0) | (s.labels >= len(s.classes)))[0]
    if bad.size:
        raise ScoreFileError(f"{where}: label {s.labels[bad[0]]} of {s.video_ids[bad[0]]} is not valid; expected "
                             f"0-{len(s.classes) - 1} ({len(s.classes)} classes)")
    for what, names in (("video id", s.video_ids), ("class name", s.classes)):
        if not all(names):
            raise ScoreFileError(f"{where}: an empty {what}; every {what} is a non-empty string")
        if len(set(names)) != len(names):
            seen: set[str] = set()
            dup = next(v for v in names if v in seen or seen.add(v))
            raise ScoreFileError(f"{where}: {what} {short_repr(dup)} appears more than once; a score file holds one "
                                 f"{'row per video' if what == 'video id' else 'column per class'}")
    if not isinstance(s.meta, dict):
        raise ScoreFileError(f"{where}: meta is a JSON {type(s.meta).__name__}; expected a JSON object")
    for key, types in _META_TYPES.items():
        if key in s.meta and not isinstance(s.meta[key], types):
            raise ScoreFileError(f"{where}: meta {key}={short_repr(s.meta[key])} is not valid; expected "
                                 f"{' or '.join('null' if t is type(None) else t.__name__ for t in types)}")
    if s.meta.get("mode", "softmax") not in ("softmax", "raw"):
        raise ScoreFileError(f"{where}: meta mode={short_repr(s.meta['mode'])} is not valid; expected 'softmax' or 'raw'")


def _unpacked_size(path: Path) -> int:
    """The bytes the arrays of ``path`` (a zip) unpack to, as its directory declares them (zipfile
    reads no more than declared)."""
    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist())


def load_scores(path: str | Path) -> ScoreSet:
    """Read a score file written by :func:`save_scores` (no pickle) and check its values.

    Raises:
        ScoreFileError: naming the file: no such file, not a ``.npz`` (empty, text, a pickle), keys
            missing, shapes that disagree, NaN/inf scores, probabilities outside [0, 1] or not summing
            to 1, labels outside the classes, repeated video ids.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: score file not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _ZIP_MAGIC:
        what = "an empty file (0 bytes)" if not head else "not a .npz (zip) file"
        raise ScoreFileError(f"{path}: {what}; expected a score file written by tstam test or tstam fuse")
    try:
        if _unpacked_size(path) > MAX_SCORE_BYTES:
            raise ScoreFileError(f"{path}: its arrays unpack to {_unpacked_size(path):,} bytes, more than a score file "
                                 f"may hold ({MAX_SCORE_BYTES:,}); expected a score file written by tstam test or tstam fuse")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise ScoreFileError(f"{path}: not a tstam score file (missing {', '.join(missing)})")
            if z["labels"].dtype.kind not in "iu":
                raise ScoreFileError(f"{path}: labels are {z['labels'].dtype}; expected integers (class indices)")
            s = ScoreSet(
                video_ids=[str(v) for v in z["video_ids"]], labels=z["labels"], probs=z["probs"],
                logits=z["logits"], classes=[str(c) for c in z["classes"]],
                meta=json.loads(str(z["meta"])),
            )
    except (OSError, ValueError, EOFError, RecursionError, zipfile.BadZipFile) as e:
        if str(path) in str(e):
            raise
        raise ScoreFileError(f"{path}: cannot read score file: {type(e).__name__}: {e}") from None
    check_scores(s, path)
    return s
