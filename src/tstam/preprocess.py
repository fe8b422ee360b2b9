"""The input normalisation that travels with a set of weights.

The public BN-Inception ImageNet weights (and every TSN model trained from them) expect Caffe
input: BGR channel order, values 0-255, mean [104, 117, 128], std 1; flow JPEGs (0-255) with
mean 128, std 1. The preprocessing is stored in the model config and in every checkpoint, so
inference cannot silently normalise wrongly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from tstam.config import ConfigError, check_literals, check_range, short_repr

__all__ = ["Preprocess", "rgb_preprocess", "flow_preprocess"]


@dataclass
class Preprocess:
    """How uint8 frames become model input: ``(x[..., order] * scale - mean) / std`` per channel."""

    channel_order: Literal["BGR", "RGB", "flow"] = "BGR"  # BGR: reverse RGB frames (Caffe weights)
    scale: float = 1.0                 # multiply 0-255 values by this first (1/255 for 0-1 weights)
    mean: list[float] = field(default_factory=lambda: [104.0, 117.0, 128.0])  # per channel
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])         # per channel

    def __post_init__(self) -> None:
        check_literals(self, "preprocess")
        values = [self.scale, *self.mean, *self.std]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or min(map(abs, self.std), default=0) == 0:
            raise ConfigError(f"preprocess: scale {short_repr(self.scale)}, mean {short_repr(self.mean)}, std "
                              f"{short_repr(self.std)} must be finite numbers with std != 0")
        for name in ("mean", "std"):  # RGB: one value per channel or one for all; flow: averaged over x/y
            n = len(getattr(self, name))
            if n == 0 or (self.channel_order != "flow" and n not in (1, 3)):
                raise ConfigError(f"preprocess.{name}={short_repr(getattr(self, name))} is not valid; expected "
                                  f"{'one or more values' if self.channel_order == 'flow' else '1 or 3 values'} "
                                  f"for channel_order {self.channel_order}")
        # 0-255 frames times scale, minus mean, over std: bounded so that float32 inputs stay finite
        check_range("preprocess.scale", self.scale, 0, 1e3, lo_open=True, note="1: 0-255 input, 1/255: 0-1 input")
        for v in self.mean:
            check_range("preprocess.mean[]", v, -1e6, 1e6)
        for v in self.std:
            check_range("preprocess.std[]", abs(v), 1e-6, 1e6, note="the absolute value of each std")

    def normalize_clip(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 clips (..., C, H, W) with C = 3 x snippet length (stacked RGB frames) or 2 x
        snippet length (flow x/y pairs) -> normalised float, on ``x``'s device (do it after the
        transfer: uint8 crosses to a GPU in a quarter of the bytes)."""
        if self.channel_order == "flow":
            return self.normalize(x)
        shape = x.shape                                            # (..., 3L, H, W)
        frames = x.reshape(*shape[:-3], -1, 3, *shape[-2:])        # (..., L, 3, H, W)
        return self.normalize(frames).reshape(shape)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or float frames (..., C, H, W) with C = 3 (RGB order) or 2k (flow x/y pairs)."""
        x = x.float()
        if self.channel_order == "BGR":
            if x.shape[-3] != 3:
                raise ValueError(f"BGR preprocessing expects 3 channels, got {x.shape[-3]}")
            x = x.flip(-3)
        # made on the CPU and sent without waiting: torch.tensor(..., device="cuda") would be a
        # synchronous copy, i.e. a host sync in every training step
        mean = torch.tensor(self.mean, dtype=x.dtype).to(x.device, non_blocking=True)
        std = torch.tensor(self.std, dtype=x.dtype).to(x.device, non_blocking=True)
        if mean.numel() != x.shape[-3]:  # flow: one mean for all stacked x/y channels
            mean = mean.mean().expand(x.shape[-3])
            std = std.mean().expand(x.shape[-3])
        return (x * self.scale - mean[:, None, None]) / std[:, None, None]


def rgb_preprocess() -> Preprocess:
    return Preprocess()


def flow_preprocess() -> Preprocess:
    return Preprocess(channel_order="flow", mean=[128.0], std=[1.0])
