"""Typed annotation records shared by every split parser, the store checks and the datasets.

Every annotation format (UCF101 and HMDB51 official splits,
MMAction-style rawframe lists, a plain CSV) becomes the same ``VideoRecord``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from tstam.errors import AnnotationError

__all__ = [
    "VideoRecord", "SplitSet", "Annotations", "AnnotationError", "VIDEO_EXTENSIONS",
    "frame_dir", "video_path", "safe_relpath", "check_video_id", "video_ids",
]

# File name endings taken to mean "a video file" (otherwise a record's path is a frame folder).
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".webm", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".gif", ".flv", ".wmv"})


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video.

    ``path`` is a frame folder or a video file, relative to a dataset root (or absolute).
    ``num_frames`` is the number of RGB frames (flow has one fewer), ``None`` until known.
    """

    video_id: str            # file stem, e.g. "v_ApplyEyeMakeup_g08_c01"; the frame-store folder name
    path: str                # e.g. "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi" or a frame folder
    label: int               # 0-based class index
    num_frames: int | None = None  # RGB frames once known (from meta.json, a list file or counting)

    def with_frames(self, num_frames: int) -> VideoRecord:
        return replace(self, num_frames=num_frames)


@dataclass(frozen=True)
class Annotations:
    """Records from one list file plus the class names their labels index."""

    records: list[VideoRecord]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)


@dataclass(frozen=True)
class SplitSet:
    """One official train/test split of a dataset."""

    train: list[VideoRecord]
    test: list[VideoRecord]
    classes: list[str] = field(default_factory=list)  # class names, index = label


def safe_relpath(raw: str, *, where: str, root: str | Path | None = None, absolute: bool = True) -> str:
    """Normalise a path read from a list file and refuse one that escapes the dataset root.

    A relative path must stay inside the root (``a/../b`` is ``b``; ``../x`` is refused). An absolute
    path is accepted only with ``absolute`` (a user's own list may name files on purpose) and then,
    when a root is given, only under it; the official UCF101 and HMDB51 lists never hold one.

    Args:
        raw: the path as written in the file (``/`` or ``\\`` separators).
        where: ``"file:line"`` for the error message.
        root: the dataset root; an absolute path must lie under it (any absolute path is
            accepted when no root is given).
        absolute: whether an absolute path may be given at all.

    Raises:
        AnnotationError: the path is empty, names the root itself, holds a NUL character, climbs out
            of the root with ``..``, or is absolute (outside the root, or where none may be).
    """
    text = raw.strip().replace("\\", "/")
    if not text:
        raise AnnotationError(f"{where}: empty path")
    if "\0" in text:
        raise AnnotationError(f"{where}: path {raw!r} holds a NUL character; expected a path inside the dataset root")
    if os.path.isabs(text):
        if not absolute:
            raise AnnotationError(f"{where}: path {raw!r} is absolute; expected a path relative to the dataset root, "
                                  "e.g. ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
        if root is not None:
            rel = os.path.relpath(os.path.normpath(text), os.path.normpath(os.path.abspath(root)))
            if rel == ".." or rel.startswith("../"):
                raise AnnotationError(f"{where}: path {raw!r} is outside the dataset root {root}; "
                                      "expected a path relative to the root or under it")
            if rel == ".":
                raise AnnotationError(f"{where}: path {raw!r} is the dataset root itself; expected a video or a "
                                      "frame folder inside it")
        return os.path.normpath(text)
    norm = os.path.normpath(text)
    if norm == ".." or norm.startswith("../"):
        raise AnnotationError(f"{where}: path {raw!r} escapes the dataset root with '..'; "
                              "expected a path inside the root")
    if norm == ".":
        raise AnnotationError(f"{where}: path {raw!r} is the dataset root itself; expected a video or a frame "
                              "folder inside it")
    return PurePosixPath(norm).as_posix()


def check_video_id(video_id: str, *, where: str) -> str:
    """``video_id`` if it can name a folder of a frame store (``<root>/<video_id>``), else AnnotationError
    naming ``where`` (file:line): an id is not empty, ``.`` or ``..``, and holds no ``/``, ``\\`` or NUL."""
    if not video_id or video_id in (".", "..") or any(c in video_id for c in "/\\\0"):
        raise AnnotationError(f"{where}: video id {video_id!r} is not valid; an id names the video's folder in a "
                              "frame store: not empty, '.' or '..', without '/', '\\' or NUL (a video file's id is "
                              "its name without the extension)")
    return video_id


def video_ids(paths: list[Path], root: str | Path | None = None) -> dict[Path, str]:
    """The frame-store id of each video file: one flat folder name, the same for ``tstam extract``
    and the ``folder`` annotations, so that a store made from a folder serves its annotations.

    The id is the file stem when no other file of ``paths`` has that stem (UCF101 and HMDB51 keep
    their names, ``v_ApplyEyeMakeup_g01_c01``), else the folder relative to ``root`` with ``/``
    written ``__``, then ``__`` and the stem (``a/IMG_1.mp4`` and ``b/IMG_1.mp4`` become
    ``a__IMG_1`` and ``b__IMG_1``): a stem alone would make two videos one folder.

    Args:
        paths: video files.
        root: the dataset folder (default: the folder holding all of ``paths``).

    Raises:
        AnnotationError: a file whose name gives no valid id (``..avi``, a stem ``.`` or ``..``),
            a file outside ``root``, or two files that still share an id (``a/b/x.mp4`` beside
            ``a__b/x.mp4``, or ``x.mp4`` beside ``x.avi`` in one folder), naming the files.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return {}
    base = Path(root) if root is not None else Path(os.path.commonpath([os.path.abspath(p.parent) for p in paths]))
    stems: dict[str, int] = {}
    for p in paths:
        check_video_id(p.stem, where=str(p))
        stems[p.stem] = stems.get(p.stem, 0) + 1
    out: dict[Path, str] = {}
    owner: dict[str, Path] = {}
    for p in paths:
        vid = p.stem
        if stems[vid] > 1:
            rel = os.path.relpath(os.path.abspath(p.parent), os.path.abspath(base))
            if rel == ".." or rel.startswith(".." + os.sep):
                raise AnnotationError(f"{p}: not inside the dataset folder {base}")
            parts = [] if rel == "." else PurePosixPath(Path(rel).as_posix()).parts
            vid = "__".join([*parts, p.stem])
        if vid in owner:
            raise AnnotationError(f"{owner[vid]} and {p} would share the frame-store id {vid!r}; rename one of them "
                                  "(ids are the file stem, or the folder and the stem when stems repeat)")
        owner[vid] = p
        out[p] = vid
    return out


def _is_video_file(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in VIDEO_EXTENSIONS


def frame_dir(record: VideoRecord, root: str | Path) -> Path:
    """The frame-store folder of a record.

    A record whose path is a video file maps to ``<root>/<video_id>`` (the flat store that
    ``tstam extract`` writes); a record whose path is a folder (rawframe lists) to ``<root>/<path>``.
    """
    if _is_video_file(record.path):
        return Path(root) / record.video_id
    return Path(root) / record.path


def video_path(record: VideoRecord, root: str | Path) -> Path:
    """The video file of a record (``<root>/<path>``, or ``path`` itself when absolute)."""
    return Path(root) / record.path
