"""``tstam synth``: generate the synthetic action benchmark (docs/design.md, The synthetic benchmark)."""
from __future__ import annotations

import argparse
import time

from tstam.cli.args import nonnegative_int
from tstam.config import apply_overrides
from tstam.synthetic import PRESETS, generate, load_annotations, make_config
from tstam.synthetic.config import config_fields


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "synth",
        help="generate the synthetic action benchmark (videos + UCF101-format splits)",
        description="Generate labelled clips whose classes differ only in motion, only in "
        "appearance (equiluminant colour) or in a two-actor interaction, as encoded videos with "
        "classInd.txt / trainlist01.txt / testlist01.txt, annotations.json (action windows, and with the "
        "untrimmed preset the other actions around them) and "
        "benchmark.json. Re-running with the same settings reuses a complete output.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS),
                   help="named config (default: demo; localized: short action windows, moving idle part; untrimmed: "
                        "short action windows among other classes' actions, the labelled one marked by a pulsing ring; "
                        "tiny: tests)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="main seed (train and test seeds derive from it)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"config overrides, e.g. num_frames=48 noise_std=0; keys: {', '.join(config_fields())}")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg = make_config(args.preset, apply_overrides({}, args.overrides))
    start = time.perf_counter()
    splits = generate(args.out, cfg, seed=args.seed, progress=True)
    clips = load_annotations(args.out).values()
    n_train = sum(c.split == "train" for c in clips)
    print(f"preset {args.preset}, seed {args.seed}: {len(cfg.classes)} classes, {n_train} train / {len(clips) - n_train} test clips of "
          f"{cfg.num_frames} frames at {cfg.width}x{cfg.height}, {time.perf_counter() - start:.1f} s")
    print(f"splits: {splits}")
    return 0
