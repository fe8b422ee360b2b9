"""Sizes, timing helpers and the data-side sections (5-8) of ``benchmarks/gpu_check.py``.

The inputs come from the repository: the tests' real JPEG frame store (``tests/helpers/engine_store.py``,
``benchmarks/bench_test_protocol.py``), the loader benchmark's generated JPEG store
(``benchmarks/bench_loader.py``) and the prediction tests' tiny checkpoints and generated frames
(``tests/helpers/models.py``); nothing needs PyAV or OpenCV contrib.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from tstam.engine.config import load_train_config
from tstam.engine.train import TrainRun, prepare_run
from tstam.models import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    section: str
    case: str
    value: str
    goal: str = ""
    ok: bool | None = None  # None: a measurement without a goal


@dataclass(frozen=True)
class Sizes:
    size: int            # crop size
    width: float         # backbone width
    segments: int        # N in training
    batch: int           # training clips per step
    classes: int
    steps: int           # timed training steps
    videos: int          # test-protocol videos
    frames: int          # test frames per video
    crops: int           # test crops
    workers: int         # test-protocol loader workers
    loader_videos: int
    loader_frames: int
    loader_clips: int


FULL = Sizes(224, 1.0, 6, 32, 101, 10, 200, 25, 10, 8, 16, 60, 96)
TINY = Sizes(64, 0.125, 2, 2, 5, 3, 1, 3, 3, 0, 8, 8, 8)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn: Callable[[], object], dev: torch.device, n: int) -> float:
    """Wall seconds of ``n`` calls, the device drained before and after."""
    sync(dev)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    return time.perf_counter() - t


def matmul_rate(dev: torch.device, dtype: torch.dtype, s: Sizes) -> float:
    """FLOP/s of a square matmul (8192 on a GPU; 512 for tiny CPU runs), best of 3 x 10."""
    n = 8192 if dev.type == "cuda" else 512 if s is TINY else 2048
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    timed(lambda: a @ b, dev, 3)
    return max(2 * n**3 * 10 / timed(lambda: a @ b, dev, 10) for _ in range(3))


def train_run(s: Sizes, dev: torch.device, modality: str, *, amp: str, batch: int) -> tuple[TrainRun, torch.Tensor, torch.Tensor]:
    """A full-recipe training run of ``modality`` without data, and one pinned uint8 batch."""
    cfg = load_train_config({"model": {"modality": modality, "num_classes": s.classes, "num_segments": s.segments,
                                       "input_size": s.size, "width_mult": s.width},
                             "run": {"device": dev.type, "amp": amp, "channels_last": True}})
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    run = prepare_run(cfg, model, dev)
    x = torch.randint(0, 256, (batch, s.segments, cfg.model.in_chans, s.size, s.size), dtype=torch.uint8)
    y = torch.arange(batch) % s.classes
    if dev.type == "cuda":  # as the loader delivers them
        x, y = x.pin_memory(), y.pin_memory()
    return run, x, y


# ------------------------------------------------------------------------------------------- 5. DDP

def _ddp_cfg(store: dict, out: Path, s: Sizes, device: str, **run) -> dict:
    """Partial BN (from the "pretrained" backbone ``store["init"]``), SyncBN, bf16, dropout 0.5."""
    from helpers.engine_store import tiny_config

    cuda = device.startswith("cuda")
    return tiny_config(store, out, model={"dropout": 0.5, "width_mult": 0.125 if s.size < 224 else 0.25},
                       optim={"epochs": 4, "bn": "partial"}, data={"batch_size": 2},
                       run={"device": device, "amp": "bf16" if cuda else "none", "channels_last": cuda, "sync_bn": True,
                            "tensorboard": False, "eval_every": 2, "init_weights": str(store.get("init", "")) or None,
                            **run})


def ddp_worker(out: Path, s: Sizes, device: str) -> int:
    """One torchrun process: SyncBN layer count, then an uninterrupted run and a cut-and-resumed one."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    from tstam.engine.distributed import cleanup_distributed, init_distributed
    from tstam.engine.optim import apply_bn_mode, convert_sync_bn
    from tstam.engine.train import fit

    # the three runs share this process's cuDNN algorithm choices; deterministic kernels make them comparable
    torch.use_deterministic_algorithms(True, warn_only=True)
    store = json.loads((out / "store.json").read_text())
    store = {k: Path(v) for k, v in store.items()}
    info, _dev = init_distributed(device)  # the group for all three runs (fit leaves it open)
    try:
        model = build_model(load_train_config(_ddp_cfg(store, out / "bn", s, device)).model)
        convert_sync_bn(model, "partial")
        model.train()
        apply_bn_mode(model, "partial")
        bns = [m for m in model.backbone.modules() if isinstance(m, _BatchNorm)]
        counts = {"training": sum(m.training for m in bns), "synced": sum(isinstance(m, nn.SyncBatchNorm) for m in bns),
                  "backbone": len(bns), "world": info.world_size}
        fit(load_train_config(_ddp_cfg(store, out / "full", s, device, max_steps=4)))
        fit(load_train_config(_ddp_cfg(store, out / "cut", s, device, max_steps=2)))
        fit(load_train_config(_ddp_cfg(store, out / "cut", s, device, max_steps=4)), resume=True)
        if info.is_main:
            (out / "bn.json").write_text(json.dumps(counts))
    finally:
        cleanup_distributed(info)
    return 0


def check_ddp(script: Path, s: Sizes, device: str, tiny: bool) -> list[Row]:
    from tstam.checkpoint import load_checkpoint

    from helpers.engine_store import make_store

    procs = max(2, torch.cuda.device_count()) if device.startswith("cuda") else 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        store = make_store(out / "store", n_train=20, n_test=2)     # 16 train, 4 held out for validation
        cfg = load_train_config(_ddp_cfg(store, out / "x", s, device))
        torch.manual_seed(cfg.run.seed)  # the runs' initial weights, as fit draws them
        model = build_model(cfg.model)
        init = {k: v.clone() for k, v in model.state_dict().items()}
        store["init"] = out / "init.pt"                               # partial BN needs a "pretrained" backbone
        torch.save({"model": model.state_dict()}, store["init"])
        (out / "store.json").write_text(json.dumps({k: str(v) for k, v in store.items()}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", str(script),
               "--_ddp", str(out), "--device", device, *(["--tiny"] if tiny else [])]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
                                  [str(ROOT / d) for d in ("src", "tests", "benchmarks")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
                                   "CUBLAS_WORKSPACE_CONFIG": ":4096:8"})  # deterministic cuBLAS
        if proc.returncode != 0:
            return [Row("5 DDP", f"torchrun {procs} processes", "failed: " + proc.stderr[-600:].replace("\n", " "),
                        "runs", False)]
        counts = json.loads((out / "bn.json").read_text())
        full, cut = load_checkpoint(out / "full" / "last.pt"), load_checkpoint(out / "cut" / "last.pt")
        keys = [k for k, v in full["model"].items() if v.is_floating_point()]
        diff = max(float((full["model"][k] - cut["model"][k]).abs().max()) for k in keys)
        update = max(float((full["model"][k] - init[k]).abs().max()) for k in keys)
        where = f"{procs} processes on {max(torch.cuda.device_count(), 1)} {'GPU' if device.startswith('cuda') else 'CPU'}"
        return [
            Row("5 DDP", f"SyncBN + partial BN ({where}): backbone BN layers training",
                f"{counts['training']} of {counts['backbone']} ({counts['synced']} converted)", "1",
                counts["training"] == 1 == counts["synced"]),
            Row("5 DDP", f"resume at step 2 to step 4 vs uninterrupted ({where}, SyncBN, dropout 0.5, "
                f"{time.perf_counter() - t0:.0f} s)", f"max |diff| / max |update| = {diff / max(update, 1e-30):.1e} "
                f"(steps {cut['step']}, {full['step']})", "<= 1e-3", diff <= 1e-3 * update and cut["step"] == full["step"] == 4),
        ]


# ------------------------------------------------------------------------------- 6. test protocol

def check_protocol(dev: torch.device, s: Sizes, budget_mb: float) -> list[Row]:
    from bench_test_protocol import make_store

    from tstam.checkpoint import load_stream, save_checkpoint
    from tstam.config import to_dict
    from tstam.data.config import DataConfig
    from tstam.engine.testing import score_stream

    rate = matmul_rate(dev, torch.float32, s)  # TF32 on a GPU, as the protocol runs
    rows = [Row("6 test protocol", "float32 matmul (TF32 on GPUs; baseline)", f"{rate / 1e12:.3g} TFLOP/s")]
    resize = [256, 340] if s.size >= 224 else [s.size + 8, s.size * 4 // 3 + 8]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recs = make_store(tmp / "store", s.videos)
        data = DataConfig(root=str(tmp / "store"), resize=resize, test_frames=s.frames, test_crops=s.crops,
                          workers=s.workers)
        for modality in ("rgb", "flow"):
            mcfg = ModelConfig(modality=modality, num_classes=101, input_size=s.size, width_mult=s.width)
            torch.manual_seed(0)
            model = build_model(mcfg).eval()
            torch.nn.init.normal_(model.fc.weight, std=0.01)  # distinct class scores
            ck = save_checkpoint(tmp / f"{modality}.pt", {"model": model.state_dict(), "model_config": to_dict(mcfg),
                                                         "classes": [str(i) for i in range(101)], "flow": None,
                                                         "epoch": 0, "step": 0})
            with FlopCounterMode(display=False) as fc, torch.no_grad():
                model(torch.zeros(1, s.frames, mcfg.in_chans, s.size, s.size))
            flops = fc.get_total_flops() * s.crops * s.videos
            stream = load_stream(ck, device=dev)
            # warm: cuDNN autotuning and the loader's worker start-up happen on a few videos first
            score_stream(stream, recs[:2], root=tmp / "store", data=data, max_memory_mb=budget_mb, workers=s.workers)
            per_worker = loader_rate(recs, tmp / "store", data, mcfg, s.videos)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
            t0 = time.perf_counter()
            got = score_stream(stream, recs, root=tmp / "store", data=data, max_memory_mb=budget_mb, workers=s.workers)
            sync(dev)
            wall = time.perf_counter() - t0
            peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20 if dev.type == "cuda" else float("nan")
            ref = score_stream(load_stream(ck), recs[:1], root=tmp / "store", data=data, max_memory_mb=budget_mb)
            diff = float(np.abs(got.probs[0] - ref.probs[0]).max())
            loader_floor = s.videos / (max(s.workers, 1) * per_worker)
            flop_floor = flops / rate
            ratio = wall / max(loader_floor, flop_floor)
            rows += [
                Row("6 test protocol", f"{modality}: {s.videos} videos x {s.frames} frames x {s.crops} crops, warm, "
                    f"{s.workers} loader workers",
                    f"{s.videos / wall:.2f} videos/s, wall {wall:.1f} s; loader floor {loader_floor:.1f} s "
                    f"({max(s.workers, 1)} x {per_worker:.2f} videos/s per worker), FLOP floor {flop_floor:.2f} s; "
                    f"wall / max(floors) {ratio:.2f}", "<= 1.5", ratio <= 1.5 if dev.type == "cuda" and s is FULL else None),
                Row("6 test protocol", f"{modality}: peak memory over the model, budget {budget_mb:.0f} MB",
                    f"{peak:.0f} MB = {peak / budget_mb:.2f} of the budget" if dev.type == "cuda" else "n/a (CPU)",
                    "<= 1", peak <= budget_mb if dev.type == "cuda" else None),
                Row("6 test protocol", f"{modality}: scores vs CPU (video 1)", f"max |p - p_cpu| {diff:.1e}", "<= 1e-3",
                    diff <= 1e-3),
            ]
    return rows


def loader_rate(recs, root: Path, data, mcfg: ModelConfig, videos: int) -> float:
    """Videos/s of one loader process reading the test protocol's views (what one worker delivers):
    the dataset's items read in this process, over at most ``videos`` videos and 5 seconds."""
    from tstam.data.datasets import build_dataset

    ds = build_dataset(recs, root=root, mode="test", data=data, model=mcfg, seed=0)
    ds[0]  # first-touch costs (imports, file cache) left out, as the warm run leaves them out
    t0, n = time.perf_counter(), 0
    while n < min(videos, len(ds)) and (n == 0 or time.perf_counter() - t0 < 5.0):
        ds[n]
        n += 1
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------- 7. the loader

def check_loader(dev: torch.device, s: Sizes, step_rates: dict[str, float]) -> list[Row]:
    from bench_loader import loader_rate, make_store
    from torch.utils.data import default_collate

    from tstam.data import DataConfig, FrameDataset

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        recs = make_store(Path(tmp), s.loader_videos, s.loader_frames)
        for modality in ("rgb", "flow"):
            ds = FrameDataset(recs, root=tmp, mode="train", data=DataConfig(),
                              model=ModelConfig(modality=modality, num_classes=101, num_segments=s.segments,
                                                input_size=s.size), seed=0)
            per_worker = loader_rate(ds, 1, s.loader_clips)
            need = step_rates[modality] / per_worker
            # the crops' resize and flip, which the training step does on the device before its forward
            batch = default_collate([ds[(i % len(ds), 0)][0] for i in range(s.batch)])
            if dev.type == "cuda":  # as the loader delivers them
                batch = batch._replace(pixels=batch.pixels.pin_memory())
            x = batch.to(dev)
            finish_ms = timed(lambda: ds.batch_transform(x), dev, 5) / 5 * 1e3  # noqa: B023
            rows.append(Row("7 loader", f"{modality}: one worker vs one GPU step (batch {s.batch}x{s.segments})",
                            f"{per_worker:.1f} clips/s per worker; the step takes {step_rates[modality]:.0f} clips/s "
                            f"-> {need:.1f} workers; resizing the batch's crops on the device {finish_ms:.1f} ms",
                            "<= 6 workers", need <= 6 if s is FULL else None))
    return rows


# ------------------------------------------------------------------------- 8. recognizer and ONNX

def check_recognizer(dev: torch.device) -> list[Row]:
    from tstam.checkpoint import load_stream
    from tstam.export import check_onnx, export_onnx
    from tstam.inference import Recognizer

    from helpers.models import make_checkpoint, moving_frames

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = [make_checkpoint(tmp / "rgb.pt", "rgb", seed=1), make_checkpoint(tmp / "flow.pt", "flow", seed=2, sharpen=20.0)]
        frames = moving_frames(40)                                 # generated on the CPU, (T, H, W, 3) uint8
        cpu = Recognizer([load_stream(p) for p in paths]).predict(frames, num_crops=3)
        streams = [load_stream(p, device=dev) for p in paths]
        gpu = Recognizer(streams).predict(frames, num_crops=3)
        diff = max(float(np.abs(gpu.probabilities - cpu.probabilities).max()),
                   *(float(np.abs(gpu.streams[m].temporal - cpu.streams[m].temporal).max()) for m in ("rgb", "flow")))
        onnx = export_onnx(streams[1], tmp / "flow.onnx", segments=3)
        on_device = all(p.device.type == dev.type for p in streams[1].model.parameters())
        again = Recognizer(streams).predict(frames, num_crops=3)   # the exported stream still runs where it was
        same = bool(np.array_equal(again.probabilities, gpu.probabilities))
        onnx_diff = check_onnx(onnx, load_stream(paths[1]), shapes=((2, 5),)).max_relative
    return [Row("8 recognizer", f"RGB + flow, 3 crops, {dev.type} vs CPU: probabilities and alpha",
                f"max diff {diff:.1e}", "<= 1e-4", diff <= 1e-4),
            Row("8 recognizer", f"ONNX export of the {dev.type} stream: the stream stays on {dev.type} and predicts the same",
                f"on device {on_device}, same {same}", "yes", on_device and same),
            Row("8 recognizer", "ONNX (onnxruntime CPU) vs PyTorch CPU", f"max relative error {onnx_diff:.1e}", "<= 1e-4",
                onnx_diff <= 1e-4)]
