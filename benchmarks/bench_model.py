"""Model speed and memory, as ratios against baselines measured in the same run.

1. Backbone inference at 224, batch 16: achieved FLOP/s / fp32 matmul FLOP/s of this machine,
   for the plain definition and for the inference path (BN folded, 1x1 convs merged; channels_last
   and torch.compile measured as options).
2. T-STAM head time / backbone time at N = 6.
3. CNN temporal attention vs LSTM attention at equal D: parameter ratio and time ratio.
4. Peak memory of one training step at batch 8 x 6 segments, full size (fresh process).

    python benchmarks/bench_model.py [--batch 16] [--repeats 3] [--compile] [--device cuda] [--bf16]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from tstam.models import ModelConfig, build_model, prepare_for_inference
from tstam.models.attention import CNNTemporalAttention, LSTMTemporalAttention


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: str, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_flops(device: str, dtype: torch.dtype, repeats: int) -> float:
    n = 4096 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    iters = 20 if device == "cuda" else 3
    t = best_time(lambda: [a @ b for _ in range(iters)], device, repeats)
    return 2 * n**3 * iters / t


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def train_step_memory(batch: int, segments: int) -> None:
    """Child process: peak RSS of one SGD step of the full model (CPU)."""
    model = build_model(ModelConfig(num_classes=101))
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x = torch.randn(batch, segments, 3, 224, 224)
    y = torch.randint(0, 101, (batch,))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss = torch.nn.functional.cross_entropy(model(x).logits, y)
    loss.backward()
    opt.step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    params = sum(p.numel() for p in model.parameters()) * 4
    print(f"{before / 2**20:.3f} {after / 2**20:.3f} {params / 2**30:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast (GPU)")
    ap.add_argument("--compile", action="store_true", help="also try torch.compile (slow to build on CPU)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--_memory", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._memory:
        return train_step_memory(*args._memory)
    dev = args.device
    torch.manual_seed(0)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    # 1. backbone inference ------------------------------------------------------------------
    peak = matmul_flops(dev, torch.float32, args.repeats)
    print(f"\n1. fp32 matmul: {peak / 1e9:.1f} GFLOP/s (baseline)")
    model = build_model(ModelConfig(num_classes=101)).to(dev).eval()
    x = torch.randn(args.batch, 3, 224, 224, device=dev)
    flops = count_flops(lambda: model.backbone(x[:1])) * args.batch
    variants = {"reference definition (eval)": model.backbone}
    variants["BN folded"] = prepare_for_inference(model, merge_1x1=False).backbone
    fast = prepare_for_inference(model).backbone
    variants["BN folded + 1x1 merged"] = fast
    variants["BN folded + channels_last"] = prepare_for_inference(model, merge_1x1=False, channels_last=True).backbone
    fast_cl = prepare_for_inference(model, channels_last=True).backbone
    variants["folded + merged + channels_last (our path)"] = fast_cl
    if args.compile:
        variants["folded + merged + compile"] = torch.compile(fast)
    print(f"   backbone, batch {args.batch} at 224: {flops / 1e9:.1f} GFLOP per batch")
    print(f"   {'variant':44s} {'s/batch':>8s} {'GFLOP/s':>8s} {'/matmul':>8s}")
    results = {}
    with torch.inference_mode():
        ref_out = model.backbone(x)
        for name, net in variants.items():
            inp = x.contiguous(memory_format=torch.channels_last) if "channels_last" in name else x
            err = (net(inp) - ref_out).abs().max().item() / ref_out.abs().max().item()
            t = best_time(lambda: net(inp), dev, args.repeats)
            results[name] = t
            print(f"   {name:44s} {t:8.3f} {flops / t / 1e9:8.1f} {flops / t / peak:8.2f}   (rel. err {err:.1e})")
        if args.bf16 and dev == "cuda":
            peak16 = matmul_flops(dev, torch.bfloat16, args.repeats)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                inp = x.contiguous(memory_format=torch.channels_last)
                t = best_time(lambda: fast_cl(inp), dev, args.repeats)
            print(f"   bf16 autocast, folded+merged+channels_last: {t:8.3f} {flops / t / 1e9:8.1f} "
                  f"{flops / t / peak16:8.2f} of bf16 matmul ({peak16 / 1e9:.0f} GFLOP/s)")

    # 2. head vs backbone at N = 6 ----------------------------------------------------------
    b, n = max(1, args.batch // 6), 6
    clip = torch.randn(b, n, 3, 224, 224, device=dev)
    with torch.inference_mode():
        feats = model.forward_features(clip)
        t_bb = best_time(lambda: model.forward_features(clip), dev, args.repeats)
        t_head = best_time(lambda: model.forward_head(feats), dev, args.repeats * 3)
    with torch.inference_mode():
        head_flops = count_flops(lambda: model.forward_head(feats))
    print(f"\n2. T-STAM head vs backbone, B={b}, N={n}: head {t_head * 1e3:.2f} ms, backbone {t_bb * 1e3:.1f} ms, "
          f"ratio {t_head / t_bb:.4f} (goal <= 0.03); head FLOPs / backbone FLOPs "
          f"{head_flops / (flops / args.batch * b * n):.4f}")

    # 3. CNN vs LSTM temporal attention ------------------------------------------------------
    d = model.backbone.num_features
    cnn, lstm = CNNTemporalAttention(d).to(dev).eval(), LSTMTemporalAttention(d).to(dev).eval()
    p_cnn = sum(p.numel() for p in cnn.parameters())
    p_lstm = sum(p.numel() for p in lstm.parameters())
    print(f"\n3. temporal attention at D={d}, hidden 256: params CNN {p_cnn:,} vs LSTM {p_lstm:,}, "
          f"ratio {p_cnn / p_lstm:.4f} (goal <= 0.2)")
    with torch.inference_mode():
        for nn_ in (6, 25):
            frames = torch.randn(32, nn_, d, device=dev)
            t_c = best_time(lambda: cnn(frames), dev, args.repeats * 5, warmup=3)
            t_l = best_time(lambda: lstm(frames), dev, args.repeats * 5, warmup=3)
            print(f"   B=32, N={nn_:2d}: CNN {t_c * 1e3:.3f} ms, LSTM {t_l * 1e3:.3f} ms, time ratio {t_c / t_l:.3f} (goal <= 0.5)")

    # 4. training-step memory -----------------------------------------------------------------
    if not args.skip_memory and dev == "cpu":
        out = subprocess.run([sys.executable, __file__, "--_memory", "8", "6"], capture_output=True, text=True, check=True)
        before, after, params = map(float, out.stdout.split())
        print(f"\n4. one SGD training step, batch 8 x 6 segments at 224, full model (CPU, fresh process): "
              f"peak RSS {after:.2f} GiB (model+input built: {before:.2f} GiB; parameters {params:.3f} GiB), "
              f"step adds {after - before:.2f} GiB = {(after - before) / params:.0f}x the parameter memory")
    elif dev == "cuda" and not args.skip_memory:
        torch.cuda.reset_peak_memory_stats()
        m = build_model(ModelConfig(num_classes=101)).to(dev).train()
        opt = torch.optim.SGD(m.parameters(), lr=0.001, momentum=0.9)
        xx = torch.randn(8, 6, 3, 224, 224, device=dev)
        base = torch.cuda.memory_allocated()
        torch.nn.functional.cross_entropy(m(xx).logits, torch.zeros(8, dtype=torch.long, device=dev)).backward()
        opt.step()
        print(f"\n4. one training step, batch 8 x 6 at 224 (CUDA fp32): peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB "
              f"(before the step {base / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
