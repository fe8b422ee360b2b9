"""Datasets of TSN clips (paper 4.2; docs/design.md, Data flow): from the frame store, or from video files.

Items: train/val -> ``(clip, label)`` with clip uint8 (N, C, H, W); test -> clip uint8
(crops, test_frames, C, H, W). C = 3 x snippet length (RGB) or 2 x snippet length (flow, stacked
x1, y1, ..., x5, y5). Clips stay uint8 (a quarter of the bytes of float32 through shared memory,
pinning and PCIe); the consumer normalises them on its device with the ``Preprocess`` that
travels with the weights (``Preprocess.normalize_clip``). Some items are finished on the
training device, per batch (``tstam.data.loader.finish_batch``, which the training and
evaluation loops call): training items are ``TrainCrops`` (the crop, to be resized and flipped
there) unless ``data.crop_resize_on = "loader"``, and a ``VideoDataset`` with
``data.flow_on = "device"`` gives ``FlowPairs`` (the flow is computed there). ``build_dataset``
picks the dataset from ``data.input``.

What a clip is (modality, segments, snippet length, crop size) comes from the ``ModelConfig`` it
feeds; frame size, augmentation and test protocol from the ``DataConfig``.

Randomness is a pure function of (seed, epoch, index): an item key is ``index`` or
``(index, epoch)`` (what ``loader.ShardSampler`` yields), and the item's generator is
``np.random.default_rng([seed, epoch, index])``. The same run therefore sees the same clips
whatever the number of workers or ranks, and a resumed run repeats them exactly.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from tstam.errors import FrameStoreError, VideoError

from ..config import check_choice
from ..flow import FlowConfig, quantize_flow
from .check import check_records, fill_num_frames, raise_on_problems
from .clips import MIN_FLOW_FRAMES, FlowPairs, fields_to_clip, flow_fields, flow_snippets, frame_pairs, rgb_snippets
from .config import DataConfig
from .frames import Window, frame_size, read_flow_frames, read_rgb_frames
from .records import VideoRecord, frame_dir, video_path
from .sampling import protocol_indices, snippet_indices, train_indices, val_indices
from .transforms import EvalTransform, TrainCrops, TrainTransform, center_window

if TYPE_CHECKING:
    from ..models import ModelConfig

__all__ = ["FrameDataset", "VideoDataset", "build_dataset", "Mode"]

log = logging.getLogger(__name__)

Mode = Literal["train", "val", "test"]
ItemKey = int | tuple[int, int]


class _ClipDataset(Dataset):
    """Shared sampling and transforms; subclasses read the snippets."""

    def __init__(self, records: Sequence[VideoRecord], *, root: str | Path | None, mode: Mode, data: DataConfig,
                 model: ModelConfig, seed: int):
        check_choice("mode", mode, ("train", "val", "test"))
        data.check_crop(model.input_size)
        self.data = data
        self.modality = model.modality
        self.num_segments = model.num_segments
        self.snippet_length = int(model.new_length)
        self.root = Path(root if root is not None else data.root)
        self.mode = mode
        self.seed = int(seed)
        self.epoch = 0  # used for plain integer keys; loader keys carry their own epoch
        self.records = list(records)
        self.input_size = model.input_size
        self._train_tf = TrainTransform(data, model)
        self._eval_tf = EvalTransform(data, model, 1 if mode != "test" else data.test_crops)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _starts(self, num_items: int, rng: np.random.Generator) -> np.ndarray:
        L = self.snippet_length
        if self.mode == "train":
            return train_indices(num_items, self.num_segments, L, rng)
        if self.mode == "val":
            return val_indices(num_items, self.num_segments, L)
        return protocol_indices(num_items, self.data.test_frames, L)

    def _draw(self, rng: np.random.Generator) -> tuple[int, int, int, int, bool] | None:
        """The clip's random crop and flip (training), drawn after its snippets; None otherwise."""
        return self._train_tf.draw(rng) if self.mode == "train" else None

    def _finish(self, clip: torch.Tensor, params: tuple[int, int, int, int, bool] | None) -> torch.Tensor | TrainCrops:
        """uint8 (S, C, H, W) -> augmented, cropped uint8 clip (test: one per crop); in training
        with ``data.crop_resize_on = "device"`` the crop, as ``TrainCrops``, for ``batch_transform``."""
        if self.mode == "train":
            window = self._train_tf.window(clip, params)
            if self.data.crop_resize_on == "device":
                return self._train_tf.crops(window, params[4])
            return self._train_tf.finish(window, params[4])
        views = self._eval_tf(clip)
        return views[0] if self.mode == "val" else views

    def __getitem__(self, key: ItemKey) -> tuple[torch.Tensor, int]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), self.epoch)
        record = self.records[index]
        return self._item(record, np.random.default_rng([self.seed, epoch, index])), record.label

    def _item(self, record: VideoRecord, rng: np.random.Generator) -> Any:
        clip = self._read(record, rng)
        return self._finish(clip, self._draw(rng))

    def _read(self, record: VideoRecord, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError

    def batch_transform(self, x: Any) -> torch.Tensor:
        """A batch moved to the training device, finished there (``tstam.data.loader.finish_batch``):
        ``TrainCrops`` resized to the input size and flipped; clips as they are. ``VideoDataset``
        also computes flow clips from ``FlowPairs``."""
        return self._train_tf.finish_batch(x) if isinstance(x, TrainCrops) else x


class FrameDataset(_ClipDataset):
    """TSN clips read from the frame store (``img_*.jpg`` RGB, ``flow_x/y_*.jpg`` flow).

    Args:
        records: the videos; ``num_frames`` is filled from ``meta.json`` or by counting when None.
        data: frame size, augmentation and test settings; ``data.rgb_tmpl`` etc. name the files.
        model: the model the clips feed (modality, segments, snippet length, crop size).
        root: the frame-store root (default ``data.root``); see ``records.frame_dir``.
        mode: "train" (random snippet per segment, multi-scale crop, flip), "val" (segment
            centres, centre crop) or "test" (``data.test_frames`` snippets x ``data.test_crops`` crops).
        seed: the augmentation seed.
        check: check every record's folder first and raise one error listing all problems.
    """

    def __init__(self, records: Sequence[VideoRecord], *, data: DataConfig, model: ModelConfig,
                 root: str | Path | None = None, mode: Mode = "train", seed: int = 0, check: bool = True):
        super().__init__(records, root=root, mode=mode, data=data, model=model, seed=seed)
        layout = self.data.layout
        if check:
            raise_on_problems(check_records(self.records, self.root, self.modality, layout=layout))
        self.records = fill_num_frames(self.records, self.root, self.modality, layout=layout)
        self._sizes: dict[Path, tuple[int, int] | None] = {}  # stored frame size per video folder
        if self.modality == "flow":
            short = [r.video_id for r in self.records if r.num_frames is not None and r.num_frames < 2]
            if short:
                raise FrameStoreError(f"{self.root}: {len(short)} video(s) have no flow field (a single frame), "
                                      f"e.g. {short[0]!r}; drop them from the list")
        log.info("FrameDataset: %d %s videos under %s, mode %s", len(self.records), self.modality, self.root, mode)

    def _item(self, record: VideoRecord, rng: np.random.Generator) -> Any:
        d = frame_dir(record, self.root)
        assert record.num_frames is not None
        num_items = record.num_frames if self.modality == "rgb" else record.num_frames - 1
        idx = snippet_indices(self._starts(num_items, rng), self.snippet_length, num_items)  # (S, L)
        params = self._draw(rng)  # after the snippets, as every dataset draws them
        window = (params[:4] if params is not None else
                  center_window(*self.data.resize, self.input_size) if self.mode == "val" else None)
        if window is not None and self._stored_size(d, int(idx[0, 0])) == tuple(self.data.resize):
            return self._read_window(d, idx, window, params)
        return self._finish(self._read_frames(d, idx), params)

    def _stored_size(self, d: Path, index: int) -> tuple[int, int] | None:
        """(H, W) of the video's stored frames (from one header, kept), None if unreadable."""
        size = self._sizes.get(d)
        if size is None:
            tmpl = self.data.rgb_tmpl if self.modality == "rgb" else self.data.flow_x_tmpl
            size = self._sizes[d] = frame_size(d / tmpl.format(index + 1))
        return size

    def _read_frames(self, d: Path, idx: np.ndarray) -> torch.Tensor:
        """The snippets' whole frames: uint8 (S, L*C, H, W), x1, y1, ..., xL, yL for flow."""
        S = idx.shape[0]
        if self.modality == "rgb":
            frames = torch.from_numpy(read_rgb_frames(d, idx.ravel().tolist(), self.data.rgb_tmpl))  # (S*L, H, W, 3)
            frames = frames.permute(0, 3, 1, 2)                                                     # (S*L, 3, H, W)
        else:
            frames = torch.from_numpy(read_flow_frames(d, idx.ravel().tolist(), self.data.layout))  # (S*L, 2, H, W)
        return frames.reshape(S, -1, *frames.shape[-2:])

    def _read_window(self, d: Path, idx: np.ndarray, window: Window,
                     params: tuple[int, int, int, int, bool] | None) -> torch.Tensor | TrainCrops:
        """Frames stored at ``data.resize``: only the window of each is kept, decoded straight
        into the item (what ``_finish`` gives from the whole frames, without their copies)."""
        S, L = idx.shape
        C = 3 if self.modality == "rgb" else 2
        h, w = window[2:]
        crops = None
        if params is not None and self.data.crop_resize_on == "device":
            crops = TrainCrops.empty(S, L * C, self._train_tf.max_crop, h, w, params[4])
            out = crops.window()
        else:
            out = torch.empty((S, L * C, h, w), dtype=torch.uint8)
        frames = out.view(S * L, C, h, w).numpy()  # a view: the readers write into the item
        if self.modality == "rgb":
            read_rgb_frames(d, idx.ravel().tolist(), self.data.rgb_tmpl, window=window, out=frames.transpose(0, 2, 3, 1))
        else:
            read_flow_frames(d, idx.ravel().tolist(), self.data.layout, window=window, out=frames)
        if crops is not None:
            return crops
        return self._train_tf.finish(out, params[4]) if params is not None else out


class VideoDataset(_ClipDataset):
    """TSN clips decoded straight from video files, flow computed on the fly (no frame store).

    Same items as ``FrameDataset``. Frames are decoded at ``data.resize`` (H, W); for flow only the
    sampled snippets' frame pairs are computed (``tstam.data.clips``) with ``data.flow`` (default
    ``FlowConfig()``: TV-L1, bound 20, as ``tstam extract``), so a model sees what it would see
    from the store. Where: ``data.flow_on = "loader"`` computes each clip's flow in the loader
    worker (CPU); ``"device"`` (``tvl1_torch``) makes a flow item a ``FlowPairs`` of gray frame
    pairs and crop, and :meth:`batch_transform` computes the whole batch's flow on the device the
    batch was moved to (e.g. the training GPU), then quantises, crops and flips as the loader
    would: the same clips as ``"loader"`` with the same seed.

    Args:
        records: the videos (``path`` a video file relative to ``root``, or absolute).
        root: the video root (default ``data.root``).
        Other arguments as ``FrameDataset``.
    """

    def __init__(self, records: Sequence[VideoRecord], *, data: DataConfig, model: ModelConfig,
                 root: str | Path | None = None, mode: Mode = "train", seed: int = 0):
        super().__init__(records, root=root, mode=mode, data=data, model=model, seed=seed)
        missing = [str(video_path(r, self.root)) for r in self.records if not video_path(r, self.root).is_file()]
        if missing:
            raise VideoError(f"{len(missing)} video file(s) not found, e.g. {missing[0]}; check the root and the list")
        self.flow = data.flow or FlowConfig()
        self.on_device = self.modality == "flow" and data.flow_on == "device"
        log.info("VideoDataset: %d %s videos under %s, mode %s%s", len(self.records), self.modality, self.root, mode,
                 ", flow per batch on the training device" if self.on_device else "")

    def _decode(self, record: VideoRecord, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The frames the clip needs (a ``FrameSubset`` indexed like the whole video: only those are
        kept while decoding) and the snippet starts drawn with ``rng`` (over frames for RGB, flow
        fields for flow), drawn once for the video's true frame count."""
        from ..video import read_video  # imported here: the frame-store path needs no decoder

        h, w = self.data.resize
        flow = self.modality != "rgb"
        drawn: dict[int, np.ndarray] = {}
        state = rng.bit_generator.state

        def keep(total: int) -> np.ndarray:
            rng.bit_generator.state = state  # a second pass (the header's count was wrong) draws the same way
            starts = self._starts(max(total - 1, 1) if flow else total, rng)
            drawn[total] = starts
            if not flow:
                return snippet_indices(starts, self.snippet_length, total)
            fields = snippet_indices(starts, self.snippet_length, max(total - 1, 1))
            return np.minimum(np.concatenate([fields.ravel(), fields.ravel() + 1]), total - 1)

        frames = read_video(video_path(record, self.root), size=(w, h), strict=self.data.strict_decode,
                            min_frames=MIN_FLOW_FRAMES if flow else 1, limits=self.data.decode, keep=keep).frames
        return frames, drawn[len(frames)]

    def _read(self, record: VideoRecord, rng: np.random.Generator) -> torch.Tensor:
        frames, starts = self._decode(record, rng)
        if self.modality == "rgb":
            return rgb_snippets(frames, starts, self.snippet_length)
        return flow_snippets(frames, starts, self.snippet_length, self.flow)

    def _item(self, record: VideoRecord, rng: np.random.Generator) -> Any:
        if not self.on_device:
            return super()._item(record, rng)
        frames, starts = self._decode(record, rng)
        idx = flow_fields(frames, starts, self.snippet_length)  # (S, L)
        prev, nxt = frame_pairs(frames, idx.ravel())                                     # (S*L, H, W) each
        params = self._draw(rng)
        crop = torch.tensor(params if params is not None else (0, 0, 0, 0, 0), dtype=torch.int64)
        return FlowPairs(torch.from_numpy(np.stack([prev, nxt], 1)), crop)              # (S*L, 2, H, W)

    def batch_transform(self, x: Any) -> torch.Tensor:
        """``FlowPairs`` (B, S*L, 2, H, W) on a device -> the batch's uint8 flow clips there: TV-L1 of
        all B*S*L pairs at once on that device, quantised there; cropped and flipped on the CPU
        with the loader's functions (the same bytes as ``data.flow_on = "loader"``)."""
        if not isinstance(x, FlowPairs):
            return super().batch_transform(x)
        from ..flow.tvl1_torch import tvl1_flow

        frames, crops = x
        b, n, _, h, w = frames.shape
        flow = tvl1_flow(frames[:, :, 0].reshape(-1, h, w), frames[:, :, 1].reshape(-1, h, w), self.flow.tvl1)
        q = quantize_flow(flow, self.flow.bound).cpu().reshape(b, n, h, w, 2)          # (B, S*L, H, W, 2) uint8
        crops = crops.tolist()
        clips = [self._finish(fields_to_clip(q[i], n // self.snippet_length),
                              (*crops[i][:4], bool(crops[i][4])) if self.mode == "train" else None) for i in range(b)]
        return super().batch_transform(default_collate(clips)).to(frames.device, non_blocking=True)


def build_dataset(records: Sequence[VideoRecord], *, data: DataConfig, model: ModelConfig, mode: Mode,
                  seed: int = 0, root: str | Path | None = None) -> _ClipDataset:
    """``VideoDataset`` when ``data.input`` is "video", else ``FrameDataset`` (same arguments)."""
    cls = VideoDataset if data.input == "video" else FrameDataset
    return cls(records, data=data, model=model, root=root, mode=mode, seed=seed)
