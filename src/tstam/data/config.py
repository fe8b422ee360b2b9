"""``DataConfig``: sampling, augmentation and loading settings (paper 4.2; docs/design.md, Data flow).

What a clip *is* (modality, segments, snippet length, crop size) belongs to the model it feeds:
the datasets read those from the ``ModelConfig`` and everything else from here, so the two can
never disagree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..config import ConfigError, check_choice, check_literals, check_range, short_repr
from ..errors import InputError
from ..flow import FlowConfig
from ..video import DecodeLimits
from .frames import FrameLayout, template_regex
from .store import FLOW_X_TMPL, FLOW_Y_TMPL, RGB_TMPL

__all__ = ["DataConfig", "RGB_SCALES", "FLOW_SCALES", "MAX_TEST_FRAMES", "MAX_FRAME_SIDE"]

RGB_SCALES = [1.0, 0.875, 0.75, 0.66]   # TSN multi-scale crop, RGB
FLOW_SCALES = [1.0, 0.875, 0.75]        # TSN multi-scale crop, flow
MAX_TEST_FRAMES = 250                   # snippets per test video: 10x the paper's 25 (each one a forward per crop)
MAX_FRAME_SIDE = 4096                   # data.resize: frames are decoded at this size (4K is 3840 x 2160)


@dataclass
class DataConfig:
    """Where the frames are and how clips are sampled, augmented and batched."""

    root: str = ""                        # frame-store root (FrameDataset) or video root (VideoDataset)
    input: Literal["frames", "video"] = "frames"  # frames: root is a frame store (tstam extract); video:
                                          # root holds the video files the annotations name (VideoDataset)
    resize: list[int] | None = field(default_factory=lambda: [240, 320])  # H, W before cropping (paper); [256, 340]
                                          # as TSN; null: a frame store's size (its meta.json); with a store, both
                                          # must agree (tstam extract --size WxH sets it)
    scales: list[float] | None = None  # crop scales; None: [1, .875, .75, .66] RGB, [1, .875, .75] flow (TSN)
    max_distort: int = 1                  # most index distance between the height and width scales (TSN)
    more_fix_crop: bool = True            # 13 fixed crop positions (TSN); False: 4 corners + centre
    flip: bool = True                     # random horizontal flip in training (inverts flow x)
    test_frames: int = 25                 # evenly spaced snippets per video at test (paper 4.2)
    test_crops: int = 10                  # crops per snippet at test: 1 (centre), 3 or 10 (paper 4.2)
    rgb_tmpl: str = RGB_TMPL              # RGB file names in a frame folder (1-based)
    flow_x_tmpl: str = FLOW_X_TMPL        # flow x names; "x_{:05d}.jpg" for MMAction2's test layout
    flow_y_tmpl: str = FLOW_Y_TMPL        # flow y names; "y_{:05d}.jpg" for MMAction2's test layout
    batch_size: int = 32                  # clips per batch (paper 4.2), per process under DDP
    workers: int = 4                      # loader processes (see benchmarks/bench_loader.py)
    flow: FlowConfig | None = None     # the flow of the frames: None -> the frame store's meta.json says
                                          # (training checks it); VideoDataset computes it (default TV-L1, bound 20)
    strict_decode: bool = False           # VideoDataset: refuse videos decoding fewer frames than declared
                                          # (default: a shortfall of max(2, 2 %) is accepted, tstam.video)
    decode: DecodeLimits = field(default_factory=DecodeLimits)  # VideoDataset: what one video may cost to
                                          # decode (frames, pixels, frame size); a video over it is refused
    flow_on: Literal["loader", "device"] = "loader"  # VideoDataset's flow: per clip in the loader workers
                                          # (CPU), or per batch on the training device (tvl1_torch, e.g. a GPU)
    crop_resize_on: Literal["device", "loader"] = "device"  # training crops resized to model.input_size and
                                          # flipped per batch on the training device (the workers then only decode
                                          # and crop), or per clip in the workers

    def __post_init__(self) -> None:
        check_literals(self, "data")
        check_choice("data.test_crops", self.test_crops, (1, 3, 10))
        check_range("data.test_frames", self.test_frames, 1, MAX_TEST_FRAMES, note="the paper's 25")
        check_range("data.batch_size", self.batch_size, 1, 4096, note="clips per batch and process; the paper's 32")
        check_range("data.workers", self.workers, 0, 256, note="loader processes; 0: in the main process")
        check_range("data.max_distort", self.max_distort, 0, note="0: the same scale for height and width")
        if self.resize is not None and (len(self.resize) != 2 or not all(1 <= v <= MAX_FRAME_SIDE for v in self.resize)):
            raise ConfigError(f"data.resize={short_repr(self.resize)} is not valid; expected [H, W] with each from 1 to "
                              f"{MAX_FRAME_SIDE}, e.g. [240, 320] or [256, 340]")
        if self.scales is not None and (not self.scales or len(self.scales) > 16
                                        or not all(0 < s <= 1 for s in self.scales)):
            raise ConfigError(f"data.scales={short_repr(self.scales)} is not valid; expected 1 to 16 scales in (0, 1], "
                              f"e.g. {RGB_SCALES}")
        for name in ("rgb_tmpl", "flow_x_tmpl", "flow_y_tmpl"):
            self._check_template(name)

        if self.flow_on == "device" and (self.input != "video" or self.flow is None
                                         or self.flow.algorithm != "tvl1_torch"):
            raise ConfigError("data.flow_on=device computes the flow of video files on the training device with "
                              "tvl1_torch; it needs data.input=video and data.flow.algorithm=tvl1_torch (got "
                              f"data.input={self.input}, data.flow.algorithm="
                              f"{self.flow.algorithm if self.flow else None}); else use data.flow_on=loader")

    def _check_template(self, name: str) -> None:
        """A frame-name template formats one index into a plain file name (never a path out of the
        video's folder)."""
        tmpl = getattr(self, name)
        try:
            if len(tmpl) > 255 or re.search(r"\{[^}]*\d{4,}", tmpl):  # {:0999999999d} would build a 1 GB name
                raise ValueError("longer than a file name may be")
            template_regex(tmpl)
            example = tmpl.format(1)
        except (InputError, IndexError, KeyError, ValueError) as e:
            raise ConfigError(f"data.{name}={short_repr(tmpl)} is not valid ({e}); expected a file name with one "
                              f"{{}} field for the 1-based index, e.g. {getattr(DataConfig, name)!r}") from None
        if any(c in example for c in "/\\\0") or example in (".", ".."):
            raise ConfigError(f"data.{name}={short_repr(tmpl)} is not valid: {example!r} is not a plain file name; "
                              f"expected a name inside the video's folder, e.g. {getattr(DataConfig, name)!r}")

    def check_crop(self, input_size: int) -> None:
        """Raise ConfigError unless the frames (``resize``) hold a crop of ``input_size`` (``resize``
        null: checked once the frame store's size is known)."""
        if self.resize is not None and min(self.resize) < input_size:
            raise ConfigError(f"data.resize={self.resize} is smaller than the crop model.input_size={input_size}; "
                              f"expected [H, W] with both >= {input_size}, e.g. [240, 320] for 224 crops")

    def crop_scales(self, modality: str) -> list[float]:
        """``scales``, or TSN's for the modality."""
        if self.scales is not None:
            return list(self.scales)
        return list(RGB_SCALES if modality == "rgb" else FLOW_SCALES)

    @property
    def layout(self) -> FrameLayout:
        return FrameLayout(rgb_tmpl=self.rgb_tmpl, flow_x_tmpl=self.flow_x_tmpl, flow_y_tmpl=self.flow_y_tmpl)
