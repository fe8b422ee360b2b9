"""Parsers for the annotation formats of docs/design.md, Data flow: UCF101 and HMDB51 official splits,
MMAction-style rawframe lists and a plain CSV (a folder of class folders: ``tstam.data.folder``). All
return ``VideoRecord`` s with 0-based labels.

Real-file quirks handled (tested on the real split files in ``tests/data/realdata``): CRLF line endings, trailing spaces,
blank lines, UCF101 ``classInd.txt`` spelling ``HandstandPushups`` while the file names say
``v_HandStandPushups_*`` (class names are looked up case-insensitively). Every bad line raises
``AnnotationError`` (a ValueError) naming the file, the line number and what would be valid.
"""
from __future__ import annotations

import csv
import logging
import re
from pathlib import Path, PurePosixPath

from .records import (
    AnnotationError,
    Annotations,
    SplitSet,
    VideoRecord,
    check_video_id,
    safe_relpath,
)

__all__ = [
    "parse_class_index", "parse_ucf101", "parse_hmdb51", "parse_rawframe_list", "parse_csv",
    "load_annotations", "check_disjoint",
]

log = logging.getLogger(__name__)

_HMDB_NAME = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a text file as (1-based line number, whitespace-separated fields)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({e})") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields:
            out.append((i, fields))
    return out


def _check_split(split: int, valid: tuple[int, ...] = (1, 2, 3)) -> None:
    if split not in valid:
        raise AnnotationError(f"split={split!r} is not valid; expected one of {list(valid)}")


def _class_lookup(classes: list[str]) -> dict[str, int]:
    return {name.lower(): i for i, name in enumerate(classes)}


def _unique(rows: list[tuple[str, VideoRecord]], what: str | Path) -> list[VideoRecord]:
    """The records of one list, each video once: a repeated line is dropped with a warning naming
    it; two different entries with one video id are an error (frame folders and score files are
    keyed by the id). ``rows`` are ("file:line", record)."""
    first: dict[str, tuple[str, VideoRecord]] = {}
    out, repeats = [], []
    for where, r in rows:
        check_video_id(r.video_id, where=where)
        if r.video_id not in first:
            first[r.video_id] = (where, r)
            out.append(r)
            continue
        where0, r0 = first[r.video_id]
        if (r0.path, r0.label, r0.num_frames) != (r.path, r.label, r.num_frames):
            raise AnnotationError(f"{where}: video {r.video_id!r} ({r.path}, label {r.label}) was already listed at "
                                  f"{where0} ({r0.path}, label {r0.label}); each video id may appear once (frame "
                                  "folders and score files are keyed by it)")
        repeats.append(f"{where} repeats {where0} ({r.video_id})")
    if repeats:
        log.warning("%s: %d repeated line(s) ignored, each video is used once: %s%s", what, len(repeats),
                    "; ".join(repeats[:3]), f"; ... and {len(repeats) - 3} more" if len(repeats) > 3 else "")
    return out


def check_disjoint(train: list[VideoRecord], test: list[VideoRecord], *, train_name: str, test_name: str) -> None:
    """Refuse training and test lists that share videos (a model must never train on its test set).

    Raises:
        AnnotationError: naming both lists, the number of shared videos and a few of them.
    """
    both = sorted({r.video_id for r in train} & {r.video_id for r in test})
    if both:
        raise AnnotationError(f"{len(both)} video(s) are in both the training list {train_name} and the test list "
                              f"{test_name}, e.g. {', '.join(both[:3])}; a model must not train on its test videos: "
                              "remove them from one of the lists")


def parse_class_index(path: str | Path) -> list[str]:
    """UCF101 ``classInd.txt``: lines ``<1-based index> <name>``; returns names, index = label."""
    path = Path(path)
    names: list[str] = []
    for lineno, fields in _lines(path):
        where = f"{path}:{lineno}"
        if len(fields) != 2:
            raise AnnotationError(f"{where}: expected '<index> <class name>', got {len(fields)} field(s)")
        try:
            idx = int(fields[0])
        except ValueError:
            raise AnnotationError(f"{where}: class index {fields[0]!r} is not an integer") from None
        if idx != len(names) + 1:
            raise AnnotationError(f"{where}: class index {idx} out of order; expected {len(names) + 1} "
                                  "(indices are 1-based and consecutive)")
        names.append(fields[1])
    if not names:
        raise AnnotationError(f"{path}: no classes")
    if len(_class_lookup(names)) != len(names):
        raise AnnotationError(f"{path}: class names repeat (compared case-insensitively)")
    return names


def _ucf_list(path: Path, classes: list[str], *, train: bool) -> list[VideoRecord]:
    lookup = _class_lookup(classes)
    rows = []
    for lineno, fields in _lines(path):
        where = f"{path}:{lineno}"
        expected = f"'<class>/<video>.avi <label 1-{len(classes)}>'" if train else "'<class>/<video>.avi'"
        if len(fields) < (2 if train else 1):
            raise AnnotationError(f"{where}: too few fields ({len(fields)}); expected {expected}")
        if len(fields) > 2:
            raise AnnotationError(f"{where}: too many fields ({len(fields)}); expected {expected}")
        rel = safe_relpath(fields[0], where=where, absolute=False)  # official lists are relative
        parts = PurePosixPath(rel).parts
        if len(parts) < 2:
            raise AnnotationError(f"{where}: path {fields[0]!r} lacks the class folder; expected {expected}")
        folder = parts[-2]
        if folder.lower() not in lookup:
            raise AnnotationError(f"{where}: unknown class {folder!r}; not in classInd.txt "
                                  f"({len(classes)} classes, e.g. {classes[0]!r})")
        label = lookup[folder.lower()]
        if len(fields) == 2:
            try:
                given = int(fields[1]) - 1
            except ValueError:
                raise AnnotationError(f"{where}: label {fields[1]!r} is not an integer; "
                                      f"expected 1-{len(classes)}") from None
            if not 0 <= given < len(classes):
                raise AnnotationError(f"{where}: label {fields[1]} out of range; expected 1-{len(classes)}")
            if given != label:
                raise AnnotationError(f"{where}: label {fields[1]} ({classes[given]}) disagrees with "
                                      f"the class folder {folder!r} ({label + 1})")
        rows.append((where, VideoRecord(video_id=PurePosixPath(rel).stem, path=rel, label=label)))
    return _unique(rows, path)


def parse_ucf101(split_dir: str | Path, split: int = 1) -> SplitSet:
    """Official UCF101 split ``k`` from ``classInd.txt``, ``trainlist0k.txt``, ``testlist0k.txt``.

    Args:
        split_dir: the folder holding the three files (``ucfTrainTestlist``).
        split: 1, 2 or 3.

    Returns:
        SplitSet with 0-based labels (``classInd`` is 1-based); paths ``<Class>/<video>.avi``;
        video ids the file stems. Split 1 has 9537 train / 3783 test videos, 101 classes.
    """
    _check_split(split)
    split_dir = Path(split_dir)
    classes = parse_class_index(split_dir / "classInd.txt")
    train = _ucf_list(split_dir / f"trainlist{split:02d}.txt", classes, train=True)
    test = _ucf_list(split_dir / f"testlist{split:02d}.txt", classes, train=False)
    log.info("UCF101 split %d: %d train, %d test, %d classes", split, len(train), len(test), len(classes))
    return SplitSet(train=train, test=test, classes=classes)


def parse_hmdb51(split_dir: str | Path, split: int = 1) -> SplitSet:
    """Official HMDB51 split ``k`` from the 51 files ``<class>_test_split<k>.txt``.

    Lines are ``<video>.avi <0|1|2>`` (1 train, 2 test, 0 unused). Classes are the sorted class
    names of the files; paths are ``<class>/<video>.avi`` as in the HMDB51 archives.
    """
    _check_split(split)
    split_dir = Path(split_dir)
    files: dict[str, Path] = {}
    if not split_dir.is_dir():
        raise AnnotationError(f"{split_dir}: HMDB51 split folder not found")
    for p in split_dir.iterdir():
        m = _HMDB_NAME.match(p.name)
        if m and int(m["split"]) == split:
            files[m["cls"]] = p
    if not files:
        raise AnnotationError(f"{split_dir}: no files named '<class>_test_split{split}.txt'")
    classes = sorted(files)
    train, test = [], []
    for label, name in enumerate(classes):
        path = files[name]
        for lineno, fields in _lines(path):
            where = f"{path}:{lineno}"
            if len(fields) != 2:
                kind = "too few" if len(fields) < 2 else "too many"
                raise AnnotationError(f"{where}: {kind} fields ({len(fields)}); expected '<video>.avi <0|1|2>'")
            if fields[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{where}: split flag {fields[1]!r} is not valid; expected 0 (unused), 1 (train) or 2 (test)")
            if "/" in fields[0] or "\\" in fields[0] or fields[0] in (".", ".."):
                raise AnnotationError(f"{where}: video name {fields[0]!r} must be a plain file name "
                                      "(HMDB51 lines are '<video>.avi <0|1|2>')")
            rel = f"{name}/{fields[0]}"
            rec = VideoRecord(video_id=PurePosixPath(rel).stem, path=rel, label=label)
            if fields[1] == "1":
                train.append((where, rec))
            elif fields[1] == "2":
                test.append((where, rec))
    train, test = _unique(train, f"{split_dir} (training videos)"), _unique(test, f"{split_dir} (test videos)")
    log.info("HMDB51 split %d: %d train, %d test, %d classes", split, len(train), len(test), len(classes))
    return SplitSet(train=train, test=test, classes=classes)


def _parse_label(raw: str, where: str, classes: list[str] | None, lookup: dict[str, int] | None) -> int | str:
    try:
        label = int(raw)
    except ValueError:
        if lookup is None:
            return raw  # a class name, resolved once all names are known
        if raw.lower() not in lookup:
            raise AnnotationError(f"{where}: unknown class {raw!r}; expected one of the {len(lookup)} "
                                  f"given classes (e.g. {classes[0]!r}) or a 0-based integer") from None
        return lookup[raw.lower()]
    if label < 0 or (classes is not None and label >= len(classes)):
        hi = f"-{len(classes) - 1}" if classes is not None else " or more"
        raise AnnotationError(f"{where}: label {label} out of range; expected 0{hi}")
    return label


def _parse_count(raw: str, where: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        raise AnnotationError(f"{where}: frame count {raw!r} is not an integer") from None
    if n < 1:
        raise AnnotationError(f"{where}: frame count {n} must be at least 1")
    return n


def _finish(path: Path, rows: list[tuple[str, str, str, int | str, int | None]], classes: list[str] | None) -> Annotations:
    """Resolve class-name labels (sorted names when no list is given) and build the records."""
    if classes is None:
        names = sorted({lab for *_, lab, _n in rows if isinstance(lab, str)})
        if names and any(isinstance(lab, int) for *_, lab, _n in rows):
            raise AnnotationError(f"{path}: labels mix integers and class names; use one kind")
        if names:
            classes = names
        else:
            classes = [str(i) for i in range(max((lab for *_, lab, _n in rows), default=-1) + 1)]  # type: ignore[type-var]
    lookup = _class_lookup(classes)
    records = []
    for where, vid, rel, lab, n in rows:
        label = lookup[lab.lower()] if isinstance(lab, str) else lab
        records.append((where, VideoRecord(video_id=vid, path=rel, label=label, num_frames=n)))
    return Annotations(records=_unique(records, path), classes=list(classes))


def parse_rawframe_list(path: str | Path, root: str | Path | None = None, *,
                        classes: list[str] | None = None) -> Annotations:
    """MMAction-style rawframe list: lines ``<frame dir> <num_frames> <label>``.

    Args:
        path: the list file.
        root: the frame-store root the folders are relative to (absolute folders must lie under it).
        classes: class names; labels may then also be class names. Without it classes are
            ``"0" .. str(max label)``.
    """
    path = Path(path)
    lookup = _class_lookup(classes) if classes is not None else None
    rows = []
    for lineno, fields in _lines(path):
        where = f"{path}:{lineno}"
        if len(fields) != 3:
            kind = "too few" if len(fields) < 3 else "too many"
            raise AnnotationError(f"{where}: {kind} fields ({len(fields)}); expected '<frame dir> <num_frames> <label>'")
        rel = safe_relpath(fields[0], where=where, root=root)
        rows.append((where, PurePosixPath(rel).name, rel, _parse_label(fields[2], where, classes, lookup),
                     _parse_count(fields[1], where)))
    if not rows:
        raise AnnotationError(f"{path}: no entries")
    return _finish(path, rows, classes)


def parse_csv(path: str | Path, root: str | Path | None = None, *,
              classes: list[str] | None = None) -> Annotations:
    """A plain CSV for custom data, with a header row.

    Columns: ``path`` and ``label`` (required; label a 0-based integer or a class name),
    ``num_frames`` and ``video_id`` (optional; the id defaults to the path's stem).
    Pass the training file's ``classes`` when parsing its test file, so that names map alike.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    known = {"path", "label", "num_frames", "video_id"}
    if header is None:
        raise AnnotationError(f"{path}: empty CSV; expected a header row with path,label[,num_frames][,video_id]")
    header = [h.strip().lower() for h in header]
    unknown = [h for h in header if h not in known]
    if unknown or "path" not in header or "label" not in header or len(set(header)) != len(header):
        raise AnnotationError(f"{path}:1: header {header} is not valid; expected columns path,label "
                              "and optionally num_frames,video_id (each once)")
    col = {h: i for i, h in enumerate(header)}
    lookup = _class_lookup(classes) if classes is not None else None
    rows = []
    for lineno, fields in enumerate(reader, start=2):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        where = f"{path}:{lineno}"
        if len(fields) != len(header):
            kind = "too few" if len(fields) < len(header) else "too many"
            raise AnnotationError(f"{where}: {kind} fields ({len(fields)}); expected {len(header)}: {','.join(header)}")
        rel = safe_relpath(fields[col["path"]], where=where, root=root)
        n = _parse_count(fields[col["num_frames"]], where) if "num_frames" in col and fields[col["num_frames"]] else None
        vid = fields[col["video_id"]] if "video_id" in col and fields[col["video_id"]] else PurePosixPath(rel).stem
        rows.append((where, vid, rel, _parse_label(fields[col["label"]], where, classes, lookup), n))
    if not rows:
        raise AnnotationError(f"{path}: no entries")
    return _finish(path, rows, classes)


def load_annotations(fmt: str, path: str | Path, *, split: int = 1, root: str | Path | None = None,
                     classes: list[str] | None = None) -> SplitSet | Annotations:
    """One entry point for the CLI: ``fmt`` is ucf101 | hmdb51 (a split folder) or rawframes | csv (a file)."""
    if fmt == "ucf101":
        return parse_ucf101(path, split)
    if fmt == "hmdb51":
        return parse_hmdb51(path, split)
    if fmt == "rawframes":
        return parse_rawframe_list(path, root, classes=classes)
    if fmt == "csv":
        return parse_csv(path, root, classes=classes)
    raise AnnotationError(f"annotation format {fmt!r} is not valid; expected one of ['ucf101', 'hmdb51', 'rawframes', 'csv']")
