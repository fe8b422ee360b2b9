"""What one video may cost to decode, which of its streams is the video, and the frames of it
that were kept: the checks ``tstam.video.read_video`` runs on a file before and while decoding."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from tstam.config import check_range
from tstam.errors import VideoError

__all__ = ["DecodeLimits", "FrameSubset", "video_stream", "rotation_turns"]

log = logging.getLogger("tstam.video")

# FFmpeg's demuxers of single pictures (image2 and the *_pipe family): such a file is a still
# image whatever its extension, not a one-frame video.
_IMAGE_DEMUXERS = ("image2",)


@dataclass(frozen=True)
class DecodeLimits:
    """The work one video may cost to decode; a file over any of them is refused (``VideoError``).

    The upload or file size bounds bytes, not work: a 0.5 MB MP4 can hold 30,000 tiny frames, a
    46 KB GIF a 8000 x 8000 canvas redrawn 2,000 times. Every decode counts its frames and the
    pixels it decodes (at the file's size, before any resizing) against these bounds, and a frame
    size or a declared length over them is refused before decoding starts.

    Defaults: ``max_frames`` 108,000 is one hour at 30 fps (UCF101's longest clip, 71 s, has
    1,776 frames); ``max_pixels`` 8.3e9 is that hour at 320 x 240 (the datasets' size), or about
    2 minutes of 1080p at 30 fps; ``max_frame_pixels`` 4096 x 4096 admits DCI 4K (4096 x 2160)
    and 8-megapixel phone video.
    FFmpeg's own bound (``-max_pixels``) is INT_MAX per frame, which would admit the bomb.
    """

    max_frames: int = 108_000            # decoded frames per video (--decode-max-frames)
    max_pixels: float = 8.3e9            # decoded pixels per video, frames x width x height (--decode-max-pixels)
    max_frame_pixels: int = 4096 * 4096  # width x height of one frame (--decode-max-frame-pixels)

    def __post_init__(self) -> None:
        check_range("decode.max_frames", self.max_frames, 1, 10**9, note="frames decoded per video")
        check_range("decode.max_pixels", self.max_pixels, 1, 1e15, note="pixels decoded per video")
        check_range("decode.max_frame_pixels", self.max_frame_pixels, 1, 2**31 - 1,
                    note="width x height of one frame; FFmpeg's INT_MAX at most")

    def over(self, path: Path, what: str, value: float, key: str) -> VideoError:
        """The error for ``path`` having gone over the bound ``key`` (a field name)."""
        limit = getattr(self, key)
        num = lambda v: f"{int(v):,}" if float(v).is_integer() and abs(v) < 1e18 else f"{v:g}"  # noqa: E731
        unit = "per frame" if key == "max_frame_pixels" else "per video"
        return VideoError(f"{path}: {what} {num(value)}, over the decoding budget of {num(limit)} {unit} "
                          f"(--decode-{key.replace('_', '-')}, data.decode.{key}); refused before it costs more "
                          "work; raise that bound if this is a real video")


class FrameSubset:
    """The frames of a video that were kept while decoding, indexed by their place in the whole
    video: ``len()`` and ``shape[0]`` are the video's frame count, ``subset[idx]`` (an index or an
    array of indices, optionally followed by slices) returns the kept frames at those places, and
    asking for a frame that was not kept is an ``IndexError`` (a bug in the caller's ``keep``)."""

    def __init__(self, frames: np.ndarray, indices: np.ndarray, total: int):
        self.frames = frames                            # (K, H, W, 3) uint8, in video order
        self.indices = np.asarray(indices, np.int64)    # (K,) sorted places of the kept frames
        self.total = int(total)
        self.dtype = frames.dtype
        self.ndim = frames.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.total, *self.frames.shape[1:])

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        idx = np.asarray(key, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.indices, idx), 0, max(len(self.indices) - 1, 0))
        if len(self.indices) == 0 or np.any(self.indices[pos] != idx):
            raise IndexError(f"frame(s) {np.setdiff1d(idx, self.indices)[:5].tolist()} of {self.total} were not "
                             "kept while decoding")
        return self.frames[(pos, *rest)]



def _is_cover(stream: Any) -> bool:
    return bool(int(stream.disposition) & int(av.stream.Disposition.attached_pic))


def video_stream(container: Any, path: Path, extensions: tuple[str, ...]) -> Any:
    """The stream that is the video: not a cover picture (``attached_pic``), and among several the
    one with the most packets (a one-frame picture stored as a first video stream loses to the
    video after it; counted by demuxing, which decodes nothing); a still picture's demuxer (PNG or
    JPEG data under a video name) is refused."""
    fmt = container.format.name
    if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
        kind = fmt.removesuffix("_pipe").upper()
        raise VideoError(f"{path}: a still image ({kind} data), not a video, whatever its extension; give a video "
                         f"file ({', '.join(extensions)})")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no"]
        raise VideoError(f"{path}: no video stream (it has {', '.join(kinds)} streams only)")
    videos = [s for s in container.streams.video if not _is_cover(s)]
    if not videos:
        raise VideoError(f"{path}: its only video stream is a cover picture (attached_pic), not a video")
    if len(videos) == 1:
        return videos[0]
    counts = dict.fromkeys((s.index for s in videos), 0)
    with av.open(str(path)) as again:  # a second reader: the first one stays at the start for decoding
        for packet in again.demux(*(again.streams[i] for i in counts)):
            if packet.size:
                counts[packet.stream.index] += 1
    chosen = max(videos, key=lambda s: counts[s.index])  # the first of equals
    log.info("%s: %d video streams; decoding stream %d (%d packets)", path, len(videos), chosen.index,
             counts[chosen.index])
    return chosen


def rotation_turns(stream: Any, frame: Any | None = None) -> int:
    """Quarter turns (0-3, counterclockwise) that show the picture upright: from the frame's display
    matrix (what phones record instead of turning the pixels), else the stream's ``rotate`` tag."""
    angle = 0.0
    if frame is not None:
        angle = float(getattr(frame, "rotation", 0) or 0)
    if not angle:
        try:
            angle = -float(stream.metadata.get("rotate", 0))
        except (TypeError, ValueError):
            angle = 0.0
    # the display matrix's angle is counterclockwise; FFmpeg's autorotate turns the picture by it
    return int(round(angle / 90.0)) % 4
