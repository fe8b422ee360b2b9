"""Batched extraction: ``tstam extract --flow tvl1_torch --device D`` decodes in worker
processes and computes the flow of frame pairs across videos on D. The same files as the
per-video path and as ``compute_flow``; resumable after SIGKILL; corrupt videos reported while the
others finish; device errors named. Every test runs on CPU and, when present, CUDA."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tstam.cli import main as cli_main
from tstam.data import store
from tstam.data.frames import read_flow_frames
from tstam.extract import collect_sources, extract_many
from tstam.flow import FlowConfig, compute_flow, quantize_flow
from tstam.video import read_video

from helpers.clips import drifting_clip, tree_bytes
from helpers.extraction import kill_mid_video_and_rerun
from helpers.realdata import VIDEOS

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]
TORCH_FLOW = FlowConfig(algorithm="tvl1_torch")


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_real_clips_flow_as_compute_flow(tmp_path: Path, device: str) -> None:
    """Three real clips (decoded at 80x60), in batches of 3 pairs across videos."""
    sources = collect_sources(VIDEOS)
    assert len(sources) == 3
    report = extract_many(sources, tmp_path / "b", flow=TORCH_FLOW, short_side=60, max_frames=4, device=device,
                          flow_batch=3, workers=2, progress=False)
    assert report.ok and len(report.done) == 3 and report.frames == 12
    for src in sources:
        vdir = tmp_path / "b" / src.stem
        meta = store.read_meta(vdir)
        frames = read_video(src, short_side=60, max_frames=4).frames
        assert (meta["frames"], meta["flow_frames"], meta["flow"]) == (4, 3, TORCH_FLOW.describe())
        want = quantize_flow(compute_flow(frames, TORCH_FLOW))                # (3, H, W, 2) uint8
        got = read_flow_frames(vdir, [0, 1, 2]).transpose(0, 2, 3, 1)        # (3, H, W, 2) from the JPEGs
        assert got.shape == want.shape == (3, meta["height"], meta["width"], 2)
        assert np.abs(got.astype(int) - want).mean() < 1.0                    # JPEG (quality 95) only
    if device == "cpu":  # the per-video path writes the same bytes
        assert extract_many(sources, tmp_path / "v", flow=TORCH_FLOW, short_side=60, max_frames=4, progress=False).ok
        assert tree_bytes(tmp_path / "b") == tree_bytes(tmp_path / "v")


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path: Path, device: str) -> None:
    videos = tmp_path / "v"
    for k in range(4):
        drifting_clip(videos / f"clip{k}.avi", 12, k, h=48, w=64)
    ref, out = tmp_path / "ref", tmp_path / "out"
    args = ["--flow", "tvl1_torch", "--device", device, "--flow-batch", "4", "--workers", "1", "--no-progress"]
    assert cli_main(["extract", str(videos), "--out", str(ref), *args]) == 0  # uninterrupted

    options = {"flow": "tvl1_torch", "device": device, "flow_batch": 4, "workers": 1}  # = args
    kill_mid_video_and_rerun(videos, out, ref, options, args)


@pytest.mark.slow
def test_corrupt_videos_reported_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = tmp_path / "v"
    drifting_clip(videos / "good0.avi", 4, 0)
    drifting_clip(videos / "good1.avi", 4, 1, h=40, w=56)  # another frame size: batched apart
    drifting_clip(videos / "single.avi", 1, 2)  # one frame: no flow field
    drifting_clip(videos / "thin.avi", 3, 3, h=2, w=32)  # decodes, but too small for the flow (in its own batch)
    (videos / "broken.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 20)
    (videos / "empty.mp4").write_bytes(b"")
    code = cli_main(["extract", str(videos), "--out", str(tmp_path / "s"), "--flow", "tvl1_torch", "--device", "cpu",
                     "--workers", "2", "--flow-batch", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "2 extracted" in captured.out and "4 failed" in captured.out
    err = captured.err
    assert "FAILED" in err and "broken.avi" in err and "empty.mp4: empty file" in err
    assert "single.avi: only 1 frame" in err
    assert "thin.avi: 32x2 frames are too small for tvl1_torch optical flow, which needs at least 3x3 px" in err
    for name, size in (("good0", (64, 48)), ("good1", (56, 40))):
        meta = store.read_meta(tmp_path / "s" / name)
        assert (meta["frames"], meta["flow_frames"], meta["flow"]["algorithm"]) == (4, 3, "tvl1_torch")
        assert (meta["width"], meta["height"]) == size
        assert read_flow_frames(tmp_path / "s" / name, [2]).shape == (1, 2, size[1], size[0])
    assert not any((tmp_path / "s" / name).exists() for name in ("broken", "empty", "single"))
    assert not store.is_complete(tmp_path / "s" / "thin")  # its RGB JPEGs are there, redone by a rerun


def test_device_errors_named_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = drifting_clip(tmp_path / "v" / "one.avi", 3, 0)
    out = tmp_path / "s"
    cases = [(["--flow", "tvl1_torch", "--device", "gpu"], "device 'gpu' is not valid; expected auto, cpu, cuda"),
             (["--flow", "tvl1", "--device", "cpu"], "device 'cpu' is for --flow tvl1_torch"),
             (["--flow", "none", "--device", "cpu"], "RGB-only extraction runs in the worker processes"),
             (["--flow", "tvl1_torch", "--device", "cpu", "--flow-batch", "0"],
              "argument --flow-batch: '0' is not valid; expected an integer >= 1")]
    n = torch.cuda.device_count()
    cases.append((["--flow", "tvl1_torch", "--device", f"cuda:{n}"],
                  f"only {n} CUDA device" if n else "device 'cuda:0': "))
    for args, message in cases:
        assert cli_main(["extract", str(clip), "--out", str(out), "--no-progress", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    with pytest.raises(ValueError, match=r"flow_batch=0 \(--flow-batch\) is not valid"):
        extract_many([clip], out, flow=TORCH_FLOW, device="cpu", flow_batch=0)
    assert not out.exists()  # refused before the output folder was made


@pytest.mark.slow
def test_benchmark_balance_runs_on_cpu() -> None:
    """The GPU check's extraction part (``benchmarks/bench_extract.py`` part 2) runs, on the CPU."""
    r = subprocess.run([sys.executable, str(VIDEOS.parents[3] / "benchmarks" / "bench_extract.py"), "--balance-only",
                        "--balance-frames", "3", "--seconds", "0"], capture_output=True, text=True, timeout=240,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"grey (\d+) frames/CPU-s, flow JPEGs (\d+) pairs/CPU-s .*\n"
                  r"flow on cpu: ([\d.]+) pairs/s at 320x240 in batches of (\d+)\n"
                  r"decode workers to keep cpu busy: (\d+)", r.stdout)
    assert m, r.stdout
    decode_fps, write_fps, pairs_per_s, batch, workers = (float(g) for g in m.groups())
    assert batch == 10  # 128 MiB CPU budget / 11.7 MiB per 320x240 pair
    assert decode_fps > 0 and write_fps > 0 and pairs_per_s > 0 and workers >= 1
