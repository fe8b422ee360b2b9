"""Two-stream weighted late fusion (paper 4.3.3: RGB:flow = 1:3 is best), the one fusion function.

Score-file fusion (``tstam fuse``, ``tstam report``), prediction (``Recognizer``), the demo and
the ablations all call :func:`fuse_scores`; the default weights live in
``DEFAULT_FUSION_WEIGHTS`` only. Fusion is a weighted *mean*, so fused probabilities stay
probabilities (the weights' scale does not change any ranking).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tstam.errors import InputError

__all__ = ["DEFAULT_FUSION_WEIGHTS", "check_weights", "fuse_scores"]

DEFAULT_FUSION_WEIGHTS = {"rgb": 1.0, "flow": 3.0}  # paper 4.3.3


def check_weights(weights: Sequence[float], count: int | None = None) -> list[float]:
    """The weights as floats; each finite and >= 0, not all 0 (and ``count`` of them when given).

    Raises:
        InputError: naming the weights and what would be valid.
    """
    w = [float(x) for x in weights]
    if count is not None and len(w) != count:
        raise InputError(f"{len(w)} fusion weight(s) {w} for {count} stream(s); give one weight per stream")
    if not w or not all(math.isfinite(x) and x >= 0 for x in w) or max(w) <= 0:
        raise InputError(f"fusion weights {w} are not valid; expected finite numbers >= 0, not all 0 (e.g. 1 3)")
    return w


def _shares(weights: Sequence[float]) -> list[float]:
    """Each weight's share of their sum. Weights whose sum overflows (1e308 and 1e308: inf, and
    x / inf would make every share 0) are divided by the largest first."""
    total = sum(weights)
    if not math.isfinite(total):
        top = max(weights)
        weights = [x / top for x in weights]
        total = sum(weights)
    return [x / total for x in weights]


def fuse_scores(scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted mean ``sum_s w_s x_s / sum_s w_s`` of per-stream scores of equal shape, e.g. (V, K).

    Args:
        scores: one array per stream (class probabilities, or raw scores), in the order of ``weights``.
        weights: one weight per stream (``check_weights``).

    Returns:
        float32 array of the same shape.
    """
    if not scores:
        raise ValueError("nothing to fuse: no score sets")
    w = check_weights(weights, len(scores))
    shapes = {np.shape(s) for s in scores}
    if len(shapes) != 1:
        raise ValueError(f"score sets differ in shape: {sorted(shapes)}")
    out = sum(share * np.asarray(s, dtype=np.float64) for share, s in zip(_shares(w), scores))
    return np.asarray(out, dtype=np.float32)
