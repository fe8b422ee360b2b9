"""``tstam demo --quick``: the whole pipeline end to end on a small benchmark, that it learns, its
report (with the attention analysis), and reuse."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tstam.cli import main
from tstam.config import ConfigError
from tstam.demo import DemoConfig, intervention_weights, run_demo, snippet_centres, stream_config, window_miss_rate
from tstam.demo.report import alpha_panel, plot_alpha_windows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(DemoConfig.make(out=str(out), quick=True, threads=1))


@pytest.mark.slow
def test_quick_demo_learns(quick_run):
    """4 classes (chance 25 %); at seed 0 each stream learns its half of the classes and the fusion
    more (measured with 1 thread: RGB 69 %, flow 56 %, fused 94 % of 16 test clips)."""
    _, res = quick_run
    assert res.top1["fused"] >= 0.5 and max(res.top1["rgb"], res.top1["flow"]) >= 0.5, res.top1


@pytest.mark.slow
def test_quick_demo_writes_report(quick_run):
    out, res = quick_run
    assert res.report == out / "report" / "report.md" and res.report.is_file()
    text = res.report.read_text()
    assert text.count("# T-STAM demo report") == 1  # tstam report's report with the demo's sections
    for part in ("## Accuracy", "## Per class", "| fused |", "motion-only", "appearance-only", "alpha in window", "uniform on the window (oracle)",
                 "f_t inside", "curves_rgb.png", "confusion_fused.png", "alpha_windows.png", "attention_v_",
                 "Model options beyond the paper", "flow: frame_pool=alpha", "tstam demo --paper", "Fusion RGB:flow = 1:1"):
        assert part in text, part
    assert "reference of the idle frames" not in text            # no mechanism that was not measured
    for png in ("curves_rgb.png", "curves_flow.png", "confusion_rgb.png", "confusion_flow.png",
                "confusion_fused.png", "alpha_windows.png"):
        assert (out / "report" / png).stat().st_size > 1000, png
    for s in ("rgb", "flow"):
        a = res.attention[s]
        assert a["clips"] == 16 and 0 < a["uniform_share"] < 1
        # the analysis runs the same model on the same snippets as the test protocol
        assert a["top1/own"] == pytest.approx(res.groups[s]["all"], abs=1 / 16 + 1e-9)
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["top1"] == pytest.approx(res.top1)
    for name in ("rgb", "flow", "fused"):
        assert (out / "scores" / f"{name}.npz").is_file()


@pytest.mark.slow
def test_second_run_reuses_finished_stages(quick_run, capsys):
    out, first = quick_run
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "reused: benchmark, frames, train rgb, train flow" in lines
    assert "model options beyond the paper: flow frame_pool=alpha; fusion RGB:flow 1:1 (--paper: none, 1:3)" in lines
    assert lines[-2] == f"report: {out / 'report' / 'report.md'}"
    assert lines[-1].startswith("top-1: RGB ") and "fused" in lines[-1]
    assert f"{100 * first.top1['fused']:.1f} %" in lines[-1]  # same checkpoints, same scores


@pytest.mark.slow
def test_paper_variant_runs_beside_and_names_the_others_numbers(quick_run):
    """``paper=True``: the paper's model in runs/<stream>_paper, and its report quotes the default run's
    numbers (same benchmark and seed) beside its own."""
    out, first = quick_run
    res = run_demo(DemoConfig.make(out=str(out), quick=True, threads=1, paper=True))
    assert res.report == out / "report_paper" / "report.md" and (out / "runs" / "flow_paper" / "last.pt").is_file()
    assert {"benchmark", "frames", "train rgb"} <= set(res.reused)        # shared: RGB has no options
    assert not (out / "runs" / "rgb_paper").exists()
    text = res.report.read_text()
    assert "the paper's equations" in text and "This report: the paper's model" in text
    assert f"with the demo's options (`{out / 'report' / 'summary.json'}`): top-1 RGB" in text
    assert f"fused {100 * first.top1['fused']:.1f} %" in text
    assert stream_config(DemoConfig.make(out=str(out), paper=True), "flow").model.frame_pool == "mean"
    assert "Fusion RGB:flow = 1:3" in text


def test_a_run_finished_by_an_older_tstam_is_reused(tmp_path):
    """A done.json written by tstam 0.1 (clip keys repeated under data, data.flow_bound) with the same
    recipe counts as finished; another recipe does not."""
    from tstam.demo import train_stream

    tcfg = stream_config(DemoConfig.make(out=str(tmp_path)), "flow")
    old = tcfg.to_dict()
    old["data"].update(modality="flow", num_segments=4, new_length=5, input_size=64, flow_bound=20.0)
    run = tmp_path / "runs" / "flow"
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"")
    (run / "done.json").write_text(json.dumps({"config": old, "seconds": 1.0}))
    reused: list[str] = []
    assert train_stream(tcfg, "flow", reused) == run / "last.pt" and reused == ["train flow"]
    old["optim"]["lr"] = 0.5
    (run / "done.json").write_text(json.dumps({"config": old, "seconds": 1.0}))
    with pytest.raises(ValueError, match="classInd.txt: annotation file not found"):  # it trains: no data here
        train_stream(tcfg, "flow", reused := [])
    assert reused == [] and not (run / "done.json").exists()


def test_alpha_panels_use_their_own_clip(tmp_path):
    """Each panel's window comes from its own clip; a clip with no alpha gets an empty panel
    (the loop variables of the previous clip used to leak into it)."""
    clip = {"video_id": "a", "alpha": [0.1, 0.2, 0.7], "centres": [2.0, 8.0, 14.0], "window": [10, 16],
            "num_frames": 16, "group": "motion"}
    other = {**clip, "video_id": "b", "window": [0, 4], "alpha": [0.5, 0.25, 0.25]}
    attention = {"flow": {"per_clip": [clip, other]}, "rgb": {"per_clip": [other]}}
    assert alpha_panel(attention, "a")["window"] == (10, 16) and set(alpha_panel(attention, "a")["streams"]) == {"flow"}
    assert alpha_panel(attention, "b")["window"] == (0, 4) and set(alpha_panel(attention, "b")["streams"]) == {"rgb", "flow"}
    assert alpha_panel(attention, "missing") is None
    png = plot_alpha_windows(attention, ["missing", "a"], tmp_path / "p.png")  # no NameError, no stale panel
    assert png.stat().st_size > 1000


def test_intervention_weights():
    alpha = np.array([0.1, 0.6, 0.3, 0.0])
    inside = np.array([False, True, True, False])
    np.testing.assert_allclose(intervention_weights("own", alpha, inside), alpha)
    np.testing.assert_allclose(intervention_weights("uniform", alpha, inside), [0.25] * 4)
    np.testing.assert_allclose(intervention_weights("window", alpha, inside), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(intervention_weights("outside", alpha, inside), [0.5, 0, 0, 0.5])
    np.testing.assert_allclose(intervention_weights("reversed", alpha, inside), [0.3, 0.0, 0.1, 0.6])
    np.testing.assert_allclose(intervention_weights("outside", alpha, np.ones(4, bool)), [0.25] * 4)
    with pytest.raises(ValueError, match="'median'"):
        intervention_weights("median", alpha, inside)


def test_stream_config_fills_sizes_and_paths(tmp_path):
    cfg = DemoConfig.make(out=str(tmp_path))
    t = stream_config(cfg, "flow")
    assert t.model.modality == "flow" and t.model.input_size == cfg.input_size
    assert t.model.num_classes == 12 and t.optim.bn == "full" and t.data.resize == [cfg.frame_size] * 2
    assert t.run.out_dir == str(tmp_path / "runs" / "flow")


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="input_size"):
        DemoConfig(input_size=50)
    with pytest.raises(ConfigError, match="frame_size"):
        DemoConfig(frame_size=48, input_size=64)
    with pytest.raises(ConfigError, match="flow_bound=0"):
        DemoConfig(flow_bound=0)


def test_snippet_centres():
    np.testing.assert_allclose(snippet_centres(32, "rgb", 4, 1), [4, 12, 20, 28])
    c = snippet_centres(32, "flow", 4, 5)          # 31 fields, 27 starts
    assert c[0] == pytest.approx(3 + 2.5) and (c > 0).all() and (c <= 31).all()


def test_window_miss_rate_matches_the_sampling_probability():
    """One clip of 40 RGB frames with the action in frames [10, 20): with one segment the snippet
    start is uniform over 0..39, so P(miss) = 30/40; with two segments ([0, 20) and [20, 40)) only
    the first can hit, P(miss) = 10/20; a window of the whole clip is never missed."""
    from types import SimpleNamespace

    def ann(window):
        return {"v": SimpleNamespace(split="train", window=window, num_frames=40),
                "t": SimpleNamespace(split="test", window=(0, 1), num_frames=40)}  # test clips do not count

    kw = dict(modality="rgb", new_length=1, draws=4000)
    assert window_miss_rate(ann((10, 20)), num_segments=1, **kw) == pytest.approx(0.75, abs=0.03)
    assert window_miss_rate(ann((10, 20)), num_segments=2, **kw) == pytest.approx(0.5, abs=0.03)
    assert window_miss_rate(ann((0, 40)), num_segments=1, **kw) == 0.0
    with pytest.raises(ValueError, match="draws"):
        window_miss_rate(ann((0, 40)), num_segments=1, modality="rgb", new_length=1, draws=0)
