"""``tstam serve``: a web page and an HTTP API for trained streams (needs the ``serve`` extra)."""
from __future__ import annotations

import argparse
import sys

from tstam.cli.args import add_decode_args, decode_limits, int_range, nonnegative_int, positive_float, positive_int
from tstam.cli.predict import add_checkpoint_args
from tstam.serve.config import INSTALL_HINT, ServeConfig, missing_serve_packages


def host_list(text: str) -> tuple[str, ...]:
    """``--allowed-hosts``: names separated by commas (``ServeConfig`` checks them)."""
    return tuple(h.strip() for h in text.split(",") if h.strip())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a web page and an HTTP API for trained checkpoints",
                       description="Serve a page (upload a video or pick a sample; see the classes, the attention "
                                   "pictures and the timings) and an HTTP API (POST /api/predict returns the JSON of "
                                   "`tstam predict --json`; docs at /docs). Needs the serve extra: "
                                   'pip install -e ".[serve]".')
    add_checkpoint_args(p)  # --rgb, --flow, --weights (the default; a request may give its own), --device
    d = ServeConfig()  # the defaults
    p.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host}: this machine only)")
    p.add_argument("--port", type=int_range(0, 65535), default=d.port, help=f"port (default {d.port}; 0 picks a free one)")
    p.add_argument("--workers", type=positive_int, default=d.workers, help=f"predictions run at once (default {d.workers})")
    p.add_argument("--queue", type=nonnegative_int, default=d.queue,
                   help=f"requests accepted beyond the running ones; more get 503 + Retry-After (default {d.queue})")
    p.add_argument("--threads", type=nonnegative_int, default=d.threads, help="torch threads per prediction (default: (cores - 1) // workers, at least 1)")
    p.add_argument("--max-upload-mb", type=positive_float, default=d.max_upload_mb,
                   help=f"upload size limit, larger gets 413 (default {d.max_upload_mb:g})")
    p.add_argument("--crops", type=int, choices=(1, 3, 10), default=d.crops, help="default crops per snippet")
    p.add_argument("--samples", default=d.samples, metavar="DIR",
                   help="offer the videos in DIR as samples (default: a few synthetic clips made at start)")
    g = p.add_argument_group("limits on slow or idle clients and long jobs (docs/serve.md)")
    g.add_argument("--max-uploads", type=positive_int, default=d.max_uploads,
                   help=f"uploads received at once, apart from the prediction slots; more get 503 (default {d.max_uploads})")
    g.add_argument("--max-connections", type=positive_int, default=d.max_connections,
                   help="open connections; one more closes the one idle longest, or gets 503 "
                        f"(default {d.max_connections})")
    g.add_argument("--header-timeout", type=positive_float, default=d.header_timeout, metavar="S",
                   help=f"seconds to send a request's line and headers; then the connection closes (default {d.header_timeout:g})")
    g.add_argument("--body-timeout", type=positive_float, default=d.body_timeout, metavar="S",
                   help="longest pause in an upload (and its start-up time before --min-upload-rate counts), "
                        f"and in reading an answer; then 408 (default {d.body_timeout:g})")
    g.add_argument("--min-upload-rate", type=positive_float, default=d.min_upload_rate, metavar="KB/S",
                   help=f"least average upload rate after --body-timeout s; slower gets 408 (default {d.min_upload_rate:g})")
    g.add_argument("--job-timeout", type=positive_float, default=d.job_timeout, metavar="S",
                   help=f"seconds one prediction may run; then it stops with 422 (default {d.job_timeout:g})")
    g.add_argument("--poll-timeout", type=positive_float, default=d.poll_timeout, metavar="S",
                   help=f"a job of POST /api/jobs no one asks for this long is dropped (default {d.poll_timeout:g})")
    g.add_argument("--shutdown-timeout", type=positive_float, default=d.shutdown_timeout, metavar="S",
                   help=f"Ctrl-C waits this long for requests under way, then about 1 s more (default {d.shutdown_timeout:g})")
    g.add_argument("--allowed-hosts", type=host_list, default=d.allowed_hosts, metavar="H1,H2",
                   help="names a request's Host header may carry (* any); default: localhost,127.0.0.1,::1 on a "
                        "loopback address, any on 0.0.0.0 or ::, else the --host address")
    add_decode_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    missing = missing_serve_packages()
    if missing:
        print(f"tstam serve: error: the web server needs the 'serve' extra (missing: {', '.join(missing)}); "
              f"install it with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    cfg = ServeConfig(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, workers=args.workers,
                      queue=args.queue, threads=args.threads, crops=args.crops, samples=args.samples,
                      max_uploads=args.max_uploads, max_connections=args.max_connections,
                      header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                      min_upload_rate=args.min_upload_rate, job_timeout=args.job_timeout,
                      poll_timeout=args.poll_timeout, shutdown_timeout=args.shutdown_timeout,
                      allowed_hosts=args.allowed_hosts, decode=decode_limits(args))
    import torch

    from tstam.inference import Recognizer
    from tstam.serve.app import create_app
    from tstam.serve.server import bind, reserve_files, serve

    reserve_files(cfg)
    sock = bind(cfg.host, cfg.port)
    try:
        recognizer = Recognizer.from_paths(rgb=args.rgb, flow=args.flow, weights=args.weights, device=args.device)
        torch.set_num_threads(cfg.torch_threads)
        host, port = sock.getsockname()[:2]
        app = create_app(recognizer, cfg, host_names=cfg.host_names(host))
        shown = f"[{host}]" if ":" in host else host
        print(f"tstam serve: {recognizer!r}\ntstam serve: listening on http://{shown}:{port}/  "
              f"(API docs: http://{shown}:{port}/docs; Ctrl-C stops)", flush=True)
        try:
            serve(app, sock, cfg)
        finally:
            app.state.close()
    finally:
        sock.close()
    return 0
