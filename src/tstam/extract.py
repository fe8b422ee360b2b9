"""Video files -> frame store: RGB JPEGs, quantised flow JPEGs, metadata (DESIGN section 3).

``extract_video`` turns one video into ``<out>/<video_id>/img_00001.jpg ...``,
``flow_x_00001.jpg ...``, ``flow_y_00001.jpg ...`` (one fewer flow frame than RGB frame) and
writes ``meta.json`` last, atomically (``tstam.data.store.write_meta``): a folder without it is
unfinished, and ``extract_many`` redoes it from scratch. ``extract_many`` runs videos in parallel
worker processes, keeps to one shard of the list (``shard_of``: a hash of the video id, so each
video lands in exactly one shard on every machine), skips finished videos, and reports every
video that failed while the others finish.

Threads: each worker process calls ``cv2.setNumThreads(1)`` and decodes with one FFmpeg thread;
parallelism comes from running one video per core, which scales with the number of cores, while
OpenCV's TV-L1 gains little from its own threads (``benchmarks/bench_flow.py`` measures both).
The video id is the file stem (UCF101 / MMAction2 convention).
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tstam.data import store
from tstam.data.records import safe_relpath
from tstam.flow import FlowConfig, iter_flow, quantize_flow
from tstam.files import check_writable_dir
from tstam.video import VIDEO_EXTENSIONS, VideoError, read_video
from tstam.watchdog import exit_with

__all__ = [
    "ExtractReport", "video_id", "shard_of", "select_shard", "collect_sources", "extract_video", "extract_many",
    "parse_shard", "parse_size",
]

log = logging.getLogger(__name__)

_HMDB_SPLIT_NAME = re.compile(r"^(?P<cls>.+)_test_split\d+\.txt$")
_STORE_GLOBS = ("img_*.jpg", "flow_x_*.jpg", "flow_y_*.jpg", ".meta.*.tmp")


@dataclass
class ExtractReport:
    """What ``extract_many`` did with each video of its shard."""

    done: list[str] = field(default_factory=list)  # video ids extracted by this run
    skipped: list[str] = field(default_factory=list)  # video ids already complete
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    short: list[tuple[str, int, int]] = field(default_factory=list)  # (video id, declared, decoded) within tolerance
    frames: int = 0  # RGB frames written by this run
    seconds: float = 0.0  # wall-clock time

    @property
    def ok(self) -> bool:
        return not self.failed


def video_id(path: str | Path) -> str:
    """The frame-store folder name of a video: its file stem (``v_ApplyEyeMakeup_g01_c01``)."""
    return Path(path).stem


def shard_of(vid: str, num_shards: int) -> int:
    """Shard index of a video id: stable across machines, runs and Python versions (SHA-1)."""
    return int.from_bytes(hashlib.sha1(vid.encode("utf-8")).digest()[:8], "big") % num_shards


def select_shard(sources: Iterable[str | Path], shard: tuple[int, int]) -> list[Path]:
    """The sources whose video id falls in shard ``i`` of ``n`` (``shard = (i, n)``, 0 <= i < n)."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard={shard!r}: expected (i, n) with 0 <= i < n, e.g. (0, 4) for --shard 0/4")
    return [Path(s) for s in sources if shard_of(video_id(s), n) == i]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n (``--shard 0/4`` .. ``--shard 3/4``)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not int(m[1]) < int(m[2]):
        raise ValueError(f"shard {text!r} is not valid; expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m[1]), int(m[2])


def parse_size(text: str) -> tuple[int, int]:
    """``"340x256"`` -> ``(340, 256)`` (width x height)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m[1]) == 0 or int(m[2]) == 0:
        raise ValueError(f"size {text!r} is not valid; expected WIDTHxHEIGHT, e.g. 340x256")
    return int(m[1]), int(m[2])


def _read_list(path: Path, root: Path) -> list[Path]:
    """A split file (UCF101 ``Class/v.avi [label]``, HMDB51 ``v.avi 0|1|2``) or a list of paths."""
    hmdb = _HMDB_SPLIT_NAME.match(path.name)
    out = []
    data = path.read_bytes()
    if b"\0" in data[:65536]:
        raise ValueError(f"{path}: not a text list of videos (binary data); expected a folder, a video file "
                         f"({', '.join(VIDEO_EXTENSIONS)}), a split file or a text list")
    text = data.decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split()
        if not fields:
            continue
        if len(fields) > 1 and re.fullmatch(r"-?\d+", fields[-1]):
            fields = fields[:-1]  # trailing label / split flag
        raw = " ".join(fields)
        rel = safe_relpath(raw, where=f"{path}:{lineno}", root=root)
        if hmdb and "/" not in rel:  # HMDB51 split lines name the file only: <root>/<class>/<file>
            rel = f"{hmdb['cls']}/{rel}"
        out.append(root / rel)
    return out


def collect_sources(inp: str | Path, *, root: str | Path | None = None) -> list[Path]:
    """The video files named by a folder (searched recursively), a split file or a list file.

    Args:
        inp: a folder, a single video file, a UCF101/HMDB51 split file, or a text file with one
            video path per line (an optional trailing integer label is ignored).
        root: the folder that paths in a list are relative to (default: the list's folder).

    Returns:
        Sorted, de-duplicated paths. Files listed but missing are kept: extraction reports them.

    Raises:
        ValueError: ``inp`` does not exist, a listed path escapes ``root``, or two files share a
            video id (the frame store is flat: ``<out>/<video_id>``).
    """
    inp = Path(inp)
    if inp.is_dir():
        paths = [p for p in inp.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    elif inp.is_file() and inp.suffix.lower() in VIDEO_EXTENSIONS:
        paths = [inp]  # one video file, as predict takes it
    elif inp.is_file():
        paths = _read_list(inp, Path(root) if root is not None else inp.parent)
    else:
        raise ValueError(f"{inp}: no such folder or list file; expected a folder of videos, a split file or a list")
    paths = sorted(set(paths))
    by_id: dict[str, Path] = {}
    for p in paths:
        if video_id(p) in by_id:
            raise ValueError(f"{inp}: {by_id[video_id(p)]} and {p} share the video id {video_id(p)!r}; "
                             "video ids (file stems) must be unique in one frame store")
        by_id[video_id(p)] = p
    return paths


def _clear_partial(video_dir: Path) -> None:
    """Remove what an interrupted run left (only files of the store layout)."""
    for pattern in _STORE_GLOBS:
        for f in video_dir.glob(pattern):
            f.unlink()
    (video_dir / store.META_NAME).unlink(missing_ok=True)


def _imwrite(path: Path, image: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"{path}: could not write JPEG")


def _settings(size: tuple[int, int] | None, short_side: int | None, max_frames: int | None,
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

    Returns:
        The metadata written to ``meta.json``.

    Raises:
        VideoError: the video cannot be decoded, or has a single frame while flow is asked for.
            Nothing is written to ``video_dir`` in that case.
    """
    src, video_dir = Path(src), Path(video_dir)
    clip = read_video(src, size=size, short_side=short_side, max_frames=max_frames,
                      min_frames=2 if flow is not None else 1, strict=strict)
    frames = clip.frames  # (T, H, W, 3) RGB
    video_dir.mkdir(parents=True, exist_ok=True)
    _clear_partial(video_dir)
    for t, rgb in enumerate(frames, 1):
        _imwrite(video_dir / store.RGB_TMPL.format(t), rgb[:, :, ::-1], jpeg_quality)  # BGR for OpenCV
    n_flow = 0
    if flow is not None:
        for t, uv in enumerate(iter_flow(frames, flow), 1):  # uv: (H, W, 2) float32
            q = quantize_flow(uv, flow.bound)  # (H, W, 2) uint8
            _imwrite(video_dir / store.FLOW_X_TMPL.format(t), q[:, :, 0], jpeg_quality)
            _imwrite(video_dir / store.FLOW_Y_TMPL.format(t), q[:, :, 1], jpeg_quality)
            n_flow = t
    meta = {
        "video_id": video_dir.name,
        "source": str(src),
        "frames": int(frames.shape[0]),
        "declared_frames": int(clip.declared_frames),  # the header's count (0: none declared)
        "flow_frames": n_flow,
        "fps": float(clip.fps),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "flow": flow.describe() if flow is not None else None,
        "settings": _settings(size, short_side, max_frames, jpeg_quality),
    }
    store.write_meta(video_dir, meta)
    return meta


def _init_worker(parent: int) -> None:
    cv2.setNumThreads(1)  # one video per core; see the module docstring
    exit_with(parent)     # a killed extraction leaves no worker behind


def _extract_job(src: str, video_dir: str, kwargs: dict[str, Any]) -> tuple[str, int, int, str | None]:
    """Run in a worker: (video_dir, frames, declared frames, error or None). Never raises for a bad video."""
    try:
        meta = extract_video(src, video_dir, **kwargs)
        return video_dir, int(meta["frames"]), int(meta["declared_frames"]), None
    except (VideoError, ValueError, OSError, cv2.error) as e:
        return video_dir, 0, 0, str(e)
    except MemoryError:
        return video_dir, 0, 0, f"{src}: out of memory while extracting"


def _differences(meta: dict[str, Any], flow: FlowConfig | None, settings: dict[str, Any]) -> list[str]:
    """How a finished video's recorded settings differ from the requested ones (empty: the same)."""
    want = {"flow": flow.describe() if flow is not None else None}
    if "settings" in meta:  # stores written before tstam recorded them: only the flow can be compared
        want.update(settings)
    have = {"flow": meta.get("flow"), **(meta.get("settings") or {})}
    return [f"{k} {have.get(k)!r} (requested {v!r})" for k, v in want.items() if have.get(k) != v]


def _plan(sources: Sequence[str | Path], out_root: Path, shard: tuple[int, int], flow: FlowConfig | None,
          settings: dict[str, Any], force: bool, report: ExtractReport) -> list[tuple[Path, Path]]:
    """The (source, folder) pairs to extract; finished videos are skipped, unless their recorded
    settings differ: then they are redone with ``force`` and refused without it."""
    todo: list[tuple[Path, Path]] = []
    differ: list[tuple[Path, list[str]]] = []
    for src in select_shard(sources, shard):
        vdir = out_root / video_id(src)
        if not store.is_complete(vdir):
            todo.append((src, vdir))
            continue
        try:
            diff = _differences(store.read_meta(vdir), flow, settings)
        except ValueError as e:
            diff = [str(e)]
        if not diff:
            report.skipped.append(vdir.name)
        elif force:
            todo.append((src, vdir))
        else:
            differ.append((vdir, diff))
    if differ:
        vdir, diff = differ[0]
        raise ValueError(f"{out_root}: {len(differ)} finished video(s) were extracted with other settings, e.g. "
                         f"{vdir.name}: {'; '.join(diff)}; rerun with --force to re-extract them with the "
                         "settings given, or extract into another --out")
    return todo


def extract_many(
    sources: Sequence[str | Path],
    out_root: str | Path,
    *,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    flow: FlowConfig | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
    jpeg_quality: int = 95,
    strict: bool = False,
    force: bool = False,
    progress: bool | None = None,
    on_result: Callable[[str, str | None], None] | None = None,
) -> ExtractReport:
    """Extract many videos into ``out_root/<video_id>``: parallel, resumable, shardable.

    Args:
        sources: video files (see ``collect_sources``).
        out_root: the frame-store root (checked to be writable before any work).
        workers: worker processes (1: run in this process); each ends if this process is killed.
        shard: ``(i, n)``: extract only the videos of shard i of n (``shard_of``).
        flow: flow settings; None extracts RGB only. Pass ``FlowConfig()`` for TV-L1.
        size, short_side, max_frames, jpeg_quality, strict: as ``extract_video``.
        force: re-extract finished videos whose recorded settings differ (else that is refused).
        progress: show a progress bar (None: only when stderr is a terminal).
        on_result: called with (video id, error or None) after each video (e.g. for logging).

    Returns:
        ExtractReport: done, skipped (already complete), failed ``(file, reason)`` and short
        (fewer frames than declared, within the tolerance) videos.

    Raises:
        ValueError: ``out_root`` is not writable, or finished videos differ in settings without ``force``.
    """
    start = time.perf_counter()
    out_root = check_writable_dir(out_root)
    report = ExtractReport()
    settings = _settings(size, short_side, max_frames, jpeg_quality)
    todo = _plan(sources, out_root, shard, flow, settings, force, report)
    log.info("%d video(s) in shard %d/%d: %d to extract, %d already complete",
             len(todo) + len(report.skipped), shard[0], shard[1], len(todo), len(report.skipped))
    kwargs = dict(flow=flow, size=size, short_side=short_side, max_frames=max_frames, jpeg_quality=jpeg_quality,
                  strict=strict)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), unit="video", disable=None if progress is None else not progress,
               dynamic_ncols=True, smoothing=0.1)

    def record(src: Path, vdir: str, frames: int, declared: int, error: str | None) -> None:
        if error is None:
            report.done.append(Path(vdir).name)
            report.frames += frames
            if declared > frames:
                report.short.append((Path(vdir).name, declared, frames))
        else:
            report.failed.append((str(src), error))
            log.warning("failed: %s", error)
        if on_result is not None:
            on_result(Path(vdir).name, error)
        elapsed = max(time.perf_counter() - start, 1e-9)
        bar.set_postfix(frames_per_s=f"{report.frames / elapsed:.0f}", failed=len(report.failed), refresh=False)
        bar.update(1)

    try:
        _run_jobs(todo, kwargs, workers, record)
    finally:
        bar.close()
    report.done.sort()
    report.seconds = time.perf_counter() - start
    return report


def _run_jobs(todo: list[tuple[Path, Path]], kwargs: dict[str, Any], workers: int,
              record: Callable[..., None]) -> None:
    """Extract every (source, folder) pair in this process or in ``workers`` processes."""
    threads = cv2.getNumThreads()
    try:
        if workers <= 1:
            cv2.setNumThreads(1)  # as in the workers: the same bytes whatever the worker count
            for src, vdir in todo:
                record(src, *_extract_job(str(src), str(vdir), kwargs))
            return
        ctx = multiprocessing.get_context("spawn")  # no fork after OpenCV/torch threads started
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_extract_job, str(src), str(vdir), kwargs): (src, vdir) for src, vdir in todo}
            for fut in as_completed(futures):
                src, vdir = futures[fut]
                try:
                    record(src, *fut.result())
                except BrokenProcessPool:
                    record(src, str(vdir), 0, 0, f"{src}: the worker process died (crash or killed)")
    finally:
        cv2.setNumThreads(threads)
