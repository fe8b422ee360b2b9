"""Listening socket and uvicorn for ``tstam serve``.

The socket is bound before the models load, so that a bad host or a port in use is reported at
once, as an ``InputError`` naming the value and what would be valid (the CLI exits 2).
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import re
import socket

from tstam.errors import InputError

__all__ = ["bind", "serve"]

log = logging.getLogger(__name__)

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")  # RFC 1123 host name, e.g. localhost


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free one; ``sock.getsockname()`` tells).

    Raises:
        InputError: the host is not an address or name of this machine, or the port is in use.
    """
    valid = "e.g. 127.0.0.1 (this machine only, the default), ::1 or 0.0.0.0 (every interface)"
    try:
        ipaddress.ip_address(host)
    except ValueError:  # not an IP address: a host name (checked before any name lookup)
        if not _HOST_NAME.fullmatch(host):
            raise InputError(f"--host {host!r}: not an IP address or host name (no scheme, port or path); {valid}") from None
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


def serve(app: object, sock: socket.socket) -> None:
    """Run ``app`` with uvicorn on the bound socket until Ctrl-C (or SIGTERM); logs go through
    the ``logging`` set up by the CLI. Returns after a graceful shutdown (uvicorn re-raises the
    signal that stopped it once it is done; Ctrl-C is a normal stop here)."""
    import uvicorn

    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=10)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        log.info("stopped")
