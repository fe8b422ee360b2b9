"""BatchNorm under DDP: layers converted to SyncBatchNorm still obey partial / frozen BN, only the
layers that train are converted, and the inference copy folds SyncBatchNorm like BatchNorm2d.
SyncBatchNorm layers are built and run in eval mode on the CPU (they only synchronise in training)."""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from tstam.engine.optim import apply_bn_mode, convert_sync_bn
from tstam.models import ModelConfig, build_model, prepare_for_inference

from helpers.realdata import REFERENCE

# BN-Inception to 5b has one BN per conv: count the convs of the reference layer table (69)
N_BACKBONE_BN = len(re.findall(r"^\| \w+ \| conv \d", (REFERENCE / "bninception_layers.md").read_text(), re.M))


def tiny(**kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(num_classes=5, width_mult=0.125, input_size=64, num_segments=2, **kw))


def _backbone_bns(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.backbone.modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm))]


def _head_bns(model: nn.Module) -> list[nn.Module]:
    inside = set(map(id, model.backbone.modules()))
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)) and id(m) not in inside]


def test_partial_bn_holds_after_converting_every_bn_to_syncbn():
    model = nn.SyncBatchNorm.convert_sync_batchnorm(tiny())  # what torch's converter does to every layer
    assert len(_backbone_bns(model)) == N_BACKBONE_BN and all(isinstance(m, nn.SyncBatchNorm) for m in _backbone_bns(model))
    model.set_partial_bn(True).train()
    assert [m.training for m in _backbone_bns(model)] == [True] + [False] * (N_BACKBONE_BN - 1)
    grouped = {id(p) for g in model.optim_groups() for p in g["params"]}
    first, second = _backbone_bns(model)[:2]
    assert id(first.weight) in grouped and id(second.weight) not in grouped and not second.weight.requires_grad


@pytest.mark.parametrize("mode, backbone_sync", [("partial", 1), ("frozen", 0), ("full", N_BACKBONE_BN)])
def test_convert_sync_bn_converts_only_the_layers_that_train(mode, backbone_sync):
    model = tiny()
    params = {id(p) for p in model.parameters()}
    convert_sync_bn(model, mode)
    model.train()
    apply_bn_mode(model, mode)
    bns = _backbone_bns(model)
    synced = [isinstance(m, nn.SyncBatchNorm) for m in bns]
    assert sum(synced) == backbone_sync and synced[:backbone_sync] == [True] * backbone_sync
    assert [m.training for m in bns] == synced  # exactly the converted layers use batch statistics
    heads = _head_bns(model)  # the spatial attention's two BNs train unless BN is frozen
    assert len(heads) == 2 and all(isinstance(m, nn.SyncBatchNorm) == (mode != "frozen") for m in heads)
    assert {id(p) for p in model.parameters()} == params  # the optimiser's parameters stay the same objects


def test_inference_copy_folds_syncbn():
    model = tiny().eval()
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).logits
        synced = nn.SyncBatchNorm.convert_sync_batchnorm(model).eval()
        fast = prepare_for_inference(synced, channels_last=False)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fast.backbone.modules())
        torch.testing.assert_close(fast(x).logits, ref, rtol=1e-4, atol=1e-4)
