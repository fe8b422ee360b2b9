"""Files the toolkit writes: atomic writes and output checks made before the work starts.

Every result file (checkpoints, score files, ``meta.json``, split files, JSON summaries) is
written through :func:`atomic_write`: a temporary file in the same folder, flushed and fsynced,
then renamed over the target, so a killed run leaves the old file or the new one, never half of
one. Output locations are checked with :func:`check_writable_dir` / :func:`check_output_file`
before long work starts, so that a read-only or misspelt path is reported at once, not after an
hour of computing.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from tstam.errors import OutputError

__all__ = ["atomic_write", "write_text_atomic", "write_json_atomic", "check_writable_dir", "check_output_file",
           "new_file_mode", "file_sha256"]


def new_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: 0o666 less the process's umask
    (0o644 under the usual umask 022), so that every output is as readable as any other file the
    user creates. ``mkstemp`` and some writers (safetensors) make files private (0o600) instead."""
    try:  # Linux >= 4.7 reports it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o22)  # elsewhere the only way to read it is to set it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems / platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, mode: int | None = None) -> Path:
    """Write ``path`` through ``write(file)`` atomically: temp file beside it, fsync, rename.

    On any error the temp file is removed and the file already at ``path`` is left as it was.
    The folder is created if needed.

    Args:
        path: the destination.
        write: called with the open binary temp file.
        mode: permissions of the new file; None: :func:`new_file_mode`, those of any new file
            (``mkstemp`` alone would make it private).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text atomically, UTF-8, line endings as given (no translation)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 1) -> Path:
    """Write JSON atomically (keys sorted, so that equal data gives equal bytes)."""
    return write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=True) + "\n")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_writable_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and check that a file can be written in it.

    Raises:
        OutputError: naming the folder and the reason (a parent is a regular file, no permission...).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: output folder is an existing file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tstam-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{path}: output folder is not writable ({e.strerror or e}); "
                          "give a folder you can write to") from None
    return path


def check_output_file(path: str | Path, *, suffix: str | None = None) -> Path:
    """Check, before any work, that ``path`` can be written as a file (its folder is created).

    Args:
        path: the output file.
        suffix: the required extension (e.g. ".npz"), or None.

    Raises:
        OutputError: the path is a folder, has the wrong extension, or its folder is not writable.
    """
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputError(f"{path}: expected a {suffix} file name")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: exists and is not writable")
    check_writable_dir(path.parent if str(path.parent) else Path("."))
    return path
