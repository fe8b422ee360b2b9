"""GPU check of tvl1_torch: pairs/s at 320x240 and 340x256, peak memory, accuracy.

For the project's GPU check (``benchmarks/gpu_check.py``); needs only PyTorch and tstam on the GPU box: accuracy is
measured against OpenCV's TV-L1 flows computed on a CPU and stored in
``benchmarks/data/tvl1_reference.npz`` (6 real frame pairs at 320x240, 2 from each clip of
``bench_flow.CLIPS``, with OpenCV's flow for ``TVL1Params()`` rounded to 1/256 px, in float16).

Run:
    python benchmarks/gpu_flow.py [--device cuda:0] [--compile]   # on a GPU box (+ extraction balance)
    python benchmarks/gpu_flow.py --device cpu --tiny               # tiny CPU mode (the test suite)
    python benchmarks/gpu_flow.py --make-reference                  # rewrite the reference file
                                                                    # (needs PyAV and OpenCV contrib)
Each row: pairs/s with the batch chosen by ``batch_size_for`` from the default memory budget (half
the free GPU memory), peak memory (``torch.cuda.max_memory_allocated``) against the stated
``bytes_per_pair`` x batch, and the mean / max end-point error against the reference flows.
Goal: >= 1500 pairs/s at 320x240 on one H100-class GPU, at a mean EPE <= 0.01 px to OpenCV.
Then (``extraction_balance``, needs PyAV) the decode workers that keep the device busy in
``tstam extract --flow tvl1_torch --device cuda``: ``benchmarks/bench_extract.py``'s part 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tstam.flow import TVL1Params
from tstam.flow.tvl1_torch import batch_size_for, bytes_per_pair, default_budget, resolve_device, tvl1_flow

REFERENCE = Path(__file__).resolve().parent / "data" / "tvl1_reference.npz"
PAIRS = {0: (40, 42), 1: (50, 53), 2: (70, 71)}  # per clip of bench_flow.CLIPS: first frames of moving pairs
SIZES = ((320, 240), (340, 256))  # width x height measured
GOAL = 1500.0  # pairs/s at 320x240 on one H100-class GPU
EPE_GOAL = 0.01  # px, mean end-point difference to OpenCV's flow


def make_reference(path: Path = REFERENCE) -> None:
    """Write the reference pairs and OpenCV's flow for them (on a CPU with PyAV and OpenCV contrib)."""
    import cv2
    from bench_flow import gray_clips  # a script beside this one: its folder is on sys.path

    from tstam.flow import FlowConfig, compute_flow

    cv2.setNumThreads(1)
    clips = gray_clips(SIZES[0])
    prev = np.stack([clips[c][t] for c, ts in PAIRS.items() for t in ts])
    nxt = np.stack([clips[c][t + 1] for c, ts in PAIRS.items() for t in ts])
    flow = np.stack([compute_flow(np.stack([a, b]), FlowConfig())[0] for a, b in zip(prev, nxt)])
    path.parent.mkdir(parents=True, exist_ok=True)
    flow = (np.round(flow * 256) / 256).astype(np.float16)  # 1/256 px steps compress better
    np.savez_compressed(path, prev=prev, next=nxt, flow=flow, opencv=cv2.__version__,
                        params=json.dumps(dataclasses.asdict(TVL1Params())))


def load_reference(path: Path = REFERENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prev, next) (N, H, W) uint8 and OpenCV's flow (N, H, W, 2) float32; the file must hold the
    flow of the current ``TVL1Params()`` defaults."""
    with np.load(path) as ref:
        params = json.loads(str(ref["params"]))
        if params != dataclasses.asdict(TVL1Params()):
            raise ValueError(f"{path} holds flows for TVL1Params {params}, not the current defaults "
                             f"{dataclasses.asdict(TVL1Params())}; rerun with --make-reference")
        return ref["prev"], ref["next"], ref["flow"].astype(np.float32)


def _resized(frames: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, h, w) uint8, for timing at other sizes."""
    if frames.shape[-2:] == (h, w):
        return frames
    out = F.interpolate(frames[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)
    return out[:, 0].round().clamp(0, 255).to(torch.uint8)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run(device: str = "cuda", *, tiny: bool = False, compile: bool = False, seconds: float = 10.0) -> list[dict]:
    """Measure tvl1_torch on ``device``; one row (dict) per frame size.

    ``tiny``: 2 reference pairs, timing at 80x60 in batches of 2 (a CPU can run it in seconds).
    ``seconds``: timing runs whole batches until this much time has passed.
    """
    dev = resolve_device(device)
    prev, nxt, ref = load_reference()
    if tiny:
        prev, nxt, ref = prev[:2], nxt[:2], ref[:2]
    a, b = torch.from_numpy(prev).to(dev), torch.from_numpy(nxt).to(dev)
    flow = tvl1_flow(a, b, compile=compile).cpu().numpy()  # also the warm-up (and compilation)
    epe = np.linalg.norm(flow - ref, axis=-1).mean((1, 2))  # (N,) mean end-point difference per pair
    rows = []
    for w, h in ((80, 60),) if tiny else SIZES:
        bs = 2 if tiny else batch_size_for(default_budget(dev), h, w)
        idx = torch.arange(bs) % len(prev)  # the reference pairs, repeated to fill a batch
        ba, bb = _resized(a, w, h)[idx], _resized(b, w, h)[idx]
        tvl1_flow(ba[:len(prev)], bb[:len(prev)], compile=compile)  # warm-up at this size
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
        _sync(dev)
        t0, n = time.perf_counter(), 0
        while n == 0 or (time.perf_counter() - t0 < seconds and not tiny):
            tvl1_flow(ba, bb, batch_size=bs, compile=compile)
            _sync(dev)
            n += bs
        elapsed = time.perf_counter() - t0
        peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20 if dev.type == "cuda" else float("nan")
        at_ref = (w, h) == (prev.shape[2], prev.shape[1])
        rows.append({
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "size": f"{w}x{h}", "batch": bs, "compile": compile, "pairs_per_s": n / elapsed,
            "peak_mib": peak, "model_mib": bs * bytes_per_pair(h, w) / 2**20,
            "epe_mean": float(epe.mean()) if at_ref or tiny else float("nan"),
            "epe_max_pair": float(epe.max()) if at_ref or tiny else float("nan"),
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    head = (f"{'device':24s} {'size':>8s} {'compile':>7s} {'batch':>6s} {'pairs/s':>9s} {'peak MiB':>9s} "
            f"{'stated MiB':>10s} {'EPE vs OpenCV':>13s} {'worst pair':>10s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['device'][:24]:24s} {r['size']:>8s} {str(r['compile']):>7s} {r['batch']:6d} "
                     f"{r['pairs_per_s']:9.1f} {r['peak_mib']:9.0f} {r['model_mib']:10.0f} "
                     f"{r['epe_mean']:13.4f} {r['epe_max_pair']:10.4f}")
    goal = [r for r in rows if r["size"] == "320x240"]
    for r in goal:
        met = r["pairs_per_s"] >= GOAL and r["epe_mean"] <= EPE_GOAL
        lines.append(f"goal at 320x240 (compile={r['compile']}): >= {GOAL:.0f} pairs/s at mean EPE <= {EPE_GOAL} px: "
                     f"{r['pairs_per_s']:.0f} pairs/s, EPE {r['epe_mean']:.4f} px -> {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def extraction_balance(device: str = "cuda", seconds: float = 10.0) -> str:
    """Decode frames/s per worker against the device's flow pairs/s, and the workers needed
    (``bench_extract.balance``); a line saying why not where PyAV is missing."""
    try:
        import bench_extract  # a script beside this one: its folder is on sys.path
    except ImportError as e:
        return f"extraction balance: not measured ({e}); it decodes the real clips with PyAV"
    return bench_extract.format_balance(bench_extract.balance(device, seconds=seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cpu, cuda or cuda:N")
    ap.add_argument("--tiny", action="store_true", help="2 pairs, 80x60 timing (runs on a CPU in seconds)")
    ap.add_argument("--compile", action="store_true", help="also measure with torch.compile'd inner iterations "
                    "(tvl1_flow's default on CUDA)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timing per size")
    ap.add_argument("--make-reference", action="store_true", help=f"rewrite {REFERENCE.name} with OpenCV")
    args = ap.parse_args()
    if args.make_reference:
        make_reference()
        print(f"wrote {REFERENCE}")
        return
    rows = run(args.device, tiny=args.tiny, seconds=args.seconds)
    if args.compile:
        rows += run(args.device, tiny=args.tiny, compile=True, seconds=args.seconds)
    print(format_rows(rows))
    if not args.tiny:
        print(extraction_balance(args.device, args.seconds))


if __name__ == "__main__":
    main()
