"""Two-stream weighted late fusion (paper 4.3.3: RGB:flow = 1:3 is best)."""
from __future__ import annotations

from typing import Literal, Sequence

import torch

__all__ = ["fuse_scores", "DEFAULT_FUSION_WEIGHTS"]

DEFAULT_FUSION_WEIGHTS = (1.0, 3.0)  # (RGB, flow)


def fuse_scores(
    scores: Sequence[torch.Tensor],
    weights: Sequence[float] = DEFAULT_FUSION_WEIGHTS,
    *,
    mode: Literal["softmax", "raw"] = "softmax",
) -> torch.Tensor:
    """Weighted sum of per-stream scores (V, K), normalised by the weight total.

    Args:
        scores: one (V, K) tensor per stream, in the order of ``weights``.
        weights: one non-negative weight per stream, not all zero (default RGB:flow = 1:3).
        mode: "softmax" fuses class probabilities (default), "raw" fuses the scores as given.
    """
    if len(scores) != len(weights):
        raise ValueError(f"{len(scores)} score sets but {len(weights)} fusion weights")
    if not scores:
        raise ValueError("nothing to fuse: no score sets")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"fusion weights must be >= 0 and not all 0, got {list(weights)}")
    if mode not in ("softmax", "raw"):
        raise ValueError(f"fusion mode {mode!r} is not valid; expected 'softmax' or 'raw'")
    shapes = {tuple(s.shape) for s in scores}
    if len(shapes) != 1:
        raise ValueError(f"score sets differ in shape: {sorted(shapes)}")
    total = sum(weights)
    out = torch.zeros_like(scores[0], dtype=torch.float32)
    for s, w in zip(scores, weights):
        s = s.float()
        out += (w / total) * (s.softmax(-1) if mode == "softmax" else s)
    return out
