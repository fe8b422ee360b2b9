"""The fusion weights chosen for a pair of trained streams, kept beside their checkpoints.

``tstam fuse --search --val RGB_VAL.npz FLOW_VAL.npz`` picks the RGB:flow weights on validation
scores and records them as ``fusion.json`` in the folder of each checkpoint those scores came from
(the run folders). Whatever later uses exactly those two checkpoints fuses with the recorded
weights by default: ``Recognizer`` (``tstam predict``, ``visualize``, ``serve``, ``tstam.load``) and
``tstam report``; ``--weights`` still overrides, and anything else keeps RGB:flow = 1:3 (paper
4.3.3). "Exactly" is by content: the record holds each checkpoint's SHA-256, so a checkpoint
retrained in place, or another one of the same run (``last.pt`` for ``best.pt``), does not inherit
weights chosen for another model. Weights searched on the test list are never recorded (they have
seen the test labels); neither are those of raw-score fusion (``--mode raw``), since prediction
fuses probabilities.

File (JSON)::

    {"format": "tstam-fusion", "version": 1, "weights": {"rgb": 1.0, "flow": 1.5}, "mode": "softmax",
     "checkpoints": {"rgb": {"path": ..., "sha256": ...}, "flow": {...}},
     "chosen_on": [validation score files], "val_top1": 0.83, "val_videos": 120}
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tstam.errors import BadFileError
from tstam.files import file_sha256, write_json_atomic

__all__ = ["FUSION_FILE", "FusionRecord", "read_record", "write_record", "find_record"]

log = logging.getLogger(__name__)

FUSION_FILE = "fusion.json"
_FORMAT, _VERSION = "tstam-fusion", 1
STREAMS = ("rgb", "flow")


@dataclass
class FusionRecord:
    """Weights chosen on validation for two checkpoints."""

    weights: dict[str, float]                  # {"rgb": w, "flow": w}
    checkpoints: dict[str, dict[str, str]]     # stream -> {"path", "sha256"}
    mode: str = "softmax"
    chosen_on: list[str] = field(default_factory=list)  # the validation score files
    val_top1: float | None = None
    val_videos: int | None = None
    path: Path | None = None                   # the file it was read from

    def ordered(self) -> list[float]:
        """The weights as (RGB, flow)."""
        return [self.weights[s] for s in STREAMS]

    def describe(self) -> str:
        """One line for people: the weights and where they come from."""
        w = ":".join(f"{x:g}" for x in self.ordered())
        where = f" ({self.path})" if self.path else ""
        top = f", validation top-1 {100 * self.val_top1:.1f} %" if self.val_top1 is not None else ""
        return f"RGB:flow = {w}, chosen on validation by tstam fuse --search{top}{where}"

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "version": _VERSION, "weights": dict(self.weights), "mode": self.mode,
                "checkpoints": self.checkpoints, "chosen_on": list(self.chosen_on), "val_top1": self.val_top1,
                "val_videos": self.val_videos}


def read_record(path: str | Path) -> FusionRecord:
    """Read a ``fusion.json``.

    Raises:
        BadFileError: naming the file: not JSON, not this format, weights not finite and >= 0.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadFileError(f"{path}: not a readable fusion file ({e}); delete it, or rerun tstam fuse --search") from None
    try:
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(f"format {data.get('format')!r} version {data.get('version')!r}")
        weights = {s: float(data["weights"][s]) for s in STREAMS}
        if not all(math.isfinite(w) and w >= 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"weights {weights}")
        checkpoints = {s: {"path": str(data["checkpoints"][s]["path"]), "sha256": str(data["checkpoints"][s]["sha256"])}
                       for s in STREAMS}
        return FusionRecord(weights, checkpoints, mode=str(data.get("mode", "softmax")),
                            chosen_on=[str(p) for p in data.get("chosen_on", [])], val_top1=data.get("val_top1"),
                            val_videos=data.get("val_videos"), path=path)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise BadFileError(f"{path}: not a valid fusion file ({type(e).__name__}: {e}); expected the {FUSION_FILE} "
                           f"that tstam fuse --search writes ({_FORMAT} version {_VERSION}, weights finite and "
                           ">= 0); delete it, or rerun tstam fuse --search") from None


def write_record(weights: Sequence[float], checkpoints: Mapping[str, str | Path], *, chosen_on: Sequence[str],
                 val_top1: float, val_videos: int) -> list[Path]:
    """Record RGB:flow ``weights`` for the two ``checkpoints`` ({"rgb": path, "flow": path}) in
    ``fusion.json`` beside each; returns the files written."""
    rec = FusionRecord(dict(zip(STREAMS, map(float, weights))),
                       {s: {"path": str(Path(checkpoints[s]).resolve()), "sha256": file_sha256(checkpoints[s])}
                        for s in STREAMS},
                       chosen_on=[str(p) for p in chosen_on], val_top1=float(val_top1), val_videos=int(val_videos))
    folders = dict.fromkeys(Path(checkpoints[s]).resolve().parent for s in STREAMS)
    return [write_json_atomic(folder / FUSION_FILE, rec.to_json()) for folder in folders]


def find_record(checkpoints: Mapping[str, str | Path]) -> FusionRecord | None:
    """The recorded weights for exactly these two checkpoints ({"rgb": path, "flow": path}), from
    ``fusion.json`` in their folders; None when there is none (or only for other checkpoints).

    Raises:
        BadFileError: a ``fusion.json`` there cannot be read.
    """
    if set(checkpoints) != set(STREAMS) or not all(Path(p).is_file() for p in checkpoints.values()):
        return None
    sums: dict[str, str] = {}
    for folder in dict.fromkeys(Path(p).resolve().parent for p in checkpoints.values()):
        path = folder / FUSION_FILE
        if not path.is_file():
            continue
        rec = read_record(path)
        for s in STREAMS:
            if s not in sums:
                sums[s] = file_sha256(checkpoints[s])
        if all(rec.checkpoints[s]["sha256"] == sums[s] for s in STREAMS):
            return rec
        log.info("%s: weights chosen for %s and %s, not for these checkpoints; not used", path,
                 rec.checkpoints["rgb"]["path"], rec.checkpoints["flow"]["path"])
    return None
