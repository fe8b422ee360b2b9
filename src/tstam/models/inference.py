"""A faster inference copy of a model: BN folded into the convs, parallel 1x1 convs merged.

Folding (eval mode only) rewrites ``y = gamma * (Wx + b - mu) / sqrt(var + eps) + beta`` as one
conv with ``W' = W * s`` and ``b' = (b - mu) * s + beta``, ``s = gamma / sqrt(var + eps)``, and
replaces the BN by an identity. The 1x1 convs of an inception block that read the same input
(1x1, 3x3_reduce, double_3x3_reduce) then become one conv with their output channels
concatenated: one larger GEMM instead of three small ones. ``benchmarks/bench_model.py`` measures what each step buys;
``tests/test_inference.py`` checks the copy against the original to 1e-4.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm  # BatchNorm2d and SyncBatchNorm alike

__all__ = ["fold_bn", "merge_parallel_1x1", "prepare_for_inference"]


@torch.no_grad()
def fold_bn(backbone: nn.Module) -> nn.Module:
    """Fold every ``<name>_bn`` of a BNInception (BatchNorm2d or SyncBatchNorm) into its conv ``<name>``, in place."""
    names = [n for n, m in backbone.named_children() if isinstance(m, _BatchNorm) and n.endswith("_bn")]
    for bn_name in names:
        conv = getattr(backbone, bn_name[: -len("_bn")])
        bn = getattr(backbone, bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)             # (O,)
        conv.weight.mul_(scale[:, None, None, None])
        conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        setattr(backbone, bn_name, nn.Identity())
    return backbone


@torch.no_grad()
def merge_parallel_1x1(backbone: nn.Module) -> nn.Module:
    """Merge each block's input 1x1 convs into one ``<block>_1x1s`` conv, in place (BN folded first)."""
    from tstam.models.bninception import BLOCK_SPECS

    for name, spec in BLOCK_SPECS.items():
        p = f"inception_{name}"
        keys = [f"{p}_{k}" for k in ("1x1", "3x3_reduce", "double_3x3_reduce") if k != "1x1" or spec.c1x1]
        convs = [getattr(backbone, k) for k in keys]
        if any(not isinstance(getattr(backbone, f"{k}_bn"), nn.Identity) for k in keys):
            raise ValueError("merge_parallel_1x1 needs BN folded first (fold_bn)")
        w = convs[0].weight  # the merged conv lives where the model does (a new module would be float32 on the CPU)
        merged = nn.Conv2d(convs[0].in_channels, sum(c.out_channels for c in convs), 1, device=w.device, dtype=w.dtype)
        merged.weight.copy_(torch.cat([c.weight for c in convs]))
        merged.bias.copy_(torch.cat([c.bias for c in convs]))
        backbone.add_module(f"{p}_1x1s", merged)
        backbone.add_module(f"{p}_1x1s_bn", nn.Identity())
        for k in keys:
            delattr(backbone, k)
            delattr(backbone, f"{k}_bn")
        backbone.merged_1x1[name] = [c.out_channels for c in convs]
    return backbone


def prepare_for_inference(model: nn.Module, *, merge_1x1: bool = True, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of a TSTAM (or BNInception): BN folded, 1x1 convs merged, channels_last
    weights and inputs (on 2 CPU cores: 0.51 -> 0.95 of matmul FLOP/s, benchmarks/bench_model.py).

    The original model is left untouched (it may still be trained).
    """
    model = copy.deepcopy(model).eval()
    backbone = getattr(model, "backbone", model)
    fold_bn(backbone)
    if merge_1x1:
        merge_parallel_1x1(backbone)
    for p in model.parameters():
        p.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        if hasattr(model, "channels_last"):
            model.channels_last = True
    return model
