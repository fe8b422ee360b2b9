"""``tstam fuse``: weighted late fusion of score files (default RGB:flow = 1:3), optional weight search."""
from __future__ import annotations

import argparse
import json

from tstam.cli.args import nonnegative_float
from tstam.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="fuse per-stream score files (RGB:flow = 1:3 by default)",
                       description="Weighted late fusion of two or more score files of the same videos. "
                                   "--search picks weights on --val score files and applies them to the inputs; "
                                   "weights chosen on validation for an RGB and a flow checkpoint are recorded in "
                                   "fusion.json beside each checkpoint, and tstam predict, visualize, serve and report "
                                   "use them for those checkpoints from then on.")
    p.add_argument("scores", nargs="+", help="score files (.npz) from tstam test, one per stream")
    p.add_argument("--weights", type=nonnegative_float, nargs="+", default=None, help="one weight per file (default 1 RGB, 3 flow)")
    p.add_argument("--mode", choices=("softmax", "raw"), default="softmax", help="fuse probabilities or raw scores")
    p.add_argument("--search", action="store_true", help="search the weights on --val (or, with --search-on-test, the inputs)")
    p.add_argument("--val", nargs="+", default=None, help="validation score files, same streams and order as the inputs")
    p.add_argument("--search-on-test", action="store_true",
                   help="search on the input (test) files themselves; the result is marked optimistic (and not recorded)")
    p.add_argument("--grid", type=nonnegative_float, nargs="+", default=None, help="weights tried for every stream but the first")
    p.add_argument("-o", "--out", default=None, help="write the fused scores here (.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text (for scripts)")
    p.set_defaults(run=run)


def _record(val_sets: list, val_files: list[str], weights: list[float], top1: float) -> tuple[list, str | None]:
    """Record validation-chosen weights of an RGB and a flow score set beside their checkpoints:
    (the files written, or why none were)."""
    from pathlib import Path

    from tstam.fusion_record import write_record

    ckpts = {s.meta.get("stream"): s.meta.get("checkpoint") for s in val_sets}
    if len(val_sets) != 2 or set(ckpts) != {"rgb", "flow"}:
        return [], None  # not a two-stream pair: nothing predict could use
    missing = [str(c) for c in ckpts.values() if not c or not Path(c).is_file()]
    if missing:
        return [], (f"weights not recorded: the checkpoint {missing[0]!r} that the validation scores name is not "
                    "there (give predict --weights)")
    by_stream = {s.meta["stream"]: w for s, w in zip(val_sets, weights)}
    return write_record([by_stream["rgb"], by_stream["flow"]], ckpts, chosen_on=val_files, val_top1=top1,
                        val_videos=len(val_sets[0].video_ids)), None


def run(args: argparse.Namespace) -> int:
    from tstam.engine.fuse import DEFAULT_GRID, fuse, search_weights
    from tstam.engine.scores import load_scores, save_scores
    from tstam.files import check_output_file

    if args.out:
        check_output_file(args.out, suffix=".npz")
    sets = [load_scores(p) for p in args.scores]
    weights, optimistic, search, recorded, note = args.weights, False, None, [], None
    if args.search:
        if args.val and args.search_on_test:
            raise InputError("give either --val files or --search-on-test, not both")
        if not args.val and not args.search_on_test:
            raise InputError("--search needs --val score files (a validation set); searching on the test files "
                             "needs --search-on-test and gives an optimistic result")
        src, names = (([load_scores(p) for p in args.val], args.val) if args.val else (sets, args.scores))
        search = search_weights(src, grid=args.grid or DEFAULT_GRID, mode=args.mode, on_test=args.search_on_test,
                                names=names)
        weights, optimistic = search.weights, search.optimistic
        if args.val and args.mode == "softmax":
            recorded, note = _record(src, list(args.val), weights, search.search_top1)
    fused = fuse(sets, weights, mode=args.mode, names=args.scores)
    fused.meta.update({"optimistic": optimistic, "inputs_files": list(args.scores)})
    s = fused.summary(args.mode)
    if args.out:
        save_scores(args.out, fused)
    if args.json:
        print(json.dumps({
            "top1": s["top1"], "top5": s["top5"], "mean_class": s["mean_class"], "videos": s["videos"],
            "weights": fused.meta["weights"], "inputs": fused.meta["inputs"], "mode": args.mode,
            "optimistic": optimistic, "out": args.out, "recorded": [str(p) for p in recorded], "note": note,
            "search_top1": None if search is None else search.search_top1,
            "files": [{"path": str(p), "stream": one.name(), "top1": one.summary(args.mode)["top1"]}
                      for p, one in zip(args.scores, sets)]}))
        return 0
    if search is not None:
        print(f"search: weights {weights} (top-1 {100 * search.search_top1:.2f} on "
              f"{'the test files: OPTIMISTIC' if optimistic else 'the validation files'})")
    tag = " (optimistic: weights searched on the test set)" if optimistic else ""
    print(f"fused {fused.meta['inputs']} weights {fused.meta['weights']} ({args.mode}): top-1 {100 * s['top1']:.2f}  "
          f"top-5 {100 * s['top5']:.2f}  mean class {100 * s['mean_class']:.2f}  ({s['videos']} videos){tag}")
    for path, one in zip(args.scores, sets):
        print(f"  {one.name()}: top-1 {100 * one.summary(args.mode)['top1']:.2f}  ({path})")
    if args.out:
        print(f"fused scores: {args.out}")
    for path in recorded:
        print(f"weights recorded for predict, serve and report: {path}")
    if note:
        print(note)
    return 0
