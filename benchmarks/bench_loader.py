"""Loader throughput per worker process (docs/design.md, Data flow): how many workers keep a GPU fed.

Writes a frame store of real JPEGs (240x320, textured, like UCF101 after extraction) to a temp
folder, then measures loader clips/s (FrameDataset, train mode, N = 6, 224x224 uint8 clips,
batch 8) with 1 worker (the per-worker rate) and with 2 workers, in one run on this machine; the
first batch (worker start-up) is not timed. The baseline a loader must outrun is what one GPU
training step consumes: ``benchmarks/gpu_check.py`` measures that on the GPU and divides; a CPU
training step here (far slower than any GPU) would make every loader look fast enough. Run:
    python benchmarks/bench_loader.py [--videos 16] [--clips 48]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from tstam.data import DataConfig, FrameDataset, VideoRecord, build_loader
from tstam.models import ModelConfig


def make_store(root: Path, videos: int, frames: int, seed: int = 0) -> list[VideoRecord]:
    rng = np.random.default_rng(seed)
    recs = []
    for v in range(videos):
        base = cv2.GaussianBlur(rng.integers(0, 256, (240 + 64, 320 + 64, 3), dtype=np.uint8), (0, 0), 3)
        flow_base = cv2.GaussianBlur(rng.integers(0, 256, (240, 320), dtype=np.uint8), (0, 0), 8)
        d = root / f"v_{v:03d}"
        d.mkdir()
        for i in range(1, frames + 1):
            img = base[i % 64:i % 64 + 240, i % 64:i % 64 + 320]  # moving texture
            cv2.imwrite(str(d / f"img_{i:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if i < frames:
                cv2.imwrite(str(d / f"flow_x_{i:05d}.jpg"), flow_base, [cv2.IMWRITE_JPEG_QUALITY, 90])
                cv2.imwrite(str(d / f"flow_y_{i:05d}.jpg"), 255 - flow_base, [cv2.IMWRITE_JPEG_QUALITY, 90])
        recs.append(VideoRecord(video_id=d.name, path=f"C/{d.name}.avi", label=v % 101, num_frames=frames))
    return recs


def loader_rate(ds: FrameDataset, workers: int, clips: int, batch: int = 8) -> float:
    loader = build_loader(ds, batch_size=batch, shuffle=True, workers=workers, seed=0, drop_last=True)
    n, epoch, t0 = 0, 0, None
    while n < clips:
        loader.set_epoch(epoch)
        for x, _ in loader:
            if t0 is None:  # first batch: worker start-up, not throughput
                t0 = time.perf_counter()
                continue
            n += x.shape[0]
            if n >= clips:
                break
        epoch += 1
    rate = n / (time.perf_counter() - t0)
    del loader
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--clips", type=int, default=48, help="clips timed per loader setting")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        recs = make_store(Path(tmp), args.videos, args.frames)
        print(f"frame store: {args.videos} videos x {args.frames} frames (240x320 JPEG) in {time.perf_counter() - t0:.1f} s")
        rows = []
        for modality in ("rgb", "flow"):
            ds = FrameDataset(recs, root=tmp, mode="train", data=DataConfig(),
                              model=ModelConfig(modality=modality, num_classes=101), seed=0)
            rows.append((modality, loader_rate(ds, 1, args.clips // 2), loader_rate(ds, 2, args.clips)))
    print()
    print("| modality | loader 1 worker clips/s (per worker) | loader 2 workers clips/s | 2w / 1w |")
    print("|---|---|---|---|")
    for modality, r1, r2 in rows:
        print(f"| {modality} | {r1:.1f} | {r2:.1f} | {r2 / r1:.2f} |")
    print("\nclips = N 6 snippets at 224x224 (RGB 3 channels; flow 5 fields = 10 channels), train augmentation.")
    print("A GPU consuming G clips/s needs about G / (per-worker clips/s) workers.")


if __name__ == "__main__":
    main()
