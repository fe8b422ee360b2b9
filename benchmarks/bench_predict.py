"""Benchmark: where the time of ``tstam predict`` goes, per video: decode, flow, model.

For one real clip (``realdata/videos``, 25 snippets per stream, both streams) at two sizes:

- full: the paper's model (224 crops, width 1.0, frames decoded at 240x320);
- demo: the synthetic recipe's model (96 crops, width 0.5, frames at 128x160);

it times decoding (``read_video`` at the training size), the flow of the sampled snippets (the
algorithm a flow checkpoint records; TV-L1 by default, as the paper), the RGB sampling, and the
two models with 1 crop and with 10 crops (paper 4.2), run as ``tstam predict`` runs them (BN-folded
inference copies; the plain model's 1-crop time is printed for comparison). Times are CPU seconds of this process with
one thread everywhere (torch and OpenCV), so they are per-core latencies that hold on a busy
machine; wall seconds are printed beside them. Ratios: each part's share of the per-video
total, for 1 and for 10 crops, all from the same run. Weights are random (timing only).

    python benchmarks/bench_predict.py                       # both sizes, TV-L1 (~2-3 min on 2 cores)
    python benchmarks/bench_predict.py --sizes demo --flow dis
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch

from tstam.checkpoint import save_checkpoint
from tstam.config import to_dict
from tstam.flow import FlowConfig
from tstam.inference import Recognizer
from tstam.models import ModelConfig, build_model
from tstam.video import read_video

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "realdata" / "videos"
SIZES = {  # name: (input_size, width_mult, resize H, W)
    "full": (224, 1.0, [240, 320]),
    "demo": (96, 0.5, [128, 160]),
}


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _since(t: tuple[float, float]) -> tuple[float, float]:
    return time.process_time() - t[0], time.perf_counter() - t[1]


def make_recognizer(d: Path, size: str, flow: FlowConfig) -> Recognizer:
    input_size, width, resize = SIZES[size]
    paths = {}
    for m in ("rgb", "flow"):
        cfg = ModelConfig(modality=m, num_classes=101, input_size=input_size, width_mult=width)
        paths[m] = save_checkpoint(d / f"{size}_{m}.pt", {
            "model": build_model(cfg).state_dict(), "model_config": to_dict(cfg), "classes": [str(i) for i in range(101)],
            "flow": flow.describe() if m == "flow" else None, "config": {"data": {"resize": resize, "test_frames": 25}}})
    return Recognizer.from_paths(rgb=paths["rgb"], flow=paths["flow"])


def bench(rec: Recognizer, video: Path) -> dict[str, tuple[float, float]]:
    h, w = rec.resize
    t = _clock()
    frames = read_video(video, size=(w, h)).frames
    out = {"decode": _since(t)}
    t = _clock()
    flow_clip, flow_starts = rec.sample("flow", frames)
    out["flow"] = _since(t)
    t = _clock()
    rgb_clip, rgb_starts = rec.sample("rgb", frames)
    out["sample rgb"] = _since(t)
    rec.run_stream("rgb", rgb_clip[:2], rgb_starts[:2])  # warm-up (allocator, kernels)
    for crops in (1, 10):
        t = _clock()
        rec.run_stream("rgb", rgb_clip, rgb_starts, num_crops=crops)
        rec.run_stream("flow", flow_clip, flow_starts, num_crops=crops)
        out[f"model {crops} crop{'s' if crops > 1 else ''}"] = _since(t)
    plain = Recognizer(list(rec.streams.values()), fast=False)  # the same weights without BN folding
    plain.run_stream("rgb", rgb_clip[:2], rgb_starts[:2])
    t = _clock()
    plain.run_stream("rgb", rgb_clip, rgb_starts)
    plain.run_stream("flow", flow_clip, flow_starts)
    out["plain 1 crop"] = _since(t)
    out["frames"] = (float(len(frames)), 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", default=str(VIDEOS / "v_BaseballPitch_g01_c01.avi"))
    ap.add_argument("--sizes", default="demo,full", help="comma-separated: demo, full")
    ap.add_argument("--flow", default="tvl1", choices=("tvl1", "dis", "farneback"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    flow = FlowConfig(algorithm=args.flow)
    print(f"video {Path(args.video).name}; flow {args.flow}; 25 snippets per stream, both streams; "
          f"1 thread; CPU s (wall s)")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            rec = make_recognizer(Path(tmp), size, flow)
            r = bench(rec, Path(args.video))
            input_size, width, resize = SIZES[size]
            print(f"\n[{size}] crops {input_size}, width {width}, frames {resize[0]}x{resize[1]}, "
                  f"{int(r.pop('frames')[0])} frames decoded")
            plain = r.pop("plain 1 crop")
            base = r["decode"][0] + r["flow"][0] + r["sample rgb"][0]
            totals = {c: base + r[f"model {c} crop{'s' if c > 1 else ''}"][0] for c in (1, 10)}
            for name, (cpu, wall) in r.items():
                shares = []
                for c in (1, 10):
                    model_key = f"model {c} crop{'s' if c > 1 else ''}"
                    if name == "plain 1 crop":
                        shares.append("    -")
                    elif name.startswith("model") and name != model_key:
                        shares.append("    -")
                    else:
                        shares.append(f"{100 * cpu / totals[c]:5.1f}%")
                print(f"  {name:14s} {cpu:8.3f} s ({wall:7.3f} s)   share of total: 1 crop {shares[0]}, "
                      f"10 crops {shares[1]}")
            print(f"  {'total':14s} 1 crop {totals[1]:.2f} s, 10 crops {totals[10]:.2f} s per video; "
                  f"flow share {100 * r['flow'][0] / totals[1]:.1f}% / {100 * r['flow'][0] / totals[10]:.1f}%; "
                  f"10 crops / 1 crop = {totals[10] / totals[1]:.2f}x")
            print(f"  model 1 crop without BN folding (fast=False): {plain[0]:.3f} s = "
                  f"{plain[0] / max(r['model 1 crop'][0], 1e-9):.2f}x the folded copy")


if __name__ == "__main__":
    main()
