"""A real ``tstam serve`` for the serve tests: the CLI in a subprocess on a free loopback port
(``--port 0``), tiny checkpoints, a pool of 1 worker + 1 queued request, a 1 MB upload limit,
and its own TMPDIR so that the tests can look into its private work folder. Plus a small
stdlib HTTP client (multipart uploads) and raw sockets for clients that misbehave (slow heads,
slow bodies, connections left open). The fixtures are imported by conftest.py."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
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

    def health(self, timeout: float = 30) -> dict:
        """/healthz's JSON (200 while ok, 503 while saturated: both carry it). A connection the
        server refuses (every one it has is new or busy: a 503 without "status", or a reset) is
        tried again for up to ``timeout`` s."""
        def answer() -> dict | None:
            try:
                r = self.get("/healthz")
            except (ConnectionError, http.client.RemoteDisconnected):
                return None
            assert r.status in (200, 503), r
            return r.json() if "status" in r.json() else None

        return wait_until(answer, timeout, "/healthz to be answered")

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, timeout: float = 60) -> socket.socket:
        """A raw connection, for clients that misbehave."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def post_head(self, path: str, length: int, *, boundary: str = "b", extra: str = "") -> bytes:
        """The head of a multipart POST of ``length`` bytes, as a raw client sends it."""
        return (f"POST {path} HTTP/1.1\r\nHost: {self.netloc}\r\nContent-Type: multipart/form-data; "
                f"boundary={boundary}\r\nContent-Length: {length}\r\n{extra}\r\n").encode()

    def upload(self, path: str, name: str, data: bytes, **fields: str) -> Reply:
        body, ctype = multipart(fields, (name, data))
        return self.request("POST", path, body, {"Content-Type": ctype})

    def predict(self, video: Path, name: str | None = None, **fields: str) -> Reply:
        return self.upload("/api/predict", name or video.name, video.read_bytes(), **fields)

    def wait_idle(self, timeout: float = 60) -> None:
        """Until no job holds a slot and no upload is under way (healthz busy == uploads == 0)."""
        wait_until(lambda: (lambda h: h["busy"] == h["uploads"] == 0)(self.health()), timeout,
                   "the server to be idle (healthz busy 0, uploads 0)", state=self.health)


def read_answer(sock: socket.socket) -> tuple[int | None, dict[str, str], bytes]:
    """What the server sends on ``sock`` until it closes the connection (within the socket's
    timeout): (status or None if nothing came, headers, body). A reset counts as the end."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, body


TEST_SETTINGS = ("--workers", str(WORKERS), "--queue", str(QUEUE), "--max-upload-mb", str(LIMIT_MB), "--threads", "1")


# run a command with the file size limit given as the first argument (RLIMIT_FSIZE: writing past
# it fails with EFBIG, as a full disk fails with ENOSPC); Python ignores SIGXFSZ
FSIZE = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
         "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def start_server(tmp: Path, ckpts: dict[str, Path], *settings: str, timeout: float = 120,
                 max_file_bytes: int | None = None) -> Server:
    """Run ``python -m tstam serve`` with ``settings`` and wait until it is up (port 0: the OS
    picks a free port, which the server prints); fail after ``timeout`` s. ``max_file_bytes``:
    no file the server writes may grow beyond it."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    limit = [] if max_file_bytes is None else ["-c", FSIZE, str(max_file_bytes)]
    cmd = [sys.executable, *limit, "-m", "tstam", "serve", "--rgb", str(ckpts["rgb"]), "--flow", str(ckpts["flow"]),
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
