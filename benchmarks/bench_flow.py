"""Optical-flow speed and accuracy at 320x240: our TV-L1 defaults vs OpenCV's.

Run: ``python benchmarks/bench_flow.py [--real-pairs 3] [--synth-pairs 6]`` (about 1-2 min).

Rows: OpenCV TV-L1 with its default parameters (the baseline, measured in the same run), our
default (``tstam.flow.FlowConfig()``), single-change variants that show where the speed comes
from, DIS and Farneback. Columns:

- pairs/s/core: frame pairs per second of CPU time with ``cv2.setNumThreads(1)``;
- x base: speed relative to the baseline;
- EPE real vs base: mean endpoint error (px) against the baseline's flow on real clips
  (``realdata/videos``, resized to 320x240): how much the output changes;
- EPE synth: mean endpoint error against ground truth on real frames warped by a known smooth
  motion (translation up to 3, 6 or 12 px plus rotation, zoom and a smooth random field);
  ``synth<=6`` is the mean over the pairs with small motion only; x base = EPE / baseline EPE;
- +JPEG: EPE against ground truth after the store's quantisation (``bound`` 20, uint8) and
  JPEG (quality 95) round trip, i.e. what a model reading the frame store sees.

Then ``tvl1_torch`` (PyTorch tensor ops on the CPU, one torch thread) against OpenCV's
TV-L1 with the same parameters (our default row): pairs/s per core one pair at a time and in
batches, the ratio to OpenCV, EPE against OpenCV's flow on the real and the synthetic pairs, EPE
against ground truth, memory per pair, and where its CPU time goes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from tstam.flow import (
    DISParams,
    FlowConfig,
    TVL1Params,
    dequantize_flow,
    end_point_error,
    iter_flow,
    known_motion_pairs,
    quantize_flow,
    tvl1_torch,
)
from tstam.video import read_video

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "realdata" / "videos"
CLIPS = ["v_ApplyEyeMakeup_g01_c01.avi", "v_BaseballPitch_g01_c01.avi", "mmaction2_test.mp4"]
SIZE = (320, 240)
MARGIN = 8  # border pixels left out of every EPE (no correspondence there)


def gray_clips(size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """The real clips as (T, H, W) uint8 gray at ``size`` (width, height)."""
    out = []
    for name in CLIPS:
        frames = read_video(VIDEOS / name, size=size).frames
        out.append(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]))
    return out


def real_pairs(clips: list[np.ndarray], per_clip: int) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for g in clips:
        for i in np.linspace(0, len(g) - 2, per_clip).astype(int):
            pairs.append((g[i], g[i + 1]))
    return pairs


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return end_point_error(a, b, MARGIN)


def jpeg_roundtrip(flow: np.ndarray, bound: float) -> np.ndarray:
    q = quantize_flow(flow, bound)
    back = []
    for c in range(2):
        ok, buf = cv2.imencode(".jpg", q[..., c], [cv2.IMWRITE_JPEG_QUALITY, 95])
        back.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    return dequantize_flow(np.stack(back, -1), bound)


def run_flow(cfg: FlowConfig, pairs) -> tuple[list[np.ndarray], float]:
    """Flows of the pairs and CPU seconds per pair (one OpenCV thread)."""
    flows = []
    cpu = 0.0
    for a, b in pairs:
        t0 = time.process_time()
        flows.append(next(iter_flow(np.stack([a, b]), cfg)))
        cpu += time.process_time() - t0
    return flows, cpu / len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-pairs", type=int, default=3, help="frame pairs per real clip")
    ap.add_argument("--synth-pairs", type=int, default=6, help="synthetic pairs with known motion")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    clips = gray_clips()
    real = real_pairs(clips, args.real_pairs)
    synth = known_motion_pairs(clips, args.synth_pairs)
    synth_ab = [(a, b) for a, b, _, _ in synth]
    small = [i for i, s in enumerate(synth) if s[3] <= 6]
    ours = FlowConfig()
    rows = [
        ("TV-L1 OpenCV defaults (baseline)", FlowConfig(tvl1=TVL1Params.opencv_defaults())),
        ("TV-L1 ours (default)", ours),
        ("  ours but epsilon 0.01", FlowConfig(tvl1=TVL1Params(epsilon=0.01))),
        ("  ours but pyramid 0.8 x 5", FlowConfig(tvl1=TVL1Params(scale_step=0.8, nscales=5))),
        ("  ours + warps 3", FlowConfig(tvl1=TVL1Params(warps=3))),
        ("  ours + epsilon 0.05", FlowConfig(tvl1=TVL1Params(epsilon=0.05))),
        ("DIS medium", FlowConfig(algorithm="dis")),
        ("DIS fast", FlowConfig(algorithm="dis", dis=DISParams(preset="fast"))),
        ("Farneback", FlowConfig(algorithm="farneback")),
        ("tvl1_torch (PyTorch, CPU, 1 by 1)", FlowConfig(algorithm="tvl1_torch")),
    ]
    print(f"{len(real)} real pairs ({', '.join(CLIPS)}) and {len(synth)} synthetic pairs at "
          f"{SIZE[0]}x{SIZE[1]}, one OpenCV thread, CPU time; EPE in px\n")
    head = (f"{'method':34s} {'pairs/s/core':>12s} {'x base':>7s} {'EPE real':>9s} {'EPE synth':>9s} "
            f"{'x base':>7s} {'synth<=6':>8s} {'+JPEG':>7s}")
    print(head + "\n" + "-" * len(head), flush=True)
    base_speed = base_synth = None
    base_real: list[np.ndarray] = []
    ours_real: list[np.ndarray] = []
    ours_synth: list[np.ndarray] = []
    measured = {}
    for name, cfg in rows:
        f_real, t_real = run_flow(cfg, real)
        f_synth, t_synth = run_flow(cfg, synth_ab)
        speed = 1.0 / ((t_real * len(real) + t_synth * len(synth)) / (len(real) + len(synth)))
        measured[name] = (speed, f_real, f_synth)
        e_synth = float(np.mean([epe(f, s[2]) for f, s in zip(f_synth, synth)]))
        e_small = float(np.mean([epe(f_synth[i], synth[i][2]) for i in small])) if small else float("nan")
        e_jpeg = float(np.mean([epe(jpeg_roundtrip(f, cfg.bound), s[2]) for f, s in zip(f_synth, synth)]))
        if base_speed is None:
            base_speed, base_synth, base_real = speed, e_synth, f_real
        if cfg == ours:
            ours_real, ours_synth = f_real, f_synth
            goal = (speed / base_speed, e_synth / base_synth)
        e_real = float(np.mean([epe(a, b) for a, b in zip(f_real, base_real)]))
        print(f"{name:34s} {speed:12.2f} {speed / base_speed:7.2f} {e_real:9.3f} {e_synth:9.3f} "
              f"{e_synth / base_synth:7.2f} {e_small:8.3f} {e_jpeg:7.3f}", flush=True)

    mag = float(np.mean([np.linalg.norm(f, axis=-1)[MARGIN:-MARGIN, MARGIN:-MARGIN].mean() for f in base_real]))
    q_only = float(np.mean([epe(dequantize_flow(quantize_flow(f, 20.0), 20.0), f) for f in ours_real + ours_synth]))
    q_jpeg = float(np.mean([epe(jpeg_roundtrip(f, 20.0), f) for f in ours_real + ours_synth]))
    print(f"\nmean |flow| of the baseline on the real pairs: {mag:.3f} px")
    print(f"error added by storing our flow (bound 20): uint8 quantisation {q_only:.3f} px EPE, "
          f"uint8 + JPEG q95 {q_jpeg:.3f} px EPE (step 40/255 = {40 / 255:.3f} px)")

    print(f"goal (ours >= 3x baseline speed, <= 1.05x its EPE vs ground truth): speed x{goal[0]:.2f} "
          f"{'met' if goal[0] >= 3 else 'NOT met'}, EPE x{goal[1]:.2f} {'met' if goal[1] <= 1.05 else 'NOT met'}")

    # Threads: wall time of our default on the real pairs with 1 vs all OpenCV threads.
    walls = {}
    for n in (1, cv2.getNumberOfCPUs()):
        cv2.setNumThreads(n)
        t0 = time.perf_counter()
        run_flow(ours, real)
        walls[n] = time.perf_counter() - t0
    cv2.setNumThreads(1)
    n_all = cv2.getNumberOfCPUs()
    print(f"our default, wall clock on {len(real)} real pairs: 1 thread {len(real) / walls[1]:.2f} pairs/s, "
          f"{n_all} threads {len(real) / walls[n_all]:.2f} pairs/s (x{walls[1] / walls[n_all]:.2f}; "
          f"one process per core gives x{n_all} at best)")

    torch_rows(real, synth, measured["TV-L1 ours (default)"], measured["tvl1_torch (PyTorch, CPU, 1 by 1)"])


class _Profile:
    """CPU seconds spent in tvl1_torch's parts, by wrapping its module functions while active."""

    PARTS = {"_step": "inner iterations", "median_filter": "median filter", "_linearise": "warping + linearisation",
             "_resize": "pyramid + upsampling"}

    def __enter__(self) -> dict[str, float]:
        self.saved = {name: getattr(tvl1_torch, name) for name in self.PARTS}
        self.seconds = dict.fromkeys(self.PARTS.values(), 0.0)
        for name, fn in self.saved.items():
            def timed(*args, _fn=fn, _part=self.PARTS[name], **kw):
                t0 = time.process_time()
                out = _fn(*args, **kw)
                self.seconds[_part] += time.process_time() - t0
                return out
            setattr(tvl1_torch, name, timed)
        return self.seconds

    def __exit__(self, *exc) -> None:
        for name, fn in self.saved.items():
            setattr(tvl1_torch, name, fn)


def torch_rows(real, synth, opencv, one_by_one) -> None:
    """tvl1_torch on the CPU against OpenCV's TV-L1 with the same parameters (our default)."""
    cv_speed, cv_real, cv_synth = opencv
    pairs = real + [(a, b) for a, b, _, _ in synth]
    prev, nxt = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
    cfg = FlowConfig(algorithm="tvl1_torch")
    h, w = prev.shape[1:]
    default_bs = tvl1_torch.batch_size_for(tvl1_torch.default_budget(torch.device("cpu")), h, w, cfg.tvl1)
    variants = [("tvl1_torch, 1 pair at a time", one_by_one)]
    total = 0.0
    for bs, interp in ((default_bs, "bicubic"), (default_bs, "bilinear")):
        with _Profile() as parts:
            t0 = time.process_time()
            out = tvl1_torch.tvl1_flow(torch.from_numpy(prev), torch.from_numpy(nxt), cfg.tvl1,
                                       interpolation=interp, batch_size=bs).numpy()
            cpu = time.process_time() - t0
        if interp == "bicubic":
            profile, total = dict(parts), cpu
        label = f"tvl1_torch, batches of {bs}" + (", bilinear warps" if interp == "bilinear" else "")
        variants.append((label, (len(pairs) / cpu, list(out[:len(real)]), list(out[len(real):]))))
    print(f"\ntvl1_torch (PyTorch tensor ops, 1 torch thread) against OpenCV's TV-L1 with the same "
          f"parameters (TVL1Params(), the 'ours' row), {len(real)} real + {len(synth)} synthetic pairs at "
          f"{w}x{h}; EPE vs OpenCV = mean end-point difference to OpenCV's flow (whole image)\n")
    head = (f"{'method':44s} {'pairs/s/core':>12s} {'x OpenCV':>8s} {'EPE vs OpenCV real':>18s} "
            f"{'synth':>6s} {'EPE synth':>9s} {'x OpenCV':>8s}")
    print(head + "\n" + "-" * len(head))
    e_cv = float(np.mean([epe(f, s[2]) for f, s in zip(cv_synth, synth)]))
    print(f"{'OpenCV TV-L1 (same parameters)':44s} {cv_speed:12.2f} {1:8.2f} {0:18.3f} {0:6.3f} {e_cv:9.3f} {1:8.2f}")
    for label, (speed, f_real, f_synth) in variants:
        d_real = float(np.mean([np.linalg.norm(a - b, axis=-1).mean() for a, b in zip(f_real, cv_real)]))
        d_synth = float(np.mean([np.linalg.norm(a - b, axis=-1).mean() for a, b in zip(f_synth, cv_synth)]))
        e = float(np.mean([epe(f, s[2]) for f, s in zip(f_synth, synth)]))
        print(f"{label:44s} {speed:12.2f} {speed / cv_speed:8.2f} {d_real:18.3f} {d_synth:6.3f} {e:9.3f} {e / e_cv:8.2f}")
    per_pair = {"OpenCV": cv_synth, "tvl1_torch": variants[1][1][2]}
    print("EPE against ground truth per synthetic pair (motion up to " + "/".join(f"{s[3]:.0f}" for s in synth)
          + " px): " + "; ".join(f"{k} " + " ".join(f"{epe(f, s[2]):.3f}" for f, s in zip(v, synth))
                                 for k, v in per_pair.items()))
    mib = tvl1_torch.bytes_per_pair(h, w, cfg.tvl1) / 2**20
    print(f"memory per pair at {w}x{h}: {mib:.1f} MiB (tstam.flow.tvl1_torch.bytes_per_pair); default CPU batch "
          f"{default_bs}")
    print(f"where the CPU time of 'batches of {default_bs}' goes: " + ", ".join(
        f"{k} {100 * v / total:.0f} %" for k, v in profile.items()) + f", other {100 * (1 - sum(profile.values()) / total):.0f} %")


if __name__ == "__main__":
    main()
