"""A real ``tstam serve`` for the serve tests: the CLI in a subprocess on a free loopback port
(``--port 0``), tiny checkpoints, a pool of 1 worker + 1 queued request, a 1 MB upload limit,
and its own TMPDIR so that the tests can look into its private work folder. Plus a small
stdlib HTTP client (multipart uploads). The fixtures are imported by conftest.py."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tstam.serve.client import encode_multipart as multipart

from helpers.models import make_checkpoints
from helpers.processes import OutputLines, wait_until

LIMIT_MB = 1            # --max-upload-mb: mmaction2_test.mp4 (1.35 MB) is over it, the .avi clips are not
WORKERS, QUEUE = 1, 1   # capacity 2: the third request in flight gets 503


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """The running server: its URL, work folder and a few HTTP helpers."""

    def __init__(self, proc: subprocess.Popen, out: OutputLines, url: str, tmp: Path, ckpts: dict[str, Path]):
        self.proc, self.out, self.url, self.tmp, self.ckpts = proc, out, url, tmp, ckpts
        m = re.match(r"http://([^:/]+):(\d+)/", url)
        assert m, url
        self.host, self.port = m.group(1), int(m.group(2))

    @property
    def output(self) -> list[str]:
        """The server's output lines so far (stdout and stderr)."""
        return self.out.lines

    @property
    def workdir(self) -> Path:
        found = list(self.tmp.glob("tstam-serve-*"))
        assert len(found) == 1, f"expected one work folder in {self.tmp}, found {found}"
        return found[0]

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                timeout: float = 120) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def upload(self, path: str, name: str, data: bytes, **fields: str) -> Reply:
        body, ctype = multipart(fields, (name, data))
        return self.request("POST", path, body, {"Content-Type": ctype})

    def predict(self, video: Path, name: str | None = None, **fields: str) -> Reply:
        return self.upload("/api/predict", name or video.name, video.read_bytes(), **fields)

    def wait_idle(self, timeout: float = 60) -> None:
        """Until no request holds a slot (healthz busy == 0)."""
        wait_until(lambda: self.get("/healthz").json()["busy"] == 0, timeout, "the server to be idle (healthz busy 0)",
                   state=lambda: self.get("/healthz").json())


TEST_SETTINGS = ("--workers", str(WORKERS), "--queue", str(QUEUE), "--max-upload-mb", str(LIMIT_MB), "--threads", "1")


def start_server(tmp: Path, ckpts: dict[str, Path], *settings: str, timeout: float = 120) -> Server:
    """Run ``python -m tstam serve`` with ``settings`` and wait until it is up (port 0: the OS
    picks a free port, which the server prints); fail after ``timeout`` s."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tstam", "serve", "--rgb", str(ckpts["rgb"]), "--flow", str(ckpts["flow"]),
           "--port", "0", *settings]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = OutputLines(proc)
    try:
        out.wait_for("Application startup complete", timeout, "tstam serve to start (uvicorn's startup line)")
        url = out.wait_for(r"listening on (http://\S+/)", 0, "tstam serve's URL").group(1)
    except AssertionError:
        proc.kill()
        raise
    return Server(proc, out, url, tmp, ckpts)


def stop_server(server: Server) -> int:
    """Ctrl-C (SIGINT to the process we started), as a user stops it; its exit status."""
    server.proc.send_signal(signal.SIGINT)
    try:
        return server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise


@pytest.fixture(scope="session")
def serve_ckpts(tmp_path_factory) -> dict[str, Path]:
    return make_checkpoints(tmp_path_factory.mktemp("serve_ckpt"))


@pytest.fixture(scope="session")
def server(tmp_path_factory, serve_ckpts):
    """One server for the API and browser tests; its shutdown is checked (exit 0, work folder gone)."""
    tmp = tmp_path_factory.mktemp("serve_tmp")
    s = start_server(tmp, serve_ckpts, *TEST_SETTINGS)
    yield s
    code = stop_server(s)
    assert code == 0, "".join(s.output)
    assert not list(tmp.glob("tstam-serve-*")), "the work folder was not removed at shutdown"
