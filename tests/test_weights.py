"""Foreign weight layouts load through one filter, value by value; bad files are named."""
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from tstam.models import (
    BNInception,
    ModelConfig,
    WeightsError,
    adapt_input_conv,
    build_model,
    load_pretrained,
)

from helpers.realdata import REFERENCE


def layout(name):
    return json.loads((REFERENCE / name).read_text())


def random_state(entries, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in entries:
        sd[key] = torch.tensor(7) if key.endswith("num_batches_tracked") else torch.rand(shape, generator=g) + 0.5
    return sd


def test_backbone_matches_reference_layout():
    ref = layout("bninception_state_dict.json")
    ref = [(k, s) for k, s in ref if not k.startswith("last_linear.")]  # classifier: replaced by T-STAM
    sd = BNInception(se_blocks=()).state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == ref
    assert sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "tracked"))) == 10_270_240


def test_se_adds_only_se_keys():
    ref = {k for k, _ in layout("bninception_state_dict.json") if not k.startswith("last_linear.")}
    keys = set(BNInception().state_dict())
    assert ref <= keys
    extra = keys - ref
    assert extra and all("_se." in k for k in extra)
    assert {k.split("_se.")[0] for k in extra} == {f"inception_{b}" for b in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")}


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A file in the layout of bn_inception-52deb4733.pth: BN [1, C], no num_batches_tracked."""
    sd = random_state(layout("bn_inception-52deb4733_layout.json"))
    path = tmp_path_factory.mktemp("w") / "bn_inception-52deb4733.pth"
    torch.save(sd, path)
    return path, sd


def check_values(model, sd, rename=lambda k: k):
    target = model.backbone.state_dict()
    n = 0
    for key, value in sd.items():
        key = rename(key)
        if key not in target:
            continue
        if key.endswith("conv1_7x7_s2.weight") and value.shape[1] != target[key].shape[1]:
            value = adapt_input_conv(value, target[key].shape[1])
        torch.testing.assert_close(target[key], value.reshape(target[key].shape), rtol=0, atol=0)
        n += 1
    return n


def test_imagenet_layout_loads_every_value(imagenet_file):
    path, sd = imagenet_file
    model = build_model(ModelConfig())
    load_pretrained(model, path)
    assert check_values(model, sd) == len(sd) - 2  # all but last_linear.{weight,bias}
    assert "inception_5b_se.fc2.weight" in model.backbone.state_dict()  # SE kept its init


def test_tsn_imagenet_layout_with_fc_head(imagenet_file, tmp_path):
    _, sd = imagenet_file
    sd = {k.replace("last_linear.", "fc."): v for k, v in sd.items()}
    torch.save({"state_dict": sd}, tmp_path / "bn_inception-9f5701afb96c8044.pth")
    model = build_model(ModelConfig(se_blocks=[]))
    load_pretrained(model, tmp_path / "bn_inception-9f5701afb96c8044.pth")
    assert check_values(model, sd) == len(sd) - 2


def test_rgb_weights_into_flow_model_cross_modality(imagenet_file):
    path, sd = imagenet_file
    model = build_model(ModelConfig(modality="flow"))
    load_pretrained(model, path)
    w = model.backbone.conv1_7x7_s2.weight
    assert w.shape == (64, 10, 7, 7)
    torch.testing.assert_close(w[:, 4], sd["conv1_7x7_s2.weight"].mean(1))
    assert check_values(model, sd) == len(sd) - 2


def test_tsn_flow_checkpoint(tmp_path):
    sd = random_state(layout("tsn_flow_checkpoint_layout.json"), seed=1)
    path = tmp_path / "tsn_flow.pth.tar"
    torch.save({"epoch": 340, "state_dict": sd}, path)
    model = build_model(ModelConfig(modality="flow", num_classes=101))
    load_pretrained(model, path)
    n = check_values(model, sd, rename=lambda k: k.replace("module.base_model.", ""))
    assert n == len(sd) - 2  # all but module.new_fc.{weight,bias}


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_own_checkpoint_roundtrip(tmp_path, fmt):
    cfg = dict(num_classes=3, width_mult=0.125, input_size=64)
    src = build_model(ModelConfig(**cfg))
    torch.nn.init.normal_(src.backbone.inception_3a_se.fc2.weight)  # SE trained: non-identity
    sd = src.state_dict()
    path = tmp_path / f"ckpt.{fmt}"
    if fmt == "pth":
        torch.save({"model": sd, "epoch": 3, "model_config": {"num_classes": 3}}, path)
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    dst = build_model(ModelConfig(**cfg))
    load_pretrained(dst, path, strict_se=True)
    for k, v in src.backbone.state_dict().items():
        torch.testing.assert_close(dst.backbone.state_dict()[k], v, rtol=0, atol=0)


def test_mismatches_are_listed_by_name(imagenet_file, tmp_path):
    _, sd = imagenet_file
    sd = dict(sd)
    del sd["inception_4a_1x1.weight"]
    sd["inception_4a_3x3.weight"] = torch.zeros(1, 2, 3, 3)
    sd["extra_layer.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as e:
        load_pretrained(build_model(ModelConfig()), path)
    msg = str(e.value)
    assert str(path) in msg
    assert "missing (1): inception_4a_1x1.weight" in msg
    assert "unexpected (1): extra_layer.weight" in msg
    assert "inception_4a_3x3.weight: file (1, 2, 3, 3) vs model (96, 64, 3, 3)" in msg


class Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(WeightsError, match="weights-only"):
        load_pretrained(build_model(ModelConfig(width_mult=0.125, input_size=64)), path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.slow
def test_se_backbone_starts_as_the_pretrained_one(tmp_path):
    """With the default 2*sigmoid gate (fc2 zero-initialised) an SE-augmented pretrained
    backbone gives exactly the features of the plain one: bound 1e-6 relative. Hu et al.'s
    plain sigmoid gate with a random init is shown for contrast: it moves them by > 10 %."""
    torch.manual_seed(1)
    pretrained = BNInception(se_blocks=())
    for m in pretrained.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial BN statistics and affine
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    path = tmp_path / "pretrained.pth"
    torch.save(pretrained.state_dict(), path)
    x = torch.rand(2, 3, 224, 224) * 255 - 117
    feats = {}
    for name, kw in {"plain": dict(se_blocks=()), "se": dict(), "sigmoid": dict(se_gate="sigmoid")}.items():
        torch.manual_seed(0)
        bb = BNInception(**kw)
        load_pretrained(bb, path)
        with torch.no_grad():
            feats[name] = bb.eval()(x)
    scale = feats["plain"].abs().max()
    assert (feats["se"] - feats["plain"]).abs().max() <= 1e-6 * scale
    assert (feats["sigmoid"] - feats["plain"]).abs().max() > 0.1 * scale
