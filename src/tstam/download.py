"""Files fetched once into tstam's cache: a resumable, hash-checked HTTP download (standard library only).

The cache is ``$TSTAM_CACHE``, else ``$XDG_CACHE_HOME/tstam``, else ``~/.cache/tstam`` (as torch.hub
keeps ``~/.cache/torch``). :func:`download` writes ``<file>.part`` beside the destination and renames
it only after its SHA-256 matched, so the destination is either absent or complete and checked:

- a download cut off (connection lost, killed process) leaves the ``.part`` file; the next call asks
  the server for the rest (HTTP ``Range``) and hashes the part already there first, or starts again
  from byte 0 when the server sends the whole file instead (no range support) or refuses the range;
- a file whose hash differs is deleted (the next call starts from nothing) and named in the error;
- no network, a refused connection, a timeout or an HTTP error is one ``WeightsError`` line naming
  the URL and where to put the file by hand.

The expected hash is the full SHA-256 or its published prefix (the ``-<hex>.`` part of names such as
``bn_inception-52deb4733.pth``, the convention that torch.hub checks as a prefix of the SHA-256).
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from tstam.errors import OutputError, WeightsError
from tstam.files import file_sha256

__all__ = ["cache_dir", "download"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{8,64}")


def cache_dir() -> Path:
    """Where tstam keeps downloaded files: ``$TSTAM_CACHE``, ``$XDG_CACHE_HOME/tstam`` or ``~/.cache/tstam``."""
    env = os.environ.get("TSTAM_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tstam"


def _by_hand(url: str, dest: Path) -> str:
    return f"download it by hand from {url} and put it at {dest}"


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"no connection: {e.reason}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def download(url: str, dest: str | Path, *, sha256: str, timeout: float = 30.0, progress: bool | None = None) -> Path:
    """``dest``, downloaded from ``url`` unless it is there already, its SHA-256 checked.

    Args:
        url: http(s) address of the file.
        dest: where the file goes (its folder is created).
        sha256: the full SHA-256 (64 hex digits) or a prefix of it (at least 8).
        timeout: seconds to wait for the server (per connection and per read).
        progress: a progress bar on stderr; None: when stderr is a terminal.

    Raises:
        WeightsError: the server cannot be reached or answers with an error, the transfer stopped
            early (the part is kept: call again to resume), or the bytes have another hash (the
            part is deleted). Each names the URL and where to put the file by hand.
        OutputError: the destination folder cannot be written.
    """
    sha256 = sha256.lower()
    if not _HEX.fullmatch(sha256):
        raise ValueError(f"sha256={sha256!r} is not valid; expected 8 to 64 hexadecimal digits")
    dest = Path(dest)
    if dest.is_file():
        digest = file_sha256(dest)
        if not digest.startswith(sha256):
            raise WeightsError(f"{dest}: SHA-256 {digest[:16]}..., expected {sha256}... (the file of {url}); delete it "
                               "to download it again")
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{dest.parent}: cannot create the download folder ({e.strerror or e}); set TSTAM_CACHE "
                          "to a folder you can write to") from None
    part = dest.with_name(dest.name + ".part")
    done = part.is_file() and file_sha256(part).startswith(sha256)  # complete, stopped before its rename
    for attempt in range(0 if done else 2):  # a second time only when the server refused to resume the part
        if _fetch(url, part, dest, timeout=timeout, progress=progress, resume=attempt == 0):
            break
    digest = file_sha256(part)
    if not digest.startswith(sha256):
        part.unlink(missing_ok=True)
        raise WeightsError(f"{url}: the downloaded file has SHA-256 {digest[:16]}..., expected {sha256}...; it was "
                           f"deleted (a changed file on the server or a proxy's error page); try again later or "
                           f"{_by_hand(url, dest)}")
    os.chmod(part, 0o644)
    os.replace(part, dest)
    log.info("downloaded %s to %s (SHA-256 %s... checked)", url, dest, digest[:16])
    return dest


def _fetch(url: str, part: Path, dest: Path, *, timeout: float, progress: bool | None, resume: bool) -> bool:
    """Bring ``part`` to the server's whole file; False when the server refused the range asked."""
    have = part.stat().st_size if resume and part.is_file() else 0
    headers = {"User-Agent": "tstam (urllib)"}  # some hosts refuse urllib's default agent
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is not a prefix of today's file: start again
            log.info("%s refused to resume at byte %d; downloading it again from the start", url, have)
            part.unlink(missing_ok=True)
            return False
        raise WeightsError(f"cannot download {url}: {_reason(e)}; {_by_hand(url, dest)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise WeightsError(f"cannot download {url} ({_reason(e)}); {_by_hand(url, dest)}") from None
    with resp:
        append = have > 0 and resp.status == 206 and _range_start(resp) == have
        if have and not append:
            log.info("%s sent the whole file instead of the rest from byte %d; starting again", url, have)
        start = have if append else 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        got = start
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=dest.name, leave=False,
                   disable=not (sys.stderr.isatty() if progress is None else progress))
        try:
            with open(part, "ab" if append else "wb") as f:
                while block := _read(resp, url, dest, part, got, total):
                    try:
                        f.write(block)
                    except OSError as e:  # our own disk: full, or gone
                        raise OutputError(f"{part}: cannot be written ({e.strerror or e})") from None
                    got += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if total is not None and got < total:
        raise _cut(url, dest, part, got, total, "the connection closed early")
    return True


def _read(resp: http.client.HTTPResponse, url: str, dest: Path, part: Path, got: int, total: int | None) -> bytes:
    try:
        return resp.read(_CHUNK)
    except (OSError, http.client.HTTPException) as e:  # reset, timeout, a broken chunked body
        raise _cut(url, dest, part, got, total, _reason(e)) from None


def _range_start(resp: http.client.HTTPResponse) -> int | None:
    """The first byte of a 206 answer (``Content-Range: bytes <start>-<end>/<total>``)."""
    m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _cut(url: str, dest: Path, part: Path, got: int, total: int | None, why: str) -> WeightsError:
    of = f" of {total}" if total is not None else ""
    return WeightsError(f"cannot download {url}: the transfer stopped after {got}{of} bytes ({why}); run the same "
                        f"command again to resume from {part}, or {_by_hand(url, dest)}")
