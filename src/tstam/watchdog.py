"""Child processes that end when the process that started them is gone.

A worker of a process pool (extraction) or of a DataLoader started by a fork server is not
ended by the kernel when its parent is killed (SIGKILL, or SIGTERM with Python's default
handler): it would run, and hold its memory, for ever. Each such worker starts
:func:`exit_with` in its initializer.
"""
from __future__ import annotations

import os
import threading
import time

__all__ = ["exit_with"]


def _watch(pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)


def exit_with(pid: int, interval: float = 1.0) -> None:
    """Start a daemon thread that ends this process (``os._exit``) once process ``pid`` is gone."""
    threading.Thread(target=_watch, args=(pid, interval), name="tstam-orphan-watch", daemon=True).start()
