"""The ablation runner on a tiny grid: table (mean and spread), PNG, paper comparison, reuse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tstam.ablate import AblateConfig, compare, grid, run_ablation, summarize
from tstam.cli import main
from tstam.config import ConfigError


def test_tiny_grid_writes_table_and_png(tmp_path, capsys):
    out = tmp_path / "abl"
    cfg = AblateConfig(out=str(out), seeds=[0], only=["se", "fusion"], quick=True,
                       demo_overrides={"threads": 1})
    table = run_ablation(cfg)
    text = table.read_text()
    assert "| se | SE on | flow | 1 |" in text and "| se | SE off | flow | 1 |" in text
    assert "RGB:flow 1:3" in text and "rgb alone" in text
    assert "SE (4.3.4" in text and "Fusion weights (4.3.3" in text
    assert (out / "ablation.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["setting"] for r in rows} >= {"SE on", "SE off", "RGB:flow 1:1", "RGB:flow 2:3"}
    assert len({r["scores"] for r in rows if r.get("stream") == "flow" and "scores" in r}) == 2  # SE on = reference
    # a second run (the CLI) reuses every trained run
    assert main(["ablate", "--out", str(out), "--only", "se", "--seeds", "0", "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "se: SE off seed 0: top-1" in printed and f"table: {table}" in printed


def test_summary_mean_and_spread():
    rows = [{"group": "heads", "setting": "heads=1", "stream": "flow", "seed": s, "top1": v, "params": 10,
             "train_s": 1.0} for s, v in ((0, 0.5), (1, 0.7))]
    (r,) = summarize(rows)
    assert r["seeds"] == 2 and r["top1_mean"] == pytest.approx(0.6) and r["top1_std"] == pytest.approx(0.1414, abs=1e-3)


def test_compare_reads_trends():
    table = [{"group": "heads", "setting": f"heads={n}", "top1_mean": v} for n, v in
             zip(range(1, 6), (0.5, 0.6, 0.7, 0.8, 0.75))]
    table += [{"group": "baselines", "setting": "T-STAM (reference)", "top1_mean": 0.8},
              {"group": "baselines", "setting": "TSN average consensus", "top1_mean": 0.7}]
    text = "\n".join(compare(table))
    assert "best 4: agrees" in text and "(+10.0): met" in text and "Segments (4.3.1): not" in text
    assert "Temporal attention" not in text  # no alpha measured
    table[5:7] = [{**table[5], "alpha_in_window": 0.3, "alpha_uniform": 0.5},
                  {"group": "baselines", "setting": "temporal attention only", "top1_mean": 0.6,
                   "alpha_in_window": 0.6, "alpha_uniform": 0.5}]
    text = "\n".join(compare(table))
    assert "30.0 % for T-STAM and 60.0 % for temporal-only, against 50.0 % uniform" in text
    assert "T-STAM's alpha leans outside the window, temporal-only's inside" in text


def test_segment_settings_reach_model_and_data(tmp_path):
    from tstam.ablate import GROUPS, _train_config

    cfg = AblateConfig(out=str(tmp_path), quick=True)
    t = _train_config(cfg, GROUPS["segments"][0], seed=1)
    assert t.model.num_segments == 3 and t.run.seed == 1
    assert _train_config(cfg, GROUPS["heads"][3], seed=0).run.out_dir.endswith("flow_ref_s0")  # heads=4: the reference
    assert _train_config(cfg, GROUPS["segments"][3], seed=0).model.num_segments == 6


def test_bad_groups_are_named():
    with pytest.raises(ConfigError, match="nope"):
        AblateConfig(only=["nope"])
    with pytest.raises(ConfigError, match="baselines/TSN"):
        AblateConfig(only=["heads/heads=9"])


def test_single_settings_can_be_picked():
    cfg = AblateConfig(only=["baselines/TSN average consensus", "heads/heads=2", "se"])
    assert [(g, s.name) for g, s in grid(cfg)] == [("heads", "heads=2"), ("se", "SE on"), ("se", "SE off"),
                                                   ("baselines", "TSN average consensus")]
    assert all(g != "fusion" for g, _ in grid(AblateConfig(only=["heads", "fusion"])))


def test_baselines_report_where_alpha_looks(tmp_path, monkeypatch):
    import tstam.ablate as ablate

    # the baselines group cut to the two rows with temporal attention (smaller grid, same code)
    monkeypatch.setitem(ablate.GROUPS, "baselines", [s for s in ablate.GROUPS["baselines"]
                                                     if s.name in ("T-STAM (reference)", "temporal attention only")])
    out = tmp_path / "abl"
    text = run_ablation(AblateConfig(out=str(out), seeds=[0], only=["baselines"], quick=True,
                                     demo_overrides={"threads": 1})).read_text()
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["alpha_in_window"] <= 1 and 0 < r["alpha_uniform"] < 1 for r in rows)
    for r in rows:  # the cached value is the one reported
        cached = json.loads((Path(r["scores"]).parent / "alpha.json").read_text())
        assert cached["alpha_in_window"] == r["alpha_in_window"]
    assert "Temporal attention (paper: alpha picks the informative frames)" in text
    assert "| baselines | temporal attention only | flow | 1 |" in text and " % (" in text
