"""A run of ``tstam.extract.extract_many`` that stops at a known point, through its ``on_written``
hook, for the tests of killed extractions (``helpers.extraction``). Run as a script, as the
leader of its own process group (``start_new_session=True``):

    python extract_driver.py kill VIDEOS OUT OPTIONS
    python extract_driver.py hold VIDEOS OUT OPTIONS READY

OPTIONS: ``extract_many``'s keyword arguments as JSON, the flow as its algorithm's name.

kill: once a video's flow JPEGs are written while another video is complete, SIGKILL to the
whole process group (this process and its workers), with no clean-up of any kind, as a crash or
an OOM kill: one video complete, one with all its JPEGs but no meta.json.
hold: a process that has written a video's RGB JPEGs says so (a file named by its pid in READY)
and waits there, so that the test kills this process while its workers are mid-video.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from pathlib import Path

from tstam.data import store
from tstam.extract import collect_sources, extract_many
from tstam.flow import FlowConfig


def kill_once_another_is_complete(out: Path, video_dir: Path, part: str) -> None:
    if part == "flow" and any(store.is_complete(d) for d in out.iterdir() if d != video_dir):
        os.killpg(os.getpgrp(), signal.SIGKILL)


def kill_self_at(video: str, video_dir: Path, part: str) -> None:
    """SIGKILL to this process (a worker) once ``video``'s RGB JPEGs are written: what the kernel's
    OOM killer does to a worker mid-video."""
    if part == "rgb" and video_dir.name == video:
        os.kill(os.getpid(), signal.SIGKILL)


def hold(ready: Path, video_dir: Path, part: str) -> None:
    if part == "rgb":
        (ready / str(os.getpid())).touch()
        time.sleep(600)  # ended by the test, or by the watchdog once the main process is killed


def main() -> None:
    mode, videos, out, options = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
    if os.getpgrp() != os.getpid():
        sys.exit("extract_driver.py must lead its own process group (start_new_session=True): it kills the group")
    options["flow"] = FlowConfig(algorithm=options["flow"])
    # partials of module-level functions: the workers get them pickled
    hook = functools.partial(kill_once_another_is_complete, out) if mode == "kill" else \
        functools.partial(hold, Path(sys.argv[5]))
    report = extract_many(collect_sources(videos), out, progress=False, on_written=hook, **options)
    sys.exit(f"the run was not stopped: {len(report.done)} video(s) extracted, failed: {report.failed}")


if __name__ == "__main__":
    main()
