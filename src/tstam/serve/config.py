"""``ServeConfig``: what ``tstam serve`` listens on and how much work it accepts at once.

No web-framework import here: the CLI builds and checks this before it needs the serve extra.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field

from tstam.config import ConfigError, check_choice, check_range
from tstam.video import DecodeLimits

__all__ = ["ServeConfig", "SERVE_EXTRA_MODULES", "missing_serve_packages", "INSTALL_HINT", "LOOPBACK_NAMES", "is_host"]

# module -> the package of the ``serve`` extra that provides it (pyproject.toml)
SERVE_EXTRA_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart",
                       "fastapi_offline": "fastapi-offline"}
INSTALL_HINT = 'pip install -e ".[serve]"  (from a checkout; or pip install "tstam[serve]")'

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")  # RFC 1123 host name, e.g. localhost
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")  # the Host names a loopback server answers by default


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
    """Address, limits, deadlines and request defaults of ``tstam serve`` (docs/serve.md)."""

    host: str = "127.0.0.1"          # this machine only; 0.0.0.0 listens on every interface
    port: int = 8000                 # 0: any free port (printed at start)
    max_upload_mb: float = 64.0      # request body limit -> 413; UCF101's clips average ~0.5 MB (6.5 GB / 13,320)
    workers: int = 2                 # predictions run at once (threads sharing the loaded models); 2: fastest measured on 2 cores
    queue: int = 4                   # uploaded videos waiting for a worker; more -> 503 + Retry-After
    threads: int = 0                 # torch threads per prediction; 0 -> (cores - 1) // workers, at least 1 (docs/serve.md)
    crops: int = 1                   # default crops per snippet (a request may ask for 3 or 10)
    top_k: int = 5                   # default classes in "top"
    keep_results: int = 16           # finished jobs (JSON and pictures) kept for the page, oldest dropped first
    samples: str | None = None    # folder of sample clips for the page; None: a few synthetic clips
    # what one slow or idle client may hold (none of these exist in uvicorn, which waits for ever)
    max_uploads: int = 8             # uploads received at once, apart from the prediction slots; more -> 503
    max_connections: int = 100       # open connections; the one idle longest makes room, else 503 and closed
    header_timeout: float = 10.0     # s for a request line and headers, from the connection's start or last answer
    body_timeout: float = 30.0       # s an upload may pause; also its start-up time before min_upload_rate counts
    min_upload_rate: float = 50.0    # KB/s an upload must average: all of it within body_timeout + size / rate s
    job_timeout: float = 120.0       # s a prediction may run (queue time apart) -> 422; demo models take ~1 s
    poll_timeout: float = 30.0       # s a job of POST /api/jobs lives unasked-for (the page asks every 0.25 s)
    shutdown_timeout: float = 10.0   # s Ctrl-C waits for running requests; then about 1 s for predictions
    allowed_hosts: tuple[str, ...] | None = None  # Host header names answered; None: by the address (host_names)
    decode: DecodeLimits = field(default_factory=DecodeLimits)  # what one upload may cost to decode -> 422

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
        # a deadline beyond a day is no deadline; bounded so that timer arithmetic stays exact
        for name in ("header_timeout", "body_timeout", "job_timeout", "poll_timeout", "shutdown_timeout"):
            check_range(name, getattr(self, name), 0, 86_400, lo_open=True, note="seconds, at most a day")
        check_range("min_upload_rate", self.min_upload_rate, 0, 10**7, lo_open=True, note="KB/s, at most 10 GB/s")
        check_range("max_uploads", self.max_uploads, 1, 10_000)
        check_range("max_connections", self.max_connections, None, 1_000_000, note="each costs a file descriptor")
        held = self.max_uploads + self.workers + self.queue  # connections that uploads and waiting answers may hold
        if self.max_connections <= held + 1:
            raise ConfigError(f"max_connections={self.max_connections} is not valid; expected more than "
                              f"max_uploads + workers + queue + 1 = {held + 1}, so that /healthz and the page's "
                              "questions get through while every upload and prediction slot is taken")
        if self.allowed_hosts is not None:
            self.allowed_hosts = tuple(h.strip().lower().removeprefix("[").removesuffix("]") for h in self.allowed_hosts)
            bad = [h for h in self.allowed_hosts if h != "*" and not is_host(h)]
            if bad or not self.allowed_hosts:
                raise ConfigError(f"allowed_hosts (--allowed-hosts) {list(self.allowed_hosts)} is not valid: "
                                  f"{bad or 'empty'}; expected host names or IP addresses without scheme or port, "
                                  "separated by commas, or *; e.g. localhost,192.168.1.20")
        check_range("keep_results", self.keep_results, 1, 10_000)  # each kept with its pictures in memory

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def torch_threads(self) -> int:
        """Torch threads per prediction: one core is left to the event loop and the uploads (on 2
        cores this was measured faster than 2 threads; docs/serve.md, benchmarks/bench_serve.py)."""
        return self.threads or max(1, (len(os.sched_getaffinity(0)) - 1) // self.workers)

    def host_names(self, bound: str) -> frozenset[str] | None:
        """The names a request's ``Host`` may carry, for a server bound to the address ``bound``
        (None: any). ``allowed_hosts`` when given; else on a loopback address only this
        machine's names (a web page cannot reach the server through a name of its own that
        resolves to 127.0.0.1: DNS rebinding), on every interface (0.0.0.0, ::) any name, and on
        one other address that address."""
        names = self.allowed_hosts
        if names is None:
            address = ipaddress.ip_address(bound.split("%")[0])
            names = LOOPBACK_NAMES if address.is_loopback else ("*",) if address.is_unspecified else (str(address),)
        return None if "*" in names else frozenset(names)


def is_host(name: str) -> bool:
    """Whether ``name`` is an IP address or an RFC 1123 host name (no scheme, port or path)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOST_NAME.fullmatch(name))
