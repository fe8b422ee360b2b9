"""``tstam test``: the paper's test protocol (25 frames x 10 crops) on a checkpoint."""
from __future__ import annotations

import argparse
import os

from tstam.cli.args import int_range, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tstam.data.config import MAX_TEST_FRAMES

    p = sub.add_parser("test", help="test a checkpoint (25 frames x 10 crops), save per-video scores",
                       description="Score every test video of the checkpoint's split (from its stored config, "
                                   "or overridden) with the paper's protocol; print top-1, top-5 and mean class "
                                   "accuracy; write the score file and the confusion matrix.")
    p.add_argument("--checkpoint", required=True, nargs="+",
                   help="a tstam checkpoint (best.pt / last.pt), or several (e.g. an RGB and a flow one), each tested "
                        "in turn")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="overrides of the stored config, e.g. annotations.split=2 data.root=/data/frames")
    p.add_argument("--frames", type=int_range(1, MAX_TEST_FRAMES), default=None,
                   help=f"snippets per video (default: config, 25; at most {MAX_TEST_FRAMES})")
    p.add_argument("--crops", type=int, choices=(1, 3, 10), default=None, help="crops per snippet (default: config, 10)")
    p.add_argument("--chunk-frames", type=positive_int, default=250, help="most frames per forward (default 250)")
    p.add_argument("--max-memory-mb", type=positive_float, default=None,
                   help="derive the chunk size from this memory budget (instead of --chunk-frames)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast on CUDA")
    p.add_argument("--subset", choices=("test", "val", "train"), default="test",
                   help="which list to score; val: the training hold-out (annotations.val_fraction), "
                        "the set to search fusion weights on")
    p.add_argument("-o", "--out", default=None,
                   help="score file (.npz); default beside the checkpoint, named by stream, split, subset and "
                        "protocol: scores_<stream>_split<k>_<subset>_<frames>x<crops>.npz")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.engine.testing import run_test
    from tstam.errors import InputError

    # KEY=VALUE words after --checkpoint's files are overrides (argparse gives them to --checkpoint)
    given = [c for c in args.checkpoint if "=" not in c or os.path.exists(c)]
    args.overrides = [c for c in args.checkpoint if c not in given] + list(args.overrides)
    args.checkpoint = given
    if not given:
        raise InputError("--checkpoint names no checkpoint file; expected e.g. --checkpoint runs/rgb/best.pt")
    if args.out and len(args.checkpoint) > 1:
        raise InputError(f"-o {args.out} names one score file but {len(args.checkpoint)} checkpoints were given; "
                         "leave -o out (each score file goes beside its checkpoint) or test one checkpoint")
    for ckpt in args.checkpoint:
        _, s, path = run_test(ckpt, overrides=args.overrides, frames=args.frames, crops=args.crops,
                              chunk_frames=args.chunk_frames, max_memory_mb=args.max_memory_mb or 0,
                              device=args.device, amp=args.amp, out=args.out, subset=args.subset)
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
            continue
        print(f"{ckpt}: top-1 {100 * s['top1']:.2f}  top-5 {100 * s['top5']:.2f}  mean class "
              f"{100 * s['mean_class']:.2f}  ({s['videos']} videos)")
        print(f"scores: {path}\nconfusion matrix: {path.with_name(path.stem + '_confusion.csv')} (+ .png)")
    return 0
