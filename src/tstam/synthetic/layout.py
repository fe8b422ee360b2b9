"""On-disk layout of a generated benchmark (docs/design.md, The synthetic benchmark), UCF101-style::

    <out>/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi   encoded clips (test groups first, as UCF101 split 1)
    <out>/splits/classInd.txt                         "<1-based index> <Class>", CRLF like UCF101
    <out>/splits/trainlist01.txt                      "<Class>/<file> <1-based label>", CRLF
    <out>/splits/testlist01.txt                       "<Class>/<file>", CRLF
    <out>/annotations.json                            per video id: label, class, group, action window
                                                      (and the other actions around it, if any)
    <out>/benchmark.json                              generator version, seed, full config, classes
    <out>/.complete                                   written last: the benchmark is whole

Labels in ``annotations.json`` are 0-based (the model's class index); the split files keep
UCF101's 1-based labels.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tstam.errors import AnnotationError
from tstam.files import write_json_atomic, write_text_atomic

__all__ = [
    "ClipAnnotation", "OtherActionAnnotation", "VIDEOS_DIR", "SPLITS_DIR", "ANNOTATIONS_NAME", "BENCHMARK_NAME",
    "COMPLETE_NAME", "video_id", "write_splits", "write_annotations",
    "load_annotations",
]

VIDEOS_DIR = "videos"
SPLITS_DIR = "splits"
ANNOTATIONS_NAME = "annotations.json"
BENCHMARK_NAME = "benchmark.json"
COMPLETE_NAME = ".complete"


@dataclass(frozen=True)
class OtherActionAnnotation:
    """Another class's action in a clip of the untrimmed benchmark (``untrimmed.py``)."""

    class_name: str
    label: int                  # its 0-based class index
    window: tuple[int, int]     # [start, end) frames
    actors: tuple[int, ...]     # who performs it: 0 the labelled actor, 1 the second one


@dataclass(frozen=True)
class ClipAnnotation:
    """What the generator knows about one clip."""

    video_id: str               # file stem, e.g. "v_MoveUp_g01_c01"
    path: str                   # relative to <out>/videos, as in the split files: "MoveUp/v_MoveUp_g01_c01.avi"
    split: str                  # "train" or "test"
    label: int                  # 0-based class index (classInd.txt index - 1)
    class_name: str
    group: str                  # "motion", "interaction" or "appearance" (classes.py)
    window: tuple[int, int]     # [start, end) frames where the action happens
    num_frames: int
    fps: float
    height: int
    width: int
    others: tuple[OtherActionAnnotation, ...] = ()  # other classes' actions outside the window, in time order


def video_id(class_name: str, group_no: int, clip_no: int) -> str:
    """UCF101-style id ``v_<Class>_g<GG>_c<CC>``."""
    return f"v_{class_name}_g{group_no:02d}_c{clip_no:02d}"


def write_splits(splits_dir: Path, classes: list[str], clips: list[ClipAnnotation]) -> None:
    """``classInd.txt``, ``trainlist01.txt``, ``testlist01.txt`` in UCF101's format (CRLF)."""
    crlf = "\r\n"
    write_text_atomic(splits_dir / "classInd.txt",
                      "".join(f"{i} {name}{crlf}" for i, name in enumerate(classes, start=1)))
    ordered = sorted(clips, key=lambda c: (c.label, c.video_id))
    train = [f"{c.path} {c.label + 1}{crlf}" for c in ordered if c.split == "train"]
    test = [f"{c.path}{crlf}" for c in ordered if c.split == "test"]
    write_text_atomic(splits_dir / "trainlist01.txt", "".join(train))
    write_text_atomic(splits_dir / "testlist01.txt", "".join(test))


def write_annotations(path: Path, clips: list[ClipAnnotation]) -> None:
    data = {}
    for c in sorted(clips, key=lambda c: c.video_id):
        d = asdict(c)
        d["window"] = list(c.window)
        del d["video_id"]
        if c.others:
            d["others"] = [{**o, "window": list(o["window"]), "actors": list(o["actors"])} for o in d["others"]]
        else:  # the presets without other actions keep their files as they were
            del d["others"]
        data[c.video_id] = d
    write_json_atomic(path, data)


def load_annotations(out_dir: str | Path) -> dict[str, ClipAnnotation]:
    """Read ``<out_dir>/annotations.json`` of a generated benchmark.

    Args:
        out_dir: the folder given to ``generate`` (or its ``splits`` folder).

    Returns:
        video id (``v_<Class>_g<GG>_c<CC>``) -> ClipAnnotation.

    Raises:
        AnnotationError: no annotations.json there (not a generated benchmark, or unfinished), or
            the file is not what ``generate`` writes.
    """
    out = Path(out_dir)
    if out.name == SPLITS_DIR and not (out / ANNOTATIONS_NAME).exists():
        out = out.parent
    path = out / ANNOTATIONS_NAME
    if not path.is_file():
        raise AnnotationError(f"{path}: no synthetic-benchmark annotations (run `tstam synth --out {out}`)")
    try:
        data = json.loads(path.read_text())
        return {vid: ClipAnnotation(video_id=vid, **{
                    **rec, "window": tuple(rec["window"]),
                    "others": tuple(OtherActionAnnotation(**{**o, "window": tuple(o["window"]), "actors": tuple(o["actors"])})
                                    for o in rec.get("others", ()))})
                for vid, rec in data.items()}
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
        raise AnnotationError(f"{path}: not a synthetic-benchmark annotation file ({e})") from None
