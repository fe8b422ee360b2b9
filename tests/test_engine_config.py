"""TrainConfig presets and overrides; the optimiser's TSN groups; failed checkpoint writes in fit."""
from __future__ import annotations

import pytest
import torch

from tstam.config import ConfigError
from tstam.engine.config import PRESETS, load_train_config
from tstam.engine.optim import build_optimizer, build_scheduler
from tstam.models import build_model

OWN_DATA = ("scratch_rgb", "scratch_flow", "finetune_rgb", "finetune_flow")


@pytest.mark.parametrize("name", [p for p in PRESETS if p not in OWN_DATA])
def test_presets_load_with_paper_numbers(name):
    cfg = load_train_config(name, ["annotations.split=3"])
    assert cfg.annotations.split == 3
    # the paper's presets fine-tune ImageNet weights with TSN's partial BN; the synthetic ones train
    # from scratch, where BN statistics must be learnt
    bn = "full" if name.startswith("synthetic") else "partial"
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.bn) == (0.9, 5e-4, bn)
    assert cfg.model.num_segments == 6
    flow = cfg.model.modality == "flow"
    assert cfg.optim.clip_grad == (20.0 if flow else 40.0)
    if not name.startswith("synthetic"):  # from scratch, RGB uses dropout 0.5 and unit-scale input (docs/training.md)
        assert cfg.model.dropout == (0.7 if flow else 0.8)
        assert (cfg.optim.lr, cfg.data.batch_size, cfg.model.input_size) == (0.001, 32, 224)
        assert (cfg.optim.epochs, cfg.optim.lr_steps) == ((340, [190, 300]) if flow else (80, [30, 60]))
        assert cfg.model.num_classes == (101 if name.startswith("ucf") else 51)


@pytest.mark.parametrize("name", OWN_DATA)
def test_own_data_presets_resolve_on_their_own(name):
    cfg = load_train_config(name)
    # nothing typed twice: the classes come from the folder, the frame size from the store
    assert (cfg.annotations.format, cfg.model.num_classes, cfg.data.resize) == ("folder", None, None)
    assert cfg.model.modality == name.split("_")[1]
    assert cfg.optim.clip_grad == (20.0 if cfg.model.modality == "flow" else 40.0)
    if name.startswith("scratch"):  # the demo's lessons: full BN, unit-scale input, small width and crops
        assert (cfg.optim.bn, cfg.run.init_weights, cfg.model.width_mult, cfg.model.dropout) == ("full", None, 0.25, 0.5)
        assert 64 <= cfg.model.input_size <= 112
        if cfg.model.modality == "rgb":
            assert cfg.model.preprocess.scale == 1.0 and max(cfg.model.preprocess.std) > 1
    else:
        assert (cfg.optim.bn, cfg.run.init_weights, cfg.model.input_size) == ("partial", "imagenet", 224)


def test_demo_recipes_are_not_presets():
    from tstam.engine.config import shipped_presets

    assert not [p for p in shipped_presets() if p.startswith("demo")]
    with pytest.raises((ConfigError, OSError), match="demo_rgb"):
        load_train_config("demo_rgb")


def test_bad_keys_and_values_name_what_is_valid():
    with pytest.raises(ConfigError, match="optim.momentun .* valid keys: .*momentum"):
        load_train_config("ucf101_rgb", ["optim.momentun=0.8"])
    with pytest.raises(ConfigError, match="data.input_size=96: .* set once, under model"):
        load_train_config("ucf101_rgb", ["data.input_size=96"])
    with pytest.raises(ConfigError, match="run.amp='fp8' .* 'bf16'"):
        load_train_config("ucf101_rgb", ["run.amp=fp8"])
    with pytest.raises(ConfigError, match="preset 'ucf'"):
        from tstam.engine.config import preset_path
        preset_path("ucf")
    cfg = load_train_config("ucf101_flow", ["model.num_segments=3", "model.input_size=96"])
    assert (cfg.model.num_segments, cfg.model.input_size) == (3, 96)
    old = cfg.to_dict()  # a config stored by tstam 0.1 repeated the clip keys under data
    old["data"].update(modality="flow", num_segments=3, new_length=5, input_size=96)
    assert load_train_config(old) == cfg
    with pytest.raises(ConfigError, match="resize=\\[100, 100\\] is smaller than the crop model.input_size=224"):
        load_train_config("ucf101_rgb", ["data.resize=[100,100]"])


def test_flow_optimiser_groups_and_schedule():
    cfg = load_train_config("ucf101_flow", ["model.width_mult=0.125", "model.input_size=64", "model.num_classes=4"])
    model = build_model(cfg.model).set_partial_bn(True)
    opt = build_optimizer(model, cfg.optim)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["first_conv_weight"]["lr"] == pytest.approx(0.005)   # x5
    assert groups["first_conv_bias"]["lr"] == pytest.approx(0.01)      # x10
    assert groups["first_conv_bias"]["weight_decay"] == 0.0
    assert groups["weight"]["weight_decay"] == pytest.approx(5e-4)
    sched = build_scheduler(opt, cfg.optim)
    lrs = []
    for _epoch in range(301):
        lrs.append(groups["weight"]["lr"])
        opt.step()
        sched.step()
    assert lrs[189] == pytest.approx(1e-3) and lrs[190] == pytest.approx(1e-4) and lrs[300] == pytest.approx(1e-5)


def test_failed_checkpoint_write_in_fit_keeps_previous(tmp_path):
    """A real failing write (the checkpoint path is a non-empty directory, so the rename fails)
    stops the run with a clear error; the previous file (best.pt) is untouched."""

    from tstam.checkpoint import CheckpointError
    from tstam.engine.train import fit

    from helpers.engine_store import make_store, tiny_config

    store = make_store(tmp_path / "store")
    out = tmp_path / "run"
    (out / "last.pt").mkdir(parents=True)
    (out / "last.pt" / "keep").write_text("x")
    cfg = load_train_config(tiny_config(store, out, optim={"epochs": 1}, run={"eval_every": 0, "tensorboard": False}))
    with pytest.raises(CheckpointError, match="could not write checkpoint .* previous checkpoint .* intact"):
        fit(cfg)
    assert (out / "last.pt" / "keep").read_text() == "x"
    assert not list(out.glob(".last.pt.*.tmp"))


def test_adamw_option_keeps_the_groups():
    cfg = load_train_config("ucf101_flow", ["model.width_mult=0.125", "model.input_size=64", "model.num_classes=4",
                                            "optim.optimizer=adamw", "optim.lr=0.002", "optim.weight_decay=0.01"])
    opt = build_optimizer(build_model(cfg.model), cfg.optim)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"][0] == pytest.approx(0.9)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["first_conv_weight"]["lr"] == pytest.approx(0.01)    # x5 as with SGD
    assert groups["weight"]["weight_decay"] == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="optim.optimizer='adam' .*'adamw'"):
        load_train_config("ucf101_flow", ["optim.optimizer=adam"])


def test_cosine_schedule_falls_to_zero_over_the_epochs():
    cfg = load_train_config("ucf101_rgb", ["model.width_mult=0.125", "model.input_size=64", "model.num_classes=4",
                                           "optim.schedule=cosine", "optim.lr=0.02", "optim.epochs=10"])
    opt = build_optimizer(build_model(cfg.model), cfg.optim)
    sched = build_scheduler(opt, cfg.optim)
    lrs = []
    for _epoch in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.02) and lrs[5] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
