"""``tstam train``: train one stream from a preset or YAML config plus key=value overrides."""
from __future__ import annotations

import argparse
import os

import yaml


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one stream (RGB or flow)",
                       description="Train one T-STAM stream. Under torchrun the run uses DDP "
                                   "(e.g. torchrun --nproc-per-node 4 -m tstam train --config ucf101_rgb).")
    p.add_argument("--config", required=True,
                   help="a shipped preset (scratch_rgb, scratch_flow: your own folder of class folders from scratch; "
                        "finetune_rgb, finetune_flow: the same from ImageNet weights; ucf101_*, hmdb51_*, synthetic_*) "
                        "or a YAML file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. annotations.split=2 optim.lr=0.005 run.out_dir=runs/x")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue from run.out_dir/last.pt, or from the checkpoint given")
    p.add_argument("--force", action="store_true",
                   help="start over when run.out_dir holds a run: the old run is moved to <out_dir>.old-<date-time> "
                        "(default: refuse, naming --resume and --force)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (default: on a terminal; a log line every run.log_every steps otherwise)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.device import resolve_device
    from tstam.engine.config import load_train_config
    from tstam.engine.train import fit

    cfg = load_train_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    resolve_device(cfg.run.device, option="run.device")  # before any work: a bad name, or CUDA on a CPU build
    # fit checks run.out_dir first of all: a run there is refused unless --resume or --force
    row = fit(cfg, resume=args.resume, force=args.force, progress=False if args.no_progress else None)
    if row and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        best = row.get("best_top1")
        val = f"best val top-1 {100 * best:.1f} %" if best is not None else "no validation yet"
        print(f"done: epoch {row.get('epoch')}, step {row.get('step')}, {val}; checkpoints in {cfg.run.out_dir}")
        if row.get("previous_run"):
            print(f"the previous run is in {row['previous_run']} (--force)")
    return 0
