"""``tstam export``: one trained stream to ONNX (dynamic batch and segments) and/or safetensors + JSON."""
from __future__ import annotations

import argparse

from tstam.cli.args import int_range, positive_int
from tstam.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tstam.export import CHECK_ATOL, CHECK_RTOL, MAX_SEGMENTS

    p = sub.add_parser("export", help="export a trained stream to ONNX and/or safetensors",
                       description="ONNX: input (batch, segments, C, S, S) float, cropped and normalised as the "
                                   "JSON metadata says; outputs logits and the attention. safetensors: the weights plus "
                                   "a JSON with the config, class names and preprocessing (loadable by tstam.load "
                                   "without pickle).")
    p.add_argument("checkpoint", help="a tstam checkpoint (.pt) or safetensors export")
    p.add_argument("--onnx", default=None, metavar="OUT", help="write an .onnx file")
    p.add_argument("--safetensors", default=None, metavar="OUT", help="write a .safetensors file and its .json")
    p.add_argument("--segments", type=int_range(1, MAX_SEGMENTS), default=6,
                   help=f"segments of the example input (default 6; any count from 1 to {MAX_SEGMENTS} runs later)")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--optimize", action="store_true", help="optimise the ONNX graph at export (slower)")
    p.add_argument("--check", action="store_true",
                   help="run the ONNX file with onnxruntime and PyTorch on the same random inputs; it passes when "
                        f"for every output max|onnx - torch| <= {CHECK_RTOL:g} * max|torch| + {CHECK_ATOL:g} (a "
                        "relative tolerance: float32 runtimes differ in the last digits of large logits); prints "
                        "the largest relative error and exits 1 if an output is further off")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.checkpoint import load_stream
    from tstam.export import check_onnx, export_onnx, export_safetensors
    from tstam.files import check_output_file

    if not args.onnx and not args.safetensors:
        raise InputError("nothing to do: give --onnx OUT and/or --safetensors OUT")
    if args.check and not args.onnx:
        raise InputError("--check compares an ONNX export with PyTorch; give --onnx OUT with it")
    for path, suffix in ((args.onnx, ".onnx"), (args.safetensors, ".safetensors")):
        if path:
            check_output_file(path, suffix=suffix)  # both, before anything is written
    stream = load_stream(args.checkpoint)
    if args.safetensors:
        st, js = export_safetensors(stream, args.safetensors)
        print(f"wrote {st} and {js}")
    if args.onnx:
        path = export_onnx(stream, args.onnx, segments=args.segments, opset=args.opset, optimize=args.optimize)
        print(f"wrote {path}")
        if args.check:
            check = check_onnx(path, stream)
            print("onnxruntime vs PyTorch: max relative error " + ", ".join(f"{k} {v:.1e}" for k, v in check.relative.items())
                  + f" (max|onnx - torch| / max|torch| per output; passes at <= {check.rtol:g})")
            if not check.ok:
                print(f"WARNING: {path} differs from PyTorch by more than {check.rtol:g} of an output's scale")
                return 1
    return 0
