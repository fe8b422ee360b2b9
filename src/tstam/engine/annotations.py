"""Records of a run: the annotation files of ``TrainConfig.annotations`` read through
``tstam.data.splits``, an optional validation hold-out, and the frame store's flow settings.

The hold-out (``annotations.val_fraction``) takes whole *groups* of each class: UCF101 names
videos ``v_<Class>_g<group>_c<clip>`` and clips of one group come from the same long video, so
holding out single clips would leak near-duplicates into validation. Ids without a ``_gNN_`` part
(HMDB51's) are their own group, so those are held out per class. The hold-out is a function of
``(val_seed, label)`` only, so ``tstam test --subset val`` finds the same videos again. Model
selection (``best.pt``) and fusion-weight searches use it; the test list is read only by
``tstam test``.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np

from tstam.data.folder import read_split, scan_folder, split_folder
from tstam.data.records import Annotations, SplitSet, VideoRecord, frame_dir
from tstam.data.splits import check_disjoint, load_annotations
from tstam.data.store import read_meta
from tstam.errors import ConfigError, FrameStoreError
from tstam.flow import FlowConfig

__all__ = ["load_split", "hold_out", "store_flow", "store_frame_size", "config_from_data"]

log = logging.getLogger(__name__)


_GROUP = re.compile(r"_g(\d+)_")


def hold_out(records: list[VideoRecord], fraction: float, seed: int = 0) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """(kept, held out): ``round(fraction x groups)`` groups of every class (at least one when the
    class has two or more groups), chosen by a generator seeded with ``(seed, label)``."""
    if fraction <= 0:
        return list(records), []
    groups: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(records):
        m = _GROUP.search(r.video_id)
        groups[r.label][m.group(1) if m else r.video_id].append(i)
    held: set[int] = set()
    for label, by_group in groups.items():
        names = sorted(by_group)
        k = min(len(names) - 1, max(1, round(fraction * len(names)))) if len(names) > 1 else 0
        for j in np.random.default_rng([seed, label]).permutation(len(names))[:k]:
            held.update(by_group[names[j]])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def load_split(ann: Any, data: Any) -> tuple[list[VideoRecord], list[VideoRecord], list[VideoRecord], list[str]]:
    """(train, validation, test records, class names); the datasets fill in ``num_frames``.

    Validation is the held-out part of the training list (``ann.val_fraction``; empty when 0: the
    test list is never used in its place).

    Args:
        ann: ``AnnotationConfig`` (format, path, test_path, split).
        data: ``DataConfig`` (root, modality, frame name templates).
    """
    if not ann.path:
        raise ConfigError("annotations.path is empty; set it to the split folder (ucf101, hmdb51), "
                          "the training list file (rawframes, csv) or the dataset folder (folder)")
    if ann.format == "folder":
        return _folder_split(ann)
    got = load_annotations(ann.format, ann.path, split=ann.split, root=data.root or None)
    if isinstance(got, SplitSet):
        train, test, classes = got.train, got.test, got.classes
        check_disjoint(train, test, train_name=f"{ann.path} (split {ann.split})", test_name="of the same split")
    else:
        assert isinstance(got, Annotations)
        if not ann.test_path:
            raise ConfigError(f"annotations.test_path is empty; format {ann.format!r} needs a test list file too")
        test_ann = load_annotations(ann.format, ann.test_path, root=data.root or None, classes=got.classes)
        assert isinstance(test_ann, Annotations)
        train, test, classes = got.records, test_ann.records, got.classes
        check_disjoint(train, test, train_name=ann.path, test_name=ann.test_path)
    train, val = hold_out(list(train), ann.val_fraction, ann.val_seed)
    log.info("%s split %s: %d train / %d held-out validation / %d test videos, %d classes", ann.format, ann.split,
             len(train), len(val), len(test), len(classes))
    return train, val, list(test), list(classes)


def _folder_split(ann: Any) -> tuple[list[VideoRecord], list[VideoRecord], list[VideoRecord], list[str]]:
    """A folder of class folders: the split of ``ann.split_dir`` (``tstam split``), else the same
    rule made here: ``split_folder`` with the test and validation shares and ``val_seed``."""
    data = scan_folder(ann.path)
    if ann.split_dir:
        parts = read_split(ann.split_dir, data, ann.path)
        where = f"{ann.split_dir}/train.csv"
    else:
        parts = split_folder(data, test=ann.test_fraction, val=ann.val_fraction, seed=ann.val_seed, where=ann.path)
        where = f"{ann.path} (training part)"
    check_disjoint(parts["train"], parts["test"], train_name=where, test_name="the test part")
    check_disjoint(parts["val"], parts["test"], train_name="the validation part", test_name="the test part")
    log.info("folder %s: %d train / %d validation / %d test videos, %d classes", ann.path, len(parts["train"]),
             len(parts["val"]), len(parts["test"]), len(data.classes))
    return parts["train"], parts["val"], parts["test"], list(data.classes)


def store_frame_size(records: list[VideoRecord], data: Any) -> list[int]:
    """The frame size ``[H, W]`` a run trains at: the frame store's (``width`` and ``height`` of the
    ``meta.json`` of its first videos, which must agree), or ``data.resize`` for video files and for
    a store without them (e.g. made by other tools).

    Raises:
        ConfigError: ``data.resize`` disagrees with the store (naming both values and the file; the
            flow of a store is only right at the size it was computed at), or neither gives a size.
    """
    if data.input == "video":
        if data.resize is None:
            raise ConfigError("data.resize is null; with data.input=video set the size videos are decoded at, "
                              "e.g. data.resize=[240,320]")
        return list(data.resize)
    found: list[int] | None = None
    where = ""
    for r in records[:16]:
        try:
            meta = read_meta(frame_dir(r, data.root))
        except FrameStoreError:
            continue
        if not isinstance(meta.get("width"), int) or not isinstance(meta.get("height"), int):
            continue
        size = [meta["height"], meta["width"]]
        if found is not None and size != found:
            raise ConfigError(f"{frame_dir(r, data.root)}/meta.json: frames of {size[1]}x{size[0]} differ from "
                              f"{where}'s {found[1]}x{found[0]}; extract a store at one size (tstam extract --size WxH)")
        if found is None:
            found, where = size, str(frame_dir(r, data.root) / "meta.json")
    if found is None:
        if data.resize is None:
            raise ConfigError(f"{data.root}: the frame store's meta.json files record no frame size; set data.resize="
                              "[H,W] to the size of its frames")
        return list(data.resize)
    if data.resize is not None and list(data.resize) != found:
        raise ConfigError(f"data.resize={list(data.resize)} (H, W) differs from the frame store's frames of {found} "
                          f"({found[1]}x{found[0]}, {where}); remove data.resize (null takes the store's) or extract "
                          f"again with --size {data.resize[1]}x{data.resize[0]}")
    return found


def config_from_data(cfg: Any, records: list[VideoRecord], classes: list[str]) -> Any:
    """``cfg`` (a TrainConfig) with what the data says where the config left it open (null):
    ``model.num_classes`` from the annotations, ``data.resize`` from the frame store
    (``store_frame_size``, which also refuses a size that disagrees with the store). A class
    count that disagrees with the annotations is a ConfigError naming both."""
    size = store_frame_size(records, cfg.data)
    model = cfg.model if cfg.model.num_classes is not None else replace(cfg.model, num_classes=len(classes))
    if model.num_classes != len(classes):
        raise ConfigError(f"model.num_classes={model.num_classes} but the annotations list {len(classes)} classes; "
                          f"set model.num_classes={len(classes)}, or null to take it from them")
    data = replace(cfg.data, resize=size)
    data.check_crop(model.input_size)
    return replace(cfg, model=model, data=data)


def store_flow(records: list[VideoRecord], data: Any) -> FlowConfig:
    """The flow a frame store's flow JPEGs hold, for a flow run (recorded in its checkpoints); for
    video files (``data.input = "video"``) the flow ``VideoDataset`` computes: ``data.flow`` or TV-L1.

    From the ``meta.json`` of the first videos (all must agree), which ``data.flow``, when set,
    must equal; from ``data.flow`` alone for a store without metadata (e.g. made by other tools).

    Raises:
        ConfigError: naming the store, when neither says, or when they disagree: a model's flow
            must be reproducible at prediction time.
    """
    if data.input == "video":
        return data.flow or FlowConfig()
    found: dict[str, Any] | None = None
    where = ""
    for r in records[:16]:
        try:
            flow = read_meta(frame_dir(r, data.root)).get("flow")
        except FrameStoreError:
            continue
        if flow and found is not None and flow != found:
            raise ConfigError(f"{frame_dir(r, data.root)}/meta.json: flow settings {flow} differ from {where}'s "
                              f"{found}; one frame store holds one kind of flow")
        if flow and found is None:
            found, where = flow, str(frame_dir(r, data.root) / "meta.json")
    if found is None:
        if data.flow is None:
            raise ConfigError(f"{data.root}: the frame store's meta.json files record no flow settings; set "
                              "data.flow.algorithm, data.flow.bound (and its parameters) to what made the flow JPEGs, "
                              "so that predictions compute the same flow")
        return data.flow
    recorded = FlowConfig.from_describe(found, source=where)
    if data.flow is not None and data.flow.describe() != recorded.describe():
        raise ConfigError(f"data.flow {data.flow.describe()} differs from the frame store's {recorded.describe()} "
                          f"({where}); remove data.flow or re-extract the store")
    return recorded
