"""A tiny real frame store for the engine tests, built from the real MMAction2/UCF101 frames in
``tests/data/realdata`` (RGB JPEGs of v_ApplyEyeMakeup_g01_c01, grey flow JPEGs), plus tiny
training configs."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tstam.data.store import FLOW_X_TMPL, FLOW_Y_TMPL, RGB_TMPL, write_meta
from tstam.flow import FlowConfig

from helpers.realdata import MMA_FRAMES as REAL

CLASSES = ["ApplyEyeMakeup", "BaseballPitch", "Clap", "Dive"]
FLOW_META = FlowConfig().describe()  # what meta.json records (the fixture's flow JPEGs are grey images)


def make_store(root: Path, *, n_train: int = 8, n_test: int = 4, frames: int = 8,
               group: Callable[[int], int] | None = None) -> dict[str, Path]:
    """Write ``n_train + n_test`` videos (real frames, rotated per video) and two CSV lists.

    Video v is ``v_<class v mod 4>_g<v>_c01``, or ``_g<group(v)>_c<v>`` with ``group`` (videos of
    one group are held out for validation together, ``tstam.engine.annotations.hold_out``).

    Returns:
        {"root", "train", "test"} paths.
    """
    rgb_src = sorted(REAL.glob("img_*.jpg"))
    fx, fy = sorted(REAL.glob("x_*.jpg")), sorted(REAL.glob("y_*.jpg"))
    assert len(rgb_src) == 10 and len(fx) == 5 == len(fy), f"real fixture frames missing under {REAL}"
    root.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "test": []}
    for v in range(n_train + n_test):
        part = "train" if v < n_train else "test"
        vid = f"v_{CLASSES[v % len(CLASSES)]}_g{v:02d}_c01" if group is None else \
            f"v_{CLASSES[v % len(CLASSES)]}_g{group(v):02d}_c{v:02d}"
        d = root / vid
        d.mkdir(exist_ok=True)
        for i in range(frames):
            shutil.copyfile(rgb_src[(i + v) % 10], d / RGB_TMPL.format(i + 1))
        for i in range(frames - 1):
            shutil.copyfile(fx[(i + v) % 5], d / FLOW_X_TMPL.format(i + 1))
            shutil.copyfile(fy[(i + v) % 5], d / FLOW_Y_TMPL.format(i + 1))
        write_meta(d, {"video_id": vid, "source": "realdata fixture", "frames": frames, "flow_frames": frames - 1,
                       "fps": 25.0, "flow": FLOW_META})  # no width/height: a store of other tools, read at data.resize
        rows[part].append(f"{vid},{CLASSES[v % len(CLASSES)]},{frames}")
    out = {"root": root}
    for part, lines in rows.items():
        p = root.parent / f"{part}.csv"
        p.write_text("path,label,num_frames\n" + "\n".join(lines) + "\n")
        out[part] = p
    return out


def tiny_config(store: dict[str, Path], out_dir: Path, *, modality: str = "rgb", **sections: dict[str, Any]) -> dict:
    """A tiny TrainConfig dict: width 0.125, 64x64 crops, 2 segments, 4 classes, batch 2, CPU."""
    cfg: dict[str, Any] = {
        "model": {"modality": modality, "num_classes": len(CLASSES), "num_segments": 2, "input_size": 64,
                  "width_mult": 0.125, "num_heads": 2, "attention_hidden": 16},
        "annotations": {"format": "csv", "path": str(store["train"]), "test_path": str(store["test"])},
        "data": {"root": str(store["root"]), "resize": [72, 96], "batch_size": 2, "workers": 0,
                 "test_frames": 3, "test_crops": 1},
        "optim": {"lr": 0.01, "epochs": 2, "lr_steps": [1], "clip_grad": 40.0, "bn": "full"},
        "run": {"out_dir": str(out_dir), "seed": 0, "eval_every": 1, "device": "cpu", "tensorboard": True},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


@contextlib.contextmanager
def record_clips(seen: list, rank: int = 0) -> Iterator[list]:
    """Record ``(rank, mode, epoch, video_id)`` of every clip a ``FrameDataset`` loads in this
    process while the block runs (the real loading runs unchanged; use ``data.workers=0``)."""
    from tstam.data.datasets import FrameDataset

    real, own = FrameDataset.__getitem__, "__getitem__" in FrameDataset.__dict__

    def getitem(self, key):
        item = real(self, key)
        epoch = int(key[1]) if isinstance(key, tuple) else self.epoch
        seen.append((rank, self.mode, epoch, self.records[int(key[0]) if isinstance(key, tuple) else int(key)].video_id))
        return item

    FrameDataset.__getitem__ = getitem
    try:
        yield seen
    finally:
        if own:
            FrameDataset.__getitem__ = real
        else:
            del FrameDataset.__getitem__
