"""The prepared GPU check: one script, one table, under 8 minutes on one H100-class GPU.

    make gpu-check                                   # PYTHONPATH=src python3 benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --json gpu.json   # also the rows as JSON
    python benchmarks/gpu_check.py --tiny --device cpu   # tiny sizes on a CPU (tests/test_gpu_check.py)

Needs PyTorch, PyAV (imported by the recognizer section) and the project's light dependencies, not
OpenCV contrib: inputs are the real JPEG frames vendored in tests/data, read with core OpenCV, and
generated frames; flow is Farneback. Figures of a run and what they mean: docs/gpu.md.
Sections (``gpu_check_parts.py`` holds the data-side ones):

1. heads: every head (tstam, tsn, temporal, spatial) x CNN/LSTM temporal attention, in fp32 (TF32),
   bf16 and fp16 autocast, with and without channels_last, at full size (224, 6 segments, batch 2,
   train mode, dropout 0): outputs finite, every trainable parameter gets a finite gradient, each
   attention sums to 1 (|sum - 1| <= 1e-3 in float32, 1e-2 in bf16/fp16), logits within a relative
   L2 error of the fp32 logits computed without TF32 of 16 x the format's machine epsilon (TF32 and
   fp16 0.016, bf16 0.125).
2. host syncs in 10 training steps (``tstam.engine.train.train_step``, bf16, channels_last),
   counted with ``torch.cuda.set_sync_debug_mode("warn")``: goal 0; one meter read must count >= 1
   (the counter works). On a CPU (no syncs exist) the value reads are counted instead.
3. training step at batch 32 x 6, bf16, channels_last, RGB and flow: clips/s, model FLOP/s (forward
   and backward, ``FlopCounterMode``) / bf16 matmul FLOP/s measured in this run (printed; the goal
   is the peer's, 3b: convolution networks of this size train far below the matmul peak), peak
   memory; RGB again under ``torch.compile`` (compile time, graph breaks); the eager RGB step's
   largest kernels by self time (``torch.profiler``).
3b. the peer: a ResNet-50 TSN step (``resnet_peer.py``) on the same frames, bf16 autocast,
   channels_last, eager and compiled: T-STAM RGB frames/s over the peer's (goal >= 1.0 each).
4. the spatial attention's grouped 5x5 conv, forward + backward, NCHW vs NHWC.
5. DDP (``torchrun``, 2 processes on one GPU over gloo, or one per GPU over NCCL): SyncBN with
   partial BN leaves exactly one backbone BN training; a run stopped at step 2 and resumed to step 4
   (SyncBN, bf16, dropout 0.5) equals an uninterrupted one.
6. the 25 x 10 test protocol (``score_stream``, full-size model, RGB and flow) on 200 generated
   videos, warm (cuDNN and the loader workers started on 2 videos first): videos/s against two
   floors, the loader's (workers x one process's videos/s, measured here) and the FLOPs' (model
   FLOPs / TF32 matmul rate); goal: wall <= 1.5 x the larger. Peak memory against the
   ``--max-memory-mb`` chunking budget, scores equal to the CPU's (max |p_gpu - p_cpu| <= 1e-3).
7. the training loader: clips/s of one worker (RGB, flow) against what one GPU step consumes:
   workers needed to feed one GPU (goal: <= 6), and the time the device takes to resize and flip
   a batch of the loader's crops (``data.crop_resize_on = "device"``, the default).
8. recognizer and ONNX export from a CUDA stream equal to the CPU's (<= 1e-4); the stream stays usable.
9. GPU TV-L1 (``tstam.tvl1_torch``): ``benchmarks/gpu_flow.py``'s rows, eager and (CUDA) compiled
   inner iterations (pairs/s, goal >= 1500 at 320x240 compiled; peak memory; mean end-point
   difference to OpenCV's flow stored in benchmarks/data, goal <= 0.01 px); on a GPU also the
   decode workers ``tstam extract --flow tvl1_torch`` needs per GPU (``bench_extract.py`` part 2).

Exit status 1 if any row with a goal misses it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import _dynamo as dynamo
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from gpu_check_parts import (  # noqa: E402
    FULL,
    TINY,
    Row,
    Sizes,
    check_ddp,
    check_loader,
    check_protocol,
    check_recognizer,
    ddp_worker,
    matmul_rate,
    sync,
    timed,
    train_run,
)

from tstam.engine.distributed import configure_cuda  # noqa: E402
from tstam.engine.train import train_step  # noqa: E402
from tstam.models import ModelConfig, build_model  # noqa: E402

VARIANTS = [("tstam", "cnn"), ("tstam", "lstm"), ("temporal", "cnn"), ("temporal", "lstm"), ("spatial", "cnn"),
            ("tsn", "cnn")]
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# relative L2 error of the logits vs fp32 without TF32: at most 16 x the machine epsilon of the
# format the convolutions run in (TF32 and fp16: 2^-10, bf16: 2^-7). Measured at full size with CPU
# autocast (tstam/cnn, tsn): bf16 5.4e-2 and 3.0e-2 (7 and 4 eps), fp16 8.3e-3 and 4.8e-3 (8.5 and 5
# eps). Tiny models amplify rounding more; there the error is printed without a verdict.
TOLERANCE = {"fp32": 16 * 2.0**-10, "bf16": 16 * 2.0**-7, "fp16": 16 * 2.0**-10}


def _tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def _layout(model, channels_last: bool):
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    model.channels_last = channels_last
    return model


def _forward_backward(model, x, y, dtype, channels_last: bool):
    """Train-mode forward and backward; (outputs, trainable parameters without a finite gradient)."""
    _layout(model, channels_last)
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        out = model(x)
        loss = F.cross_entropy(out.logits.float(), y)
    loss.backward()
    missing = sum(p.grad is None or not bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.requires_grad)
    return out, missing


def check_heads(dev: torch.device, s: Sizes) -> list[Row]:
    rows = []
    for head, att in VARIANTS:
        cfg = ModelConfig(num_classes=s.classes, num_segments=s.segments, input_size=s.size, width_mult=s.width,
                          head=head, temporal_attention=att, dropout=0.0)
        torch.manual_seed(0)
        model = build_model(cfg).to(dev).train()
        torch.nn.init.normal_(model.fc.weight, std=0.01)  # logits of order 1 (TSN's 0.001 leaves them near 0)
        x = cfg.preprocess.normalize_clip(torch.randint(0, 256, (2, s.segments, cfg.in_chans, s.size, s.size),
                                                        dtype=torch.uint8, device=dev))
        y = torch.tensor([0, 1], device=dev)
        _tf32(False)
        ref = _forward_backward(model, x, y, None, False)[0].logits.detach()
        _tf32(True)
        name = head if head in ("tsn", "spatial") else f"{head}/{att}"
        for prec, dtype in PRECISIONS.items():
            for cl in (False, True):
                out, missing = _forward_backward(model, x, y, dtype, cl)
                out = type(out)(*(t.detach() if t is not None else None for t in out))
                tensors = [t for t in out if t is not None]
                finite = all(bool(torch.isfinite(t).all()) for t in tensors)
                err = float((out.logits.float() - ref).norm() / ref.norm())
                maps = [(t, dims) for t, dims in ((out.temporal, -1), (out.spatial, (-2, -1))) if t is not None]
                dev_sum = max([float((t.float().sum(d) - 1).abs().max()) for t, d in maps] or [0.0])
                sum_tol = max([1e-3 if t.dtype == torch.float32 else 1e-2 for t, _ in maps] or [1e-3])
                ok = finite and missing == 0 and dev_sum <= sum_tol and (err <= TOLERANCE[prec] or s is not FULL)
                rows.append(Row("1 heads", f"{name} {prec}{' channels_last' if cl else ''}",
                                f"err {err:.1e}, |sum-1| {dev_sum:.0e}, no grad {missing}, finite {finite}",
                                f"err <= {TOLERANCE[prec]:.3f}, |sum-1| <= {sum_tol:g}", ok))
        _layout(model, False)
    return rows


def _cuda_syncs(fn) -> tuple[list[str], int]:
    """(the Python line of each host sync while ``fn`` runs, syncs reported inside the mode switch).

    The first switch of the mode in a process can report a sync at the line of
    ``torch.cuda.set_sync_debug_mode`` itself: the switch's own, not the step's, so it is returned apart."""
    src, first = inspect.getsourcelines(torch.cuda.set_sync_debug_mode)
    setter, lines = Path(inspect.getsourcefile(torch.cuda.set_sync_debug_mode)), range(first, first + len(src))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    found = [w for w in caught if "synchroniz" in str(w.message)]
    ours = [f"{Path(w.filename).name}:{w.lineno}" for w in found
            if not (Path(w.filename) == setter and w.lineno in lines)]
    return ours, len(found) - len(ours)


def _cpu_reads(fn) -> tuple[list[str], int]:
    """Value reads while ``fn`` runs (a CPU has no syncs; a read is what would sync on a GPU)."""
    from bench_train_step import ScalarReads

    with ScalarReads() as reads:
        fn()
    return [""] * reads.count, 0


def check_syncs(dev: torch.device, s: Sizes) -> list[Row]:
    run, x, y = train_run(s, dev, "rgb", amp="bf16", batch=min(s.batch, 8))
    for _ in range(2):  # warm-up: cuDNN autotuning, lazy initialisation
        train_step(run, x, y)
    sync(dev)
    cuda = dev.type == "cuda"
    count = _cuda_syncs if cuda else _cpu_reads
    what = "host syncs (set_sync_debug_mode)" if cuda else "value reads (CPU: no syncs exist)"
    steps, switch = count(lambda: [train_step(run, x, y) for _ in range(10)])
    reads, _ = count(lambda: run.meter.read()["loss"] if cuda else float(run.meter.sums[0]))
    where = sorted(set(steps) - {""})
    value = (f"{len(steps)}" + (f" at {', '.join(where)}" if where else "")
             + (f" (+{switch} inside set_sync_debug_mode itself, not counted)" if switch else ""))
    return [Row("2 host syncs", f"10 training steps, bf16, channels_last, batch {x.shape[0]}x{s.segments}: {what}",
                value, "0", not steps),
            Row("2 host syncs", "one meter read (shows the counter works)", str(len(reads)), ">= 1", len(reads) >= 1)]


def check_step(dev: torch.device, s: Sizes, compile_: bool, modalities: tuple[str, ...] = ("rgb", "flow"),
               profile: bool = True) -> tuple[list[Row], dict[str, float]]:
    peak = matmul_rate(dev, torch.bfloat16, s)
    rows = [Row("3 training step", "bf16 matmul (baseline)", f"{peak / 1e12:.3g} TFLOP/s")]
    rates: dict[str, float] = {}
    for modality in modalities:
        run, x, y = train_run(s, dev, modality, amp="bf16", batch=s.batch)
        with FlopCounterMode(display=False) as fc:
            train_step(run, x, y)
        flops = fc.get_total_flops()
        variants = [("eager", run.model)]
        if compile_ and modality == "rgb":
            variants.append(("torch.compile", torch.compile(run.model)))
        for name, net in variants:
            run.model = net
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            if name == "torch.compile":
                dynamo.reset()
                dynamo.utils.counters.clear()
            for _ in range(3):  # warm-up (and compilation)
                train_step(run, x, y)
            sync(dev)
            warm = time.perf_counter() - t0
            t = timed(lambda: train_step(run, x, y), dev, s.steps) / s.steps
            key = modality if name == "eager" else f"{modality} compiled"
            rates[key], rates[f"{key} FLOP/s"] = x.shape[0] / t, flops / t
            mem = f"{torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB peak" if dev.type == "cuda" else "peak n/a (CPU)"
            extra = ""
            if name == "torch.compile":
                breaks = sum(dynamo.utils.counters["graph_break"].values())
                extra = f", compile {warm:.0f} s, {breaks} graph breaks"
            ratio = flops / t / peak
            rows.append(Row("3 training step", f"{modality} {name}, batch {x.shape[0]}x{s.segments}, bf16, channels_last",
                            f"{x.shape[0] / t:.1f} clips/s, {flops / t / 1e12:.3g} TFLOP/s = {ratio:.2f} of matmul, "
                            f"{mem}{extra}"))  # the goal is the peer's (3b): a fraction of the matmul peak is no anchor
            if modality == "rgb" and name == "eager" and profile:
                rows.append(step_profile(run, x, y, dev))
    return rows, rates


def step_profile(run, x, y, dev: torch.device, top: int = 6) -> Row:
    """Where an eager training step spends its time: the kernels (CPU: operators) with the largest
    self time over 3 steps, as shares of the total (the first question for the >= 0.4 goal)."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(3):
            train_step(run, x, y)
        sync(dev)
    attr = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr) > 0]
    total = sum(getattr(e, attr) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return Row("3 training step", f"rgb eager: largest self {'GPU' if dev.type == 'cuda' else 'CPU'} time (torch.profiler, 3 steps)",
               "; ".join(f"{e.key[:48]} {100 * getattr(e, attr) / total:.0f} %" for e in ranked))


def check_peer(dev: torch.device, s: Sizes, compile_: bool, rates: dict[str, float]) -> list[Row]:
    """The T-STAM RGB step against a ResNet-50 TSN step (``resnet_peer.py``) on the same batch of
    frames, bf16 autocast and channels_last, eager and compiled; the T-STAM rates are the step
    section's of this run (measured here if that section did not run)."""
    from resnet_peer import build_peer, tsn_step

    if "rgb" not in rates or (compile_ and "rgb compiled" not in rates):
        rates.update(check_step(dev, s, compile_, modalities=("rgb",), profile=False)[1])
    run, x, y = train_run(s, dev, "rgb", amp="bf16", batch=s.batch)
    x = x.view(x.shape[0], s.segments, 3, s.size, s.size)   # RGB snippets of one frame: the same frames
    frames = x.shape[0] * s.segments
    model, opt = build_peer(s.classes, s.width, dev, channels_last=True)
    pre, amp = run.bare.cfg.preprocess, run.amp and {"bf16": torch.bfloat16, "fp16": torch.float16}.get(run.amp)  # as the T-STAM step
    with FlopCounterMode(display=False) as fc:
        tsn_step(model, opt, x, y, device=dev, amp=amp, preprocess=pre)
    flops = fc.get_total_flops()
    rows = []
    variants = [("eager", model)] + ([("torch.compile", torch.compile(model))] if compile_ else [])
    for name, net in variants:
        t0 = time.perf_counter()
        for _ in range(3):  # warm-up (and compilation)
            tsn_step(net, opt, x, y, device=dev, amp=amp, preprocess=pre)
        sync(dev)
        warm = time.perf_counter() - t0
        t = timed(lambda: tsn_step(net, opt, x, y, device=dev, amp=amp, preprocess=pre), dev, s.steps) / s.steps  # noqa: B023
        ours = rates["rgb" if name == "eager" else "rgb compiled"] * s.segments  # clips/s -> frames/s
        ratio = ours / (frames / t)
        rows.append(Row("3b peer", f"ResNet-50 TSN {name}, {frames} frames ({x.shape[0]}x{s.segments}) at {s.size}, "
                        f"{run.amp if amp else 'float32'}, channels_last", f"{frames / t:.0f} frames/s, {flops / frames / 3e9:.3g} GFLOP/frame forward "
                        f"(x3 with backward), {flops / t / 1e12:.3g} TFLOP/s"
                        + (f", compile {warm:.0f} s" if name == "torch.compile" else "")))
        key = "rgb" if name == "eager" else "rgb compiled"
        rows.append(Row("3b peer", f"T-STAM RGB {name} frames/s / ResNet-50 TSN {name} frames/s",
                        f"{ours:.0f} / {frames / t:.0f} = {ratio:.2f} (model FLOP/s: "
                        f"{rates[key + ' FLOP/s'] / (flops / t):.2f} of the peer's)", ">= 1.0",
                        ratio >= 1.0 if dev.type == "cuda" and s is FULL else None))
    return rows


def check_grouped_conv(dev: torch.device, s: Sizes) -> list[Row]:
    model = build_model(ModelConfig(num_classes=s.classes, input_size=s.size, width_mult=s.width)).to(dev)
    conv = model.spatial_att.score                                   # l groups, 5x5, (l*C/2) -> l
    hw = -(-s.size // 32)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    conv = conv.to(dtype)
    times = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        conv.to(memory_format=fmt)
        x = torch.randn(s.batch * s.segments, conv.in_channels, hw, hw, device=dev, dtype=dtype,
                        requires_grad=True).contiguous(memory_format=fmt)
        times[fmt] = timed(lambda: conv(x).sum().backward(), dev, 20) / 20
    a, b = times[torch.contiguous_format], times[torch.channels_last]
    return [Row("4 grouped 5x5 conv", f"{conv.in_channels}->{conv.out_channels}, groups {conv.groups}, "
                f"{s.batch * s.segments} frames of {hw}x{hw}, {str(dtype)[6:]}, forward+backward",
                f"NCHW {a * 1e3:.2f} ms, NHWC {b * 1e3:.2f} ms, NHWC/NCHW {b / a:.2f}")]


def extract_balance_rows(dev: torch.device) -> list[Row]:
    """``tstam extract --flow tvl1_torch --device cuda``: decode workers that keep this GPU busy
    (``benchmarks/bench_extract.py`` part 2: one worker's CPU time per frame on this host, the
    device's quantised flow pairs/s at 320x240)."""
    from bench_extract import balance

    b = balance(str(dev), seconds=10.0)
    return [Row("9 GPU TV-L1", "tstam extract --flow tvl1_torch: decode workers per GPU (bench_extract.py part 2)",
                f"one worker {1000 * b['worker_s_per_frame']:.2f} ms CPU per frame, {dev} {b['pairs_per_s']:.0f} "
                f"pairs/s (batches of {b['batch']}) -> {b['workers_needed']} workers")]


def gpu_flow_rows(dev: torch.device, tiny: bool) -> list[Row]:
    """Eager and (on CUDA, where it is ``tvl1_flow``'s default) compiled inner iterations."""
    import gpu_flow

    rows = []
    for compiled in (False, True) if dev.type == "cuda" else (False,):
        for r in gpu_flow.run(str(dev), tiny=tiny, compile=compiled, seconds=5.0):
            goal = r["size"] == "320x240" and dev.type == "cuda" and compiled
            rows.append(Row("9 GPU TV-L1", f"tvl1_torch {'compiled' if compiled else 'eager'} {r['size']}, batch {r['batch']} "
                            "(benchmarks/gpu_flow.py)",
                            f"{r['pairs_per_s']:.1f} pairs/s, peak {r['peak_mib']:.0f} MiB (stated {r['model_mib']:.0f}), "
                            + (f"EPE vs OpenCV mean {r['epe_mean']:.4f} px, worst pair {r['epe_max_pair']:.3f}"
                               if r["epe_mean"] == r["epe_mean"] else "no OpenCV reference stored at this size"),
                            f">= {gpu_flow.GOAL:.0f} pairs/s, EPE <= {gpu_flow.EPE_GOAL}" if goal else "",
                            r["pairs_per_s"] >= gpu_flow.GOAL and r["epe_mean"] <= gpu_flow.EPE_GOAL if goal else None))
    return rows


def print_rows(rows: list[Row]) -> None:
    for r in rows:
        print(f"| {r.section} | {r.case} | {r.value} | {r.goal} | {'' if r.ok is None else 'yes' if r.ok else 'NO'} |",
              flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes, no torch.compile (the test suite's CPU run)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--max-memory-mb", type=float, default=1000.0, help="chunking budget of the test protocol")
    ap.add_argument("--only", default=None, help="comma-separated sections to run (heads, syncs, step, peer, conv, ddp, "
                    "protocol, loader, recognizer, gpu flow, extract balance); default all. 'loader' uses the step's rates")
    ap.add_argument("--_ddp", default=None, help=argparse.SUPPRESS)  # a torchrun worker of section 5
    args = ap.parse_args()
    s = TINY if args.tiny else FULL
    dev = torch.device(args.device)
    if args.tiny:
        torch.set_num_threads(1)
    if args._ddp:
        return ddp_worker(Path(args._ddp), s, args.device)
    if dev.type == "cuda":
        configure_cuda()
    t0 = time.perf_counter()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    rows: list[Row] = [Row("0 machine", name, f"torch {torch.__version__}, {'tiny' if args.tiny else 'full'} sizes")]
    rates: dict[str, float] = {}

    def step() -> list[Row]:
        out, r = check_step(dev, s, compile_=not args.tiny)
        rates.update(r)
        return out

    sections = [("heads", lambda: check_heads(dev, s)), ("syncs", lambda: check_syncs(dev, s)), ("step", step),
                ("peer", lambda: check_peer(dev, s, not args.tiny, rates)), ("conv", lambda: check_grouped_conv(dev, s)), ("ddp", lambda: check_ddp(Path(__file__), s, args.device, args.tiny)),
                ("protocol", lambda: check_protocol(dev, s, args.max_memory_mb)), ("loader", lambda: check_loader(dev, s, rates)),
                ("recognizer", lambda: check_recognizer(dev)), ("gpu flow", lambda: gpu_flow_rows(dev, args.tiny))]
    if not args.tiny:  # decodes the real clips and times the device for 10 s: not for the suite's CPU run
        sections.append(("extract balance", lambda: extract_balance_rows(dev)))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        unknown = sorted(set(wanted) - {label for label, _ in sections})
        if unknown:
            ap.error(f"--only: unknown section(s) {unknown}; valid: {', '.join(label for label, _ in sections)}")
        sections = [(label, fn) for label, fn in sections if label in wanted]
    # a one-shot run on a lent machine: each section's rows are printed (and the JSON rewritten) as soon as
    # it ends, and a section that raises becomes a failed row instead of losing the sections after it
    print("| section | case | value | goal | ok |\n|---|---|---|---|---|", flush=True)
    print_rows(rows)
    for label, section in sections:
        t = time.perf_counter()
        try:
            new = section()
        except Exception as e:  # noqa: BLE001 - reported as a failed row, the check goes on
            traceback.print_exc()
            new = [Row(label, "section raised", f"{type(e).__name__}: {e}"[:600], "runs", False)]
        print(f"{label}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        new += [Row("0 machine", "whole check", f"{time.perf_counter() - t0:.0f} s", "< 480 s on one H100",
                    None if args.tiny else time.perf_counter() - t0 < 480)] if label == sections[-1][0] else []
        print_rows(new)
        rows += new
        if args.json:
            Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if any(r.ok is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
