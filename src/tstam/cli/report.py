"""``tstam report``: score files of splits 1-3 -> one Markdown table (per stream and fused)."""
from __future__ import annotations

import argparse

from tstam.cli.args import nonnegative_float


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="Markdown table of top-1 over splits (per stream and fused)",
                       description="Turn the score files of splits 1-3 (RGB, flow, optionally fused) into one "
                                   "Markdown table with the mean and spread over splits, like the paper's.")
    p.add_argument("scores", nargs="+", help="score files (.npz) from tstam test / tstam fuse")
    p.add_argument("--weights", type=nonnegative_float, nargs=2, default=None, metavar=("RGB", "FLOW"),
                   help="weights of the fused rows computed here (default 1 3)")
    p.add_argument("--mode", choices=("softmax", "raw"), default="softmax")
    p.add_argument("--title", default="Top-1 accuracy (%)")
    p.add_argument("-o", "--out", default=None, help="also write the table to this file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.engine.split_report import build_report
    from tstam.files import check_output_file, write_text_atomic

    if args.out:
        check_output_file(args.out)
    md = build_report(args.scores, weights=args.weights, mode=args.mode, title=args.title)
    print(md, end="")
    if args.out:
        write_text_atomic(args.out, md)
    return 0
