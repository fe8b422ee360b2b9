"""Training step time before and after taking the host syncs out of the step.

"before" is the loop body of commit dea9f2c, kept here as the baseline: per step it stacks the
loss, accuracy and a ``torch.tensor(float(n), device=...)`` count, all-reduces them, tests the
non-finite flag with a Python ``if`` between forward and backward, and reads the numbers with
``.tolist()`` / ``.item()`` for the progress bar. "after" is ``tstam.engine.train.train_step``
(numbers stay in the device-side meter) plus one meter read every ``run.log_every`` (20) steps.
Both run on the same model, optimiser and batch, in alternating rounds; the median step times
and the median (and range) of the per-round ratios are printed, by wall time and by CPU time of
this process (one torch thread by default, which other processes on a shared machine disturb less), with the host reads per step counted
(``aten._local_scalar_dense``: ``.item()``, ``float(t)``, ``if t``; ``.tolist()`` of a CPU tensor is
not an op and is not counted). On a CPU a host read costs next to nothing, so the ratio shows the
bookkeeping only; on a GPU each read stalls the queue (``benchmarks/gpu_check.py`` counts them with
``torch.cuda.set_sync_debug_mode``).

    python benchmarks/bench_train_step.py [--device cpu|cuda] [--rounds 7] [--steps 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from tstam.engine.config import load_train_config
from tstam.engine.distributed import all_reduce_sum
from tstam.engine.evaluate import autocast
from tstam.engine.meter import Progress
from tstam.engine.optim import apply_bn_mode, current_lr
from tstam.engine.train import TrainRun, prepare_run, train_step
from tstam.models import build_model

SIZES = {  # name: model overrides, batch
    "tests' tiny model (width 0.125, 64 px, 2 segments, batch 2)":
        ({"width_mult": 0.125, "input_size": 64, "num_segments": 2, "num_heads": 2, "attention_hidden": 16}, 2),
    "the demo's model (width 0.25, 64 px, 4 segments, batch 8)":
        ({"width_mult": 0.25, "input_size": 64, "num_segments": 4}, 8),
}


def before_step(run: TrainRun, x: torch.Tensor, y: torch.Tensor, sums: dict[str, float], bar: Progress) -> None:
    """The training loop body of commit dea9f2c (the baseline), on the same TrainRun."""
    x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
    x = run.bare.cfg.preprocess.normalize_clip(x)
    with autocast(run.device, run.amp):
        logits = run.model(x).logits
        loss = F.cross_entropy(logits.float(), y)
    stats = torch.stack([loss.detach().float() * y.numel(), (logits.argmax(1) == y).sum().float(),
                         torch.tensor(float(y.numel()), device=run.device),
                         (~torch.isfinite(loss.detach())).float()])
    all_reduce_sum(stats)
    if stats[3] > 0:
        raise RuntimeError(f"non-finite loss ({loss.item()})")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.optim.clip_grad:
        nn.utils.clip_grad_norm_(run.bare.parameters(), run.cfg.optim.clip_grad)
    run.optimizer.step()
    for k, v in zip(("loss", "correct", "clips"), stats[:3].tolist()):
        sums[k] += v
    bar.step()
    bar.show(bar.done, {"loss": stats[0].item(), "clips": stats[2].item()}, lr=current_lr(run.optimizer),
             clips=int(stats[2].item()))


def after_step(run: TrainRun, x: torch.Tensor, y: torch.Tensor, sums: dict[str, float], bar: Progress) -> None:
    """``train_step`` and, every ``run.log_every`` steps, one meter read for the progress display."""
    train_step(run, x, y)
    run.state.step += 1
    bar.step()
    if run.state.step % run.cfg.run.log_every == 0:
        bar.show(bar.done, run.meter.read(), lr=current_lr(run.optimizer), clips=0)


class ScalarReads(TorchDispatchMode):
    """Counts the ops that copy a tensor's value into Python (``aten._local_scalar_dense``)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def setup(model_kw: dict, batch: int, device: torch.device) -> tuple[TrainRun, torch.Tensor, torch.Tensor]:
    cfg = load_train_config({"model": {"num_classes": 12, **model_kw}, "run": {"device": device.type}})
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).train()
    apply_bn_mode(model, cfg.optim.bn)
    run = prepare_run(cfg, model, device)
    x = torch.randint(0, 256, (batch, cfg.model.num_segments, 3, cfg.model.input_size, cfg.model.input_size),
                      dtype=torch.uint8)
    y = torch.arange(batch) % 12
    return run, x, y


def time_steps(step, run: TrainRun, x, y, steps: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per step."""
    sums = {"loss": 0.0, "correct": 0.0, "clips": 0.0}
    bar = Progress(enabled=False)
    bar.start_epoch("bench", total=steps, initial=0, step=0, run_steps=steps, validations_left=0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step(run, x, y, sums, bar)
    run.meter.read()  # the "after" numbers are read at least once, as at an epoch end
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps, (time.process_time() - c) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=7, help="alternating before/after rounds")
    ap.add_argument("--steps", type=int, default=20, help="steps per round (= run.log_every)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is the step's own)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} thread(s), {args.rounds} rounds, "
          f"each {args.steps} steps before then {args.steps} after; per-round ratios, median [min, max]")
    print("| model | before ms/step | after ms/step | after / before (wall) | after / before (CPU time) "
          "| host reads per step before | after |")
    print("|---|---|---|---|---|---|---|")
    for name, (model_kw, batch) in SIZES.items():
        run, x, y = setup(model_kw, batch, device)
        for step in (before_step, after_step):  # warm-up
            time_steps(step, run, x, y, 2, device)
        rounds = [(time_steps(before_step, run, x, y, args.steps, device),
                   time_steps(after_step, run, x, y, args.steps, device)) for _ in range(args.rounds)]
        reads = {}
        for label, step in (("before", before_step), ("after", after_step)):
            with ScalarReads() as r:
                time_steps(step, run, x, y, args.steps, device)
            reads[label] = r.count / args.steps

        def ratio(i: int) -> str:
            r = sorted(a[i] / b[i] for b, a in rounds)
            return f"{statistics.median(r):.3f} [{r[0]:.3f}, {r[-1]:.3f}]"

        b, a = (statistics.median(t[k][0] for t in rounds) for k in (0, 1))
        print(f"| {name} | {b * 1e3:.1f} | {a * 1e3:.1f} | {ratio(0)} | {ratio(1)} | {reads['before']:.2f} | "
              f"{reads['after']:.2f} |")


if __name__ == "__main__":
    main()
