"""Which videos to extract: a folder, one file, a split or list file; shards of the list."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from tstam.data.records import safe_relpath, video_ids
from tstam.errors import AnnotationError, BadFileError, InputError
from tstam.video import VIDEO_EXTENSIONS

__all__ = ["shard_of", "select_shard", "parse_shard", "parse_size", "collect_sources", "source_ids"]

_HMDB_SPLIT_NAME = re.compile(r"^(?P<cls>.+)_test_split\d+\.txt$")


def source_ids(sources: Iterable[str | Path] | Mapping[Path, str]) -> dict[Path, str]:
    """``{video file: frame-store id}``: ``sources`` itself when it maps files to ids (as
    ``collect_sources`` returns), else ``tstam.data.records.video_ids`` of the files."""
    if isinstance(sources, Mapping):
        return {Path(p): v for p, v in sources.items()}
    return video_ids([Path(s) for s in sources])


def shard_of(vid: str, num_shards: int) -> int:
    """Shard index of a video id: stable across machines, runs and Python versions (SHA-1)."""
    return int.from_bytes(hashlib.sha1(vid.encode("utf-8")).digest()[:8], "big") % num_shards


def select_shard(sources: Iterable[str | Path] | Mapping[Path, str], shard: tuple[int, int]) -> dict[Path, str]:
    """``{file: video id}`` of the sources whose id falls in shard ``i`` of ``n`` (``shard = (i, n)``,
    0 <= i < n); ``sources`` are files or ``{file: id}`` (``source_ids``)."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard={shard!r}: expected (i, n) with 0 <= i < n, e.g. (0, 4) for --shard 0/4")
    return {p: v for p, v in source_ids(sources).items() if shard_of(v, n) == i}


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n (``--shard 0/4`` .. ``--shard 3/4``)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m[1]) < int(m[2]):
        raise InputError(f"shard {text!r} is not valid; expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m[1]), int(m[2])


def parse_size(text: str) -> tuple[int, int]:
    """``"340x256"`` -> ``(340, 256)`` (width x height)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m[1]) == 0 or int(m[2]) == 0:
        raise InputError(f"size {text!r} is not valid; expected WIDTHxHEIGHT, e.g. 340x256")
    return int(m[1]), int(m[2])


def _read_list(path: Path, root: Path) -> list[Path]:
    """A split file (UCF101 ``Class/v.avi [label]``, HMDB51 ``v.avi 0|1|2``) or a list of paths."""
    hmdb = _HMDB_SPLIT_NAME.match(path.name)
    out = []
    data = path.read_bytes()
    if b"\0" in data[:65536]:
        raise AnnotationError(f"{path}: not a text list of videos (binary data); expected a folder, a video file "
                              f"({', '.join(VIDEO_EXTENSIONS)}), a split file or a text list")
    text = data.decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split()
        if not fields:
            continue
        if len(fields) > 1 and re.fullmatch(r"-?\d+", fields[-1]):
            fields = fields[:-1]  # trailing label / split flag
        raw = " ".join(fields)
        rel = safe_relpath(raw, where=f"{path}:{lineno}", root=root)
        if hmdb and "/" not in rel:  # HMDB51 split lines name the file only: <root>/<class>/<file>
            rel = f"{hmdb['cls']}/{rel}"
        out.append(root / rel)
    return out


def collect_sources(inp: str | Path, *, root: str | Path | None = None) -> dict[Path, str]:
    """The video files named by a folder (searched recursively), a split file or a list file, with
    their frame-store ids (``tstam.data.records.video_ids``, relative to the folder or ``root``).

    Args:
        inp: a folder, a single video file, a UCF101/HMDB51 split file, or a text file with one
            video path per line (an optional trailing integer label is ignored).
        root: the folder that paths in a list are relative to (default: the list's folder).

    Returns:
        ``{file: video id}``, sorted by file, de-duplicated. Files listed but missing are kept:
        extraction reports them.

    Raises:
        BadFileError: ``inp`` does not exist, or is a list that is not text or names a path that
            escapes ``root`` (``AnnotationError``), or a file's name gives no valid id (``..avi``),
            or two files would share an id (the frame store is flat: ``<out>/<video_id>``).
    """
    inp = Path(inp)
    base = inp if inp.is_dir() else Path(root) if root is not None else inp.parent
    if inp.is_dir():
        paths = [p for p in inp.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    elif inp.is_file() and inp.suffix.lower() in VIDEO_EXTENSIONS:
        paths = [inp]  # one video file, as predict takes it
    elif inp.is_file():
        paths = _read_list(inp, Path(root) if root is not None else inp.parent)
    else:
        raise BadFileError(f"{inp}: no such folder or list file; expected a folder of videos, a split file or a list")
    paths = sorted(set(paths))
    if len(paths) == 1 and not inp.is_dir():
        base = paths[0].parent
    return video_ids(paths, root=base)
