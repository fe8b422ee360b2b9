"""``tstam ablate``: the paper's ablations and baselines on the synthetic benchmark."""
from __future__ import annotations

import argparse

from tstam.cli.args import int_list, positive_int
from tstam.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tstam.ablate import GROUPS, METRICS
    from tstam.ablate.settings import PRESETS

    p = sub.add_parser("ablate", help="the paper's ablations on the synthetic benchmark (table and PNG)",
                       description="Train T-STAM variants on the synthetic benchmark for several seeds and "
                                   "write table.md/table.csv/claims.csv (mean and spread, where alpha looks, "
                                   "test-time interventions on alpha, per-frame evidence, and each claim's paired "
                                   "per-seed difference with its 95 % t interval and verdict), ablation.png and "
                                   "alpha.png: baselines (TSN consensus, temporal-only, spatial-only), the options "
                                   "beyond the paper, fusion weights, segments 3-6, heads 1-5, SE on/off, sum "
                                   "pooling and LSTM attention. Finished runs are reused, so an interrupted grid "
                                   "continues. Hours on 2 CPU cores for the full grid. Every run's row goes to "
                                   "runs.csv, from which --from-csv rebuilds the tables and --compare compares "
                                   "settings across folders.")
    p.add_argument("--out", default="ablate", help="output folder (default: ablate; a demo folder works too)")
    p.add_argument("--preset", default="demo", choices=PRESETS,
                   help="synthetic benchmark preset (default: demo; localized: short action windows; untrimmed: "
                        "short action windows among other classes' actions)")
    p.add_argument("--only", default=",".join(GROUPS),
                   help=f"comma-separated groups (default: all: {','.join(GROUPS)}) or single settings as "
                        "group/setting, e.g. \"baselines/TSN average consensus\"")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2, 3, 4],
                   help="comma-separated training seeds (default: 0,1,2,3,4)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs of the baselines, options and fusion runs (default: flow 36, RGB 8, the budget of the published tables)")
    p.add_argument("--short-epochs", type=positive_int, default=None,
                   help="epochs of the segments, heads, SE and design runs (default: 12)")
    p.add_argument("--segments", type=positive_int, default=None,
                   help="training segments of every run (default: the demo's 4); a folder holds one value")
    p.add_argument("--input-size", type=positive_int, default=None,
                   help="network crop of every run, a multiple of 32 (default: the demo's 64; frames are extracted "
                        "at 1.25x it); a folder holds one value")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: one per core)")
    p.add_argument("--quick", action="store_true", help="tiny benchmark (of the preset), one epoch per run (tests)")
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("--tables-only", action="store_true",
                       help="train nothing: rebuild the tables and pictures from the finished runs in --out (from "
                            "its runs.csv where the run folders are not there)")
    modes.add_argument("--from-csv", metavar="CSV",
                       help="train nothing: rebuild the tables and pictures in --out from a runs.csv alone (every "
                            "tstam ablate writes one beside table.md: each run's row), e.g. "
                            "--from-csv docs/ablation/data/untrimmed.csv --out docs/ablation/untrimmed")
    modes.add_argument("--compare", nargs=2, metavar=("A", "B"),
                       help="train nothing: print A - B seed by seed, its mean and 95 %% Student-t interval and the "
                            "verdict (as the claims), each side PATH:SETTING with PATH a runs.csv or an output folder "
                            "and SETTING group/setting, e.g. --compare \"ablate-n8:baselines/TSN average consensus\" "
                            "\"ablate-n4:baselines/TSN average consensus\"")
    p.add_argument("--metric", default="top1", choices=METRICS,
                   help="what --compare compares, in points (default: top1)")
    p.set_defaults(run=run)


def demo_overrides(args: argparse.Namespace) -> dict:
    """--segments and --input-size as ``DemoConfig`` fields (the frames 1.25x the crop, as the demo's 80 for 64)."""
    out = {"num_segments": args.segments} if args.segments else {}
    if args.input_size:
        out.update(input_size=args.input_size, frame_size=args.input_size * 5 // 4)
    return out


def _compare(args: argparse.Namespace) -> int:
    from tstam.ablate import compare, find_setting, parse_side, read_runs, t_quantile

    sides = []
    for spec in args.compare:
        path, setting = parse_side(spec)
        rows = read_runs(path)
        sides.append((path, rows, find_setting(rows, setting, f"{path}: ")))
    (pa, ra, ka), (pb, rb, kb) = sides
    c = compare(ra, ka, rb, kb, args.metric)
    d = c.diff
    if d.n == 0:
        raise InputError(f"{pa} {ka[0]}/{ka[1]} (seeds {sorted(c.a)}) and {pb} {kb[0]}/{kb[1]} (seeds {sorted(c.b)}) "
                         f"have no seed with {args.metric} in common; expected runs of the same training seeds")
    print(f"a: {pa}: {ka[0]}/{ka[1]}")
    print(f"b: {pb}: {kb[0]}/{kb[1]}")
    print(f"{args.metric} (points), seed by seed:")
    print(f"{'seed':>6} {'a':>7} {'b':>7} {'a - b':>7}")
    for s in d.seeds:
        print(f"{s:>6} {c.a[s]:>7.1f} {c.b[s]:>7.1f} {c.a[s] - c.b[s]:>+7.1f}")
    if d.n == 1:
        print(f"a - b: {d.mean:+.1f} points on 1 seed: no interval; inconclusive")
    else:
        print(f"a - b: {d.mean:+.1f} [{d.lo:+.1f}, {d.hi:+.1f}] points: mean over {d.n} paired seeds and its 95 % "
              f"Student-t interval (t_0.975 = {t_quantile(d.n - 1):.3f}, sd {d.sd:.2f}); {d.verdict}")
    return 0


def run(args: argparse.Namespace) -> int:
    from tstam.ablate import AblateConfig, run_ablation, tables_from_csv

    if args.compare:
        return _compare(args)
    if args.from_csv:
        table = tables_from_csv(args.from_csv, args.out)
        print(table.read_text())
        print(f"table: {table}")
        print(f"plots: {table.with_name('ablation.png')}, {table.with_name('alpha.png')}")
        return 0
    kw = {k: v for k, v in (("epochs", args.epochs), ("short_epochs", args.short_epochs),
                            ("threads", args.threads)) if v is not None}
    cfg = AblateConfig(out=args.out, preset=args.preset, seeds=args.seeds,
                       only=[g.strip() for g in args.only.split(",") if g.strip()], quick=args.quick,
                       train=not args.tables_only,
                       demo_overrides=demo_overrides(args), **kw)
    table = run_ablation(cfg, on_row=lambda r: print(f"{r['group']}: {r['setting']} seed {r['seed']}: "
                                                      f"top-1 {100 * r['top1']:.1f} %", flush=True))
    print(table.read_text())
    print(f"table: {table}")
    print(f"plots: {table.with_name('ablation.png')}, {table.with_name('alpha.png')}")
    return 0
