"""The head variants of T-STAM by name (``model.head``): which attention paths make the feature F
the classifier sees, and the modules they need.

- ``"tstam"``, the paper's: F_j = f_t + f_sj, the temporal attention over frames (eq. 2-3) beside
  each of the l spatial heads (eq. 4-7).
- ``"temporal"``: F = f_t; ``"spatial"``: F_j = f_sj (the ablations' single paths).
- ``"tsn"``: TSN's average consensus of the backbone features, no attention and no mapping.

``tstam.models.build_model(name, ...)`` builds one by name, as timm's ``create_model``.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

from tstam.models.attention import TEMPORAL_ATTENTION, MultiSpatialAttention

__all__ = ["HEADS", "Head", "HeadName", "HeadModules", "HeadParts"]

# The user's choice of ``model.head``; the test suite checks that it lists exactly the names in ``HEADS``.
HeadName = Literal["tstam", "tsn", "temporal", "spatial"]


class HeadModules(NamedTuple):
    """The modules of one head variant (``Head.modules``); None where the variant has no such part."""

    mapping: nn.Conv2d | None               # eq. 1, W1 and b1 (C -> D); None: TSN consensus of the backbone features
    temporal_att: nn.Module | None          # alpha over frames (eq. 2)
    spatial_att: MultiSpatialAttention | None  # the l spatial heads (eq. 4-6)
    out_dim: int                            # width of F, the classifier's input


class Head(NamedTuple):
    """A head variant: which attention paths F is made of; neither is TSN's average consensus."""

    temporal: bool                          # f_t, the temporal attention over frames (eq. 2-3)
    spatial: bool                           # f_sj, the l spatial attention heads (eq. 4-7)

    def modules(self, channels: int, dim: int, *, temporal_attention: str, hidden: int, num_heads: int) -> HeadModules:
        """The head's modules on backbone features of ``channels`` channels, mapped to ``dim``
        (``model.map_dim``), with ``model.temporal_attention``, ``model.attention_hidden`` and
        ``model.num_heads``. Made in this order (mapping, temporal, spatial attention) as their
        parameters draw their random initial values in it: one seed, the same weights."""
        if not (self.temporal or self.spatial):
            return HeadModules(None, None, None, channels)
        mapping = nn.Conv2d(channels, dim, 1)  # eq. 1: shared W1, b1 for every frame and location
        temporal = TEMPORAL_ATTENTION[temporal_attention](dim, hidden) if self.temporal else None
        spatial = MultiSpatialAttention(channels, num_heads) if self.spatial else None
        return HeadModules(mapping, temporal, spatial, dim * num_heads if self.spatial else dim)


# The heads by name: ``model.head`` and ``build_model(name)`` select one (a new one goes here and in HeadName).
HEADS: dict[str, Head] = {
    "tstam": Head(temporal=True, spatial=True),         # the paper: F_j = f_t + f_sj (eq. 8)
    "tsn": Head(temporal=False, spatial=False),         # TSN: average consensus, no attention
    "temporal": Head(temporal=True, spatial=False),     # F = f_t
    "spatial": Head(temporal=False, spatial=True),      # F_j = f_sj
}


class HeadParts(NamedTuple):
    """The per-frame pieces of an attention head before frame pooling (``TSTAM.head_parts``); None
    where the head has no such path."""

    frames: torch.Tensor | None          # (B, N, D) x_hat_i, each frame's mapped mean feature (temporal path)
    alpha: torch.Tensor | None           # (B, N) the temporal weights: computed, or the ones given
    f_s: torch.Tensor | None             # (B, N, l, D) each frame's spatial features, eq. 7's inner sum
    beta: torch.Tensor | None            # (B*N, l, h*w) the spatial maps
