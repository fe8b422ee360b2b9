"""``ServeConfig``: what ``tstam serve`` listens on and how much work it accepts at once.

No web-framework import here: the CLI builds and checks this before it needs the serve extra.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tstam.config import ConfigError, check_choice, check_range

__all__ = ["ServeConfig", "SERVE_EXTRA_MODULES", "missing_serve_packages", "INSTALL_HINT"]

# module -> the package of the ``serve`` extra that provides it (pyproject.toml)
SERVE_EXTRA_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart",
                       "fastapi_offline": "fastapi-offline"}
INSTALL_HINT = 'pip install -e ".[serve]"  (from a checkout; or pip install "tstam[serve]")'


def missing_serve_packages() -> list[str]:
    """The packages of the ``serve`` extra that cannot be imported here (empty: all present)."""
    import importlib.util

    missing = []
    for module, package in SERVE_EXTRA_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package or a blocked module (sys.modules[m] = None)
            found = False
        if not found:
            missing.append(package)
    return missing


@dataclass
class ServeConfig:
    """Address, limits and request defaults of ``tstam serve``."""

    host: str = "127.0.0.1"          # this machine only; 0.0.0.0 listens on every interface
    port: int = 8000                 # 0: any free port (printed at start)
    max_upload_mb: float = 64.0      # request body limit -> 413; UCF101's clips average ~0.5 MB (6.5 GB / 13,320)
    workers: int = 2                 # predictions run at once (threads sharing the loaded models); 2: fastest measured on 2 cores
    queue: int = 4                   # requests accepted beyond the running ones; more -> 503 + Retry-After
    threads: int = 0                 # torch threads per prediction; 0 -> (cores - 1) // workers, at least 1 (docs/serve.md)
    crops: int = 1                   # default crops per snippet (a request may ask for 3 or 10)
    top_k: int = 5                   # default classes in "top"
    keep_results: int = 16           # finished jobs (JSON and pictures) kept for the page, oldest dropped first
    samples: str | None = None    # folder of sample clips for the page; None: a few synthetic clips

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port={self.port} is not valid; expected 0 .. 65535 (0: any free port)")
        if not (math.isfinite(self.max_upload_mb) and self.max_upload_mb > 0):
            raise ConfigError(f"max_upload_mb={self.max_upload_mb} is not valid; expected a number > 0")
        check_range("max_upload_mb", self.max_upload_mb, 0, 64 * 1024, lo_open=True, note="64 GB at most")
        if self.workers < 1 or self.queue < 0:
            raise ConfigError(f"workers={self.workers}, queue={self.queue} are not valid; expected workers >= 1 "
                              "and queue >= 0")
        check_range("workers", self.workers, 1, 256)  # threads that each hold a decoded video
        check_range("queue", self.queue, 0, 10_000)
        if self.threads < 0:
            raise ConfigError(f"threads={self.threads} is not valid; expected >= 0 (0: (cores - 1) // workers)")
        check_range("threads", self.threads, 0, 1024)
        check_choice("crops", self.crops, (1, 3, 10))
        if self.top_k < 1 or self.keep_results < 1:
            raise ConfigError(f"top_k={self.top_k}, keep_results={self.keep_results} are not valid; expected >= 1")
        check_range("keep_results", self.keep_results, 1, 10_000)  # each kept with its pictures in memory

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def torch_threads(self) -> int:
        """Torch threads per prediction: one core is left to the event loop and the uploads (on 2
        cores this was measured faster than 2 threads; docs/serve.md, benchmarks/bench_serve.py)."""
        return self.threads or max(1, (len(os.sched_getaffinity(0)) - 1) // self.workers)
