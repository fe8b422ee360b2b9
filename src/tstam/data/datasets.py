"""Datasets of TSN clips (paper 4.2; DESIGN section 3): from the frame store, or from video files.

Items: train/val -> ``(clip, label)`` with clip float (N, C, H, W); test -> clip float
(crops, test_frames, C, H, W). C = 3 x snippet length (RGB) or 2 x snippet length (flow, stacked
x1, y1, ..., x5, y5). Clips are normalised with the ``Preprocess`` that travels with the weights.

Randomness is a pure function of (seed, epoch, index): an item key is ``index`` or
``(index, epoch)`` (what ``loader.ShardSampler`` yields), and the item's generator is
``np.random.default_rng([seed, epoch, index])``. The same run therefore sees the same clips
whatever the number of workers or ranks, and a resumed run repeats them exactly.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import check_choice
from ..preprocess import Preprocess, flow_preprocess, rgb_preprocess
from .check import check_records, fill_num_frames, raise_on_problems
from .config import DataConfig
from .frames import read_flow_frames, read_rgb_frames
from .records import VideoRecord, frame_dir, video_path
from .sampling import snippet_indices, test_indices, train_indices, val_indices
from .transforms import EvalTransform, TrainTransform

__all__ = ["FrameDataset", "VideoDataset", "Mode"]

log = logging.getLogger(__name__)

Mode = Literal["train", "val", "test"]
ItemKey = int | tuple[int, int]


class _ClipDataset(Dataset):
    """Shared sampling, transforms and normalisation; subclasses read the snippets."""

    def __init__(self, records: Sequence[VideoRecord], *, root: str | Path | None, modality: str | None,
                 mode: Mode, cfg: DataConfig, preprocess: Preprocess | None, seed: int):
        check_choice("mode", mode, ("train", "val", "test"))
        if modality is not None and modality != cfg.modality:
            cfg = dataclasses.replace(cfg, modality=modality)  # type: ignore[arg-type]
        self.cfg = cfg
        self.modality = cfg.modality
        self.root = Path(root if root is not None else cfg.root)
        self.mode = mode
        self.seed = int(seed)
        self.epoch = 0  # used for plain integer keys; loader keys carry their own epoch
        self.preprocess = preprocess or (rgb_preprocess() if self.modality == "rgb" else flow_preprocess())
        self.records = list(records)
        self._train_tf = TrainTransform(cfg)
        self._eval_tf = EvalTransform(cfg, 1 if mode != "test" else cfg.test_crops)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _starts(self, num_items: int, rng: np.random.Generator) -> np.ndarray:
        c, L = self.cfg, self.cfg.snippet_length
        if self.mode == "train":
            return train_indices(num_items, c.num_segments, L, rng)
        if self.mode == "val":
            return val_indices(num_items, c.num_segments, L)
        return test_indices(num_items, c.test_frames, L)

    def _finish(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """uint8 (S, C, H, W) -> augmented, cropped, normalised float clip."""
        if self.mode == "train":
            out = self._train_tf(clip, rng)
        elif self.mode == "val":
            out = self._eval_tf(clip)[0]
        else:
            out = self._eval_tf(clip)
        if self.modality == "rgb":  # Preprocess works on 3-channel frames: unstack the snippet
            shape = out.shape
            return self.preprocess.normalize(out.reshape(*shape[:-3], -1, 3, *shape[-2:])).reshape(shape)
        return self.preprocess.normalize(out)

    def __getitem__(self, key: ItemKey) -> tuple[torch.Tensor, int]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), self.epoch)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        clip = self._read(record, rng)
        return self._finish(clip, rng), record.label

    def _read(self, record: VideoRecord, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError


class FrameDataset(_ClipDataset):
    """TSN clips read from the frame store (``img_*.jpg`` RGB, ``flow_x/y_*.jpg`` flow).

    Args:
        records: the videos; ``num_frames`` is filled from ``meta.json`` or by counting when None.
        root: the frame-store root (default ``cfg.root``); see ``records.frame_dir``.
        modality: "rgb" or "flow" (default ``cfg.modality``).
        mode: "train" (random snippet per segment, multi-scale crop, flip), "val" (segment
            centres, centre crop) or "test" (``cfg.test_frames`` snippets x ``cfg.test_crops`` crops).
        cfg: sampling and augmentation settings; ``cfg.rgb_tmpl`` etc. name the files.
        preprocess: the weights' normalisation (default: BN-Inception's for the modality).
        seed: the augmentation seed.
        check: check every record's folder first and raise one error listing all problems.
    """

    def __init__(self, records: Sequence[VideoRecord], *, root: str | Path | None = None,
                 modality: Literal["rgb", "flow"] | None = None, mode: Mode = "train", cfg: DataConfig,
                 preprocess: Preprocess | None = None, seed: int = 0, check: bool = True):
        super().__init__(records, root=root, modality=modality, mode=mode, cfg=cfg, preprocess=preprocess, seed=seed)
        layout = self.cfg.layout
        if check:
            raise_on_problems(check_records(self.records, self.root, self.modality, layout=layout))
        self.records = fill_num_frames(self.records, self.root, self.modality, layout=layout)
        if self.modality == "flow":
            short = [r.video_id for r in self.records if r.num_frames is not None and r.num_frames < 2]
            if short:
                raise ValueError(f"{self.root}: {len(short)} video(s) have no flow field (a single frame), "
                                 f"e.g. {short[0]!r}; drop them from the list")
        log.info("FrameDataset: %d %s videos under %s, mode %s", len(self.records), self.modality, self.root, mode)

    def _read(self, record: VideoRecord, rng: np.random.Generator) -> torch.Tensor:
        d = frame_dir(record, self.root)
        L = self.cfg.snippet_length
        assert record.num_frames is not None
        num_items = record.num_frames if self.modality == "rgb" else record.num_frames - 1
        idx = snippet_indices(self._starts(num_items, rng), L, num_items)  # (S, L)
        S = idx.shape[0]
        if self.modality == "rgb":
            frames = torch.from_numpy(read_rgb_frames(d, idx.ravel().tolist(), self.cfg.rgb_tmpl))  # (S*L, H, W, 3)
            frames = frames.permute(0, 3, 1, 2)                                                     # (S*L, 3, H, W)
        else:
            frames = torch.from_numpy(read_flow_frames(d, idx.ravel().tolist(), self.cfg.layout))  # (S*L, 2, H, W)
        return frames.reshape(S, -1, *frames.shape[-2:])  # (S, L*C, H, W): x1, y1, ..., xL, yL for flow


class VideoDataset(_ClipDataset):
    """TSN clips decoded straight from video files, flow computed on the fly (small data, prediction).

    Same items as ``FrameDataset``. Frames are decoded at ``cfg.resize`` (H, W); for flow only the
    sampled snippets' frame pairs go through ``tstam.flow.compute_flow`` and are quantised with
    ``cfg.flow_bound`` exactly as extraction does, so a model sees what it would see from the store.

    Args:
        records: the videos (``path`` a video file relative to ``root``, or absolute).
        root: the video root (default ``cfg.root``).
        flow_cfg: a ``tstam.flow.FlowConfig`` (default: its defaults with ``cfg.flow_bound``, as
            ``tstam extract``); its ``bound`` quantises the flow.
        Other arguments as ``FrameDataset``.
    """

    def __init__(self, records: Sequence[VideoRecord], *, root: str | Path | None = None,
                 modality: Literal["rgb", "flow"] | None = None, mode: Mode = "train", cfg: DataConfig,
                 preprocess: Preprocess | None = None, seed: int = 0, flow_cfg: object | None = None):
        super().__init__(records, root=root, modality=modality, mode=mode, cfg=cfg, preprocess=preprocess, seed=seed)
        missing = [str(video_path(r, self.root)) for r in self.records if not video_path(r, self.root).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} video file(s) not found, e.g. {missing[0]}; check the root and the list")
        self.flow_cfg = flow_cfg

    def _read(self, record: VideoRecord, rng: np.random.Generator) -> torch.Tensor:
        from ..video import read_video  # imported here: the frame-store path needs no decoder

        h, w = self.cfg.resize
        frames = read_video(video_path(record, self.root), size=(w, h),
                            min_frames=1 if self.modality == "rgb" else 2).frames  # (T, H, W, 3) RGB
        L = self.cfg.snippet_length
        if self.modality == "rgb":
            idx = snippet_indices(self._starts(len(frames), rng), L, len(frames))  # (S, L)
            clip = torch.from_numpy(frames[idx.ravel()]).permute(0, 3, 1, 2)      # (S*L, 3, H, W)
            return clip.reshape(idx.shape[0], -1, h, w)
        return self._flow_clip(frames, rng)

    def _flow_clip(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        from ..flow import FlowConfig, compute_flow, quantize_flow

        cfg = self.flow_cfg if self.flow_cfg is not None else FlowConfig(bound=self.cfg.flow_bound)
        L, n_fields = self.cfg.snippet_length, len(frames) - 1
        idx = snippet_indices(self._starts(n_fields, rng), L, n_fields)  # (S, L) flow-field indices
        fields: dict[int, np.ndarray] = {}
        for start in np.unique(idx[:, 0]):  # one flow computation per snippet (L + 1 frames)
            stop = min(int(start) + L, n_fields)
            flow = quantize_flow(compute_flow(frames[int(start):stop + 1], cfg), cfg.bound)  # (k, H, W, 2)
            for k in range(flow.shape[0]):
                fields.setdefault(int(start) + k, flow[k])
        stack = np.stack([fields[int(i)] for i in idx.ravel()])          # (S*L, H, W, 2) uint8
        clip = torch.from_numpy(stack).permute(0, 3, 1, 2)               # (S*L, 2, H, W)
        return clip.reshape(idx.shape[0], -1, *clip.shape[-2:])          # (S, 2L, H, W)
