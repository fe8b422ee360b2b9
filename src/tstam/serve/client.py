"""A small client of ``tstam serve``'s API with the standard library only (no web stack needed)::

    from tstam.serve.client import predict_file
    result = predict_file("http://127.0.0.1:8000", "clip.avi", crops=10)   # the predict JSON
    print(result["label"], result["top"])

Used by the serve benchmark; ``curl -F file=@clip.avi http://127.0.0.1:8000/api/predict`` does
the same from a shell.
"""
from __future__ import annotations

import http.client
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tstam.errors import ServeError

__all__ = ["encode_multipart", "post", "predict_file", "ServeError"]


def encode_multipart(fields: dict[str, str], file: tuple[str, bytes] | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data request, as a browser or ``curl -F`` sends it;
    ``file`` is (file name, bytes) sent as the field ``file``."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    if file is not None:
        name, data = file
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(url: str, path: str, body: bytes, content_type: str, *, timeout: float = 300) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` to ``url`` + ``path``: (status, headers with lower-case names, body)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def predict_file(url: str, video: str | Path, **options: Any) -> dict[str, Any]:
    """Upload ``video`` to ``url``/api/predict with ``options`` (crops, weights, top_k, attention,
    pictures) and return the predict JSON.

    Raises:
        ServeError: the server answered with an error (413, 422, 503, ...).
    """
    video = Path(video)
    body, ctype = encode_multipart({k: str(v) for k, v in options.items()}, (video.name, video.read_bytes()))
    status, _, data = post(url, "/api/predict", body, ctype)
    if status != 200:
        try:
            detail = json.loads(data).get("detail", data[:200])
        except ValueError:
            detail = data[:200].decode(errors="replace")
        raise ServeError(status, str(detail))
    return json.loads(data)
