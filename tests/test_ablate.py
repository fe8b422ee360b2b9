"""The ablation runner: tables from the runs on disk, reuse, the paired intervals and verdicts,
the claims as data."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from tstam.ablate import (
    CLAIMS,
    GROUPS,
    RUNS_NAME,
    AblateConfig,
    Claim,
    Setting,
    check_claims,
    collect_rows,
    grid,
    paired,
    read_runs,
    run_ablation,
    summarize,
    t_quantile,
    tables_from_csv,
    train_config,
    verdict,
    write_tables,
)
from tstam.cli import main
from tstam.cli.ablate import add_parser, demo_overrides
from tstam.config import ConfigError
from tstam.synthetic import load_annotations


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("abl")
    cfg = AblateConfig(out=str(out), seeds=[0], only=["se", "fusion"], quick=True, threads=1)
    return out, run_ablation(cfg)


@pytest.mark.slow
def test_tiny_grid_writes_tables_and_pngs(tiny_grid):
    out, table = tiny_grid
    text = table.read_text()
    assert "| se | SE on | flow | 1 | 1 |" in text and "| se | SE off | flow | 1 | 1 |" in text
    assert "| fusion | RGB:flow 1:3 | fused |" in text and "rgb alone" in text
    assert "SE on beats SE off" in text and "RGB:flow 1:3 beats 1:1" in text and "## Where the evidence" in text
    for png in ("ablation.png", "alpha.png"):
        assert (out / png).stat().st_size > 1000
    rows = collect_rows(AblateConfig(out=str(out), quick=True))
    assert {r["setting"] for r in rows} >= {"SE on", "SE off", "RGB:flow 1:1", "RGB:flow 2:3"}
    flow = {r["run"] for r in rows if r["stream"] == "flow" and "run" in r}
    assert flow == {"flow_ref_e1_s0", "flow_se_blocks-none_e1_s0"}  # SE on is the reference itself
    on = next(r for r in rows if r["setting"] == "SE on")
    # the analysis of each run: alpha in the window, every intervention, evidence sums
    assert 0 <= on["share_in_window"] <= 1 and 0 < on["uniform_share"] < 1
    assert {f"top1/{k}" for k in ("own", "uniform", "window", "outside", "reversed")} <= set(on)
    assert on["top1/own"] == pytest.approx(on["top1"], abs=1 / 8 + 1e-9)  # 8 test clips; BN folded or not
    assert all(math.isfinite(on[k]) for k in ("temporal_in", "temporal_out", "spatial_in", "frames_out"))
    csv_head = (out / "claims.csv").read_text().splitlines()[0]
    assert csv_head.startswith("topic,claim,source,seeds")


@pytest.mark.slow
def test_a_second_run_reuses_every_run_and_keeps_other_groups(tiny_grid, capsys):
    out, table = tiny_grid
    row = out / "runs" / "flow_se_blocks-none_e1_s0" / "row.json"
    stamp = row.stat().st_mtime_ns
    assert main(["ablate", "--out", str(out), "--only", "se", "--seeds", "0", "--quick", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "se: SE off seed 0: top-1" in printed and f"table: {table}" in printed
    assert row.stat().st_mtime_ns == stamp                   # reused, not retrained or re-analysed
    assert "| fusion | RGB:flow 1:3 |" in table.read_text()   # a partial run keeps the rest of the table
    (out / "table.md").unlink()
    assert main(["ablate", "--out", str(out), "--quick", "--tables-only"]) == 0
    assert "| se | SE off | flow |" in table.read_text() and row.stat().st_mtime_ns == stamp


def test_runs_csv_rebuilds_the_same_tables(tiny_grid, tmp_path, capsys):
    """runs.csv holds every row; the tables rebuilt from it alone (another folder, no run folders)
    are the folder's own, byte for byte, by --from-csv and by --tables-only where only runs.csv is."""
    out, table = tiny_grid
    rows = collect_rows(AblateConfig(out=str(out), quick=True))
    back = read_runs(out / RUNS_NAME)
    assert len(back) == len(rows) and all("scores" not in r for r in back)
    assert [(r["group"], r["setting"], r["seed"], r["top1"]) for r in back] == [
        (r["group"], r["setting"], r["seed"], r["top1"]) for r in rows]
    on = next(r for r in back if r["setting"] == "SE on")
    assert on["share_in_window"] == next(r for r in rows if r["setting"] == "SE on")["share_in_window"]
    assert main(["ablate", "--from-csv", str(out / RUNS_NAME), "--out", str(tmp_path / "re")]) == 0
    assert f"table: {tmp_path / 're' / 'table.md'}" in capsys.readouterr().out
    for name in ("table.md", "table.csv", "claims.csv"):
        assert (tmp_path / "re" / name).read_bytes() == (out / name).read_bytes(), name
    assert not (tmp_path / "re" / RUNS_NAME).exists() and not (tmp_path / "re" / "runs").exists()
    only_csv = tmp_path / "only"
    only_csv.mkdir()
    (only_csv / RUNS_NAME).write_bytes((out / RUNS_NAME).read_bytes())
    assert main(["ablate", "--out", str(only_csv), "--tables-only"]) == 0
    assert (only_csv / "table.md").read_bytes() == table.read_bytes()


def _runs_csv(path, rows):
    """A runs.csv written by hand (not by write_runs): group, setting, seed, top-1."""
    lines = ["group,setting,stream,seed,epochs,top1,params,train_s"]
    lines += [f"{g},{s},flow,{seed},36,{top1},1000,1.0" for g, s, seed, top1 in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_across_folders(tmp_path, capsys):
    """--compare pairs the seeds of two settings of two runs.csv; its interval is the textbook one:
    mean +- t * sd / sqrt(n), t_0.975 with 4 degrees of freedom = 2.776 (NIST/SEMATECH e-Handbook of
    Statistical Methods, table 1.3.6.7.2, critical values of Student's t)."""
    a = [0.700, 0.725, 0.650, 0.775, 0.700]
    b = [0.650, 0.675, 0.625, 0.700, 0.700, 0.600]  # a sixth seed that a lacks: not paired
    (tmp_path / "n8").mkdir()
    _runs_csv(tmp_path / "n8" / RUNS_NAME, [("baselines", "TSN average consensus", s, v) for s, v in enumerate(a)]
              + [("fused", "TSN average consensus", s, 0.9) for s in range(5)])
    _runs_csv(tmp_path / "n4.csv", [("baselines", "TSN average consensus", s, v) for s, v in enumerate(b)])
    assert main(["ablate", "--compare", f"{tmp_path / 'n8'}:baselines/TSN average consensus",
                 f"{tmp_path / 'n4.csv'}:TSN average consensus"]) == 0
    printed = capsys.readouterr().out
    d = [100 * (x - y) for x, y in zip(a, b)]          # 5.0, 5.0, 2.5, 7.5, 0.0
    mean = sum(d) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / 4)
    half = 2.776 * sd / math.sqrt(5)
    assert f"a - b: {mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] points" in printed, printed
    assert "over 5 paired seeds" in printed and "t_0.975 = 2.776" in printed and printed.rstrip().endswith("agrees")
    assert "     2    65.0    62.5    +2.5" in printed                # seed by seed, in points
    # the same setting name in two groups must be named with its group; a bad side is named
    assert main(["ablate", "--compare", f"{tmp_path / 'n8'}:TSN average consensus", f"{tmp_path / 'n4.csv'}:x"]) == 2
    err = capsys.readouterr().err
    assert "'TSN average consensus' is in several groups" in err and "baselines/TSN average consensus" in err
    assert main(["ablate", "--compare", f"{tmp_path / 'nope'}:a/b", f"{tmp_path / 'n4.csv'}:x"]) == 2
    assert "expected PATH:SETTING" in capsys.readouterr().err
    _runs_csv(tmp_path / "bad.csv", [("baselines", "x", 0, "high")])
    assert main(["ablate", "--compare", f"{tmp_path / 'bad.csv'}:baselines/x", f"{tmp_path / 'n4.csv'}:x"]) == 2
    assert "bad.csv: line 2, column 'top1': 'high' is not valid; expected a number" in capsys.readouterr().err
    _runs_csv(tmp_path / "inf.csv", [("baselines", "x", 0, "inf")])
    assert main(["ablate", "--from-csv", str(tmp_path / "inf.csv"), "--out", str(tmp_path / "t")]) == 2
    assert "'inf' is not valid; expected a finite number" in capsys.readouterr().err
    (tmp_path / "png.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert main(["ablate", "--from-csv", str(tmp_path / "png.csv"), "--out", str(tmp_path / "t")]) == 2
    assert "png.csv: not a CSV file" in capsys.readouterr().err


def test_untrimmed_grid_runs_on_its_own_benchmark(tmp_path):
    """--preset untrimmed --quick: the grid's baselines and fused rows on a small untrimmed
    benchmark, alpha's window taken from its annotations (the labelled action's window)."""
    out = tmp_path / "u"
    cfg = AblateConfig(out=str(out), preset="untrimmed", seeds=[0], quick=True, threads=1,
                       only=["baselines/T-STAM (reference)", "baselines/TSN average consensus", "fusion"])
    text = run_ablation(cfg).read_text()
    ann = load_annotations(out / "bench")
    assert ann and all(a.others for a in ann.values()) and all(a.num_frames == 32 for a in ann.values())
    for line in ("| baselines | T-STAM (reference) | flow | 1 | 1 |", "| baselines | TSN average consensus | flow | 1 | 1 |",
                 "| fused | TSN average consensus | fused |", "| fusion | RGB:flow 1:3 | fused |"):
        assert line in text, line
    assert "T-STAM beats TSN average consensus" in text
    ref = next(r for r in read_runs(out / RUNS_NAME) if r["setting"] == "T-STAM (reference)")
    # a window of 10-25 % of the clip: the share of the test snippets in it is about that
    assert 0.03 < ref["uniform_share"] < 0.4 and ref["clips"] == 16


def test_t_quantiles_from_the_table():
    assert t_quantile(4) == 2.776 and t_quantile(1) == 12.706        # textbook values
    assert t_quantile(35) == pytest.approx(2.0301, abs=1e-3)         # between table entries: 2.0301 exactly
    assert t_quantile(1000) == pytest.approx(1.9623, abs=1e-3)
    with pytest.raises(ValueError, match="df=0"):
        t_quantile(0)


def test_paired_difference_and_interval():
    # d = 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), half-width 2.776 * sqrt(2.5) / sqrt(5) = 1.9629
    p = paired({s: 10.0 + s + 1 for s in range(5)}, {s: 10.0 for s in range(5)})
    assert (p.n, p.seeds) == (5, (0, 1, 2, 3, 4))
    assert p.mean == pytest.approx(3.0) and p.sd == pytest.approx(math.sqrt(2.5))
    assert (p.lo, p.hi) == (pytest.approx(3 - 1.96292, abs=1e-4), pytest.approx(3 + 1.96292, abs=1e-4))
    assert paired({0: 1.0, 1: 2.0, 7: 3.0}, {1: 1.0, 7: 1.0, 9: 0.0}).seeds == (1, 7)  # only common seeds
    with pytest.raises(ValueError, match="seed 1"):
        paired({0: 1.0, 1: math.nan}, {0: 0.0, 1: 0.0})


def test_verdict_follows_the_interval_not_the_means():
    """The issue's case: T-STAM ahead on the mean, but the seeds spread over both signs."""
    tstam = {0: 67.5, 1: 63.3, 2: 71.7, 3: 55.8, 4: 70.0}
    tsn = {0: 65.0, 1: 67.5, 2: 60.0, 3: 65.8, 4: 70.8}
    p = paired(tstam, tsn)
    assert p.mean < 0.5 and p.lo < 0 < p.hi and verdict(p) == "inconclusive"
    assert verdict(paired({s: 60.0 + s % 2 for s in range(5)}, {s: 50.0 for s in range(5)})) == "agrees"
    assert verdict(paired({s: 40.0 - s % 2 for s in range(5)}, {s: 50.0 for s in range(5)})) == "disagrees"
    assert verdict(paired({0: 90.0}, {0: 10.0})) == "inconclusive"  # one seed: no interval


def _rows(setting, group, top1, **extra):
    return [{"group": group, "setting": setting, "stream": "flow", "seed": s, "top1": v, "params": 1, "train_s": 0.0,
             **{k: vals[s] for k, vals in extra.items()}} for s, v in enumerate(top1)]


def test_claims_are_tested_on_paired_seeds():
    ref = "T-STAM (reference)"
    rows = _rows(ref, "baselines", [0.70, 0.72, 0.69, 0.71, 0.73],
                 share_in_window=[0.40, 0.45, 0.42, 0.41, 0.44], uniform_share=[0.2] * 5)
    rows += _rows("TSN average consensus", "baselines", [0.62, 0.65, 0.63, 0.64, 0.66])
    results = {r.claim.says: r for r in check_claims(rows)}
    tsn = results["T-STAM beats TSN average consensus"]
    assert tsn.diff.n == 5 and tsn.diff.mean == pytest.approx(7.0) and tsn.verdict == "agrees"
    assert tsn.goal_met is True                                       # >= 5 points, interval above 0
    alpha = results[f"{ref}: alpha puts more weight in the action window than uniform"]
    assert alpha.a_mean == pytest.approx(0.424) and alpha.b_mean == pytest.approx(0.2) and alpha.verdict == "agrees"
    assert "SE on beats SE off" not in results                        # not run: not claimed
    assert "temporal attention only beats TSN average consensus" not in results  # one side not run
    rows += _rows("temporal attention only", "baselines", [0.66, 0.64, 0.66, 0.65, 0.65])
    own = {r.claim.says: r for r in check_claims(rows)}["temporal attention only beats TSN average consensus"]
    assert own.diff.mean == pytest.approx(1.2) and own.goal_met is False  # the goal is the T-STAM claim's: 5 points
    half = _rows(ref, "baselines", [0.70, 0.72, 0.69, 0.71, 0.73]) + _rows(
        "TSN average consensus", "baselines", [0.68, 0.69, 0.66, 0.67, 0.70])
    short = next(r for r in check_claims(half) if "TSN" in r.claim.says)
    assert short.diff.mean == pytest.approx(3.0) and short.verdict == "agrees" and short.goal_met is False
    ratio = Claim("t", "alpha", ("baselines", ref), None, metric="alpha", goal=1.5)
    (r,) = check_claims(rows, [ratio])
    assert r.goal_met is True                                         # 0.424 >= 1.5 x 0.2


def test_claims_header_names_the_t_value_of_every_seed_count(tmp_path):
    """Claims over 5 and over 10 paired seeds in one table: the header gives both t values, not the
    larger count's alone (standard t table: 2.776 at 4 degrees of freedom, 2.262 at 9)."""
    ref, tsn, temporal = "T-STAM (reference)", "TSN average consensus", "temporal attention only"
    rows = _rows(ref, "baselines", [0.70, 0.72, 0.69, 0.71, 0.73])
    rows += _rows(tsn, "baselines", [0.62, 0.65, 0.63, 0.64, 0.66, 0.61, 0.60, 0.64, 0.62, 0.63])
    rows += _rows(temporal, "baselines", [0.66, 0.64, 0.66, 0.65, 0.65, 0.67, 0.62, 0.63, 0.66, 0.64])
    text = write_tables(rows, tmp_path).read_text()
    assert "(t_0.975 = 2.776 at 5 seeds, 2.262 at 10 seeds)" in text
    assert "| temporal attention only beats TSN average consensus | ours | 10 |" in text


def test_every_claim_names_settings_of_the_grid():
    names = {(g, s.name) for g, grp in GROUPS.items() for s in grp.settings}
    names |= {("fusion", n) for n in ("RGB:flow 1:1", "RGB:flow 1:2", "RGB:flow 1:3", "RGB:flow 1:4",
                                      "RGB:flow 2:3", "rgb alone", "flow alone")}
    names |= {("fused", s.name) for g in ("baselines", "options") for s in GROUPS[g].settings}
    for c in CLAIMS:
        assert c.a in names and (c.b is None or c.b in names), c


def test_summary_mean_and_spread():
    (r,) = summarize(_rows("heads=1", "heads", [0.5, 0.7]))
    assert r["seeds"] == 2 and r["top1_mean"] == pytest.approx(0.6) and r["top1_sd"] == pytest.approx(0.1414, abs=1e-3)


def test_run_folders_carry_the_budget_and_settings_reach_model_and_data(tmp_path):
    cfg = AblateConfig(out=str(tmp_path), quick=True)
    seg = GROUPS["segments"].settings
    t = train_config(cfg, seg[0], seed=1, short=True)
    assert t.model.num_segments == 3 and t.run.seed == 1
    assert train_config(cfg, seg[3], seed=0, short=True).model.num_segments == 6
    full = AblateConfig(out=str(tmp_path), short_epochs=5)
    heads4 = GROUPS["heads"].settings[3]
    assert Path(train_config(full, heads4, 0, short=True).run.out_dir).name == "flow_ref_e5_s0"  # heads=4: the reference
    ref = train_config(full, GROUPS["baselines"].settings[0], 0)
    assert Path(ref.run.out_dir).name == "flow_ref_e36_s0" and ref.optim.epochs == 36  # the published tables' flow budget
    rgb = train_config(full, Setting("reference rgb", (), "rgb"), 0)  # the fusion rows' RGB run
    assert Path(rgb.run.out_dir).name == "rgb_ref_e8_s0" and rgb.optim.epochs == 8
    aux = train_config(full, GROUPS["options"].settings[2], 0)
    assert aux.model.frame_pool == "alpha" and aux.model.temporal_aux_weight == 1.0
    loc = train_config(AblateConfig(out=str(tmp_path), preset="localized"), GROUPS["baselines"].settings[1], 0)
    assert loc.model.head == "tsn" and loc.model.num_classes == 12
    n8 = AblateConfig(out=str(tmp_path), demo_overrides={"num_segments": 8})  # tstam ablate --segments 8
    t8 = train_config(n8, GROUPS["baselines"].settings[1], 2)
    assert t8.model.num_segments == 8 and Path(t8.run.out_dir).name == "flow_head-tsn_e36_n8_s2"  # never a 4-segment run's folder
    assert train_config(n8, seg[0], 0, short=True).model.num_segments == 3  # the segments group still sets its own
    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    args = sub.choices["ablate"].parse_args(["--segments", "8", "--input-size", "96"])
    px = AblateConfig(out=str(tmp_path), demo_overrides=demo_overrides(args))   # tstam ablate --segments 8 --input-size 96
    t96 = train_config(px, GROUPS["baselines"].settings[1], 0)
    assert t96.model.input_size == 96 and list(t96.data.resize) == [120, 120] and t96.model.num_segments == 8
    assert Path(t96.run.out_dir).name == "flow_head-tsn_e36_fs120_px96_n8_s0"


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="nope"):
        AblateConfig(only=["nope"])
    with pytest.raises(ConfigError, match="baselines/TSN"):
        AblateConfig(only=["heads/heads=9"])
    with pytest.raises(ConfigError, match="preset='huge'"):
        AblateConfig(preset="huge")


def test_single_settings_can_be_picked():
    cfg = AblateConfig(only=["baselines/TSN average consensus", "heads/heads=2", "se"])
    assert [(g, s.name) for g, s in grid(cfg)] == [("baselines", "TSN average consensus"), ("heads", "heads=2"),
                                                   ("se", "SE on"), ("se", "SE off")]


def test_the_committed_untrimmed_rows_rebuild_the_published_tables(tmp_path):
    # docs/ablation.md's untrimmed section is the table.md of its grid; the committed per-run rows must
    # give back every one of its table lines (the numbers in the docs come from data in the repository)
    docs = Path(__file__).resolve().parents[1] / "docs"
    table = tables_from_csv(docs / "ablation" / "data" / "untrimmed-n8.csv", tmp_path).read_text()
    published = (docs / "ablation.md").read_text().split("## the untrimmed preset, 8 training segments")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) > 30
    missing = [line for line in rows if line not in published]
    assert not missing, missing[:3]
