"""Opt-in head options beyond the paper and the intervention hook: each equals the
paper's model where it should, and differs where it should not."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tstam.config import ConfigError
from tstam.models import ModelConfig, build_model

from helpers.models import make_checkpoint

TINY = dict(num_classes=4, width_mult=0.125, input_size=64, dropout=0.0)


def tiny(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**TINY, **kw}))
    with torch.no_grad():  # an attention that is not flat, class scores that differ
        for n, p in model.named_parameters():
            if "temporal_att" in n and p.dim() > 1:
                p.mul_(30.0)
        model.fc.weight.normal_(0, 0.3)
    return model.eval()


def clip(model, b=2, n=5, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    return torch.randn(b, n, cfg.in_chans, cfg.input_size, cfg.input_size, generator=g)


def feats(model, b=2, n=5, seed=1) -> torch.Tensor:
    """Backbone features (B, N, C, 2, 2) that differ between frames (an untrained tiny backbone
    maps random clips to nearly equal features, which would leave alpha flat)."""
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(b, n, model.backbone.num_features, 2, 2, generator=g)


@torch.no_grad()
def test_alpha_pooling_equals_mean_pooling_at_uniform_alpha():
    paper = tiny(frame_pool="mean")
    alpha_pool = tiny(frame_pool="alpha")
    alpha_pool.load_state_dict(paper.state_dict())           # the option adds no parameters
    f = feats(paper)
    uniform = torch.full((2, 5), 0.2)
    torch.testing.assert_close(alpha_pool.forward_head(f, uniform).logits, paper.forward_head(f, uniform).logits)
    own = paper.forward_head(f).temporal
    assert (own.max(1).values > 0.3).all()                    # a non-flat alpha ...
    assert not torch.allclose(alpha_pool.forward_head(f).logits, paper.forward_head(f).logits, atol=1e-4)


@torch.no_grad()
def test_alpha_pooling_is_the_alpha_weighted_sum_of_frame_features():
    """f_sj = sum_i alpha_i f_sji, computed here from single-frame forwards of the mean model."""
    model = tiny(frame_pool="alpha")
    mean = tiny(frame_pool="mean")
    mean.load_state_dict(model.state_dict())
    f = feats(model, b=1, n=3)                                # (1, 3, C, h, w)
    alpha = torch.tensor([[0.7, 0.2, 0.1]])
    logits = model.forward_head(f, alpha).logits
    # with one frame per clip f_t = x_hat_i and f_sj = f_sji; logits are affine in F, so the alpha-mix
    # of the one-frame F's (= alpha-mix of the one-frame logits) is the logits of the mixed F
    singles = torch.stack([mean.forward_head(f[:, i:i + 1]).logits for i in range(3)], 1)  # (1, 3, K)
    torch.testing.assert_close(logits, (alpha[..., None] * singles).sum(1), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_given_alpha_replaces_the_models_own():
    model = tiny()
    x, f = clip(model), feats(model)
    out = model.forward_head(f)
    torch.testing.assert_close(model.forward_head(f, out.temporal).logits, out.logits)
    torch.testing.assert_close(model(x, alpha=model(x).temporal).logits, model(x).logits)  # the forward passes it on
    window = torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    forced = model.forward_head(f, window)
    torch.testing.assert_close(forced.temporal, window)
    assert not torch.allclose(forced.logits, out.logits, atol=1e-4)
    with pytest.raises(ValueError, match=r"shape \(B, N\) = \(2, 5\)"):
        model(x, alpha=torch.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="non-negative"):
        model(x, alpha=-window)


@pytest.mark.parametrize("kw", [dict(), dict(frame_pool="sum"), dict(frame_pool="alpha"), dict(head="temporal"),
                                dict(head="spatial"), dict(head="tsn"), dict(temporal_attention="lstm"),
                                dict(num_heads=1), dict(temporal_aux_weight=0.5)],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "paper")
@pytest.mark.parametrize("given", [False, True], ids=["own alpha", "given alpha"])
@torch.no_grad()
def test_frame_terms_add_up_to_the_logits(kw, given):
    model = tiny(**kw)
    alpha = torch.tensor([[0.1, 0.6, 0.1, 0.1, 0.1], [0.0, 0.0, 0.5, 0.5, 0.0]]) if given else None
    f = feats(model)
    terms = model.frame_terms(f, alpha)
    logits = model.forward_head(f, alpha).logits
    torch.testing.assert_close(terms.frames.sum(1) + terms.bias, logits, rtol=1e-4, atol=1e-5)
    has_t, has_s = model.cfg.head in ("tstam", "temporal"), model.cfg.head in ("tstam", "spatial")
    assert (terms.temporal is not None) == has_t and (terms.spatial is not None) == has_s
    if has_t:
        own = model.forward_head(f).temporal
        torch.testing.assert_close(terms.alpha, alpha if given else own)
        # a frame with no temporal weight adds nothing through f_t
        if given:
            assert terms.temporal[1, :2].abs().max() == 0
    with pytest.raises(RuntimeError, match="eval"):
        model.train().frame_terms(f)


def test_aux_loss_at_zero_is_the_paper_model():
    paper, zero = tiny(), tiny(temporal_aux_weight=0.0)
    assert zero.aux_fc is None and zero.state_dict().keys() == paper.state_dict().keys()
    f, y = feats(paper, b=4), torch.tensor([0, 1, 2, 3])
    out = zero.train().forward_head(f)
    assert out.aux_logits is None
    torch.testing.assert_close(zero.loss(out, y), F.cross_entropy(out.logits, y))


def test_aux_loss_trains_alpha_from_f_t_and_leaves_inference_alone():
    lam = 0.5
    aux = tiny(temporal_aux_weight=lam)
    paper = tiny()
    shared = {k: v for k, v in aux.state_dict().items() if not k.startswith("aux_fc.")}
    paper.load_state_dict(shared)                            # everything but the aux classifier
    x, f, y = clip(aux, b=4), feats(aux, b=4), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():                                     # inference: the paper's graph
        a, p = aux.eval().forward_head(f), paper.eval().forward_head(f)
        torch.testing.assert_close(aux(x).logits, paper(x).logits)
    assert a.aux_logits is None
    torch.testing.assert_close(a.logits, p.logits)
    torch.testing.assert_close(a.temporal, p.temporal)
    # training: loss = CE(logits) + lambda CE(aux_fc(f_t)), f_t = sum_i alpha_i x_hat_i from the parts
    aux.train()
    out = aux.forward_head(f)
    assert out.aux_logits.shape == (4, 4) and aux(x).aux_logits is not None
    # f_t = sum_i alpha_i x_hat_i, x_hat_i = W1 mean_hw X_i + b1, from the mapping's weights
    x_hat = torch.nn.functional.conv2d(f.flatten(0, 1), aux.mapping.weight, aux.mapping.bias).mean((2, 3))
    f_t = torch.einsum("bn,bnd->bd", out.temporal, x_hat.view(4, 5, -1))
    want = F.cross_entropy(out.logits, y) + lam * F.cross_entropy(aux.aux_fc(f_t), y)
    torch.testing.assert_close(aux.loss(out, y), want, rtol=1e-4, atol=1e-5)
    # the aux term reaches the temporal attention: its gradient differs from the main loss's alone
    aux.zero_grad()
    F.cross_entropy(aux.forward_head(f).logits, y).backward()
    g_main = aux.temporal_att.conv1.weight.grad.clone()
    aux.zero_grad()
    aux.loss(aux.forward_head(f), y).backward()
    assert not torch.allclose(aux.temporal_att.conv1.weight.grad, g_main, atol=1e-7)
    assert aux.aux_fc.weight.grad.abs().sum() > 0


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="frame_pool=alpha.*head='tsn'"):
        ModelConfig(frame_pool="alpha", head="tsn")
    with pytest.raises(ConfigError, match="frame_pool.*'max'"):
        ModelConfig(frame_pool="max")
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="temporal_aux_weight"):
            ModelConfig(temporal_aux_weight=bad)
    with pytest.raises(ConfigError, match="temporal_aux_weight=0.5 needs model.head=tstam"):
        ModelConfig(temporal_aux_weight=0.5, head="temporal")


def test_checkpoint_with_options_loads_and_predicts(tmp_path):
    """Loading (checkpoint and safetensors) of a model with both options: the inference graph."""
    from tstam.checkpoint import load_stream
    from tstam.export import export_safetensors

    ckpt = make_checkpoint(tmp_path / "flow.pt", "flow", seed=3, frame_pool="alpha", temporal_aux_weight=0.3)
    model = load_stream(ckpt).model
    assert model.aux_fc is not None and model.cfg.frame_pool == "alpha"
    st, _js = export_safetensors(ckpt, tmp_path / "flow.safetensors")
    x = 60 * clip(model, b=1, n=3)
    with torch.no_grad():
        ref = model(x)
        for loaded in (load_stream(st).model,):
            got = loaded(x)
            torch.testing.assert_close(got.logits, ref.logits)
            assert got.aux_logits is None


@pytest.mark.slow  # the dynamo ONNX exporter takes ~30-45 s on 2 busy cores
def test_onnx_of_a_model_with_options_is_the_inference_graph(tmp_path):
    from tstam.checkpoint import load_stream
    from tstam.export import check_onnx, export_onnx

    ckpt = make_checkpoint(tmp_path / "flow.pt", "flow", seed=3, frame_pool="alpha", temporal_aux_weight=0.3)
    out = export_onnx(ckpt, tmp_path / "flow.onnx", segments=3)
    assert check_onnx(out, load_stream(ckpt), shapes=((2, 5),)).ok
