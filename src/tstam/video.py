"""Frame-accurate video decoding and encoding (docs/design.md, Data flow).

Decoding goes through PyAV (FFmpeg's libavformat/libavcodec). We chose PyAV over
``cv2.VideoCapture`` because it decodes the same frames bit for bit (same FFmpeg underneath,
checked on the clips in ``realdata/videos``) at nearly the same speed per core (0.8-0.95x in
``benchmarks/bench_decode.py``; either is >100x faster than TV-L1 flow, so decoding never limits
extraction), and because it *raises* on a broken file (OpenCV's ``read()`` only returns
``False``, so a truncated file and a finished one look the same), exposes the declared frame
count (used to detect truncation), and tells an audio-only file from a broken one. Resizing
happens in FFmpeg's swscale together with the YUV->RGB conversion (one pass per frame).

Decoding policy (every command and the Python API decode through ``read_video``): real dataset
videos often declare a frame or two more than they hold (an HMDB51 ``cartwheel`` clip declares
85 frames and 84 decode, with FFmpeg and OpenCV alike; AVI indexes and MP4 durations round), so
a shortfall of at most ``max(2 frames, 2 %)`` of the declared count is accepted: the frames that
decode are used and the clip records both counts. A larger shortfall (a file cut short: a
download stopped at 90 % loses 10 %) or a decoder error is an error naming the file.
``strict=True`` (``--strict``) refuses any shortfall.

Writing (``write_video``) is used by the synthetic-data generator and by tests: ``.mp4`` is
H.264 when PyAV has an H.264 encoder (libx264/openh264) and the size is even, else MPEG-4 Part 2;
``.avi`` is MPEG-4 Part 2 with the XVID tag (like UCF101); ``.webm`` is VP8; ``.gif`` is
written by Pillow.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from tstam.errors import VideoError

__all__ = ["VideoError", "VideoClip", "VIDEO_EXTENSIONS", "read_video", "write_video", "probe_video",
           "allowed_shortfall"]

log = logging.getLogger(__name__)

# Extensions we accept (lower case). Everything FFmpeg demuxes would work; the list exists so
# that a stray .txt or .jpg in a dataset folder is reported instead of half-decoded.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".avi", ".mp4", ".m4v", ".webm", ".gif", ".mkv", ".mov", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv",
)

_H264_ENCODERS = ("libx264", "libopenh264", "h264")


@dataclass
class VideoClip:
    """Decoded frames of one video."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float  # average frame rate declared by the container (25.0 if it declares none)
    path: str  # the file the frames came from
    declared_frames: int = 0  # what the header declares (0: it declares nothing, e.g. WebM/MKV)

    @property
    def shortfall(self) -> int:
        """Declared frames that did not decode (0 when the header declares none or too few)."""
        return max(0, self.declared_frames - self.num_frames)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


def allowed_shortfall(declared: int) -> int:
    """Frames a header may over-count before the video is taken as cut: ``max(2, 2 % of declared)``."""
    return max(2, int(0.02 * declared))


def _check_path(path: Path) -> None:
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoError(
            f"{path}: unsupported extension {path.suffix!r}; expected one of {', '.join(VIDEO_EXTENSIONS)}"
        )
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")


def _target_size(width: int, height: int, size: tuple[int, int] | None, short_side: int | None) -> tuple[int, int]:
    if size is not None and short_side is not None:
        raise ValueError("give either size=(W, H) or short_side, not both")
    if size is not None:
        w, h = (int(v) for v in size)
        if w <= 0 or h <= 0:
            raise ValueError(f"size={size!r}: width and height must be positive")
        return w, h
    if short_side is not None:
        if short_side <= 0:
            raise ValueError(f"short_side={short_side!r} must be positive")
        if width <= height:
            return int(short_side), max(1, round(height * short_side / width))
        return max(1, round(width * short_side / height)), int(short_side)
    return width, height


def _fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 25.0


def probe_video(path: str | os.PathLike) -> dict[str, float | int]:
    """Container facts without decoding: ``{"frames", "fps", "width", "height"}``.

    ``frames`` is what the header declares (0 when it declares nothing, e.g. WebM/MKV).

    Raises:
        VideoError: the file is missing, empty, unsupported or has no video stream.
    """
    path = Path(path)
    _check_path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream (audio-only or data-only file)")
            s = container.streams.video[0]
            return {"frames": int(s.frames or 0), "fps": _fps(s), "width": s.codec_context.width,
                    "height": s.codec_context.height}
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({e})") from None


def read_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
    min_frames: int = 1,
    strict: bool = False,
    threads: int = 1,
) -> VideoClip:
    """Decode every frame of a video file to RGB.

    Args:
        path: the video file.
        size: ``(W, H)`` to resize to while decoding (e.g. ``(340, 256)`` as TSN); None keeps it.
        short_side: resize so that the shorter side is this long, keeping the aspect ratio.
        max_frames: stop after this many frames (None: all). Disables the truncation check.
        min_frames: fewer decoded frames than this is an error (2 for optical flow).
        strict: refuse any file that yields fewer frames than its header declares. By default a
            shortfall up to ``allowed_shortfall(declared)`` is accepted (see the module docstring).
        threads: FFmpeg decoding threads (1: parallelism comes from running videos in parallel).

    Returns:
        VideoClip with ``frames`` (T, H, W, 3) uint8 RGB.

    Raises:
        VideoError: missing, empty, unsupported, corrupt, truncated (beyond the tolerance, or at
            all with ``strict``) or audio-only file, or fewer than ``min_frames`` frames. The
            message names the file and the problem.
    """
    path = Path(path)
    _check_path(path)
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no"]
                raise VideoError(f"{path}: no video stream (it has {', '.join(kinds)} streams only)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO" if threads > 1 else "SLICE"
            stream.thread_count = max(1, threads)
            declared = int(stream.frames or 0)
            fps = _fps(stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            out_w, out_h = (None, None)
            if width and height:
                out_w, out_h = _target_size(width, height, size, short_side)
            # One reformatter for the whole video: frame.to_ndarray(format=...) builds a new
            # swscale context per frame, which costs twice the decoding itself.
            reformatter = VideoReformatter()
            for frame in container.decode(stream):
                if out_w is None:  # size unknown from the header (rare): take the first frame's
                    out_w, out_h = _target_size(frame.width, frame.height, size, short_side)
                rgb = reformatter.reformat(frame, width=out_w, height=out_h, format="rgb24",
                                           interpolation="BILINEAR")
                frames.append(rgb.to_ndarray())
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as e:
        raise VideoError(f"{path}: corrupt or not a video file ({e}); decoded {len(frames)} frame(s) before the error") from None
    n = len(frames)
    if n == 0:
        raise VideoError(f"{path}: no frames could be decoded (corrupt or truncated file)")
    if max_frames is None and declared and n < declared:
        tolerated = 0 if strict else allowed_shortfall(declared)
        if declared - n > tolerated:
            why = ("--strict / strict=True refuses any shortfall" if strict else
                   f"more than the {tolerated} frame(s) a header may over-count; the file is cut or damaged")
            raise VideoError(f"{path}: truncated or damaged: decoded {n} of the {declared} frames its header "
                             f"declares ({why})")
        log.info("%s: decoded %d of the %d frames its header declares (within the tolerated %d)",
                 path, n, declared, tolerated)
    if n < min_frames:
        raise VideoError(f"{path}: only {n} frame(s); at least {min_frames} needed")
    return VideoClip(frames=np.stack(frames), fps=fps, path=str(path), declared_frames=declared)


def _choose_codec(ext: str, width: int, height: int) -> tuple[str, dict[str, str]]:
    """(codec name, stream options) for a container extension."""
    even = width % 2 == 0 and height % 2 == 0
    if ext in (".mp4", ".m4v", ".mov", ".mkv"):
        if even:
            for name in _H264_ENCODERS:
                if name in av.codecs_available:
                    try:
                        av.codec.Codec(name, "w")
                        return name, {}
                    except Exception:  # listed but no encoder of that name
                        continue
        return "mpeg4", {}
    if ext == ".avi":
        return "mpeg4", {}
    if ext == ".webm":
        return "libvpx", {}
    raise VideoError(f"cannot write {ext!r}; write_video supports .mp4 .m4v .mov .mkv .avi .webm .gif")


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str | None = None,
    quality: int = 4,
) -> Path:
    """Encode RGB frames to a real video file.

    Args:
        path: output file; the extension picks the container (``.mp4 .mkv .mov .avi .webm .gif``).
        frames: (T, H, W, 3) uint8 RGB.
        fps: frame rate.
        codec: an FFmpeg encoder name to force (e.g. ``"mpeg4"``); None picks one per container
            (H.264 for .mp4 when available and the size is even, else MPEG-4 Part 2).
        quality: MPEG-4 quantiser (2 best .. 31 worst) / x264 CRF = 4 * quality.

    Note: GIF is written by Pillow, which merges identical consecutive frames into one.

    Returns:
        The path written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise VideoError(f"{path}: frames must be a non-empty (T, H, W, 3) uint8 array, got "
                         f"{frames.shape} {frames.dtype}")
    if fps <= 0:
        raise VideoError(f"{path}: fps must be positive, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    t, h, w, _ = frames.shape
    if ext == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    name, options = (codec, {}) if codec else _choose_codec(ext, w, h)
    if name == "libx264":
        options = {"crf": str(4 * int(quality)), "preset": "veryfast", **options}
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream(name, rate=rate, options=options)
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            if name == "mpeg4":
                if ext == ".avi":
                    stream.codec_tag = "XVID"
                stream.codec_context.qmin = stream.codec_context.qmax = int(quality)
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except av.FFmpegError as e:
        raise VideoError(f"{path}: could not encode {w}x{h} video with {name!r}: {e}") from None
    return path
