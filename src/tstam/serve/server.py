"""Listening socket and uvicorn for ``tstam serve``.

The socket is bound before the models load, so that a bad host or a port in use is reported at
once, as an ``InputError`` naming the value and what would be valid (the CLI exits 2).

uvicorn reads a request head for as long as a client takes (its keep-alive timer is reset by
every byte) and keeps every connection it accepts (``limit_concurrency`` answers 503 only once a
request head is complete, so connections that never finish theirs are not counted against it).
``guarded_protocol`` adds what is missing, below ASGI, where a request head is still bytes:

- a deadline for each request head (``header_timeout`` from the connection's start or from the
  previous answer): past it the connection is closed, with a 408 if part of a head came;
- a bound on open connections (``max_connections``): one more closes the connection that has
  been waiting longest for a request head (an idle or slow one, waiting for at least
  ``EVICTABLE_AFTER``; requests in progress are never cut), or, if there is none, is answered
  503 and closed;
- a deadline for a client that does not read its answer (``body_timeout`` with the writes paused);
- JSON instead of plain text for a request that is not HTTP (400).

Request bodies are guarded at the ASGI layer (``tstam.serve.guard``), where the routes read them.
"""
from __future__ import annotations

import asyncio
import errno
import http
import logging
import resource
import socket
from collections.abc import Callable
from typing import Any

from tstam.errors import InputError
from tstam.serve.config import ServeConfig, is_host
from tstam.serve.guard import json_body

__all__ = ["bind", "serve", "guarded_protocol", "reserve_files"]

# s a connection waits for a head before it may be closed to make room: a client's head follows its
# connection within milliseconds, so a real client is not cut before it is read, and a flood of
# new connections cannot close each other as fast as they come
EVICTABLE_AFTER = 0.25

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free one; ``sock.getsockname()`` tells).

    Raises:
        InputError: the host is not an address or name of this machine, or the port is in use.
    """
    valid = "e.g. 127.0.0.1 (this machine only, the default), ::1 or 0.0.0.0 (every interface)"
    if not is_host(host):  # checked before any name lookup
        raise InputError(f"--host {host!r}: not an IP address or host name (no scheme, port or path); {valid}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError) as e:
        raise InputError(f"--host {host!r}: cannot be resolved ({getattr(e, 'strerror', None) or e}); {valid}") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"--port {port}: already in use on {host}; choose another port "
                             "(--port 0 picks a free one)") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InputError(f"--host {host!r}: not an address of this machine; {valid}") from None
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def reserve_files(cfg: ServeConfig) -> None:
    """Raise the process's open-file limit (``ulimit -n``) to what ``cfg.max_connections`` needs,
    so that connections are refused by the bound, not by the kernel (``accept`` failing with
    EMFILE stops uvicorn accepting for a second at a time).

    Raises:
        InputError: the hard limit is below what ``--max-connections`` needs.
    """
    needed = cfg.max_connections + 2 * (cfg.max_uploads + cfg.workers + cfg.queue) + 64  # + uploads, models, logs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise InputError(f"--max-connections {cfg.max_connections}: needs {needed} open files, and this process "
                         f"may open at most {hard} (ulimit -Hn); choose fewer connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _raw_json(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 answer with the API's JSON, written below h11 (no request to answer)."""
    body = json_body(detail)
    return (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def guarded_protocol(cfg: ServeConfig) -> type:
    """uvicorn's h11 protocol with a request-head deadline, a bound on open connections and a
    deadline for clients that do not read (the module's docstring says why)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: Any = None
        _write_timer: Any = None
        _head_bytes = 0                   # bytes of the head under way (0: nothing came yet)
        _waiting_since = 0.0              # when the connection began to wait for a request head

        @property
        def waiting(self) -> bool:
            """No request in progress: before the first or between two (idle, or a head on its way)."""
            return self.cycle is None or self.cycle.response_complete

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._expect_head()
            if len(self.connections) > cfg.max_connections:
                self._make_room()

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._head_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.waiting:
                self._head_bytes += len(data)
            super().data_received(data)
            if not self.waiting and self._head_timer is not None:  # a request head is complete
                self._head_timer.cancel()
                self._head_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.waiting:
                self._expect_head()

        def pause_writing(self) -> None:  # the client does not read what the server sends
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(cfg.body_timeout, self._not_reading)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_json(400, f"not a valid HTTP/1.1 request (a head over "
                                                f"{h11._connection.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE // 1024} KB, "
                                                "or malformed)"))
            self.transport.close()

        def _expect_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_bytes, self._waiting_since = 0, self.loop.time()
            self._head_timer = self.loop.call_later(cfg.header_timeout, self._head_late)

        def _head_late(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing() and self.waiting:
                self._give_up(408, f"the request head did not come within {cfg.header_timeout:g} s "
                                   "(tstam serve --header-timeout)")

        def _not_reading(self) -> None:
            self._write_timer = None
            log.info("%s: did not read its answer for %g s; connection closed", self.client, cfg.body_timeout)
            self.transport.abort()

        def _make_room(self) -> None:
            oldest = self.loop.time() - EVICTABLE_AFTER
            idle = [c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol)
                    and c.waiting and c._waiting_since <= oldest and not c.transport.is_closing()]
            if idle:
                min(idle, key=lambda c: c._waiting_since)._give_up(
                    503, f"the server has {cfg.max_connections} connections open (tstam serve --max-connections), "
                         "and this one had waited longest without a request")
            else:
                log.info("%d connections, each with a request in progress or just opened: a new one is refused",
                         len(self.connections) - 1)
                self._give_up(503, f"the server has {cfg.max_connections} connections open, each with a request in "
                                   "progress or just opened (tstam serve --max-connections); retry in a second",
                              always=True)

        def _give_up(self, status: int, detail: str, *, always: bool = False) -> None:
            """Close the connection; with the API's JSON answer when a request had begun (or ``always``)."""
            if always or self._head_bytes:
                self.transport.write(_raw_json(status, detail))
            self.transport.close()

    return GuardedH11Protocol


def serve(app: Any, sock: socket.socket, cfg: ServeConfig) -> None:
    """Run ``app`` (``create_app``'s) with uvicorn on the bound socket until Ctrl-C (or SIGTERM);
    logs go through the ``logging`` set up by the CLI.

    Shutting down takes at most ``cfg.shutdown_timeout`` s, plus about 1 s: new connections stop
    and idle ones close, the queued jobs are answered 503 (``app.state.begin_shutdown``), the
    requests under way (running predictions among them) get ``shutdown_timeout`` s to finish;
    half a second before that (``app.state.end_requests``) the running jobs and the uploads
    still under way are answered 503, and at the end uvicorn cancels what is left; the
    lifespan's end stops the pool (``PredictionPool.shutdown``: 1 s for a stage to end) and
    removes the work folder. Returns after that (uvicorn re-raises the signal that stopped it;
    Ctrl-C is a normal stop here)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            begin: Callable[[], None] = app.state.begin_shutdown
            begin()
            # answer the requests still under way in JSON before uvicorn cancels them (it would
            # send a plain-text 500): what remains of the running jobs and of the uploads
            margin = min(0.5, cfg.shutdown_timeout / 2)
            last = asyncio.get_running_loop().call_later(cfg.shutdown_timeout - margin, app.state.end_requests)
            try:
                await super().shutdown(sockets=sockets)
            finally:
                last.cancel()

    config = uvicorn.Config(app, log_config=None, lifespan="on", http=guarded_protocol(cfg),
                            timeout_graceful_shutdown=cfg.shutdown_timeout)
    server = Server(config)
    app.state.connections = lambda: len(server.server_state.connections)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C re-raised by uvicorn after its graceful shutdown: the normal way to stop
    # said however run() ended: uvicorn re-raises the Ctrl-C it handled only into the handler it found,
    # and a process started with SIGINT ignored (a background job of a script) returns from run() instead
    log.info("stopped")
