"""Benchmark: ``tstam serve`` under N concurrent uploads of a real clip, against the same
predictions called directly in-process, on 2 cores.

Models: the demo's (``tstam demo``'s ModelConfig from ``configs/demo_*.yaml`` and
``DemoConfig``: width 0.25, 64 crops of 80x80 frames, DIS flow bounded at 4 px, 12 classes),
untrained unless ``--rgb/--flow`` give checkpoints (the time does not depend on the weights).
For each number of workers W:

- direct (baseline): a fresh Python process loads the checkpoints and submits the N predictions
  at once to a pool of W threads calling ``Recognizer.predict`` (what the server's pool does,
  without HTTP, upload, temporary file and JSON);
- server: ``tstam serve --workers W --queue N --max-uploads N`` in a fresh process, N client threads each POST
  the clip to /api/predict at once (the predict JSON with attention comes back).

Latency is from submission to answer (it includes waiting for a worker), requests/s is N over
the wall time of the burst, peak memory is the process's peak RSS (VmHWM: models, decoded
frames, uploads). Torch threads per prediction: the server's default ((cores - 1) // W, at
least 1) on both sides, or ``--threads``. The client
threads run on the same cores. Direct and server bursts alternate for ``--rounds`` rounds (the
2 cores may be shared with other work) and the medians over rounds are printed; ratios are
server / direct from the same run.

    python benchmarks/bench_serve.py                    # N=16, W=1,2, 3 rounds (~2 min on 2 cores)
    python benchmarks/bench_serve.py -n 32 --workers 2 --rgb demo/runs/rgb/last.pt --flow demo/runs/flow/last.pt
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "realdata" / "videos"


def demo_checkpoints(out: Path) -> dict[str, Path]:
    """Untrained streams with the demo's model config, frame size and flow settings."""
    from tstam.checkpoint import save_checkpoint
    from tstam.config import to_dict
    from tstam.demo.config import DemoConfig
    from tstam.demo.pipeline import stream_config
    from tstam.flow import FlowConfig
    from tstam.models import build_model
    from tstam.synthetic import DEMO_CLASSES

    demo = DemoConfig(out=str(out / "demo"))
    paths = {}
    for m in ("rgb", "flow"):
        tcfg = stream_config(demo, m)
        model = build_model(tcfg.model)
        flow = FlowConfig(algorithm=demo.flow, bound=demo.flow_bound).describe() if m == "flow" else None
        paths[m] = save_checkpoint(out / f"demo_{m}.pt", {
            "model": model.state_dict(), "model_config": to_dict(tcfg.model), "classes": list(DEMO_CLASSES),
            "flow": flow, "config": {"data": {"resize": list(tcfg.data.resize), "test_frames": tcfg.data.test_frames}}})
    return paths


def peak_mb(pid: int | str = "self") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {"rps": len(latencies) / wall, "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95))}


def run_direct(args: argparse.Namespace) -> None:
    """Child process: the baseline. Prints one JSON line."""
    import torch

    from tstam.inference import Recognizer

    torch.set_num_threads(args.threads)
    rec = Recognizer.from_paths(rgb=args.rgb, flow=args.flow)
    rec.predict(args.video)  # warm-up, as the server's first request
    with ThreadPoolExecutor(args.workers) as pool:
        t0 = time.perf_counter()

        def one(_: int) -> float:
            rec.predict(args.video)
            return time.perf_counter() - t0

        latencies = list(pool.map(one, range(args.n)))
        wall = time.perf_counter() - t0
    print(json.dumps({**summary(latencies, wall), "peak_mb": peak_mb()}))


def start_server(args: argparse.Namespace, workers: int, threads: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "tstam", "serve", "--rgb", str(args.rgb), "--flow", str(args.flow), "--port", "0",
           "--workers", str(workers), "--queue", str(args.n), "--max-uploads", str(args.n), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    url, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"listening on (http://\S+)/", line)
        url = url or (m.group(1) if m else None)
        if "Application startup complete" in line:
            break
    if url is None:
        proc.kill()
        raise SystemExit("tstam serve did not start:\n" + "".join(lines))
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()  # keep its log pipe drained
    return proc, url


def server_burst(args: argparse.Namespace, url: str, body: bytes, ctype: str) -> dict[str, float]:
    from tstam.serve.client import post

    t0 = time.perf_counter()

    def one(_: int) -> tuple[int, float]:
        status, _, data = post(url, "/api/predict", body, ctype)
        return status, time.perf_counter() - t0

    with ThreadPoolExecutor(args.n) as pool:
        replies = list(pool.map(one, range(args.n)))
    wall = time.perf_counter() - t0
    bad = [s for s, _ in replies if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} of {args.n} requests failed: HTTP {sorted(set(bad))}")
    return summary([t for _, t in replies], wall)


def direct_burst(args: argparse.Namespace, workers: int, threads: int) -> dict[str, float]:
    child = subprocess.run([sys.executable, __file__, "--direct", "-n", str(args.n), "--workers", str(workers),
                            "--threads", str(threads),
                            "--video", args.video, "--rgb", args.rgb, "--flow", args.flow],
                           capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=16, help="concurrent uploads")
    ap.add_argument("--workers", default="1,2", help="comma-separated numbers of server workers")
    ap.add_argument("--video", default=str(VIDEOS / "v_BaseballPitch_g01_c01.avi"))
    ap.add_argument("--rgb", default=None, help="RGB checkpoint (default: untrained demo-size)")
    ap.add_argument("--flow", default=None, help="flow checkpoint (default: untrained demo-size)")
    ap.add_argument("--cores", type=int, default=2, help="CPU cores to run on (this process and its children)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating direct and server bursts per setting")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per prediction (0: the server's default)")
    ap.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)  # child: the baseline
    args = ap.parse_args()
    if args.direct:
        args.workers = int(args.workers)
        return run_direct(args)
    cores = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cores)  # inherited by the baseline and the server
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not (args.rgb and args.flow):
            args.rgb, args.flow = (str(p) for p in demo_checkpoints(tmp).values())
        size = Path(args.video).stat().st_size / 1024
        print(f"{args.n} concurrent uploads of {Path(args.video).name} ({size:.0f} kB) on {len(cores)} cores; "
              f"models {Path(args.rgb).name} + {Path(args.flow).name}; latency from submission to answer; "
              f"medians of {args.rounds} alternating rounds; load average before: {os.getloadavg()[0]:.1f}")
        print(f"{'workers':>7}  {'threads':>7}  {'mode':6}  {'req/s':>6}  {'p50 s':>6}  {'p95 s':>6}  {'peak MB':>7}")
        from tstam.serve.client import encode_multipart, post
        from tstam.serve.config import ServeConfig

        body, ctype = encode_multipart({}, (Path(args.video).name, Path(args.video).read_bytes()))
        for w in (int(v) for v in args.workers.split(",")):
            threads = args.threads or ServeConfig(workers=w).torch_threads
            proc, url = start_server(args, w, threads, tmp)
            try:
                assert post(url, "/api/predict", body, ctype)[0] == 200  # warm-up, as the direct run's first call
                runs: dict[str, list] = {"direct": [], "server": []}
                for _ in range(args.rounds):
                    runs["direct"].append(direct_burst(args, w, threads))
                    runs["server"].append(server_burst(args, url, body, ctype))
                server_peak = peak_mb(proc.pid)  # over its whole life: warm-up and every round
            finally:
                proc.send_signal(2)  # Ctrl-C: the server shuts down and removes its work folder
                proc.wait(timeout=60)
            direct, served = median(runs["direct"]), {**median(runs["server"]), "peak_mb": server_peak}
            rounds = {m: ", ".join(f"{r['rps']:.1f}" for r in rs) for m, rs in runs.items()}
            for mode, r in (("direct", direct), ("server", served)):
                print(f"{w:>7}  {threads:>7}  {mode:6}  {r['rps']:6.2f}  {r['p50']:6.2f}  {r['p95']:6.2f}  {r['peak_mb']:7.0f}")
            print(f"{'':>16}  ratio server/direct: req/s {served['rps'] / direct['rps']:.2f}x, "
                  f"p50 {served['p50'] / direct['p50']:.2f}x, p95 {served['p95'] / direct['p95']:.2f}x, "
                  f"peak memory {served['peak_mb'] / direct['peak_mb']:.2f}x  "
                  f"(req/s per round: direct {rounds['direct']}; server {rounds['server']})")
        print(f"load average after: {os.getloadavg()[0]:.1f} (other work on these cores slows both sides)")


if __name__ == "__main__":
    main()
