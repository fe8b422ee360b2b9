"""BN-Inception backbone (Ioffe & Szegedy 2015) in the Caffe/TSN definition, with SE blocks.

T-STAM section 2: "SE-BN-Inception". Parameter and buffer names equal those of the public
ImageNet weights (``bn_inception-52deb4733.pth``; its layout is in ``tests/data/reference``): every conv is a
flat top-level module ``<name>`` with bias, followed by ``<name>_bn`` (BatchNorm, eps 1e-5) and
ReLU; pools use ``ceil_mode=True``. The network stops after the last conv block (5b):
``forward_features`` gives (B, 1024, 7, 7) for a 224x224 input.

``width_mult`` scales every channel count (names stay the same), so tests and the CPU demo run a
small model built by this same code.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BNInception", "SqueezeExcite", "BLOCK_NAMES", "GOOGLENET_BLOCKS", "BLOCK_SPECS"]


@dataclass(frozen=True)
class BlockSpec:
    """Branch widths of one inception block (0 = branch absent); see bninception_layers.md."""

    c1x1: int           # 1x1 branch
    c3x3_reduce: int    # 1x1 -> 3x3 branch
    c3x3: int
    cd3x3_reduce: int   # 1x1 -> 3x3 -> 3x3 branch
    cd3x3: int
    pool: Literal["avg", "max"]
    pool_proj: int      # 0: the pool branch passes its input through (reduction blocks)
    stride: int = 1     # 2 in the reduction blocks 3c and 4e


BLOCK_SPECS: dict[str, BlockSpec] = {
    "3a": BlockSpec(64, 64, 64, 64, 96, "avg", 32),
    "3b": BlockSpec(64, 64, 96, 64, 96, "avg", 64),
    "3c": BlockSpec(0, 128, 160, 64, 96, "max", 0, stride=2),
    "4a": BlockSpec(224, 64, 96, 96, 128, "avg", 128),
    "4b": BlockSpec(192, 96, 128, 96, 128, "avg", 128),
    "4c": BlockSpec(160, 128, 160, 128, 160, "avg", 128),
    "4d": BlockSpec(96, 128, 192, 160, 192, "avg", 128),
    "4e": BlockSpec(0, 128, 192, 192, 256, "max", 0, stride=2),
    "5a": BlockSpec(352, 192, 320, 160, 224, "avg", 128),
    "5b": BlockSpec(352, 192, 320, 192, 224, "max", 128),
}
BLOCK_NAMES: tuple[str, ...] = tuple(BLOCK_SPECS)
# The paper's "9 inception operations": the GoogLeNet-named blocks, i.e. all but 3c.
GOOGLENET_BLOCKS: tuple[str, ...] = tuple(b for b in BLOCK_NAMES if b != "3c")


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): GAP -> FC C/r -> ReLU -> FC C -> gate -> scale.

    ``gate="sigmoid"`` is Hu et al.'s gate. It starts near 0.5 with a random init, which halves
    every pretrained feature map it touches; ``gate="2sigmoid"`` (default) is ``2 * sigmoid``
    with the second FC zero-initialised, so the gate is exactly 1 at initialisation: an SE block
    inserted into a pretrained backbone leaves its features unchanged until training moves it,
    and the gradient through the gate is not damped (slope 0.5 at 0, not sigmoid'(large) ~ 0).
    """

    def __init__(self, channels: int, reduction: int = 16, gate: str = "2sigmoid"):
        super().__init__()
        if gate not in ("sigmoid", "2sigmoid"):
            raise ValueError(f"SE gate {gate!r} is not valid; expected 'sigmoid' or '2sigmoid'")
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.scale = 2.0 if gate == "2sigmoid" else 1.0
        if gate == "2sigmoid":
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)                  # (B, C, 1, 1)
        s = self.fc2(F.relu(self.fc1(s), inplace=True))    # (B, C, 1, 1)
        return x * (self.scale * torch.sigmoid(s))


def _scaled(c: int, width_mult: float) -> int:
    return 0 if c == 0 else max(4, int(round(c * width_mult)))


class BNInception(nn.Module):
    """BN-Inception up to inception_5b, optionally with SE after chosen blocks.

    Args:
        in_chans: 3 for RGB, 2 * new_length (10) for stacked optical flow.
        width_mult: multiplier on every channel count (1.0 = the reference network).
        se_blocks: block names ("3a" ... "5b") followed by an SE block.
        se_reduction: SE reduction ratio (16 in the paper).
        se_gate: "2sigmoid" (identity at init) or "sigmoid" (Hu et al.); see SqueezeExcite.
    """

    def __init__(
        self,
        *,
        in_chans: int = 3,
        width_mult: float = 1.0,
        se_blocks: Sequence[str] = GOOGLENET_BLOCKS,
        se_reduction: int = 16,
        se_gate: str = "2sigmoid",
    ):
        super().__init__()
        unknown = sorted(set(se_blocks) - set(BLOCK_NAMES))
        if unknown:
            raise ValueError(f"se_blocks {unknown} are not blocks; expected names from {list(BLOCK_NAMES)}")
        self.in_chans = in_chans
        self.se_blocks = tuple(b for b in BLOCK_NAMES if b in set(se_blocks))
        self.se_gate = se_gate
        w = lambda c: _scaled(c, width_mult)  # noqa: E731

        self._conv("conv1_7x7_s2", in_chans, w(64), 7, stride=2, padding=3)
        self._conv("conv2_3x3_reduce", w(64), w(64), 1)
        self._conv("conv2_3x3", w(64), w(192), 3, padding=1)
        cin = w(192)
        self.block_out: dict[str, int] = {}
        for name, spec in BLOCK_SPECS.items():
            p = f"inception_{name}"
            cout = 0
            if spec.c1x1:
                self._conv(f"{p}_1x1", cin, w(spec.c1x1), 1)
                cout += w(spec.c1x1)
            self._conv(f"{p}_3x3_reduce", cin, w(spec.c3x3_reduce), 1)
            self._conv(f"{p}_3x3", w(spec.c3x3_reduce), w(spec.c3x3), 3, stride=spec.stride, padding=1)
            self._conv(f"{p}_double_3x3_reduce", cin, w(spec.cd3x3_reduce), 1)
            self._conv(f"{p}_double_3x3_1", w(spec.cd3x3_reduce), w(spec.cd3x3), 3, padding=1)
            self._conv(f"{p}_double_3x3_2", w(spec.cd3x3), w(spec.cd3x3), 3, stride=spec.stride, padding=1)
            cout += w(spec.c3x3) + w(spec.cd3x3)
            if spec.pool_proj:
                self._conv(f"{p}_pool_proj", cin, w(spec.pool_proj), 1)
                cout += w(spec.pool_proj)
            else:
                cout += cin
            if name in self.se_blocks:
                self.add_module(f"{p}_se", SqueezeExcite(cout, se_reduction, se_gate))
            self.block_out[name] = cout
            cin = cout
        self.num_features = cin
        # Blocks whose parallel 1x1 convs were merged into one ``<block>_1x1s`` conv for inference
        # (see tstam.models.inference.merge_parallel_1x1): block name -> split sizes.
        self.merged_1x1: dict[str, list[int]] = {}

    def _conv(self, name: str, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        self.add_module(name, nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=True))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(cout, eps=1e-5))

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """conv -> BN -> ReLU of the flat-named layer ``name``."""
        x = getattr(self, f"{name}_bn")(getattr(self, name)(x))
        return F.relu(x, inplace=True)

    def _block(self, name: str, x: torch.Tensor) -> torch.Tensor:
        spec = BLOCK_SPECS[name]
        p = f"inception_{name}"
        out = []
        if name in self.merged_1x1:  # one GEMM for the 1x1 convs that read the block input
            heads = list(torch.split(self._cbr(f"{p}_1x1s", x), self.merged_1x1[name], 1))
        else:
            keys = (["1x1"] if spec.c1x1 else []) + ["3x3_reduce", "double_3x3_reduce"]
            heads = [self._cbr(f"{p}_{k}", x) for k in keys]
        if spec.c1x1:
            out.append(heads.pop(0))
        r, d = heads
        out.append(self._cbr(f"{p}_3x3", r))
        out.append(self._cbr(f"{p}_double_3x3_2", self._cbr(f"{p}_double_3x3_1", d)))
        if spec.stride == 2:
            pooled = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        elif spec.pool == "max":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True)
        else:
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        out.append(self._cbr(f"{p}_pool_proj", pooled) if spec.pool_proj else pooled)
        x = torch.cat(out, 1)
        if name in self.se_blocks:
            x = getattr(self, f"{p}_se")(x)
        return x

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self._cbr("conv1_7x7_s2", x)
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        return F.max_pool2d(x, 3, stride=2, ceil_mode=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/32, W/32) (7x7 at 224)."""
        x = self.forward_stem(x)
        for name in BLOCK_NAMES:
            x = self._block(name, x)
        return x

    forward = forward_features
