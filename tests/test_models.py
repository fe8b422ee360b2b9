"""The T-STAM model: shapes, attention invariants, gradients, learning, bad input, parity."""
import itertools

import numpy as np
import pytest
import torch

from tstam.config import ConfigError
from tstam.models import ModelConfig, build_model, fuse_scores

TINY = dict(num_classes=4, width_mult=0.125, input_size=64)


def tiny(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**TINY, **kw}))


def clip(model, b=2, n=3, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    return torch.randn(b, n, cfg.in_chans, cfg.input_size, cfg.input_size, generator=g)


VARIANTS = [
    dict(head=h, temporal_attention=t, modality=m)
    for h, t, m in itertools.product(["tstam", "tsn", "temporal", "spatial"], ["cnn", "lstm"], ["rgb", "flow"])
    if not (h in ("tsn", "spatial") and t == "lstm")
] + [dict(num_heads=n) for n in range(1, 6)] + [dict(se_blocks=[]), dict(frame_pool="sum"), dict(map_dim=24)]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_shapes_and_attention_sums(kw):
    model = tiny(**kw).eval()
    x = clip(model, b=2, n=3)
    out = model(x)
    cfg = model.cfg
    assert out.logits.shape == (2, 4)
    has_t = cfg.head in ("tstam", "temporal")
    has_s = cfg.head in ("tstam", "spatial")
    assert (out.temporal is not None) == has_t and (out.spatial is not None) == has_s
    if has_t:
        assert out.temporal.shape == (2, 3)
        torch.testing.assert_close(out.temporal.sum(1), torch.ones(2))
        assert (out.temporal > 0).all()
    if has_s:
        assert out.spatial.shape == (2, cfg.num_heads, 3, 2, 2)
        torch.testing.assert_close(out.spatial.sum((3, 4)), torch.ones(2, cfg.num_heads, 3))
    feats = model.forward_features(x)
    assert feats.shape == (2, 3, model.backbone.num_features, 2, 2)


def test_full_size_feature_shape():
    model = build_model(ModelConfig(num_classes=101, se_blocks=[])).eval()
    with torch.no_grad():
        f = model.forward_features(torch.randn(1, 1, 3, 224, 224))
    assert f.shape == (1, 1, 1024, 7, 7)


def test_permuting_frames_permutes_alpha():
    model = tiny().eval()
    x = clip(model, b=2, n=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        a, b = model(x), model(x[:, perm])
    torch.testing.assert_close(b.temporal, a.temporal[:, perm])
    torch.testing.assert_close(b.spatial, a.spatial[:, :, perm])
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)  # order-free pooling


def test_lstm_attention_is_order_dependent():
    model = tiny(temporal_attention="lstm").eval()
    x = clip(model, b=1, n=5)
    perm = torch.tensor([4, 3, 2, 1, 0])
    with torch.no_grad():
        a, b = model(x).temporal, model(x[:, perm]).temporal
    assert not torch.allclose(b, a[:, perm], atol=1e-6)


@pytest.mark.parametrize("pool, same", [("mean", True), ("sum", False)])
def test_frame_pooling_with_repeated_frames(pool, same):
    """Mean pooling gives the same logits for a clip and the clip with every frame twice (the
    reason it is our default: train on 6 frames, test on 25); the paper's sum grows with N."""
    model = tiny(frame_pool=pool, dropout=0.0).eval()
    x = clip(model, b=2, n=3)
    with torch.no_grad():
        a = model(x).logits
        b = model(x.repeat_interleave(2, dim=1)).logits
    assert torch.allclose(a, b, atol=1e-5) == same


def test_grouped_spatial_heads_equal_separate_heads():
    """Parity: the grouped conv of MultiSpatialAttention computes l independent heads."""
    model = tiny(num_heads=3).eval()
    att = model.spatial_att
    x = torch.randn(4, model.backbone.num_features, 2, 2)
    with torch.no_grad():
        maps = att(x)  # (4, 3, 4)
        half = att.reduce.out_channels // 3
        for j in range(3):
            sl = slice(j * half, (j + 1) * half)
            r = torch.nn.functional.conv2d(x, att.reduce.weight[sl], att.reduce.bias[sl])
            bn = att.reduce_bn
            r = (r - bn.running_mean[sl, None, None]) / torch.sqrt(bn.running_var[sl, None, None] + bn.eps)
            r = torch.tanh(r * bn.weight[sl, None, None] + bn.bias[sl, None, None])
            s = torch.nn.functional.conv2d(r, att.score.weight[j:j + 1], att.score.bias[j:j + 1], padding=2)
            sb = att.score_bn
            s = (s - sb.running_mean[j]) / torch.sqrt(sb.running_var[j] + sb.eps) * sb.weight[j] + sb.bias[j]
            torch.testing.assert_close(maps[:, j], s.flatten(1).softmax(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(modality="flow", temporal_attention="lstm")])
def test_gradients_reach_every_trainable_parameter(kw):
    """Every parameter gets a non-zero gradient. SE's fc1 gets none at the very first step (its
    fc2 starts at zero so the gate is the identity), so one SGD step is taken first."""
    model = tiny(dropout=0.0, **kw).train()
    x, y = clip(model, b=4, n=3), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x).logits, y).backward()
        opt.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


@pytest.mark.slow
def test_tiny_model_overfits_tiny_batch():
    model = tiny(dropout=0.0)
    x, y = clip(model, b=8, n=2), torch.tensor([0, 1, 2, 3] * 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.train()(x).logits, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    with torch.no_grad():
        assert (model(x).logits.argmax(1) == y).all()  # train mode BN stats: same batch


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 3, 64, 64), "missing the segment dimension"),
        ((1, 2, 10, 64, 64), "expects 3 channels"),
        ((1, 2, 3, 96, 96), "built for 64x64 crops"),
    ],
)
def test_bad_input_raises_value_error(shape, match):
    model = tiny()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


def test_preprocess_refuses_non_finite_or_zero_scale():
    """Frames enter as uint8 (finite by type) and are normalised by the weights' Preprocess, so
    the model's forward needs no per-call finiteness pass (a host sync on a GPU); what could make
    the input non-finite is refused where it enters: the normalisation constants."""
    from tstam.config import ConfigError
    from tstam.preprocess import Preprocess

    for kw in (dict(std=[0.0, 1.0, 1.0]), dict(mean=[float("nan"), 117.0, 128.0]), dict(scale=float("inf"))):
        with pytest.raises(ConfigError, match="finite numbers with std != 0"):
            Preprocess(**kw)
    x = Preprocess().normalize_clip(torch.randint(0, 256, (2, 3, 6, 8, 8), dtype=torch.uint8))
    assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(head="lstm"), r"model\.head='lstm'"),
        (dict(se_blocks=["3a", "6a"]), r"\['6a'\] are not blocks"),
        (dict(input_size=100), "multiple of 32"),
    ],
)
def test_bad_config_is_named(kw, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kw)


def test_the_head_names_of_the_config_are_the_registered_ones():
    """``model.head`` offers exactly the heads ``build_model`` can build by name, and each name gets
    the parts the paper and the ablations describe (tstam: both paths; tsn: neither, no mapping)."""
    from typing import get_args, get_type_hints

    from tstam.models import HEADS

    assert get_args(get_type_hints(ModelConfig)["head"]) == tuple(HEADS)
    want = {"tstam": (True, True, True), "temporal": (True, False, True), "spatial": (False, True, True),
            "tsn": (False, False, False)}  # (temporal attention, spatial heads, eq. 1 mapping)
    for name, (t, s, mapping) in want.items():
        m = build_model(name, **TINY)
        assert m.cfg.head == name
        assert ((m.temporal_att is not None), (m.spatial_att is not None), (m.mapping is not None)) == (t, s, mapping)


def test_build_model_by_name_is_the_model_of_its_config():
    """timm's ``create_model`` way: a head name and config fields give the same weights as the
    config itself (same seed); fields also override a whole config; an unknown name is refused."""
    for name in ("tsn", "spatial"):
        torch.manual_seed(3)
        by_name = build_model(name, modality="flow", **TINY)
        torch.manual_seed(3)
        by_cfg = build_model(ModelConfig(head=name, modality="flow", **TINY))
        assert by_name.cfg == by_cfg.cfg
        a, b = by_name.state_dict(), by_cfg.state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert build_model(ModelConfig(**TINY), num_classes=7, head="temporal").fc.out_features == 7
    with pytest.raises(ConfigError, match=r"model\.head='tsm' is not valid; expected one of \['tstam', 'tsn', "):
        build_model("tsm", **TINY)


def test_preprocess_must_fit_the_modality():
    from tstam.preprocess import Preprocess

    # what overriding only model.preprocess.std of a flow model builds: an RGB (BGR) Preprocess
    with pytest.raises(ConfigError, match="channel_order='BGR' does not fit model.modality='flow'"):
        ModelConfig(modality="flow", preprocess=Preprocess(std=[8.0]))
    with pytest.raises(ConfigError, match="channel_order='flow' does not fit model.modality='rgb'"):
        ModelConfig(modality="rgb", preprocess=Preprocess(channel_order="flow", mean=[128.0], std=[1.0]))
    ok = ModelConfig(modality="flow", preprocess=Preprocess(channel_order="flow", mean=[128.0], std=[8.0]))
    assert ok.preprocess.std == [8.0]


def test_partial_bn_freezes_all_but_first_bn():
    model = tiny().set_partial_bn(True).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns[0].training and not any(b.training for b in bns[1:])
    before = bns[1].running_mean.clone()
    model(clip(model))
    torch.testing.assert_close(bns[1].running_mean, before)
    grouped = {id(p) for g in model.optim_groups() for p in g["params"]}
    assert id(bns[0].weight) in grouped and id(bns[1].weight) not in grouped
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}


def test_flow_first_conv_multipliers():
    groups = {g["name"]: g for g in tiny(modality="flow").optim_groups()}
    assert groups["first_conv_weight"]["lr_mult"] == 5 and groups["first_conv_bias"]["lr_mult"] == 10


def test_fuse_scores_by_hand():
    rgb = np.array([[0.0, 0.0], [2.0, 0.0]])
    flow = np.array([[0.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(fuse_scores([rgb, flow], (1, 3)), [[0.0, 3.0], [0.5, 0.0]])  # (1 x + 3 y) / 4
    probs = [np.array([[0.5, 0.5]]), np.array([[0.2, 0.8]])]
    np.testing.assert_allclose(fuse_scores(probs, (1, 3)), [[0.275, 0.725]])  # still sums to 1
    for bad in ((0, 0), (1, float("nan")), (-1, 3), (1, float("inf"))):
        with pytest.raises(ValueError, match="fusion weights"):
            fuse_scores([rgb, flow], bad)
    with pytest.raises(ValueError, match="2 stream"):
        fuse_scores([rgb, flow], (1, 3, 1))
    with pytest.raises(ValueError, match="differ in shape"):
        fuse_scores([rgb, flow[:1]], (1, 3))


@pytest.mark.parametrize("pool", ["mean", "sum"])
def test_head_equals_literal_equations(pool):
    """Parity: the head (which pools before mapping) equals eq. 1-9 computed literally, with
    the mapping applied to every frame and location first."""
    model = tiny(frame_pool=pool, num_heads=2, dropout=0.0).eval()
    feats = torch.randn(2, 3, model.backbone.num_features, 2, 2)
    with torch.no_grad():
        out = model.forward_head(feats)
        b, n, c, h, w = feats.shape
        x_hat = model.mapping(feats.flatten(0, 1)).unflatten(0, (b, n))        # eq. 1 (B, N, D, h, w)
        frames = x_hat.mean((3, 4))                                            # (B, N, D)
        alpha = model.temporal_att(frames)                                     # eq. 2
        f_t = (alpha[..., None] * frames).sum(1)                               # eq. 3
        beta = model.spatial_att(feats.flatten(0, 1)).view(b, n, 2, h * w)     # eq. 4-6
        per_frame = torch.einsum("bnlk,bndk->bnld", beta, x_hat.flatten(3))   # eq. 7 inner sum
        f_s = per_frame.sum(1) if pool == "sum" else per_frame.mean(1)        # (B, l, D)
        fused = torch.cat([f_t + f_s[:, j] for j in range(2)], 1)             # eq. 8-9
        logits = model.fc(fused)
    torch.testing.assert_close(out.temporal, alpha)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-6)
