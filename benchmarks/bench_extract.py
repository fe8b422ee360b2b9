"""Extraction speed with ``tvl1_torch``: against OpenCV's TV-L1 extraction in the same
run, and how many decode workers keep a device (a GPU) busy.

Run:
    python benchmarks/bench_extract.py                      # CPU, a few minutes on 2 cores
    python benchmarks/bench_extract.py --device cuda --workers 8 --videos 48 --frames 0   # a GPU box
    python benchmarks/bench_extract.py --balance-only --balance-frames 3 --seconds 0      # part 2, seconds (the tests)

Part 1, a folder of videos (``--videos`` links to the real clips of ``tests/data``, the first
``--frames`` frames of each, 0 = all, decoded at 320x240) extracted by ``tstam.extract.extract_many``
three ways: OpenCV's TV-L1 one video per worker (the baseline), ``tvl1_torch`` one video per
worker, and ``tvl1_torch`` batched (decode workers, flow in this process on ``--device``, batch
from its memory budget). Columns: videos/s and flow pairs/s (wall clock), CPU seconds of all
processes, pairs per CPU second (per core), and the ratios to the baseline.

Part 2, the balance of the batched path (``tstam.extract.workers``): one worker's rate on its jobs
in frames per CPU second (decode + RGB JPEGs + grey conversion; the flow JPEGs of a frame pair),
the device's flow rate in pairs/s (``flow_pairs(..., quantize=True)``, transfers included), and
the decode workers that rate needs: ``ceil(flow pairs/s x worker CPU seconds per frame)``. The
main process's own work (batching, copies) is not counted.
"""
from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from tstam.data import store
from tstam.extract import collect_sources, decode_and_write_rgb, extract_many
from tstam.flow import FlowConfig, flow_pairs, to_gray

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "realdata" / "videos"
CLIPS = ["v_ApplyEyeMakeup_g01_c01.avi", "v_BaseballPitch_g01_c01.avi", "mmaction2_test.mp4"]
SIZE = (320, 240)  # width, height
TORCH_FLOW = FlowConfig(algorithm="tvl1_torch")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the workers, once joined)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def video_folder(root: Path, n: int) -> list[Path]:
    """``n`` links to the real clips, each with its own video id."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        link = root / f"clip{k:03d}_{CLIPS[k % len(CLIPS)]}"
        if not link.exists():
            link.symlink_to(VIDEOS / CLIPS[k % len(CLIPS)])
    return collect_sources(root)


def extraction_rows(sources: list[Path], out: Path, *, frames: int, workers: int, device: str) -> list[dict]:
    """Part 1: one row per way of extracting ``sources``."""
    ways = [("OpenCV tvl1, per video", FlowConfig(), None), ("tvl1_torch, per video", TORCH_FLOW, None),
            (f"tvl1_torch, batched on {device}", TORCH_FLOW, device)]
    if not hasattr(cv2, "optflow"):
        print("(no OpenCV contrib here: the OpenCV TV-L1 baseline row is left out)")
        ways = ways[1:]
    rows = []
    for name, flow, dev in ways:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        report = extract_many(sources, out / name.replace(" ", "_").replace(",", ""), flow=flow, size=SIZE,
                              max_frames=frames or None, workers=workers, device=dev, progress=False)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        assert report.ok, report.failed
        pairs = report.frames - len(report.done)
        rows.append({"way": name, "videos": len(report.done), "pairs": pairs, "seconds": wall, "cpu_s": cpu,
                     "videos_per_s": len(report.done) / wall, "pairs_per_s": pairs / wall,
                     "pairs_per_cpu_s": pairs / cpu})
    return rows


def worker_rates(out: Path, *, frames: int, device: str) -> dict:
    """Part 2, the worker's side: frames per CPU second of the decode job and of the flow-JPEG job."""
    cv2.setNumThreads(1)
    dec_cpu = write_cpu = 0.0
    n_frames = n_pairs = 0
    for k, name in enumerate(CLIPS):
        vdir = out / f"rate{k}"
        c0 = time.process_time()
        rgb, _meta = decode_and_write_rgb(VIDEOS / name, vdir, flow=TORCH_FLOW, size=SIZE, short_side=None,
                                          max_frames=frames or None, jpeg_quality=95, strict=False)
        gray = to_gray(rgb)
        dec_cpu += time.process_time() - c0
        q = flow_pairs(gray[:-1], gray[1:], TORCH_FLOW, device=device, quantize=True)  # real flow to encode
        c0 = time.process_time()
        store.write_flow(vdir, q, 95)
        write_cpu += time.process_time() - c0
        n_frames, n_pairs = n_frames + len(gray), n_pairs + len(q)
    return {"decode_fps": n_frames / dec_cpu, "write_fps": n_pairs / write_cpu}


def device_rate(device: str, *, seconds: float) -> dict:
    """Part 2, the device's side: quantised tvl1_torch pairs/s at 320x240 in batches from its budget."""
    from tstam.device import resolve_device
    from tstam.flow.tvl1_torch import batch_size_for, default_budget
    from tstam.video import read_video

    dev = resolve_device(device)
    gray = np.concatenate([to_gray(read_video(VIDEOS / c, size=SIZE, max_frames=40).frames) for c in CLIPS])
    bs = batch_size_for(default_budget(dev), SIZE[1], SIZE[0], TORCH_FLOW.tvl1)
    idx = np.arange(bs) % (len(gray) - 1)  # consecutive pairs of the clips, repeated to fill a batch
    prev, nxt = gray[idx], gray[idx + 1]
    flow_pairs(prev[:2], nxt[:2], TORCH_FLOW, device=str(dev), quantize=True)  # warm-up
    t0, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - t0 < seconds:
        n += len(flow_pairs(prev, nxt, TORCH_FLOW, device=str(dev), batch_size=bs, quantize=True))
    return {"device": str(dev), "batch": bs, "pairs_per_s": n / (time.perf_counter() - t0)}


def balance(device: str, *, frames: int = 40, seconds: float = 10.0) -> dict:
    """Part 2: worker rates, the device's flow rate, and the decode workers that keep it busy."""
    with tempfile.TemporaryDirectory() as tmp:
        rates = worker_rates(Path(tmp), frames=frames, device=device)
    flow = device_rate(device, seconds=seconds)
    per_frame = 1.0 / rates["decode_fps"] + 1.0 / rates["write_fps"]  # worker CPU seconds per frame
    return {**rates, **flow, "worker_s_per_frame": per_frame,
            "workers_needed": math.ceil(flow["pairs_per_s"] * per_frame)}


def format_balance(b: dict) -> str:
    return (f"one worker: decode + RGB JPEGs + grey {b['decode_fps']:.0f} frames/CPU-s, flow JPEGs "
            f"{b['write_fps']:.0f} pairs/CPU-s ({1000 * b['worker_s_per_frame']:.2f} ms per frame)\n"
            f"flow on {b['device']}: {b['pairs_per_s']:.1f} pairs/s at {SIZE[0]}x{SIZE[1]} in batches of {b['batch']}\n"
            f"decode workers to keep {b['device']} busy: {b['workers_needed']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="where the batched path computes the flow: cpu, cuda, cuda:N")
    ap.add_argument("--workers", type=int, default=1, help="worker processes of every way (default 1)")
    ap.add_argument("--videos", type=int, default=6, help="videos in the folder (links to the 3 real clips)")
    ap.add_argument("--frames", type=int, default=16, help="first frames of each video (0: all)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timing of the device's flow rate")
    ap.add_argument("--balance-frames", type=int, default=40, help="first frames of each real clip in part 2")
    ap.add_argument("--balance-only", action="store_true", help="part 2 only")
    args = ap.parse_args()
    if args.balance_only:
        print(format_balance(balance(args.device, frames=args.balance_frames, seconds=args.seconds)))
        return
    print(f"{sys.argv[0]} --device {args.device} --workers {args.workers} --videos {args.videos} "
          f"--frames {args.frames}: {SIZE[0]}x{SIZE[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = extraction_rows(video_folder(Path(tmp) / "videos", args.videos), Path(tmp) / "out",
                               frames=args.frames, workers=args.workers, device=args.device)
    base = rows[0]
    head = (f"{'extraction':34s} {'videos':>6s} {'pairs':>6s} {'videos/s':>9s} {'pairs/s':>8s} {'x base':>7s} "
            f"{'CPU s':>7s} {'pairs/CPU-s':>11s} {'x base':>7s}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['way']:34s} {r['videos']:6d} {r['pairs']:6d} {r['videos_per_s']:9.3f} {r['pairs_per_s']:8.2f} "
              f"{r['pairs_per_s'] / base['pairs_per_s']:7.2f} {r['cpu_s']:7.1f} {r['pairs_per_cpu_s']:11.2f} "
              f"{r['pairs_per_cpu_s'] / base['pairs_per_cpu_s']:7.2f}")
    print(format_balance(balance(args.device, frames=args.balance_frames, seconds=args.seconds)))


if __name__ == "__main__":
    main()
