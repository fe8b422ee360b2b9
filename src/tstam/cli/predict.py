"""``tstam predict``: classify video files with one or both trained streams (top-k table, JSON, pictures)."""
from __future__ import annotations

import argparse
import sys

from tstam.cli.args import add_decode_args, decode_limits, nonnegative_float, positive_int


def add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    """The streams to load, shared by ``predict``, ``visualize`` and ``serve``."""
    p.add_argument("--rgb", default=None, metavar="CKPT", help="RGB stream checkpoint (.pt) or export (.safetensors)")
    p.add_argument("--flow", default=None, metavar="CKPT", help="flow stream checkpoint (.pt) or export (.safetensors)")
    p.add_argument("--weights", type=nonnegative_float, nargs=2, default=None, metavar=("RGB", "FLOW"),
                   help="fusion weights (default: those tstam fuse --search recorded for these two checkpoints, "
                        "else 1 3, paper 4.3.3)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")


def add_stream_args(p: argparse.ArgumentParser) -> None:
    """The videos, checkpoints, crops and decoding policy shared by ``predict`` and ``visualize``."""
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files and/or folders of videos")
    add_checkpoint_args(p)
    p.add_argument("--crops", type=int, choices=(1, 3, 10), default=1, help="crops per snippet (10: paper's test protocol)")
    p.add_argument("--strict", action="store_true",
                   help="refuse videos that decode fewer frames than their header declares (default: a "
                        "shortfall of max(2 frames, 2%%) is accepted)")
    add_decode_args(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify videos with trained RGB and/or flow checkpoints",
                       description="Decode each video, compute flow with the algorithm recorded in the flow "
                                   "checkpoint, sample 25 snippets, run the streams, fuse them (RGB:flow = 1:3, or the weights "
                                   "tstam fuse --search recorded for these checkpoints; the log says which) and print a "
                                   "top-k table per video. Unreadable files are reported and skipped; the exit status "
                                   "is 1 if any failed.")
    add_stream_args(p)
    p.add_argument("-k", "--top-k", type=positive_int, default=5, help="classes per table")
    p.add_argument("--json", default=None, metavar="OUT", help="write labels, probabilities and attention here")
    p.add_argument("--no-attention", action="store_true", help="leave the attention out of the JSON")
    p.add_argument("--visualize", default=None, metavar="DIR", help="also write attention pictures to DIR")
    p.add_argument("--animation", choices=("gif", "mp4", "none"), default="gif", help="animation format with --visualize")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tstam.device import resolve_device
    from tstam.files import check_output_file, check_writable_dir
    from tstam.inference import Recognizer, collect_videos, format_table, predict_many, write_json
    from tstam.visualize import picture_names, visualize_video

    resolve_device(args.device)  # the cheap checks first, before any folder is made
    if args.json:
        check_output_file(args.json)
    if args.visualize:
        check_writable_dir(args.visualize)
    recognizer = Recognizer.from_paths(rgb=args.rgb, flow=args.flow, weights=args.weights, device=args.device)
    videos = collect_videos(args.videos)
    anim = None if args.animation == "none" else f".{args.animation}"
    names = picture_names(videos)

    def on_result(pred):
        tqdm.write(format_table(pred, k=args.top_k) + "\n")
        if args.visualize:
            pics = visualize_video(recognizer, pred.source, args.visualize, prediction=pred, animation=anim,
                                   name=names[pred.source])
            tqdm.write(f"  pictures: {pics.png}" + (f", {pics.animation}" if pics.animation else "") + "\n")
            pred.video = None  # free the frames

    result = predict_many(recognizer, videos, num_crops=args.crops, keep_video=bool(args.visualize and anim),
                          strict=args.strict, limits=decode_limits(args), on_result=on_result)
    if args.json:
        print(f"wrote {write_json(args.json, result, k=args.top_k, attention=not args.no_attention)}")
    if result.failures:  # each was logged as it was skipped
        print(f"tstam predict: {len(result.failures)} of {len(videos)} video(s) could not be read (skipped, "
              "reasons above)", file=sys.stderr)
        return 1
    return 0
