"""Extraction runs stopped at a known point: ``extract_driver.py`` in a process of its own,
through ``extract_many``'s ``on_written`` hook, for the tests that kill an extraction."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tstam.data import store

from helpers.cli import run_tstam
from helpers.clips import tree_bytes

DRIVER = Path(__file__).with_name("extract_driver.py")


def start_driver(mode: str, videos: Path, out: Path, options: dict[str, Any], *extra: Path, log: Path) -> subprocess.Popen:
    """``extract_driver.py mode videos out options *extra`` (see there), leading its own process
    group; its stdout and stderr go to ``log``."""
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, str(DRIVER), mode, str(videos), str(out), json.dumps(options),
                                 *map(str, extra)], stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def kill_mid_video_and_rerun(videos: Path, out: Path, ref: Path, options: dict[str, Any], cli_args: list[str]) -> None:
    """Extract ``videos`` into ``out`` (``extract_many(**options)``) in a process that SIGKILLs
    itself and its workers once one video is complete and another has all its JPEGs but no
    meta.json; check that state; rerun ``tstam extract videos --out out *cli_args`` and check
    that ``out`` then equals ``ref``, an uninterrupted run, byte for byte."""
    log = out.with_name(out.name + "-driver.log")
    proc = start_driver("kill", videos, out, options, log=log)
    try:
        code = proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == -signal.SIGKILL, f"the run was not killed (exit status {code}):\n{log.read_text()[-3000:]}"
    dirs = sorted(d for d in out.iterdir() if d.is_dir())
    complete = [d.name for d in dirs if store.is_complete(d)]
    cut = [d for d in dirs if not store.is_complete(d) and any(d.glob("flow_x_*.jpg"))]
    assert len(complete) == 1 and len(cut) == 1, f"killed with {complete} complete and {[d.name for d in cut]} cut"
    rgb, fx, fy = (len(list(cut[0].glob(p))) for p in ("img_*.jpg", "flow_x_*.jpg", "flow_y_*.jpg"))
    assert fx == fy == rgb - 1, f"{cut[0].name}: {rgb} RGB, {fx} x and {fy} y flow JPEGs"  # all, but no meta.json

    rerun = run_tstam(["extract", str(videos), "--out", str(out), *cli_args])
    assert rerun.returncode == 0, rerun.stderr
    assert " 1 already done" in rerun.stdout, rerun.stdout
    got, want = tree_bytes(out), tree_bytes(ref)
    assert sorted(got) == sorted(want)  # same files, no leftovers
    for name, data in want.items():
        assert got[name] == data, name  # same bytes: RGB and flow JPEGs, meta.json
