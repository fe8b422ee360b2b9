"""The scale rehearsal runs end to end in its tiny CPU mode: the real commands (synthetic videos ->
tstam extract --flow tvl1_torch -> tstam train of both streams -> tstam test -> tstam fuse), every
video extracted once, both streams trained and scored on the test list, and the UCF101 projection
computed from the measured rates."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tstam.data.store import FLOW_X_TMPL, RGB_TMPL

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rehearsal_tiny_on_cpu(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_rehearsal.py"), "--tiny", "--device", "cpu",
                           "--out", str(out), "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md"), "--keep"],
                          capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    # 3 classes x (2 train + 1 test) videos of 12 frames, each extracted once (the warm-up shard is skipped after)
    assert res["videos"] == 9 and res["extract_warmup_videos"] + res["extract_videos"] == 9
    assert res["extract_warmup_videos"] >= 1
    stores = sorted(p for p in (out / "frames").rglob("meta.json"))
    assert len(stores) == 9
    for meta in stores:
        d = meta.parent
        assert (d / RGB_TMPL.format(12)).is_file() and (d / FLOW_X_TMPL.format(11)).is_file()
        assert not (d / RGB_TMPL.format(13)).exists()
    test_list = (out / "data" / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    for m in ("rgb", "flow"):
        assert res[f"train_{m}_steps"] >= 2 and res[f"train_{m}_clips_per_s"] > 0
        with np.load(out / f"scores_{m}.npz") as f:
            ids = sorted(str(v) for v in f["video_ids"])
            assert f["probs"].shape == (3, 3)
        assert ids == sorted(Path(p).stem for p in test_list)
    assert res["fused"]["videos"] == 3 and res["fused"]["inputs"] == ["rgb", "flow"]
    # the projection: UCF101 split 1's 13,320 videos of ~180 frames, 9,537 training clips x 80 (RGB) / 340 (flow)
    # epochs, 3,783 test videos per stream, at the measured rates; 8 GPUs an eighth of it
    proj = {name.split(" (")[0]: (one, eight) for name, one, eight in res["projection"]}
    assert proj["extract"][0] == pytest.approx(13320 * 7.21 * 25 / res["extract_frames_per_s"] / 3600)
    assert proj["train rgb"][0] == pytest.approx(80 * 9537 / res["train_rgb_clips_per_s"] / 3600)
    assert proj["train flow"][0] == pytest.approx(340 * 9537 / res["train_flow_clips_per_s"] / 3600)
    assert proj["test flow"][0] == pytest.approx(3783 / res["test_flow_videos_per_s"] / 3600)
    parts = [v for k, v in proj.items() if k != "total"]
    assert proj["total"][0] == pytest.approx(sum(p[0] for p in parts))
    assert all(eight == pytest.approx(one / 8) for one, eight in proj.values())
    md = (tmp_path / "r.md").read_text()
    assert "| train flow" in md and "| total |" in md
