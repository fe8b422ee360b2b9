"""``tstam visualize``: attention pictures (PNG of frames, alpha bars, spatial maps; GIF/MP4) per video."""
from __future__ import annotations

import argparse
import sys

from tstam.cli.args import decode_limits
from tstam.cli.predict import add_stream_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("visualize", help="draw where a trained model looks (temporal and spatial attention)",
                       description="For each video: a PNG with the sampled frames, the temporal weight alpha of each "
                                   "as a bar and each spatial head's map as a heat map, plus an animated GIF or MP4 "
                                   "of the clip with the overlay.")
    add_stream_args(p)
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the pictures")
    p.add_argument("--animation", choices=("gif", "mp4", "none"), default="gif", help="animation format")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.device import resolve_device
    from tstam.files import check_writable_dir
    from tstam.inference import Recognizer, collect_videos, predict_many
    from tstam.visualize import picture_names, visualize_video

    resolve_device(args.device)  # the cheap checks first, before any folder is made
    check_writable_dir(args.out)
    recognizer = Recognizer.from_paths(rgb=args.rgb, flow=args.flow, weights=args.weights, device=args.device)
    videos = collect_videos(args.videos)
    anim = None if args.animation == "none" else f".{args.animation}"
    names = picture_names(videos)  # a/clip.avi and b/clip.avi must not overwrite each other's pictures

    def on_result(pred):
        pics = visualize_video(recognizer, pred.source, args.out, prediction=pred, animation=anim,
                               name=names[pred.source])
        print(f"{pred.source}: {pred.label}  ->  {pics.png}" + (f", {pics.animation}" if pics.animation else ""))
        pred.video = None

    result = predict_many(recognizer, videos, num_crops=args.crops, keep_video=anim is not None, strict=args.strict,
                          limits=decode_limits(args),
                          on_result=on_result)
    if result.failures:  # each was logged as it was skipped
        print(f"tstam visualize: {len(result.failures)} of {len(videos)} video(s) could not be read (skipped, "
              "reasons above)", file=sys.stderr)
    return 1 if result.failures else 0
