"""One video into the frame store: RGB JPEGs, flow JPEGs, and meta.json written last."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tstam.data import store
from tstam.flow import FlowConfig, iter_flow, quantize_flow
from tstam.video import DecodeLimits, VideoError, output_size, probe_video, read_video

__all__ = ["extract_video", "decode_and_write_rgb", "extraction_settings", "OnWritten"]

OnWritten = Callable[[Path, str], None]  # (video folder, "rgb" or "flow"): that part of the video is on disk


def extraction_settings(size: tuple[int, int] | None, short_side: int | None, max_frames: int | None,
              jpeg_quality: int) -> dict[str, Any]:
    """What besides the flow decides a store's bytes; recorded in meta.json as ``settings``."""
    return {"size": list(size) if size else None, "short_side": short_side, "max_frames": max_frames,
            "jpeg_quality": int(jpeg_quality)}


def extract_video(
    src: str | Path,
    video_dir: str | Path,
    *,
    flow: FlowConfig | None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
    jpeg_quality: int = 95,
    strict: bool = False,
    limits: DecodeLimits | None = None,
    on_written: OnWritten | None = None,
) -> dict[str, Any]:
    """Extract one video into ``video_dir`` (made or cleared first); ``meta.json`` is written last.

    Args:
        src: the video file.
        video_dir: its frame-store folder, normally ``<out>/<video_id>``.
        flow: flow algorithm, parameters and bound; None extracts RGB only.
        size: ``(W, H)`` to resize to on decode (e.g. ``(340, 256)``); flow is computed at that size.
        short_side: resize so that the shorter side has this length (instead of ``size``).
        max_frames: extract only the first frames (tests, previews).
        jpeg_quality: JPEG quality of RGB and flow images (OpenCV's default, 95).
        strict: refuse a video that decodes fewer frames than its header declares (by default a
            shortfall of ``tstam.video.allowed_shortfall`` frames is accepted; meta.json records both).
        limits: the decoding budget (default ``tstam.video.DecodeLimits()``); a video over it fails.
        on_written: called with (``video_dir``, part) once a part is on disk: ``"rgb"`` (the RGB
            JPEGs), then ``"flow"`` (the flow JPEGs; meta.json comes right after). Not called for
            the flow of an RGB-only extraction.

    Returns:
        The metadata written to ``meta.json``.

    Raises:
        VideoError: the video cannot be decoded, or has a single frame while flow is asked for.
            Nothing is written to ``video_dir`` in that case.
    """
    frames, meta = decode_and_write_rgb(src, video_dir, flow=flow, size=size, short_side=short_side,
                                        max_frames=max_frames, jpeg_quality=jpeg_quality, strict=strict,
                                        limits=limits, on_written=on_written)
    if flow is not None:
        fields = (quantize_flow(uv, flow.bound) for uv in iter_flow(frames, flow))  # (H, W, 2) uint8 each
        meta["flow_frames"] = store.write_flow(video_dir, fields, jpeg_quality)
        if on_written is not None:
            on_written(Path(video_dir), "flow")
    store.write_meta(video_dir, meta)
    return meta


def decode_and_write_rgb(src: str | Path, video_dir: str | Path, *, flow: FlowConfig | None,
                         size: tuple[int, int] | None, short_side: int | None, max_frames: int | None,
                         jpeg_quality: int, strict: bool, limits: DecodeLimits | None = None,
                         on_written: OnWritten | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """First half of ``extract_video`` (arguments as there): decode, clear the folder, write the RGB
    JPEGs (then ``on_written(video_dir, "rgb")``). Returns the (T, H, W, 3) RGB frames and the
    metadata, ``flow_frames`` still 0."""
    src, video_dir = Path(src), Path(video_dir)
    try:
        info = probe_video(src)  # the header: a size JPEG cannot store is refused before decoding
    except VideoError:
        info = None              # read_video says what is wrong with the file
    if info is not None and info["width"] and info["height"]:
        store.check_jpeg_size(*output_size(int(info["width"]), int(info["height"]), size, short_side), str(src))
    clip = read_video(src, size=size, short_side=short_side, max_frames=max_frames,
                      min_frames=2 if flow is not None else 1, strict=strict, limits=limits)
    frames = clip.frames  # (T, H, W, 3) RGB
    video_dir.mkdir(parents=True, exist_ok=True)
    store.clear_partial(video_dir)
    store.write_rgb(video_dir, frames, jpeg_quality)
    if on_written is not None:
        on_written(video_dir, "rgb")
    meta = {
        "video_id": video_dir.name,
        "source": str(src),
        "frames": int(frames.shape[0]),
        "declared_frames": int(clip.declared_frames),  # the header's count (0: none declared)
        "flow_frames": 0,
        "fps": float(clip.fps),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "flow": flow.describe() if flow is not None else None,
        "settings": extraction_settings(size, short_side, max_frames, jpeg_quality),
    }
    return frames, meta
