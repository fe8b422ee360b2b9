"""One video into the frame store: RGB JPEGs, flow JPEGs, and meta.json written last.

Each frame's RGB JPEG is written as it decodes, and the flow is computed over chunks of
``FLOW_CHUNK`` pairs as they fill, so the memory of an extraction does not grow with the video's
length (only the batched flow of ``tstam.extract.workers.run_batched`` gathers a video's grey
frames, for the device)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tstam.data import store
from tstam.flow import FlowConfig, iter_flow, quantize_flow, to_gray
from tstam.video import DecodeLimits, VideoError, iter_video, output_size, probe_video

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
        on_written: called with (``video_dir``, part) once a part is on disk: ``"rgb"`` (all the
            RGB JPEGs; the flow JPEGs of all but the last chunk are there too), then ``"flow"``
            (all the flow JPEGs; meta.json comes right after). Not called for the flow of an
            RGB-only extraction.

    Returns:
        The metadata written to ``meta.json``.

    Raises:
        VideoError: the video cannot be decoded, or has a single frame while flow is asked for.
            Nothing is left in ``video_dir`` in that case (nor the folder, if this call made it).
    """
    chunk: list[np.ndarray] = []  # grey frames whose flow is not written yet (the last starts the next chunk)
    written = 0

    def flush() -> None:  # the flow of the chunk's pairs to JPEGs; its last frame starts the next chunk
        nonlocal written, chunk
        if len(chunk) >= 2:
            fields = (quantize_flow(uv, flow.bound) for uv in iter_flow(np.stack(chunk), flow))
            written = store.write_flow(video_dir, fields, jpeg_quality, first=written + 1) + written
        chunk = chunk[-1:]

    def each_frame(gray: np.ndarray) -> None:
        if flow is not None:
            chunk.append(gray)
            if len(chunk) > FLOW_CHUNK:
                flush()

    with _cleared_on_error(Path(video_dir)):
        _gray, meta = _decode_and_write(src, video_dir, flow=flow, size=size, short_side=short_side,
                                        max_frames=max_frames, jpeg_quality=jpeg_quality, strict=strict,
                                        limits=limits, each=each_frame)
        if on_written is not None:
            on_written(Path(video_dir), "rgb")
        if flow is not None:
            flush()
            meta["flow_frames"] = written
            if on_written is not None:
                on_written(Path(video_dir), "flow")
        store.write_meta(video_dir, meta)
    return meta


FLOW_CHUNK = 64  # pairs whose flow is computed at once while extracting: the frames held are bounded by it


@contextlib.contextmanager
def _cleared_on_error(video_dir: Path) -> Iterator[None]:
    """A video that fails leaves nothing: what it wrote is removed, and its folder if it made it."""
    existed = video_dir.exists()
    try:
        yield
    except BaseException:
        if video_dir.is_dir():
            store.clear_partial(video_dir)
            if not existed and not any(video_dir.iterdir()):
                video_dir.rmdir()
        raise


def decode_and_write_rgb(src: str | Path, video_dir: str | Path, *, flow: FlowConfig | None,
                         size: tuple[int, int] | None, short_side: int | None, max_frames: int | None,
                         jpeg_quality: int, strict: bool, limits: DecodeLimits | None = None,
                         on_written: OnWritten | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """First half of ``extract_video`` for the batched flow (arguments as there): decode, clear the
    folder, write the RGB JPEGs as the frames come (then ``on_written(video_dir, "rgb")``). Returns
    the (T, H, W) uint8 grey frames (the flow's input) and the metadata, ``flow_frames`` still 0."""
    with _cleared_on_error(Path(video_dir)):
        gray, meta = _decode_and_write(src, video_dir, flow=flow, size=size, short_side=short_side,
                                       max_frames=max_frames, jpeg_quality=jpeg_quality, strict=strict,
                                       limits=limits, each=None)
    if on_written is not None:
        on_written(Path(video_dir), "rgb")
    return gray, meta


def _decode_and_write(src: str | Path, video_dir: str | Path, *, flow: FlowConfig | None,
                      size: tuple[int, int] | None, short_side: int | None, max_frames: int | None,
                      jpeg_quality: int, strict: bool, limits: DecodeLimits | None,
                      each: Callable[[np.ndarray], None] | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode frame by frame, writing each RGB JPEG as it comes; ``each`` gets each grey frame,
    else they are kept and returned ((T, H, W) uint8; empty when ``each`` is given)."""
    src, video_dir = Path(src), Path(video_dir)
    try:
        probe = probe_video(src)  # the header: a size JPEG cannot store is refused before decoding
    except VideoError:
        probe = None              # iter_video says what is wrong with the file
    if probe is not None and probe["width"] and probe["height"]:
        store.check_jpeg_size(*output_size(int(probe["width"]), int(probe["height"]), size, short_side), str(src))
    info: dict[str, Any] = {}
    kept: list[np.ndarray] = []
    t = 0
    width = height = 0
    for t, rgb in enumerate(iter_video(src, size=size, short_side=short_side, max_frames=max_frames,
                                       min_frames=2 if flow is not None else 1, strict=strict, limits=limits,
                                       info=info), 1):
        if t == 1:
            video_dir.mkdir(parents=True, exist_ok=True)
            store.clear_partial(video_dir)
            height, width = rgb.shape[:2]
        store.write_rgb(video_dir, rgb[None], jpeg_quality, first=t)
        gray = to_gray(rgb[None])[0]
        if each is None:
            kept.append(gray)
        else:
            each(gray)
    meta = {
        "video_id": video_dir.name,
        "source": str(src),
        "frames": int(t),
        "declared_frames": int(info["declared"]),  # the header's count (0: none declared)
        "flow_frames": 0,
        "fps": float(info["fps"]),
        "width": int(width),
        "height": int(height),
        "flow": flow.describe() if flow is not None else None,
        "settings": extraction_settings(size, short_side, max_frames, jpeg_quality),
    }
    gray_all = np.stack(kept) if kept else np.zeros((0, height, width), np.uint8)
    return gray_all, meta
