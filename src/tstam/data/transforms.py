"""Clip transforms in plain torch (paper 4.2; docs/design.md, Data flow; TSN's ``transforms.py``).

Pure functions on uint8 clips ``(T, C, H, W)`` (T snippets; C = 3 for RGB, or 2k stacked flow
channels x1, y1, ..., xk, yk), plus two thin config-driven wrappers. Training: resize to the
configured H x W (240 x 320 paper, 256 x 340 TSN), TSN multi-scale crop from fixed positions with
scale jitter, resize to ``input_size``, random horizontal flip; every random parameter is drawn
once per clip and applied to all its frames. A flip of a flow clip also inverts the x channels
(``255 - x``), since the motion changes direction. Testing: 1 (centre), 3 or 10 crops
(4 corners + centre, and their flips). The final normalisation is ``Preprocess.normalize``.

A training clip can stop half way: ``TrainTransform.crops`` keeps the uint8 crop window (padded
to a fixed size, so that clips of different crop sizes batch together) as ``TrainCrops``, and
``TrainTransform.finish_batch`` resizes and flips a whole batch of them where it lies, e.g. on the
training GPU, so that the loader workers only decode and crop (``DataConfig.crop_resize_on``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig

if TYPE_CHECKING:
    from ..models import ModelConfig

__all__ = [
    "resize", "crop", "hflip", "fixed_offsets", "crop_sizes", "multiscale_crop_params", "center_window",
    "center_crop", "three_crop", "ten_crop", "eval_crops", "TrainCrops", "TrainTransform", "EvalTransform",
]


def _check_clip(clip: torch.Tensor) -> None:
    if clip.dim() != 4 or clip.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 clip (T, C, H, W), got {tuple(clip.shape)} {clip.dtype}")


def resize(clip: torch.Tensor, size: tuple[int, int] | list[int]) -> torch.Tensor:
    """Bilinear resize of a uint8 clip to ``size`` = (H, W) (antialiased when shrinking).

    On the CPU, torch's uint8 kernel; on other devices the same filter in float32, rounded back to
    uint8 (each pixel within one grey level of the CPU's fixed-point result)."""
    _check_clip(clip)
    h, w = int(size[0]), int(size[1])
    if clip.shape[-2:] == (h, w):
        return clip
    shrink = h < clip.shape[-2] or w < clip.shape[-1]
    if clip.device.type != "cpu":
        return _resize_float(clip, (h, w), shrink)
    # torch's fast uint8 bilinear kernel wants 3 channels; channels resize independently, so
    # regroup all T*C planes in threes (zero planes pad the last group) and undo afterwards.
    T, C, H, W = clip.shape
    planes = clip.reshape(T * C, H, W)
    pad = -(T * C) % 3
    if pad:
        planes = torch.cat([planes, planes.new_zeros(pad, H, W)])
    out = F.interpolate(planes.reshape(-1, 3, H, W), size=(h, w), mode="bilinear", align_corners=False,
                        antialias=shrink)
    return out.reshape(-1, h, w)[: T * C].reshape(T, C, h, w)


def _resize_float(clip: torch.Tensor, size: tuple[int, int], shrink: bool) -> torch.Tensor:
    """``resize`` off the CPU: torch's uint8 kernels for both filters are the CPU's; float32 serves everywhere."""
    out = F.interpolate(clip.float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def crop(clip: torch.Tensor, y: int, x: int, h: int, w: int) -> torch.Tensor:
    """The same window of every frame; raises if it does not fit."""
    H, W = clip.shape[-2:]
    if y < 0 or x < 0 or y + h > H or x + w > W:
        raise ValueError(f"crop (y={y}, x={x}, h={h}, w={w}) does not fit a {H}x{W} frame")
    return clip[..., y:y + h, x:x + w]


def hflip(clip: torch.Tensor, *, flow: bool) -> torch.Tensor:
    """Horizontal flip; for flow clips also ``x -> 255 - x`` on the x channels (0, 2, 4, ...)."""
    out = clip.flip(-1)  # a copy, never a view
    if flow:
        out[..., 0::2, :, :].bitwise_not_()  # 255 - x, in place: the complement of a byte
    return out


def fixed_offsets(height: int, width: int, crop_h: int, crop_w: int, *, more_fix_crop: bool) -> list[tuple[int, int]]:
    """TSN's fixed crop positions (y, x): 4 corners and centre, plus 8 more when ``more_fix_crop``."""
    hs, ws = (height - crop_h) // 4, (width - crop_w) // 4
    ret = [(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws)]
    if more_fix_crop:
        ret += [(2 * hs, 0), (2 * hs, 4 * ws), (4 * hs, 2 * ws), (0, 2 * ws),
                (hs, ws), (hs, 3 * ws), (3 * hs, ws), (3 * hs, 3 * ws)]
    return ret


def crop_sizes(height: int, width: int, *, input_size: int, scales: list[float]) -> list[int]:
    """The multi-scale crop sides: ``int(min(H, W) * s)`` for s in ``scales``, snapped to ``input_size`` within 3 px."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    return [input_size if abs(s - input_size) < 3 else s for s in sizes]


def multiscale_crop_params(height: int, width: int, *, input_size: int, scales: list[float], max_distort: int,
                           more_fix_crop: bool, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """One random TSN multi-scale crop window (y, x, h, w) for a height x width frame.

    Crop sides are ``crop_sizes``, height and width scales at most ``max_distort`` apart, at one of
    the fixed positions.
    """
    sizes = crop_sizes(height, width, input_size=input_size, scales=scales)
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distort]
    h, w = pairs[int(rng.integers(len(pairs)))]
    offsets = fixed_offsets(height, width, h, w, more_fix_crop=more_fix_crop)
    y, x = offsets[int(rng.integers(len(offsets)))]
    return y, x, h, w


def center_window(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """The centred size x size window (y, x, h, w) of a height x width frame."""
    return (height - size) // 2, (width - size) // 2, size, size


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    return crop(clip, *center_window(*clip.shape[-2:], size))


def three_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Three squares of the short side along the long side (start, centre, end), resized to ``size``.

    Returns (3, T, C, size, size).
    """
    H, W = clip.shape[-2:]
    s = min(H, W)
    if W >= H:
        boxes = [(0, 0), (0, (W - s) // 2), (0, W - s)]
    else:
        boxes = [(0, 0), ((H - s) // 2, 0), (H - s, 0)]
    return torch.stack([resize(crop(clip, y, x, s, s), (size, size)) for y, x in boxes])


def ten_crop(clip: torch.Tensor, size: int, *, flow: bool) -> torch.Tensor:
    """4 corners + centre (TSN's positions), then the same 5 flipped: (10, T, C, size, size)."""
    H, W = clip.shape[-2:]
    five = [crop(clip, y, x, size, size) for y, x in fixed_offsets(H, W, size, size, more_fix_crop=False)]
    return torch.stack(five + [hflip(c, flow=flow) for c in five])


def eval_crops(clip: torch.Tensor, *, size: int, num_crops: int, flow: bool) -> torch.Tensor:
    """1, 3 or 10 test crops of a (resized) uint8 clip: (num_crops, T, C, size, size)."""
    _check_clip(clip)
    if num_crops == 1:
        return center_crop(clip, size)[None]
    if num_crops == 3:
        return three_crop(clip, size)
    if num_crops == 10:
        return ten_crop(clip, size, flow=flow)
    raise ValueError(f"num_crops={num_crops} is not valid; expected one of [1, 3, 10]")


class TrainCrops(NamedTuple):
    """Training clips cropped but not yet resized to the input size nor flipped
    (``TrainTransform.crops``); ``TrainTransform.finish_batch`` finishes them. The loader batches
    them field by field (``default_collate`` keeps the type); ``.to`` moves the pixels only, so
    that the parameters are read on the host without waiting for the device."""

    pixels: torch.Tensor  # uint8 (S, C, M, M): the crop in the top-left h x w corner, zeros elsewhere; (B, ...) batched
    params: torch.Tensor  # int64 (3,): h, w, flip; (B, 3) batched

    @classmethod
    def empty(cls, num: int, channels: int, side: int, h: int, w: int, flip: bool) -> TrainCrops:
        """Room for one clip's h x w crop (``window``) in an (num, channels, side, side) buffer, its padding zeroed."""
        pixels = torch.empty((num, channels, side, side), dtype=torch.uint8)
        pixels[:, :, h:] = 0
        pixels[:, :, :h, w:] = 0
        return cls(pixels, torch.tensor([h, w, int(flip)]))

    def window(self) -> torch.Tensor:
        """One clip's crop: a (S, C, h, w) view of ``pixels``."""
        h, w = int(self.params[0]), int(self.params[1])
        return self.pixels[..., :h, :w]

    def to(self, device: str | torch.device, non_blocking: bool = False) -> TrainCrops:
        return TrainCrops(self.pixels.to(device, non_blocking=non_blocking), self.params)


class TrainTransform:
    """Resize, multi-scale crop, random flip: uint8 (T, C, H, W) -> uint8 (T, C, S, S).

    ``data`` gives the frame size and the augmentation; ``model`` the modality and crop size S.
    The steps: ``draw`` the parameters, cut the ``window`` of the resized frames, ``finish`` it
    (resize to S, flip); or, for a batch finished elsewhere, ``crops`` then ``finish_batch``.
    """

    def __init__(self, data: DataConfig, model: ModelConfig):
        self.data = data
        self.flow = model.modality == "flow"
        self.input_size = model.input_size
        self.scales = data.crop_scales(model.modality)
        # the largest crop side: every TrainCrops buffer has this size
        self.max_crop = max(crop_sizes(*data.resize, input_size=self.input_size, scales=self.scales))

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return self.apply(clip, self.draw(rng))

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int, int, bool]:
        """The clip's random parameters: crop window (y, x, h, w) in the resized frame, and flip."""
        c = self.data
        y, x, h, w = multiscale_crop_params(c.resize[0], c.resize[1], input_size=self.input_size, scales=self.scales,
                                            max_distort=c.max_distort, more_fix_crop=c.more_fix_crop, rng=rng)
        return y, x, h, w, bool(c.flip and rng.random() < 0.5)

    def apply(self, clip: torch.Tensor, params: tuple[int, int, int, int, bool]) -> torch.Tensor:
        """Resize, crop the window of ``params`` and resize it to the input size, flip if drawn."""
        return self.finish(self.window(clip, params), params[4])

    def window(self, clip: torch.Tensor, params: tuple[int, int, int, int, bool]) -> torch.Tensor:
        """The crop window of ``params`` of the clip resized to ``data.resize``: (T, C, h, w)."""
        y, x, h, w, _flip = params
        return crop(resize(clip, self.data.resize), y, x, h, w)

    def finish(self, window: torch.Tensor, flip: bool) -> torch.Tensor:
        """A crop window resized to the input size, flipped if drawn."""
        clip = resize(window, (self.input_size, self.input_size))
        if flip:
            clip = hflip(clip, flow=self.flow)
        return clip.contiguous()

    def crops(self, window: torch.Tensor, flip: bool) -> TrainCrops:
        """A crop window kept for ``finish_batch``."""
        out = TrainCrops.empty(*window.shape[:2], self.max_crop, *window.shape[-2:], flip)
        out.window().copy_(window)
        return out

    def finish_batch(self, batch: TrainCrops) -> torch.Tensor:
        """Batched ``TrainCrops`` (wherever ``pixels`` lies) -> uint8 clips (B, T, C, S, S) there,
        each clip by ``finish`` (the same bytes as a clip finished in the loader, on the CPU)."""
        pixels, params = batch
        s = self.input_size
        out = pixels.new_empty((*pixels.shape[:3], s, s))
        for i, (h, w, flip) in enumerate(params.tolist()):
            out[i] = self.finish(pixels[i, :, :, :h, :w], bool(flip))
        return out


class EvalTransform:
    """Resize then ``num_crops`` fixed crops: uint8 (T, C, H, W) -> uint8 (num_crops, T, C, S, S)."""

    def __init__(self, data: DataConfig, model: ModelConfig, num_crops: int):
        self.resize = data.resize
        self.num_crops = num_crops
        self.flow = model.modality == "flow"
        self.input_size = model.input_size

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        clip = resize(clip, self.resize)
        return eval_crops(clip, size=self.input_size, num_crops=self.num_crops, flow=self.flow).contiguous()
