"""``tstam demo --quick``: the whole pipeline end to end on the tiny benchmark, its report, and reuse."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tstam.cli import main
from tstam.config import ConfigError
from tstam.demo import DemoConfig, run_demo, stream_config
from tstam.demo.analysis import snippet_centres


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(DemoConfig.make(out=str(out), quick=True, threads=1))


def test_quick_demo_writes_report(quick_run):
    out, res = quick_run
    assert res.report == out / "report" / "report.md" and res.report.is_file()
    text = res.report.read_text()
    for part in ("## Accuracy", "motion-only", "appearance-only", "alpha in window", "curves_rgb.png",
                 "confusion_fused.png", "alpha_windows.png", "attention_v_"):
        assert part in text, part
    for png in ("curves_rgb.png", "curves_flow.png", "confusion_rgb.png", "confusion_flow.png",
                "confusion_fused.png", "alpha_windows.png"):
        assert (out / "report" / png).stat().st_size > 1000, png
    assert set(res.top1) == {"rgb", "flow", "fused"} and all(0 <= v <= 1 for v in res.top1.values())
    assert {"all", "motion", "appearance"} <= set(res.groups["fused"])
    for s in ("rgb", "flow"):
        a = res.attention[s]
        assert a["clips"] == 8 and 0 <= a["share_in_window"] <= 1 and 0 < a["uniform_share"] < 1
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["top1"] == pytest.approx(res.top1)
    for name in ("rgb", "flow", "fused"):
        assert (out / "scores" / f"{name}.npz").is_file()


def test_second_run_reuses_finished_stages(quick_run, capsys):
    out, first = quick_run
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "reused: benchmark, frames, train rgb, train flow" in lines
    assert lines[-2] == f"report: {out / 'report' / 'report.md'}"
    assert lines[-1].startswith("top-1: RGB ") and "fused" in lines[-1]
    assert f"{100 * first.top1['fused']:.1f} %" in lines[-1]  # same checkpoints, same scores


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
