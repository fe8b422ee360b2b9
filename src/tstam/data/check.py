"""Checking records against the frame store before training (docs/design.md, Data flow).

Missing folders, empty folders, a frame missing in the middle of a sequence, flow x/y or RGB/flow
count mismatches and counts that disagree with ``meta.json`` or the list file are all reported by
name up front, so that none is discovered mid-training. ``fill_num_frames`` gives every record its
frame count, from ``meta.json`` when present, else by counting files.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from tstam.errors import FrameStoreError

from .frames import FrameLayout, list_indices
from .records import VideoRecord, frame_dir
from .store import META_NAME, read_meta

__all__ = ["Problem", "FolderCounts", "count_folder", "check_records", "fill_num_frames", "raise_on_problems"]

log = logging.getLogger(__name__)

CheckModality = Literal["rgb", "flow", "both"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one video's frames."""

    video_id: str
    path: str      # the frame folder
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class FolderCounts:
    """What a frame folder holds: the 1-based indices per stream, and its meta.json if any."""

    rgb: list[int]
    flow_x: list[int]
    flow_y: list[int]
    meta: dict | None


def count_folder(video_dir: str | Path, layout: FrameLayout = FrameLayout()) -> FolderCounts:
    """List one frame folder once (raises FileNotFoundError when it does not exist)."""
    names = os.listdir(video_dir)
    meta = None
    if META_NAME in names:
        try:
            meta = read_meta(video_dir)
        except FrameStoreError:
            meta = None
    return FolderCounts(
        rgb=list_indices(video_dir, layout.rgb_tmpl, names),
        flow_x=list_indices(video_dir, layout.flow_x_tmpl, names),
        flow_y=list_indices(video_dir, layout.flow_y_tmpl, names),
        meta=meta,
    )


def _gaps(indices: list[int], tmpl: str) -> str | None:
    """None when indices are 1..n, else a description of the first missing names."""
    if not indices or indices[-1] == len(indices) and indices[0] == 1:
        return None
    have = set(indices)
    missing = [i for i in range(1, indices[-1] + 1) if i not in have]
    shown = ", ".join(tmpl.format(i) for i in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return f"missing frame(s) {shown} (found {len(indices)} files up to {tmpl.format(indices[-1])})"


def _problems_of(record: VideoRecord, d: Path, modality: CheckModality, layout: FrameLayout) -> list[str]:
    if not d.is_dir():
        return ["frame folder does not exist (not extracted? wrong root?)"]
    c = count_folder(d, layout)
    msgs = []
    want_rgb = modality in ("rgb", "both")
    want_flow = modality in ("flow", "both")
    if want_rgb and not c.rgb:
        msgs.append(f"no RGB frames ({layout.rgb_tmpl.format(1)} ...): empty folder or wrong template")
    if want_flow and not (c.flow_x or c.flow_y):
        msgs.append(f"no flow frames ({layout.flow_x_tmpl.format(1)} ...): empty folder, flow not extracted "
                    "or wrong template")
    for on, idx, tmpl in ((want_rgb, c.rgb, layout.rgb_tmpl), (want_flow, c.flow_x, layout.flow_x_tmpl),
                          (want_flow, c.flow_y, layout.flow_y_tmpl)):
        gap = _gaps(idx, tmpl) if on else None
        if gap:
            msgs.append(gap)
    if want_flow and (c.flow_x or c.flow_y) and len(c.flow_x) != len(c.flow_y):
        msgs.append(f"flow x/y count mismatch: {len(c.flow_x)} x vs {len(c.flow_y)} y frames")
    if modality == "both" and c.rgb and c.flow_x and len(c.flow_x) != len(c.rgb) - 1:
        msgs.append(f"RGB/flow count mismatch: {len(c.rgb)} RGB frames but {len(c.flow_x)} flow frames "
                    f"(expected {len(c.rgb) - 1}, one fewer)")
    if c.meta is not None:
        if want_rgb and c.rgb and int(c.meta["frames"]) != len(c.rgb):
            msgs.append(f"{META_NAME} says {c.meta['frames']} frames but the folder has {len(c.rgb)} RGB frames")
        flow_meta = c.meta.get("flow_frames")
        if want_flow and c.flow_x and flow_meta is not None and int(flow_meta) != len(c.flow_x):
            msgs.append(f"{META_NAME} says {flow_meta} flow frames but the folder has {len(c.flow_x)}")
    if record.num_frames is not None:
        n = len(c.rgb) if want_rgb else (len(c.flow_x) + 1 if c.flow_x else None)
        if n and n != record.num_frames:
            msgs.append(f"the annotation says {record.num_frames} frames but the folder has {n}"
                        + ("" if want_rgb else " (flow frames + 1)"))
    return msgs


def check_records(records: Iterable[VideoRecord], root: str | Path, modality: CheckModality,
                  *, layout: FrameLayout = FrameLayout()) -> list[Problem]:
    """Every problem of every record's frame folder, by name (empty list: all good).

    Args:
        records: the records to check.
        root: the frame-store root (see ``records.frame_dir`` for the folder of a record).
        modality: "rgb", "flow" or "both" (also checks flow = RGB - 1).
        layout: file-name templates.
    """
    if modality not in ("rgb", "flow", "both"):
        raise ValueError(f"modality={modality!r} is not valid; expected one of ['rgb', 'flow', 'both']")
    records = list(records)
    problems = []
    for r in tqdm(records, desc="check", unit="video", disable=not sys.stderr.isatty(), leave=False):
        d = frame_dir(r, root)
        problems.extend(Problem(r.video_id, str(d), m) for m in _problems_of(r, d, modality, layout))
    if problems:
        log.warning("%d problem(s) in %d videos under %s", len(problems), len({p.video_id for p in problems}), root)
    return problems


def raise_on_problems(problems: list[Problem], *, limit: int = 20) -> None:
    """Raise one FrameStoreError listing the problems (first ``limit``), if any."""
    if problems:
        lines = [str(p) for p in problems[:limit]]
        more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
        raise FrameStoreError(f"{len(problems)} problem(s) in the frame store:\n" + "\n".join(lines) + more)


def fill_num_frames(records: Iterable[VideoRecord], root: str | Path, modality: Literal["rgb", "flow"],
                    *, layout: FrameLayout = FrameLayout()) -> list[VideoRecord]:
    """Records with ``num_frames`` (RGB frames) filled in; records that already have it are kept.

    The count comes from ``meta.json`` when present, else from the files: for "flow" it is the
    number of flow frames + 1 (so that ``num_frames - 1`` flow fields are sampled).

    Raises:
        FrameStoreError: a folder is missing or holds no frames of the modality (names the folder).
    """
    out = []
    for r in records:
        if r.num_frames is not None:
            out.append(r)
            continue
        d = frame_dir(r, root)
        n = None
        try:
            meta = read_meta(d)
            n = int(meta["frames"]) if modality == "rgb" or meta.get("flow_frames") is None else int(meta["flow_frames"]) + 1
        except FrameStoreError:
            pass
        if n is None:
            if not d.is_dir():
                raise FrameStoreError(f"{d}: frame folder of video {r.video_id!r} does not exist; "
                                      "extract it first or fix the root")
            tmpl = layout.rgb_tmpl if modality == "rgb" else layout.flow_x_tmpl
            idx = list_indices(d, tmpl)
            if not idx:
                raise FrameStoreError(f"{d}: no {modality} frames named like {tmpl.format(1)}")
            n = len(idx) if modality == "rgb" else len(idx) + 1
        out.append(r.with_frames(n))
    return out
