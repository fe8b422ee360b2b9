"""A real HTTP server on loopback serving files from memory, for the download tests: ranges honoured
(``206``) or ignored (the whole file, ``200``), transfers cut off after some bytes, 404 for
anything else; it records the ``Range`` header of every request."""
from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What the server answers for one path; change the fields between requests."""

    data: bytes
    ranges: bool = True                 # honour Range (206); False: always the whole file (200)
    cut_after: int | None = None        # send the full Content-Length, then close after this many bytes


@dataclass
class FileServer:
    url: str                                                   # http://127.0.0.1:<port>
    files: dict[str, Served] = field(default_factory=dict)     # path ("/x.pth") -> answer
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            server.requests.append((self.path, rng))
            served = server.files.get(self.path)
            if served is None:
                self.send_error(404, "Not Found")
                return
            data, start, status = served.data, 0, 200
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and served.ranges:
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if served.cut_after is not None:
                body = body[:served.cut_after]
                self.close_connection = True
            self.wfile.write(body)
            self.wfile.flush()

    return Handler


@contextlib.contextmanager
def file_server() -> Iterator[FileServer]:
    """A ``FileServer`` running on 127.0.0.1 (a free port) while the block runs."""
    info = FileServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(info))
    info.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield info
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def closed_port_url(path: str = "/w.pth") -> str:
    """A loopback URL where nothing listens (a port just bound and released): as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
