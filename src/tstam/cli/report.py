"""``tstam report``: run folders and/or score files -> a report folder (accuracy per stream and
fused, per class, confusion matrices, training curves, attention on test clips)."""
from __future__ import annotations

import argparse

from tstam.cli.args import nonnegative_float, nonnegative_int
from tstam.errors import OutputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a report of trained runs: accuracy per stream and fused, per class, "
                                      "confusion, curves, attention",
                       description="Report on trained runs: given run folders (run.out_dir of tstam train, after "
                                   "tstam test) and/or score files (.npz), print top-1, top-5 and mean class accuracy "
                                   "per stream and fused (with several splits, e.g. UCF101's 3, also the mean ± std "
                                   "of top-1 over splits), and with -o write a folder with report.md: those tables, "
                                   "per-class accuracy, the confusion matrices as pictures, the training curves and "
                                   "attention pictures of a few test clips, plus summary.json.")
    p.add_argument("inputs", nargs="+", metavar="RUN_OR_SCORES",
                   help="run folders (their test score files are used) and/or score files from tstam test / fuse")
    p.add_argument("-o", "--out", default=None, metavar="DIR",
                   help="write the whole report into this folder (report.md, PNGs, summary.json)")
    p.add_argument("--weights", type=nonnegative_float, nargs=2, default=None, metavar=("RGB", "FLOW"),
                   help="weights of the fused rows computed here (default: those tstam fuse --search recorded for "
                        "the runs' checkpoints, else 1 3)")
    p.add_argument("--mode", choices=("softmax", "raw"), default="softmax")
    p.add_argument("--clips", type=nonnegative_int, default=4,
                   help="test clips drawn with their attention (default 4; 0: none)")
    p.add_argument("--title", default="Report", help="the report's heading")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.files import check_writable_dir
    from tstam.report import build_report

    if args.out:
        if args.out.lower().endswith(".md"):
            raise OutputError(f"{args.out}: -o takes a folder (the report writes report.md and its pictures into "
                              "it), e.g. -o report")
        check_writable_dir(args.out)  # before any work
    text, path = build_report(args.inputs, out=args.out, weights=args.weights, mode=args.mode, title=args.title,
                              clips=args.clips)
    print(text, end="")
    if path is not None:
        print(f"report: {path}")
    return 0
