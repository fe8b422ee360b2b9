"""Running ``python -m tstam`` as a real process, for the checks of what a user sees on stderr
(no traceback for bad input)."""
from __future__ import annotations

import os
import subprocess
import sys


def run_tstam(argv: list[str], *, timeout: float = 300, cwd: str | None = None) -> subprocess.CompletedProcess:
    """``python -m tstam *argv`` with this interpreter; stdout and stderr captured as text."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tstam", *argv], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)
