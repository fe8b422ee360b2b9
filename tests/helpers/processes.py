"""Waiting with a deadline, a process's output read line by line, and process trees from /proc
for the tests that kill a run and check that it leaves nothing behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, state: Callable[[], Any] | None = None,
               interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something true, and return that. After ``timeout`` s
    fail, saying what was awaited (``what``) and, with ``state``, how things stood then."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}" + (f"; state: {state()}" if state else ""))
        time.sleep(interval)


class OutputLines:
    """The stdout of ``proc`` (opened with ``stdout=PIPE, text=True``) read line by line in a
    daemon thread, so that the pipe never fills, kept in ``lines``; ``wait_for`` has a deadline."""

    def __init__(self, proc: subprocess.Popen):
        assert proc.stdout is not None, "start the process with stdout=subprocess.PIPE"
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, what: str) -> re.Match:
        """The first match of the regular expression ``pattern`` in a line of the output so far or
        to come; fails after ``timeout`` s, or when the output ends first, with the output."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if m := re.search(pattern, line):
                        return m
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    why = "the output ended" if self._ended else f"waited {timeout:g} s"
                    raise AssertionError(f"{why} before {what}; output:\n" + "".join(self.lines))
                self._changed.wait(left)


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
    """The pids of ``pids`` whose process still runs (not gone, not a zombie)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def kill_all(pids: set[int]) -> None:
    """SIGKILL every pid of ``pids`` that still runs."""
    for pid in alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_all_exit(spawned: set[int], what: str, timeout: float = 20.0) -> None:
    """Wait up to ``timeout`` s for every pid in ``spawned`` to end; kill and fail on any left."""
    try:
        wait_until(lambda: not alive(spawned), timeout, f"{what} {sorted(spawned)} to end",
                   state=lambda: f"still running: {sorted(alive(spawned))}", interval=0.2)
    except AssertionError as e:
        kill_all(spawned)  # do not leave them behind even when the test fails
        raise AssertionError(f"{what} outlived the killed run: {e}") from None
