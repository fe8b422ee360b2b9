"""What ``tstam serve`` checks at the ASGI layer before its routes run (no web-framework import).

- :class:`UploadGuard`: every POST body is an upload; at most ``max_uploads`` are received at once
  (apart from the prediction slots, which a video takes only once it is uploaded), each within
  the size limit (413, from the declared length before the body is read) and its deadlines: no
  pause longer than ``body_timeout`` and all of it within ``body_timeout + size / min_rate``
  seconds (408). When every upload slot is taken, a new upload takes the slot of the slowest one
  below the minimum rate (that one gets 408: its start-up time is withdrawn while others wait),
  else it gets 503.
- :class:`WebGuard`: the ``Host`` of each request must be one of the server's names (a server
  on loopback answers only to ``localhost``, ``127.0.0.1`` and ``[::1]``, so that a web page of
  another site cannot reach it through a name of its own that resolves to 127.0.0.1: DNS
  rebinding) -> 400; a request that changes something (POST) from a browser must come from the
  server's own origin (``Origin`` = the ``Host``) -> 403, so that a page of another site cannot
  post a form to it; ``HEAD`` is answered as ``GET`` without the body; every answer carries
  ``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options`` and a
  ``Content-Security-Policy`` (an HTML page without its own gets one allowing exactly its inline
  scripts: the API docs pages).

Errors are the API's JSON ``{"detail": "..."}``.

The request head itself (its deadline, the bound on open connections) is guarded below ASGI, in
the uvicorn protocol of ``tstam.serve.server``.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["UploadGuard", "Uploads", "UploadRefused", "WebGuard", "json_body", "split_host"]

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

EVICTABLE_AFTER = 1.0   # s: a younger upload is never taken for another (a burst of new uploads keeps its slots)
DRAIN_SECONDS = 2.0     # s a refused upload is read on so that a browser sees the answer; then it is cut off
# the HTML pages without a policy of their own (the API docs): their inline scripts by hash, styles
# inline (Swagger UI and ReDoc set them), nothing from elsewhere
_DOCS_CSP = ("default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data: blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
             "form-action 'self'; frame-ancestors 'none'")
_OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"  # JSON, pictures, scripts: nothing to run or frame
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def json_body(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """A whole JSON answer; the connection is closed after it (the request may not have been read)."""
    data = json_body(detail)
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": data})


class UploadRefused(Exception):
    """An upload ended by the server: over the size limit (413) or too slow (408)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(eq=False)
class Upload:
    """One request body being received."""

    started: float = field(default_factory=time.monotonic)
    last: float = 0.0                                    # when its last bytes came (at first: when it began)
    received: int = 0
    done: bool = False                                   # the whole body is in (or the client left)
    evicted: asyncio.Event = field(default_factory=asyncio.Event)  # set: end it with ``status``, ``why``
    status: int = 408
    why: str = ""

    def __post_init__(self) -> None:
        self.last = self.last or self.started

    def rate(self, now: float) -> float:
        return self.received / max(now - self.started, 1e-3)


class Uploads:
    """The bodies being received: at most ``limit``, each with a pause and a rate deadline.

    Args:
        limit: uploads at once.
        max_bytes: size limit of one body.
        pause: the longest pause in a body, and its start-up time before ``min_rate`` counts (s).
        min_rate: the least average rate (bytes/s).
    """

    def __init__(self, *, limit: int, max_bytes: int, pause: float, min_rate: float):
        self.limit, self.max_bytes, self.pause, self.min_rate = limit, max_bytes, pause, min_rate
        self.active: set[Upload] = set()

    def open(self) -> Upload | None:
        """A slot for a new body; None when every slot is taken by an upload at or above the rate."""
        if len(self.active) >= self.limit:
            now = time.monotonic()
            slow = [u for u in self.active if now - u.started >= EVICTABLE_AFTER and u.rate(now) < self.min_rate
                    and not u.evicted.is_set()]
            if not slow:
                return None
            victim = min(slow, key=lambda u: u.rate(now))
            victim.why = (f"upload too slow: {_size(victim.received)} in {now - victim.started:.1f} s while other "
                          f"uploads waited; the server needs at least {self.min_rate / 1024:g} KB/s "
                          "(tstam serve --min-upload-rate)")
            victim.evicted.set()
            self.close(victim)
            log.info("an upload below the rate makes room for a new one: %s", victim.why)
        upload = Upload()
        self.active.add(upload)
        return upload

    def stop_all(self, why: str) -> None:
        """End every upload under way with 503 and ``why`` (the server is shutting down)."""
        for upload in list(self.active):
            upload.status, upload.why = 503, why
            upload.evicted.set()
            self.close(upload)

    def close(self, upload: Upload) -> None:
        upload.done = True
        self.active.discard(upload)

    def deadline(self, upload: Upload) -> tuple[float, str]:
        """When the next bytes of ``upload`` must have come, and what to say if they have not."""
        by_pause = upload.last + self.pause
        by_rate = upload.started + self.pause + upload.received / self.min_rate
        if by_pause <= by_rate:
            return by_pause, (f"upload stalled: nothing came for {self.pause:g} s (tstam serve --body-timeout); "
                              "send the whole file without pausing")
        return by_rate, (f"upload too slow: {_size(upload.received)} in {by_rate - upload.started:.1f} s; the "
                         f"server needs at least {self.min_rate / 1024:g} KB/s after the first {self.pause:g} s "
                         "(tstam serve --min-upload-rate, --body-timeout)")

    async def receive(self, upload: Upload, receive: Receive, *, limit: int | None = None,
                      until: float = math.inf) -> dict:
        """The next message of ``upload``'s body, or :class:`UploadRefused`: 408 past its deadline
        (or ``until``) or when another upload took its slot, 413 past ``limit`` bytes (default:
        the size limit)."""
        deadline, why = self.deadline(upload)
        get = asyncio.ensure_future(receive())
        evicted = asyncio.ensure_future(upload.evicted.wait())
        try:
            done, _ = await asyncio.wait({get, evicted}, timeout=max(0.0, min(deadline, until) - time.monotonic()),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            evicted.cancel()
            if not get.done():
                get.cancel()
        if get not in done:
            raise UploadRefused(upload.status, upload.why or why)
        message = get.result()
        size = len(message.get("body", b""))
        if size:
            upload.received += size
            upload.last = time.monotonic()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.close(upload)  # the slot is free as soon as the body is in, not when the answer is
        limit = self.max_bytes if limit is None else limit
        if upload.received > limit:
            raise UploadRefused(413, too_large(f"more than {self.max_bytes / 2**20:g} MB", self.max_bytes))
        return message

    async def drain(self, upload: Upload, receive: Receive) -> None:
        """Read and drop the rest of a refused body, up to twice the size limit and for at most
        ``DRAIN_SECONDS``, so that a client that sends without waiting for the answer (a browser)
        reads it instead of seeing the connection reset."""
        until = time.monotonic() + DRAIN_SECONDS
        try:
            while not upload.done:
                await self.receive(upload, receive, limit=2 * self.max_bytes, until=until)
        except UploadRefused:
            pass


def _size(n: int) -> str:
    return f"{n} bytes" if n < 10240 else f"{n / 1024:.0f} KB"


def too_large(size: str, limit: int) -> str:
    return (f"upload is {size}; the limit is {limit / 2**20:g} MB (the server's --max-upload-mb); "
            "send a shorter or smaller video")


class UploadGuard:
    """ASGI middleware: every POST body passes :class:`Uploads` (slots, size, deadlines).

    A body refused on the way (413, 408) raises :class:`UploadRefused` in the route that reads
    it; the route, or this middleware if the route lets it through, answers with its JSON.
    """

    def __init__(self, app: Any, uploads: Uploads):
        self.app, self.uploads = app, uploads

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        uploads = self.uploads
        headers = dict(scope["headers"])
        waits = b"100-continue" in headers.get(b"expect", b"").lower()  # such a client sends nothing until asked
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > uploads.max_bytes:
            if not waits and int(length) <= 2 * uploads.max_bytes:
                await uploads.drain(Upload(), receive)
            return await send_json(send, 413, too_large(f"{int(length) / 2**20:.2f} MB", uploads.max_bytes))
        upload = uploads.open()
        if upload is None:
            if not waits:
                await uploads.drain(Upload(), receive)
            retry = max(1, math.ceil(min(uploads.pause, 5)))
            return await send_json(send, 503, f"busy: {uploads.limit} uploads are being received (the server's "
                                              f"--max-uploads); retry in about {retry} s", {"Retry-After": str(retry)})
        started = False

        async def guarded() -> dict:
            if upload.done:  # the body is in: what comes now is the client leaving
                return await receive()
            try:
                return await uploads.receive(upload, receive)
            except UploadRefused as e:
                if e.status == 413:
                    await uploads.drain(upload, receive)
                raise

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded, watched)
        except UploadRefused as e:
            log.info("upload refused (%d): %s", e.status, e.message)
            if started:
                raise
            await send_json(send, e.status, e.message)
        finally:
            uploads.close(upload)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` or an origin's netloc -> (lower-case name without brackets, port or None); None
    when it is not a host[:port]."""
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:/@\s]+)(?::(\d{1,5}))?", value.strip())
    if not m:
        return None
    return m.group(1).lower().strip("[]"), int(m.group(2)) if m.group(2) else None


class WebGuard:
    """ASGI middleware: the request's ``Host`` and ``Origin``, ``HEAD``, the security headers.

    Args:
        app: the app.
        host_names: the names the ``Host`` header may carry (None: any).
    """

    def __init__(self, app: Any, host_names: frozenset[str] | None):
        self.app, self.host_names = app, host_names

    def refusal(self, scope: dict) -> tuple[int, str] | None:
        headers = dict(scope["headers"])
        host_value = headers.get(b"host", b"").decode("latin-1")
        host = split_host(host_value)
        if host is None:
            return 400, f"Host {host_value!r} is not valid; expected host[:port], e.g. 127.0.0.1:8000"
        if self.host_names is not None and host[0] not in self.host_names:
            return 400, (f"Host {host_value!r} is not a name of this server; it answers to "
                         f"{', '.join(sorted(self.host_names))} (tstam serve --allowed-hosts)")
        origin = headers.get(b"origin")
        if origin is not None and scope["method"] not in _SAFE_METHODS:
            text = origin.decode("latin-1")
            u = urlsplit(text)
            theirs = split_host(u.netloc) if u.scheme in ("http", "https") else None
            default = 443 if u.scheme == "https" else 80
            if (theirs is None or theirs[0] != host[0]
                    or (theirs[1] or default) != (host[1] or default)):
                return 403, (f"a {scope['method']} from the page of another site (Origin {text!r}) is refused; "
                             f"this server takes uploads from its own page (http://{host_value}/) and from "
                             "clients that send no Origin (curl, scripts)")
        return None

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = self.refusal(scope)
        if refused is not None:
            log.info("refused %s %s: %s", scope["method"], scope["path"], refused[1])
            return await send_json(send, *refused)
        head = scope["method"] == "HEAD"
        if head:  # the same answer as GET, without its body (its Content-Length stays)
            scope = {**scope, "method": "GET"}
        start: dict | None = None
        body: list[bytes] = []

        async def secured(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SET] + _ALWAYS
                named = {k.lower(): v for k, v in headers}
                if b"content-security-policy" not in named:
                    if named.get(b"content-type", b"").startswith(b"text/html"):
                        start = {**message, "headers": headers}  # its policy depends on its inline scripts
                        return None
                    headers.append((b"content-security-policy", _OTHER_CSP.encode()))
                return await send({**message, "headers": headers})
            if message["type"] == "http.response.body" and start is not None:
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return None
                page = b"".join(body)
                scripts = ["'self'"] + ["'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
                                        for s in _INLINE_SCRIPT.findall(page)]
                await send({**start, "headers": start["headers"] + [
                    (b"content-security-policy", _DOCS_CSP.format(scripts=" ".join(scripts)).encode())]})
                return await send({"type": "http.response.body", "body": b"" if head else page})
            if head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, secured)


_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY")]
_SET = {k for k, _ in _ALWAYS}
