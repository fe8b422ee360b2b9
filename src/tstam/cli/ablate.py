"""``tstam ablate``: the paper's ablations and baselines on the synthetic benchmark."""
from __future__ import annotations

import argparse

from tstam.cli.args import int_list, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tstam.ablate import GROUPS

    p = sub.add_parser("ablate", help="the paper's ablations on the synthetic benchmark (table and PNG)",
                       description="Train T-STAM variants on the synthetic benchmark for several seeds and "
                                   "write table.md/table.csv (mean and spread) and ablation.png: segments 3-6, "
                                   "heads 1-5, fusion weights, SE on/off, and the baselines (TSN consensus, "
                                   "temporal-only, spatial-only, sum pooling, LSTM attention). Finished runs are "
                                   "reused, so an interrupted grid continues. Hours on 2 CPU cores for the full grid.")
    p.add_argument("--out", default="ablate", help="output folder (default: ablate; a demo folder works too)")
    p.add_argument("--only", default=",".join(GROUPS),
                   help=f"comma-separated groups (default: all: {','.join(GROUPS)}) or single settings as "
                        "group/setting, e.g. \"baselines/TSN average consensus\"")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="comma-separated training seeds (default: 0,1,2)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs per run (default: 8)")
    p.add_argument("--quick", action="store_true", help="tiny benchmark, one epoch per run (tests)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.ablate import AblateConfig, run_ablation

    kw = {"epochs": args.epochs} if args.epochs else {}
    cfg = AblateConfig(out=args.out, seeds=args.seeds, only=[g.strip() for g in args.only.split(",") if g.strip()],
                       quick=args.quick, **kw)
    table = run_ablation(cfg, on_row=lambda r: print(f"{r['group']}: {r['setting']} seed {r['seed']}: "
                                                      f"top-1 {100 * r['top1']:.1f} %", flush=True))
    print(table.read_text())
    print(f"table: {table}")
    print(f"plot: {table.with_name('ablation.png')}")
    return 0
