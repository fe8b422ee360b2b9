"""``tstam extract``: video files -> frame store of RGB and optical-flow JPEGs (docs/design.md, Data flow)."""
from __future__ import annotations

import argparse
import sys

from tstam.cli.args import add_decode_args, argument_type, decode_limits, int_range, positive_float, positive_int
from tstam.extract import collect_sources, extract_many, parse_shard, parse_size
from tstam.flow import FLOW_ALGORITHMS, FlowConfig


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "extract",
        help="decode videos into RGB and optical-flow JPEGs (TSN/MMAction frame store)",
        description="Write <out>/<video_id>/img_00001.jpg.., flow_x_/flow_y_00001.jpg.. and meta.json "
        "(written last) for every video of a folder (recursive), a UCF101/HMDB51 split file or a "
        "list file. The video id is the file stem, or where two files share a stem the folder relative to the "
        "input and the stem (a/IMG_1.mp4 -> a__IMG_1). Resumable (finished videos are skipped, "
        "half-written ones redone), shardable over machines with --shard i/n. Exits with status 1 "
        "when any video failed; the failures are listed at the end.",
    )
    p.add_argument("input", help="folder of videos, one video file, split file (trainlist01.txt, "
                                 "<class>_test_split1.txt) or list file")
    p.add_argument("--out", required=True, help="frame-store root")
    p.add_argument("--root", default=None, help="folder that paths in a list are relative to (default: the list's folder)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="parallel worker processes, one video each (default 1); with --device they decode")
    p.add_argument("--shard", type=argument_type(parse_shard), default=(0, 1), metavar="I/N",
                   help="extract only shard I of N (0-based), e.g. 0/4 on the first of 4 machines")
    p.add_argument("--flow", choices=(*FLOW_ALGORITHMS, "none"), default="tvl1",
                   help="optical flow algorithm (default tvl1, with our tuned parameters); none: RGB only")
    p.add_argument("--device", default=None,
                   help="with --flow tvl1_torch: compute the flow in this process on this device (cuda, cuda:N, "
                        "cpu, auto) in batches of frame pairs across videos, while --workers processes decode; "
                        "default: each worker computes its video's flow on one CPU core")
    p.add_argument("--flow-batch", type=positive_int, default=None, metavar="PAIRS",
                   help="frame pairs per flow batch on --device (default: from half its free memory)")
    p.add_argument("--bound", type=positive_float, default=FlowConfig.bound,
                   help="clip flow to [-bound, bound] px before quantising (default 20)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", type=argument_type(parse_size), default=None, metavar="WxH", help="resize on decode, e.g. 340x256 (TSN)")
    size.add_argument("--short-side", type=positive_int, default=None, metavar="S", help="resize so the shorter side is S")
    p.add_argument("--max-frames", type=positive_int, default=None, help="only the first frames of each video (previews)")
    p.add_argument("--jpeg-quality", type=int_range(1, 100), default=95, help="JPEG quality, 1-100 (default 95)")
    p.add_argument("--strict", action="store_true",
                   help="refuse videos that decode fewer frames than their header declares (default: a shortfall "
                        "of max(2 frames, 2%%) is accepted and recorded in meta.json)")
    p.add_argument("--force", action="store_true",
                   help="re-extract finished videos whose recorded settings (size, frames, quality, flow) differ "
                        "from these (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_decode_args(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    flow = None if args.flow == "none" else FlowConfig(algorithm=args.flow, bound=args.bound)
    sources = collect_sources(args.input, root=args.root)
    report = extract_many(
        sources, args.out, workers=args.workers, shard=args.shard, flow=flow, size=args.size,
        short_side=args.short_side, max_frames=args.max_frames, jpeg_quality=args.jpeg_quality,
        strict=args.strict, limits=decode_limits(args), force=args.force, device=args.device, flow_batch=args.flow_batch,
        progress=False if args.no_progress else None,
    )
    secs = max(report.seconds, 1e-9)
    print(f"shard {args.shard[0]}/{args.shard[1]}: {len(report.done)} extracted, {len(report.skipped)} already done, "
          f"{len(report.failed)} failed; {report.frames} frames in {report.seconds:.1f} s "
          f"({len(report.done) / secs:.2f} videos/s, {report.frames / secs:.1f} frames/s)")
    if report.short:
        vid, declared, decoded = report.short[0]
        print(f"{len(report.short)} video(s) decoded fewer frames than their header declares, within the tolerance "
              f"(e.g. {vid}: {decoded} of {declared}); meta.json records both counts (--strict refuses them)")
    for file, reason in report.failed:
        print(f"FAILED {file}: {reason}", file=sys.stderr)
    return 0 if report.ok else 1
