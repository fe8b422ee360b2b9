"""Process trees from /proc, for the tests that kill a run and check it leaves nothing behind.
Not a test module."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def process_tree(root: int) -> set[int]:
    """Pids of every living descendant of ``root`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - tree
        tree |= frontier
    return tree


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()
            and (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")}


def assert_all_exit(spawned: set[int], what: str, timeout: float = 20.0) -> None:
    """Wait up to ``timeout`` s for every pid in ``spawned`` to end; kill and fail on any left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(spawned):
        time.sleep(0.2)
    left = alive(spawned)
    for pid in left:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{what} {sorted(left)} outlived the killed run"
