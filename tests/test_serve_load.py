"""Load test, bounded in count and time: ``tstam serve`` with its default limits and deadlines on
loopback, while slow clients hold connections: ``SLOW_HEADS`` connections dripping a request head
(three times ``--max-connections``) and ``SLOW_BODIES`` uploads dripping their body (twice
``--max-uploads``), a byte every 2 s each, every one the server closes opened again 2 s later (as
slowloris does), for ``SECONDS`` s (past the 10 s head and the 30 s body deadlines). Meanwhile a
normal client uploads a real clip every few seconds and asks ``/healthz``, trying again after
``Retry-After`` when told 503 (or after a second when its connection is refused or reset). Every
normal upload must be answered 200 within 30 s of its first try, and every ``/healthz`` answered
within 30 s. The numbers are printed (run with ``-s``; docs/serve.md quotes them).
"""
from __future__ import annotations

import http.client
import json
import selectors
import socket
import threading
import time

import numpy as np
import pytest

from tstam.serve.config import ServeConfig

from helpers.realdata import VIDEOS as REAL_VIDEOS
from helpers.serve import TEST_SETTINGS, multipart, start_server, stop_server

pytestmark = pytest.mark.slow  # about a minute: a real server, hundreds of real connections

DEFAULTS = ServeConfig()
SLOW_HEADS = 3 * DEFAULTS.max_connections
SLOW_BODIES = 2 * DEFAULTS.max_uploads
SECONDS = 45
ANSWER_WITHIN = 30  # s from a normal upload's first try to its 200
DRIP_S = 2
CLIP = REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"


class SlowClients:
    """The slow connections, driven by one thread with non-blocking sockets: a byte every
    ``DRIP_S`` s on each, and every ``DRIP_S`` s the ones the server closed are opened again (as
    slowloris does)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.netloc = f"{host}:{port}"
        self.sel = selectors.DefaultSelector()
        self.opened = {"head": 0, "body": 0}
        self.missing = {"head": SLOW_HEADS, "body": SLOW_BODIES}
        self.ended: dict[str, dict[str, int]] = {"head": {}, "body": {}}  # kind -> how the server ended it -> count
        self.stop = threading.Event()

    def open(self, kind: str) -> None:
        try:
            s = socket.create_connection((self.host, self.port), timeout=10)
            if kind == "head":
                s.sendall(f"GET /api/model HTTP/1.1\r\nHost: {self.netloc}\r\nX-Slow: ".encode())
            else:
                s.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {self.netloc}\r\nContent-Type: multipart/form-data; "
                          f"boundary=b\r\nContent-Length: 900000\r\n\r\n--b\r\nContent-Disposition: form-data; "
                          f'name="file"; filename="slow.avi"\r\n\r\n'.encode())
        except OSError:  # refused or reset at once
            self.ended[kind]["refused"] = self.ended[kind].get("refused", 0) + 1
            return
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, [kind, time.monotonic()])
        self.opened[kind] += 1
        self.missing[kind] -= 1

    def end(self, s: socket.socket, kind: str) -> None:
        """The server answered or closed ``s``: note how, and close it (opened again at the next tick)."""
        data = b""
        try:
            data = s.recv(4096)
        except (BlockingIOError, ConnectionResetError):
            pass
        how = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"
        self.ended[kind][how] = self.ended[kind].get(how, 0) + 1
        self.sel.unregister(s)
        s.close()
        self.missing[kind] += 1

    def run(self) -> None:
        tick = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - tick >= DRIP_S:
                tick = now
                for kind in ("head", "body"):
                    for _ in range(self.missing[kind]):
                        self.open(kind)
            for key, _ in self.sel.select(timeout=0.1):
                self.end(key.fileobj, key.data[0])
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                kind, last = key.data
                if now - last >= DRIP_S:
                    key.data[1] = now
                    try:
                        key.fileobj.send(b"x")
                    except OSError:
                        self.end(key.fileobj, kind)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def _until_answered(call, *, busy: bool = True) -> tuple[float, int, object]:
    """``call()`` again while its connection is refused or reset, and with ``busy`` while it gets
    503 (as a client following Retry-After does), for at most ``ANSWER_WITHIN`` s: (seconds,
    tries, its last result)."""
    t0, tries = time.monotonic(), 0
    while True:
        tries += 1
        try:
            result = call()
            retry = int(result[1].get("retry-after", 1)) if busy and result[0] == 503 else None
        except (ConnectionError, http.client.RemoteDisconnected):
            result, retry = (None, {}), 1
        if retry is None or time.monotonic() - t0 + retry > ANSWER_WITHIN:
            return time.monotonic() - t0, tries, result
        time.sleep(retry)


def _call(host: str, port: int, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=ANSWER_WITHIN)
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_normal_uploads_are_answered_while_slow_clients_hold_connections(tmp_path, serve_ckpts):
    server = start_server(tmp_path, serve_ckpts, *TEST_SETTINGS)
    slow = SlowClients(server.host, server.port)
    attack = threading.Thread(target=slow.run, daemon=True)
    body, ctype = multipart({"attention": "false"}, (CLIP.name, CLIP.read_bytes()))
    uploads, health = [], []  # (seconds to the 200, tries), (seconds, tries, status, connections, uploads)
    try:
        attack.start()
        time.sleep(DRIP_S)  # every slow client has connected
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            took, tries, (status, _, _) = _until_answered(
                lambda: _call(server.host, server.port, "POST", "/api/predict", body, {"Content-Type": ctype}))
            assert status == 200 and took <= ANSWER_WITHIN, (status, tries, slow.ended)
            uploads.append((took, tries))
            took, tries, (status, _, data) = _until_answered(
                lambda: _call(server.host, server.port, "GET", "/healthz"), busy=False)  # 503: "saturated"
            assert status in (200, 503) and took <= ANSWER_WITHIN, (status, tries)
            h = json.loads(data)
            health.append((took, tries, h["status"], h["connections"], h["uploads"]))
            time.sleep(1)
    finally:
        slow.stop.set()
        attack.join(30)
        code = stop_server(server)
    seconds = np.array([u[0] for u in uploads])
    print(f"\n{SLOW_HEADS} slow heads + {SLOW_BODIES} slow bodies (a byte every {DRIP_S} s each, reopened 2 s after "
          f"the server closed them) for {SECONDS} s; default limits (max {DEFAULTS.max_connections} connections, "
          f"{DEFAULTS.max_uploads} uploads, head {DEFAULTS.header_timeout:g} s, body {DEFAULTS.body_timeout:g} s, "
          f"{DEFAULTS.min_upload_rate:g} KB/s)")
    print(f"normal uploads: {len(uploads)}, all 200; seconds to the 200: median {np.median(seconds):.2f}, "
          f"max {seconds.max():.2f}; tries: max {max(u[1] for u in uploads)}, "
          f"first-try 200s {sum(u[1] == 1 for u in uploads)}")
    print(f"/healthz: {len(health)} answers, max {max(h[0] for h in health):.2f} s, tries max "
          f"{max(h[1] for h in health)}; status {sorted({h[2] for h in health})}; connections max "
          f"{max(h[3] for h in health)}, uploads max {max(h[4] for h in health)}")
    print(f"slow connections opened {slow.opened}; ended by the server {slow.ended}")
    assert code == 0, "".join(server.output[-20:])
    assert len(uploads) >= 5, uploads
    assert max(h[3] for h in health) <= DEFAULTS.max_connections
    assert sum(slow.ended["head"].values()) >= SLOW_HEADS - DEFAULTS.max_connections  # the bound held them off
    assert sum(slow.ended["body"].values()) >= SLOW_BODIES - DEFAULTS.max_uploads
