"""Decoding speed per core: ``tstam.video.read_video`` (PyAV) vs ``cv2.VideoCapture``.

Run: ``python benchmarks/bench_decode.py [--repeats 3]`` (well under a minute).

Both decode every frame of the real clips in ``realdata/videos`` to RGB uint8 arrays, with one
decoding thread, and are timed in CPU seconds (best of ``--repeats``), so the numbers are per core
and hold up on a busy machine. Also: decoding with resize to 340x256 (TSN), where read_video
resizes inside FFmpeg's colour conversion and OpenCV needs a ``cv2.resize`` pass per frame.
The ``same`` column checks that both return identical frames (same count, same pixels).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from tstam.video import read_video

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "realdata" / "videos"
CLIPS = ["v_ApplyEyeMakeup_g01_c01.avi", "v_BaseballPitch_g01_c01.avi", "mmaction2_test.mp4"]


def opencv_read(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if size is not None:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def best_cpu(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    head = f"{'clip':30s} {'size':>9s} {'frames':>6s} {'read_video f/s':>14s} {'VideoCapture f/s':>16s} {'ratio':>6s} {'same':>5s}"
    print("frames per CPU second (one decoding thread), best of", args.repeats)
    print(head + "\n" + "-" * len(head))
    totals = {"ours": 0.0, "cv": 0.0, "ours_r": 0.0, "cv_r": 0.0, "n": 0}
    for name in CLIPS:
        path = VIDEOS / name
        for size in (None, (340, 256)):
            t_ours, ours = best_cpu(lambda: read_video(path, size=size).frames, args.repeats)
            t_cv, ref = best_cpu(lambda: opencv_read(path, size), args.repeats)
            same = ours.shape == ref.shape and (size is not None or np.array_equal(ours, ref))
            if size is not None:  # swscale vs cv2.resize interpolation differ slightly: compare loosely
                same = ours.shape == ref.shape and float(np.abs(ours.astype(int) - ref).mean()) < 3.0
            n = len(ours)
            key = "_r" if size else ""
            totals["ours" + key] += t_ours
            totals["cv" + key] += t_cv
            totals["n"] += n if size is None else 0
            label = "native" if size is None else f"{size[0]}x{size[1]}"
            print(f"{name:30s} {label:>9s} {n:6d} {n / t_ours:14.0f} {n / t_cv:16.0f} {t_cv / t_ours:6.2f} {str(same):>5s}")
    n = totals["n"]
    print(f"{'all clips':30s} {'native':>9s} {n:6d} {n / totals['ours']:14.0f} {n / totals['cv']:16.0f} "
          f"{totals['cv'] / totals['ours']:6.2f}")
    print(f"{'all clips':30s} {'340x256':>9s} {n:6d} {n / totals['ours_r']:14.0f} {n / totals['cv_r']:16.0f} "
          f"{totals['cv_r'] / totals['ours_r']:6.2f}")


if __name__ == "__main__":
    main()
