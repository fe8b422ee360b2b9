"""Memory and time of hostile videos: peak memory of ``tstam predict`` (both streams, frames
240 x 320) and of ``tstam serve`` (the tests' 64 x 80 models) on 30,000 black 320 x 240 frames
against 75 of them, and how long ``tstam predict`` takes to refuse the 8000 x 8000 GIF bomb.

Run: ``python benchmarks/bench_hostile_decode.py`` (about a minute on 2 cores).

Peak memory is the kernel's: ``ru_maxrss`` of the ``tstam predict`` process, ``VmHWM`` of the
server process after each upload. The numbers are in docs/bad_inputs.md ("Decoding with a bound");
``tests/test_decode_budget.py`` holds the RGB-only case to 1.5x.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from helpers.hostile import gif_bomb, malformed_checkpoint, many_frames_video, peak_rss_kb  # noqa: E402
from helpers.models import make_checkpoints  # noqa: E402


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    from helpers.serve import start_server, stop_server

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ck = make_checkpoints(tmp / "ck")
        big = {m: malformed_checkpoint(ck[m], tmp / f"{m}240.pt", data={"resize": [240, 320]}) for m in ck}
        videos = {"75 frames": many_frames_video(tmp / "short.mp4", 75, (320, 240)),
                  "30,000 frames": many_frames_video(tmp / "long.mp4", 30_000, (320, 240))}
        print("tstam predict, RGB + flow (Farneback), frames 240 x 320")
        for name, video in videos.items():
            t0 = time.perf_counter()
            code, kb, err = peak_rss_kb(["predict", str(video), "--rgb", str(big["rgb"]), "--flow", str(big["flow"])])
            print(f"  {name:>14}: exit {code}, peak {kb / 1024:.0f} MB, {time.perf_counter() - t0:.1f} s")
        bomb = gif_bomb(tmp / "bomb.gif")
        t0 = time.perf_counter()
        code, kb, err = peak_rss_kb(["predict", str(bomb), "--rgb", str(big["rgb"])])
        print(f"  8000x8000 GIF bomb: exit {code} in {time.perf_counter() - t0:.1f} s (process start included), "
              f"peak {kb / 1024:.0f} MB")
        server = start_server(tmp, ck, "--threads", "1", "--max-upload-mb", "8")
        try:
            print(f"tstam serve (64 x 80 models): started, peak {vm_hwm_mb(server.proc.pid):.0f} MB")
            for name, video in videos.items():
                reply = server.predict(video)
                print(f"  after {name}: HTTP {reply.status}, peak {vm_hwm_mb(server.proc.pid):.0f} MB")
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
