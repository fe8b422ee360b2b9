"""``tstam demo``: generate, extract, train both streams, test, fuse 1:3 and write a report."""
from __future__ import annotations

import argparse
import time

from tstam.cli.args import nonnegative_int, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the synthetic benchmark, with a report",
                       description="From nothing: generate the synthetic benchmark, extract frames and optical "
                                   "flow, train the RGB and flow T-STAM, test both, fuse them (RGB:flow = 1:1; "
                                   "--paper: 1:3) and write a report (accuracies, per-group accuracy, curves, "
                                   "confusion matrices, attention). About 3 minutes on 2 CPU cores (docs/demo.md). A "
                                   "second run with the same --out reuses the finished stages.")
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="benchmark and training seed (default: 0)")
    p.add_argument("--quick", action="store_true",
                   help="tiny benchmark and 6 short epochs: the same path in well under a minute")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs per stream (default: the recipe's, RGB 24, flow 60; quick: 6)")
    p.add_argument("--crops", type=int, choices=(1, 3, 10), default=None, help="test crops (default: 1)")
    p.add_argument("--flow", choices=("dis", "farneback", "tvl1"), default=None,
                   help="optical flow algorithm (default: dis; tvl1 is the paper's, 23x slower per frame pair in benchmarks/bench_flow.py)")
    p.add_argument("--paper", action="store_true",
                   help="the paper's model for both streams (no options beyond the paper; it keeps mean frame "
                        "pooling and the 2*sigmoid SE gate, docs/design.md) and fusion RGB:flow = 1:3; its runs, "
                        "scores and report go beside the default's in --out, and each report names the other's numbers")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads (default: one per core); the trained weights depend on it (docs/demo.md)")
    p.add_argument("--workers", type=nonnegative_int, default=None, help="loader worker processes (default: 0, frames are decoded in the training process)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.demo import DemoConfig, run_demo

    kw = {k: v for k, v in (("epochs", args.epochs), ("test_crops", args.crops), ("flow", args.flow),
                            ("workers", args.workers), ("threads", args.threads)) if v is not None}
    kw["paper"] = args.paper
    start = time.perf_counter()
    res = run_demo(DemoConfig.make(out=args.out, seed=args.seed, quick=args.quick, **kw))
    took = time.perf_counter() - start
    for s in ("rgb", "flow"):
        a = res.attention.get(s) or {}
        if a:
            print(f"{s} temporal attention: {100 * a['share_in_window']:.1f} % of alpha inside the true action "
                  f"window (uniform: {100 * a['uniform_share']:.1f} %)")
    g = res.groups
    for grp in ("motion", "appearance"):
        if grp in g["rgb"]:
            print(f"{grp}-only classes: RGB {100 * g['rgb'][grp]:.1f} %, flow {100 * g['flow'][grp]:.1f} %, "
                  f"fused {100 * g['fused'][grp]:.1f} %")
    opts = "; ".join(f"{s} " + ", ".join(f"{k}={v}" for k, v in o.items()) for s, o in res.options.items() if o)
    w = ":".join(f"{x:g}" for x in res.weights)
    print(f"model options beyond the paper: {opts}; fusion RGB:flow {w} (--paper: none, 1:3)" if opts
          else f"model: the paper's equations with mean frame pooling and the 2*sigmoid SE gate; fusion RGB:flow {w}")
    if res.reused:
        print("reused: " + ", ".join(res.reused))
    print(f"done in {took / 60:.1f} min")
    print(f"report: {res.report}")
    print(f"top-1: RGB {100 * res.top1['rgb']:.1f} %, flow {100 * res.top1['flow']:.1f} %, "
          f"fused {100 * res.top1['fused']:.1f} %")
    return 0
