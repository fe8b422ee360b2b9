"""A scale rehearsal of the whole pipeline on one GPU, and the projected wall time of UCF101 split 1.

    python benchmarks/gpu_rehearsal.py --out /tmp/rehearsal [--json r.json] [--md r.md]   # one GPU, < 8 minutes
    python benchmarks/gpu_rehearsal.py --tiny --device cpu --out /tmp/r                   # the test suite's CPU run

Stages, each the real command in its own process (``python -m tstam ...``), timed by wall clock:

1. videos: a UCF101-shaped set, generated here: 101 classes, 8 training and 2 test clips each (1,010
   videos of 32 frames at 320x240, MPEG-4 in .avi as UCF101 ships), each class a texture moving
   at its own velocity with a square crossing it, in UCF101's folders and split files
   (classInd.txt, trainlist01.txt, testlist01.txt).
2. ``tstam extract --flow tvl1_torch --device cuda --workers 12``: first a warm-up shard (a
   twentieth of the videos: start-up and the compilation of the TV-L1 iteration), then the rest
   (the finished videos are skipped); the rate is the second command's frames/s.
3. ``tstam train`` of each stream (``ucf101_rgb`` / ``ucf101_flow`` with bf16, channels_last,
   ``optim.bn=full``: no ImageNet file on a machine without internet) for 3 epochs of the
   training list (its tenth held out for validation is not trained on), with the real loader and
   12 worker processes; the rate is the mean clips/s of the epochs after the first
   (``metrics.jsonl``; the workers persist across epochs).
4. ``tstam test`` of each stream: 25 frames x 10 crops on the 202 test videos (the whole command:
   start-up included).
5. ``tstam fuse`` of the two score files.

The projection multiplies the measured rates out to UCF101 split 1: 13,320 videos of 7.2 s on
average at 25 fps (about 180 frames each, 2.4 M frames), 9,537 training clips (the paper's 80
epochs RGB, 340 flow), 3,783 test videos per stream. Assumptions, printed with it: the rates at
320x240 hold for UCF101's 320x240 videos; validation and checkpoints cost nothing; on 8 GPUs every
stage runs 8 times as fast (extraction and testing in 8 shards, training under DDP with the same
per-GPU batch and rate, each GPU with the CPU cores this machine gave one GPU).

``--tiny``: 3 classes, 2 + 1 clips of 12 frames at 96x72, a tiny model (width 0.125, 64 px crops,
2 segments), 3 frames x 1 crop, no workers: the same commands end to end in well under a minute on
a CPU (``tests/test_gpu_rehearsal.py``); its projection is printed but says nothing about a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from tstam.video import write_video  # noqa: E402

# UCF101 split 1 (Soomro et al. 2012; the split files): videos and mean length
UCF101 = {"videos": 13320, "train": 9537, "test": 3783, "mean_seconds": 7.21, "fps": 25.0}
PAPER_EPOCHS = {"rgb": 80, "flow": 340}  # the ucf101_rgb / ucf101_flow presets (paper section 4.2)


@dataclass(frozen=True)
class Plan:
    classes: int
    train_per_class: int
    test_per_class: int
    frames: int
    width: int
    height: int
    overrides: tuple[str, ...]      # for tstam train (and, through the checkpoint, tstam test)
    test_args: tuple[str, ...]      # protocol arguments of tstam test
    workers: int
    warm_shards: int                # the extraction's warm-up is shard 0 of this many
    epochs: int                     # training epochs per stream; the rate is that of the epochs after the first


FULL = Plan(101, 8, 2, 32, 320, 240, ("run.amp=bf16", "run.channels_last=true"), (), 12, 20, 3)
TINY = Plan(3, 2, 1, 12, 96, 72, ("model.input_size=64", "model.width_mult=0.125", "model.num_segments=2",
                                  "model.num_heads=2", "model.attention_hidden=16", "data.resize=[72,96]",
                                  "data.batch_size=2"), ("--frames", "3", "--crops", "1"), 0, 3, 2)


def class_name(c: int) -> str:
    return f"Synth{c:03d}"


def make_videos(out: Path, plan: Plan) -> tuple[Path, Path, int]:
    """Write the videos and the split files; (videos folder, splits folder, total frames)."""
    videos, splits = out / "UCF-101", out / "ucfTrainTestlist"
    splits.mkdir(parents=True, exist_ok=True)
    jobs, train, test = [], [], []
    for c in range(plan.classes):
        name = class_name(c)
        for k in range(plan.train_per_class + plan.test_per_class):
            # test clips in groups 01-07 and training clips in 08-25, as UCF101's split 1 does
            group = k + 1 if k < plan.test_per_class else 8 + k - plan.test_per_class
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            jobs.append((c, k, str(videos / rel)))
            (test if k < plan.test_per_class else train).append((rel, c))
    (splits / "classInd.txt").write_text("".join(f"{c + 1} {class_name(c)}\n" for c in range(plan.classes)))
    (splits / "trainlist01.txt").write_text("".join(f"{r} {c + 1}\n" for r, c in train))
    (splits / "testlist01.txt").write_text("".join(f"{r}\n" for r, _ in test))
    with ProcessPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
        list(pool.map(_write_one, jobs, [plan] * len(jobs), chunksize=8))
    return videos, splits, len(jobs) * plan.frames


def _write_one(job: tuple[int, int, str], plan: Plan) -> None:
    c, k, path = job
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_video(path, clip(c, k, plan), 25.0, codec="mpeg4")


def clip(c: int, k: int, plan: Plan) -> np.ndarray:
    """(T, H, W, 3) uint8: class c's texture moving at class c's velocity (flow carries the class),
    tinted by the class (RGB carries it too), a bright square crossing it the other way, noise."""
    rng = np.random.default_rng([c, k])
    h, w, t = plan.height, plan.width, plan.frames
    angle = 2 * np.pi * c / plan.classes
    speed = 1.0 + (c % 4) * 0.75                                    # px per frame
    vx, vy = speed * np.cos(angle), speed * np.sin(angle)
    pad = int(np.ceil(speed * t)) + 8
    cells = rng.uniform(0, 1, ((h + 2 * pad) // 8 + 2, (w + 2 * pad) // 8 + 2)).astype(np.float32)
    tex = np.kron(cells, np.ones((8, 8), np.float32))               # 8 px blocks: edges TV-L1 can follow
    tint = np.array([0.5 + 0.5 * np.cos(angle), 0.5 + 0.5 * np.sin(angle), 0.5 + 0.25 * (c % 3)], np.float32)
    frames = np.empty((t, h, w, 3), np.uint8)
    side = max(8, h // 6)
    for i in range(t):
        oy, ox = pad + int(round(vy * i)), pad + int(round(vx * i))
        g = 60 + 120 * tex[oy:oy + h, ox:ox + w]
        img = g[..., None] * tint
        sy = int((h - side) * (0.5 + 0.4 * np.sin(0.2 * i + k)))
        sx = int((w - side) * (i / max(t - 1, 1)))
        img[sy:sy + side, w - side - sx:w - sx] = 240
        img += rng.normal(0, 3, img.shape).astype(np.float32)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def tstam(args: list[str], log: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run ``python -m tstam ARGS``; (wall seconds, its output). A failure raises with the output's end."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tstam", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    with open(log, "a") as f:
        f.write(f"$ tstam {' '.join(args)}\n{proc.stdout}{proc.stderr}\n[{wall:.1f} s, exit {proc.returncode}]\n\n")
    if proc.returncode != 0:
        raise RuntimeError(f"tstam {args[0]} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return wall, proc.stdout + proc.stderr


def _extracted(output: str) -> int:
    m = re.search(r"(\d+) extracted", output)
    if not m:
        raise RuntimeError(f"tstam extract printed no count of extracted videos:\n{output[-2000:]}")
    return int(m.group(1))


def projection(rates: dict[str, float]) -> list[tuple[str, float, float]]:
    """(stage, hours on 1 GPU, hours on 8 GPUs) for UCF101 split 1 at the measured rates."""
    frames = UCF101["videos"] * UCF101["mean_seconds"] * UCF101["fps"]
    stages = [("extract (TV-L1 on the GPU)", frames / rates["extract_frames_per_s"])]
    for m in ("rgb", "flow"):
        stages.append((f"train {m} ({PAPER_EPOCHS[m]} epochs x {UCF101['train']} clips)",
                       PAPER_EPOCHS[m] * UCF101["train"] / rates[f"train_{m}_clips_per_s"]))
    for m in ("rgb", "flow"):
        stages.append((f"test {m} ({UCF101['test']} videos, 25 x 10)", UCF101["test"] / rates[f"test_{m}_videos_per_s"]))
    stages.append(("fuse", rates["fuse_s"]))
    rows = [(name, s / 3600, s / 8 / 3600) for name, s in stages]
    total = sum(r[1] for r in rows)
    return rows + [("total", total, total / 8)]


def run(out: Path, plan: Plan, device: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "rehearsal.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    if plan is TINY:
        env["OMP_NUM_THREADS"] = "1"
    res: dict = {"device": device, "plan": plan.__dict__ | {"overrides": list(plan.overrides)}}
    t0 = time.perf_counter()
    videos, splits, n_frames = make_videos(out / "data", plan)
    n_videos = plan.classes * (plan.train_per_class + plan.test_per_class)
    res["videos_s"] = time.perf_counter() - t0
    res["videos"] = n_videos
    frames_dir = out / "frames"
    ex = ["extract", str(videos), "--out", str(frames_dir), "--flow", "tvl1_torch", "--device", device,
          "--workers", str(max(plan.workers, 1)), "--no-progress"]
    warm_wall, warm_out = tstam([*ex, "--shard", f"0/{plan.warm_shards}"], log, env)
    main_wall, main_out = tstam(ex, log, env)
    done = _extracted(main_out)
    res.update(extract_warmup_s=warm_wall, extract_warmup_videos=_extracted(warm_out), extract_s=main_wall,
               extract_videos=done, extract_frames_per_s=done * plan.frames / main_wall)
    common = [f"data.root={frames_dir}", f"annotations.path={splits}", f"model.num_classes={plan.classes}",
              "optim.bn=full", f"optim.epochs={plan.epochs}", "optim.lr_steps=[]", "run.eval_every=0", "run.tensorboard=false",
              f"run.device={device}", f"data.workers={plan.workers}", *plan.overrides]
    scores = {}
    for m in ("rgb", "flow"):
        run_dir = out / "runs" / m
        wall, _ = tstam(["train", "--config", f"ucf101_{m}", *common, f"run.out_dir={run_dir}", "--no-progress"], log, env)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        res[f"train_{m}_s"] = wall
        res[f"train_{m}_steps"] = rows[-1]["step"]
        warm = [r["clips_per_s"] for r in rows[1:]]                # loader workers (persistent) and device warm
        res[f"train_{m}_clips_per_s"] = sum(warm) / len(warm)
        scores[m] = out / f"scores_{m}.npz"
        wall, _ = tstam(["test", "--checkpoint", str(run_dir / "last.pt"), "--device", device, *plan.test_args,
                         f"data.workers={plan.workers}", "-o", str(scores[m])], log, env)
        res[f"test_{m}_s"] = wall
        res[f"test_{m}_videos_per_s"] = plan.classes * plan.test_per_class / wall
    wall, fused = tstam(["fuse", str(scores["rgb"]), str(scores["flow"]), "--json"], log, env)
    res["fuse_s"] = wall
    res["fused"] = json.loads(fused[fused.index("{"):fused.rindex("}") + 1])
    res["test_videos"] = plan.classes * plan.test_per_class
    res["total_s"] = time.perf_counter() - t0
    res["projection"] = projection(res)
    return res


def markdown(res: dict) -> str:
    """The stages and the projection as markdown tables."""
    v = res["videos"]
    lines = [f"Device: {res['device_name']}; {v} videos, {res['total_s']:.0f} s in all.", "",
             "| stage | wall | rate |", "|---|---|---|",
             f"| generate {v} videos | {res['videos_s']:.1f} s | |",
             f"| extract, warm-up shard ({res['extract_warmup_videos']} videos: start-up, compilation) | "
             f"{res['extract_warmup_s']:.1f} s | |",
             f"| extract ({res['extract_videos']} videos) | {res['extract_s']:.1f} s | {res['extract_frames_per_s']:.0f} frames/s |"]
    for m in ("rgb", "flow"):
        lines.append(f"| train {m} ({res[f'train_{m}_steps']} steps, whole command) | {res[f'train_{m}_s']:.1f} s | "
                     f"{res[f'train_{m}_clips_per_s']:.1f} clips/s (epochs after the first) |")
    for m in ("rgb", "flow"):
        lines.append(f"| test {m} ({res['test_videos']} videos, whole command) | {res[f'test_{m}_s']:.1f} s | "
                     f"{res[f'test_{m}_videos_per_s']:.2f} videos/s |")
    lines.append(f"| fuse | {res['fuse_s']:.1f} s | top-1 {res['fused']['top1']:.3f} after {res['plan']['epochs']} epochs (a check that it ran, "
                 "not a result) |")
    lines += ["", f"Projected wall time of UCF101 split 1 at these rates on {res['device_name']}:", "",
              "| stage | 1 GPU (h) | 8 GPUs (h) |", "|---|---|---|"]
    lines += [f"| {name} | {one:.2f} | {eight:.2f} |" for name, one, eight in res["projection"]]
    lines += ["", f"Assumed: {UCF101['videos']} videos of {UCF101['mean_seconds']} s at {UCF101['fps']:.0f} fps to extract; "
              "the rates at 320x240 hold for UCF101's 320x240 videos; validation and checkpoints cost nothing; on 8 GPUs "
              "every stage runs 8 times as fast (extraction and testing in 8 shards, training under DDP at the same "
              "per-GPU batch and rate, each GPU with the CPU cores this machine gave one)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="working folder (videos, frames, runs, scores, rehearsal.log)")
    ap.add_argument("--device", default=None, help="cuda (default where present) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on a CPU (the test suite's run)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--md", default=None, help="also write the markdown tables to this file")
    ap.add_argument("--keep", action="store_true", help="keep the generated videos and frames")
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        ap.error(f"--out {out} is not empty; give a new or empty folder (the runs and the frame store start from nothing)")
    res = run(out, TINY if args.tiny else FULL, device)
    res["device_name"] = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    text = markdown(res)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.md:
        Path(args.md).write_text(text + "\n")
    if not args.keep:
        for d in ("data", "frames"):
            shutil.rmtree(out / d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
