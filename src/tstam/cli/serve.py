"""``tstam serve``: a web page and an HTTP API for trained streams (needs the ``serve`` extra)."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a web page and an HTTP API for trained checkpoints",
                       description="Serve a page (upload a video or pick a sample; see the classes, the attention "
                                   "pictures and the timings) and an HTTP API (POST /api/predict returns the JSON of "
                                   "`tstam predict --json`; docs at /docs). Needs the serve extra: "
                                   'pip install -e ".[serve]".')
    p.add_argument("--rgb", default=None, metavar="CKPT", help="RGB stream checkpoint (.pt) or export (.safetensors)")
    p.add_argument("--flow", default=None, metavar="CKPT", help="flow stream checkpoint (.pt) or export (.safetensors)")
    p.add_argument("--weights", type=float, nargs=2, default=None, metavar=("RGB", "FLOW"),
                   help="default fusion weights (default 1 3, paper 4.3.3); a request may give its own")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--workers", type=int, default=1, help="predictions run at once (default 1)")
    p.add_argument("--queue", type=int, default=4,
                   help="requests accepted beyond the running ones; more get 503 + Retry-After (default 4)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per prediction (default: cores // workers)")
    p.add_argument("--max-upload-mb", type=float, default=64.0, help="upload size limit, larger gets 413 (default 64)")
    p.add_argument("--crops", type=int, choices=(1, 3, 10), default=1, help="default crops per snippet")
    p.add_argument("--samples", default=None, metavar="DIR",
                   help="offer the videos in DIR as samples (default: a few synthetic clips made at start)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.serve.config import INSTALL_HINT, ServeConfig, missing_serve_packages

    missing = missing_serve_packages()
    if missing:
        print(f"tstam serve: error: the web server needs the 'serve' extra (missing: {', '.join(missing)}); "
              f"install it with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    cfg = ServeConfig(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, workers=args.workers,
                      queue=args.queue, threads=args.threads, crops=args.crops, samples=args.samples)
    import torch

    from tstam.inference import Recognizer
    from tstam.serve.app import create_app
    from tstam.serve.server import bind, serve

    sock = bind(cfg.host, cfg.port)
    try:
        recognizer = Recognizer.from_paths(rgb=args.rgb, flow=args.flow, weights=args.weights, device=args.device)
        torch.set_num_threads(cfg.torch_threads)
        app = create_app(recognizer, cfg)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"tstam serve: {recognizer!r}\ntstam serve: listening on http://{shown}:{port}/  "
              f"(API docs: http://{shown}:{port}/docs; Ctrl-C stops)", flush=True)
        try:
            serve(app, sock)
        finally:
            app.state.close()
    finally:
        sock.close()
    return 0
