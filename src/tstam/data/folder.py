"""A folder of class folders as a dataset: ``scan_folder`` lists it (class = sub-folder), ``split_folder``
cuts it per class for a seed, ``write_split`` writes that split as the CSV files ``parse_csv`` reads
(``tstam split``), and ``read_split`` reads them back, checked against the folder.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .records import AnnotationError, Annotations, VideoRecord, video_ids
from .splits import parse_csv

__all__ = ["scan_folder", "split_folder", "split_sizes", "write_split", "read_split", "SPLIT_FILES"]

SPLIT_FILES = ("train.csv", "val.csv", "test.csv")  # what write_split writes (val.csv only with a validation share)


def scan_folder(root: str | Path) -> Annotations:
    """A folder of class folders as one list: class = the name of each sub-folder of ``root``
    (sorted; any characters), its videos found recursively by the extensions ``tstam extract`` takes,
    paths relative to ``root``, ids from ``records.video_ids`` (the same as ``tstam extract root``).

    Raises:
        AnnotationError: ``root`` is not a folder, has fewer than two class folders, a class folder
            holds no video, a video lies directly in ``root`` (it has no class), or two videos would
            share an id; each names the folder or files.
    """
    from tstam.video import VIDEO_EXTENSIONS  # what tstam extract takes

    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"{root}: not a folder; annotations.format=folder expects a folder holding one "
                              "sub-folder of videos per class")
    exts = ", ".join(sorted(VIDEO_EXTENSIONS))
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if loose:
        raise AnnotationError(f"{root}: {len(loose)} video(s) lie directly in the dataset folder (e.g. {loose[0]!r}) "
                              "and so have no class; move each into the sub-folder of its class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise AnnotationError(f"{root}: {len(classes)} class folder(s) ({', '.join(map(repr, classes)) or 'none'}); "
                              "a dataset folder needs one sub-folder per class and at least 2 classes")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not found:
            raise AnnotationError(f"{root / name}: class folder holds no video (looked for {exts}); add its videos "
                                  "or remove the folder")
        files += [(p, label) for p in found]
    ids = video_ids([p for p, _ in files], root=root)
    records = [VideoRecord(video_id=ids[p], path=p.relative_to(root).as_posix(), label=label) for p, label in files]
    return Annotations(records=records, classes=classes)


def split_sizes(n: int, test: float, val: float) -> tuple[int, int, int]:
    """(train, val, test) clips of a class of ``n``: ``round(share x n)``, at least one wherever the
    share is not 0; the train count may come out below 1 (the caller refuses such a class)."""
    n_test = max(1, round(test * n)) if test > 0 else 0
    n_val = max(1, round(val * n)) if val > 0 else 0
    return n - n_test - n_val, n_val, n_test


def split_folder(data: Annotations, *, test: float = 0.2, val: float = 0.1, seed: int = 0,
                 where: str | Path = "") -> dict[str, list[VideoRecord]]:
    """``{"train", "val", "test": records}``: each class's clips shuffled by a generator seeded with
    ``(seed, label)`` and cut into ``split_sizes`` (stratified per class; the same for a seed).

    Raises:
        AnnotationError: a share out of range, or a class with too few clips (naming it, its count
            and how many the shares need).
    """
    for name, share in (("test", test), ("val", val)):
        if not (0 <= share < 1) or share != share:
            raise AnnotationError(f"{name} share {share} is not valid; expected 0 <= {name} < 1")
    if test + val >= 1:
        raise AnnotationError(f"test {test} + val {val} = {test + val:g} leaves no clip to train on; expected a sum < 1")
    by_class: dict[int, list[VideoRecord]] = {}
    for r in data.records:
        by_class.setdefault(r.label, []).append(r)
    out: dict[str, list[VideoRecord]] = {"train": [], "val": [], "test": []}
    need = 1 + (test > 0) + (val > 0)
    for label, recs in sorted(by_class.items()):
        n_train, n_val, n_test = split_sizes(len(recs), test, val)
        if n_train < 1:
            parts = ", ".join(["1 train", *(["1 val"] if val > 0 else []), *(["1 test"] if test > 0 else [])])
            raise AnnotationError(f"{where or 'dataset'}: class {data.classes[label]!r} has {len(recs)} clip(s); a split "
                                  f"with test {test:g} and val {val:g} needs at least {max(need, len(recs) + 1)} per "
                                  f"class ({parts}, more as the shares grow): add clips or lower the shares")
        order = np.random.default_rng([seed, label]).permutation(len(recs))
        picked = [recs[i] for i in order]
        out["test"] += picked[:n_test]
        out["val"] += picked[n_test:n_test + n_val]
        out["train"] += picked[n_test + n_val:]
    for key in out:
        out[key].sort(key=lambda r: r.path)
    return out


def write_split(out: str | Path, subsets: dict[str, list[VideoRecord]], classes: list[str]) -> list[Path]:
    """Write ``train.csv``, ``test.csv`` and (when it has clips) ``val.csv`` into ``out`` in the CSV
    format of ``parse_csv`` (``path,label,video_id``; label the class name): the files written."""
    from tstam.files import write_text_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SPLIT_FILES:
        recs = subsets.get(name[:-4], [])
        if name == "val.csv" and not recs:
            continue
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "label", "video_id"])
        w.writerows([r.path, classes[r.label], r.video_id] for r in recs)
        write_text_atomic(out / name, buf.getvalue())
        written.append(out / name)
    return written


def read_split(split_dir: str | Path, data: Annotations, root: str | Path) -> dict[str, list[VideoRecord]]:
    """A split written by ``write_split`` (and maybe edited) for the folder ``data`` was scanned from:
    ``train.csv``, ``test.csv``, optional ``val.csv``; each row must name a video of the folder, and
    the classes of ``train.csv`` must be the folder's.

    Raises:
        AnnotationError: a missing file, a row naming no video of the folder, or classes that differ
            from the folder's (naming those only in one of them).
    """
    split_dir = Path(split_dir)
    by_path = {r.path: r for r in data.records}
    out: dict[str, list[VideoRecord]] = {"train": [], "val": [], "test": []}
    folder = set(data.classes)
    for name in SPLIT_FILES:
        path = split_dir / name
        if name == "val.csv" and not path.exists():
            continue
        listed = parse_csv(path)
        extra = sorted(set(listed.classes) - folder)
        missing = sorted(folder - set(listed.classes)) if name == "train.csv" else []
        if extra or missing:
            what = "; ".join([*([f"not class folders of {root}: {extra}"] if extra else []),
                              *([f"class folders it lacks: {missing}"] if missing else [])])
            raise AnnotationError(f"{path}: its classes differ from the dataset folder's ({what}); a split must use "
                                  f"the folder's classes: write it again with tstam split {root} --out {split_dir}")
        for r in listed.records:
            if r.path not in by_path:
                raise AnnotationError(f"{path}: {r.path!r} is not a video of the dataset folder {root}; expected paths "
                                      "relative to it, as tstam split writes them")
            rec = by_path[r.path]
            if listed.classes[r.label] != data.classes[rec.label]:
                raise AnnotationError(f"{path}: {r.path!r} is labelled {listed.classes[r.label]!r} but lies in the class "
                                      f"folder {data.classes[rec.label]!r}; a video's class is its folder")
            out[name[:-4]].append(rec)
    return out
