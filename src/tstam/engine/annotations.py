"""Records of a run: the annotation files of ``TrainConfig.annotations`` read through
``tstam.data.splits``, and the frame store's flow settings."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tstam.data.records import Annotations, SplitSet, VideoRecord, frame_dir
from tstam.data.splits import load_annotations
from tstam.data.store import read_meta

__all__ = ["load_split", "flow_settings"]

log = logging.getLogger(__name__)


def load_split(ann: Any, data: Any) -> tuple[list[VideoRecord], list[VideoRecord], list[str]]:
    """(train records, test records, class names); the datasets fill in ``num_frames``.

    Args:
        ann: ``AnnotationConfig`` (format, path, test_path, split).
        data: ``DataConfig`` (root, modality, frame name templates).
    """
    if not ann.path:
        raise ValueError("annotations.path is empty; set it to the split folder (ucf101, hmdb51) "
                         "or the training list file (rawframes, csv)")
    got = load_annotations(ann.format, ann.path, split=ann.split, root=data.root or None)
    if isinstance(got, SplitSet):
        train, test, classes = got.train, got.test, got.classes
    else:
        assert isinstance(got, Annotations)
        if not ann.test_path:
            raise ValueError(f"annotations.test_path is empty; format {ann.format!r} needs a test list file too")
        test_ann = load_annotations(ann.format, ann.test_path, root=data.root or None, classes=got.classes)
        assert isinstance(test_ann, Annotations)
        train, test, classes = got.records, test_ann.records, got.classes
    log.info("%s split %s: %d train / %d test videos, %d classes", ann.format, ann.split, len(train), len(test), len(classes))
    return train, test, list(classes)


def flow_settings(records: list[VideoRecord], root: str | Path) -> dict[str, Any] | None:
    """The flow extraction settings (``meta.json`` ``flow`` entry) of the first record that has them."""
    for r in records[:16]:
        try:
            flow = read_meta(frame_dir(r, root)).get("flow")
        except ValueError:
            continue
        if flow:
            return dict(flow)
    log.warning("no flow settings found in the frame store's meta.json; the checkpoint will not record them")
    return None
