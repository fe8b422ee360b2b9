"""Honest model selection and BN practice: validation is held out of the
training list, never the test list; partial BN needs pretrained BN statistics; SE weights are
never loaded under another gate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from tstam.checkpoint import load_checkpoint
from tstam.cli import main
from tstam.config import ConfigError, to_dict
from tstam.engine.config import load_train_config
from tstam.engine.scores import load_scores
from tstam.engine.train import fit
from tstam.models import ModelConfig, WeightsError, build_model, load_pretrained

from helpers.engine_store import make_store, tiny_config


def _yaml(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_default_holds_out_validation_and_never_reads_the_test_list(tmp_path, capsys):
    store = make_store(tmp_path / "store", n_train=12, n_test=4)
    cfg = tiny_config(store, tmp_path / "run", optim={"epochs": 1})
    assert load_train_config(cfg).annotations.val_fraction == 0.1  # the default holds out
    assert main(["train", "--config", _yaml(tmp_path / "c.yaml", cfg)]) == 0
    held = (tmp_path / "run" / "validation.txt").read_text().split()
    test_ids = [line.split(",")[0] for line in store["test"].read_text().splitlines()[1:]]
    train_ids = [line.split(",")[0] for line in store["train"].read_text().splitlines()[1:]]
    # every class has three groups in the training list: one of each is held out, the test list untouched
    assert len(held) == 4 and set(held) <= set(train_ids) and not set(held) & set(test_ids)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["val_clips"] == 4 and (tmp_path / "run" / "best.pt").is_file()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 4  # 8 training clips, batch 2
    assert main(["test", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--subset", "val", "--crops", "1",
                 "--frames", "3"]) == 0
    assert load_scores(tmp_path / "run" / "scores_rgb_split1_val_3x1.npz").video_ids == sorted(held, key=held.index)


def test_without_a_hold_out_no_best_checkpoint_and_no_val_subset(tmp_path, capsys):
    store = make_store(tmp_path / "store", n_train=8, n_test=4)
    cfg = tiny_config(store, tmp_path / "run", optim={"epochs": 1}, annotations={"val_fraction": 0.0})
    assert main(["train", "--config", _yaml(tmp_path / "c.yaml", cfg)]) == 0
    run = tmp_path / "run"
    assert (run / "last.pt").is_file() and not (run / "best.pt").exists()
    assert "val_top1" not in (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(["test", "--checkpoint", str(run / "last.pt"), "--subset", "val"]) == 2
    assert "held out no validation videos (annotations.val_fraction=0.0)" in capsys.readouterr().err
    # fusion weights are searched on validation scores, never on the test list unless asked (optimistic)
    assert main(["test", "--checkpoint", str(run / "last.pt"), "--crops", "1", "--frames", "3"]) == 0
    test_scores = str(run / "scores_rgb_split1_test_3x1.npz")
    capsys.readouterr()
    assert main(["fuse", test_scores, test_scores, "--search", "--val", test_scores, test_scores]) == 2
    assert "holds scores of the test list" in capsys.readouterr().err


def test_partial_bn_needs_pretrained_statistics(tmp_path):
    store = make_store(tmp_path / "store", n_train=8, n_test=4)
    partial = tiny_config(store, tmp_path / "p", optim={"epochs": 1, "bn": "partial"}, run={"eval_every": 0})
    with pytest.raises(ConfigError, match="optim.bn=partial .* run.init_weights=.* or optim.bn=full"):
        fit(load_train_config(partial))
    assert not (tmp_path / "p" / "last.pt").exists()
    # from trained BN statistics (here a tstam checkpoint's backbone) partial BN is what TSN does
    fit(load_train_config(tiny_config(store, tmp_path / "full", optim={"epochs": 1}, run={"eval_every": 0})))
    init = str(tmp_path / "full" / "last.pt")
    partial["run"]["init_weights"] = init
    fit(load_train_config(partial))
    donor, got = load_checkpoint(init)["model"], load_checkpoint(tmp_path / "p" / "last.pt")["model"]
    frozen = "backbone.inception_3a_1x1_bn.running_mean"  # a BN after the first: kept as loaded
    assert torch.equal(got[frozen], donor[frozen])
    assert not torch.equal(got["backbone.conv1_7x7_s2_bn.running_mean"], donor["backbone.conv1_7x7_s2_bn.running_mean"])


def test_se_weights_never_load_under_another_gate(tmp_path):
    tiny = dict(num_classes=3, width_mult=0.125, input_size=64)
    cfg = ModelConfig(se_gate="sigmoid", **tiny)
    torch.save({"format": "tstam-checkpoint", "version": 1, "model": build_model(cfg).state_dict(),
                "model_config": to_dict(cfg)}, tmp_path / "sig.pt")
    with pytest.raises(WeightsError, match="trained with the 'sigmoid' gate but this model uses '2sigmoid'"):
        load_pretrained(build_model(ModelConfig(**tiny)), tmp_path / "sig.pt")
    same = build_model(ModelConfig(se_gate="sigmoid", **tiny))
    load_pretrained(same, tmp_path / "sig.pt")
    np.testing.assert_array_equal(same.backbone.inception_3a_se.fc2.weight.detach().numpy(),
                                  torch.load(tmp_path / "sig.pt")["model"]["backbone.inception_3a_se.fc2.weight"].numpy())
