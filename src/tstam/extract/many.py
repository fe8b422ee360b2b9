"""Many videos: the plan (skip, redo, refuse), the workers, the report."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tstam.data import store
from tstam.errors import FrameStoreError, OutputError
from tstam.files import check_writable_dir
from tstam.flow import FlowConfig
from tstam.video import DecodeLimits

from .sources import select_shard
from .video import OnWritten, extraction_settings
from .workers import flow_device, run_batched, run_jobs

__all__ = ["ExtractReport", "extract_many"]

log = logging.getLogger(__name__)


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


def _differences(meta: dict[str, Any], flow: FlowConfig | None, settings: dict[str, Any]) -> list[str]:
    """How a finished video's recorded settings differ from the requested ones (empty: the same)."""
    want = {"flow": flow.describe() if flow is not None else None}
    if "settings" in meta:  # stores written before tstam recorded them: only the flow can be compared
        want.update(settings)
    have = {"flow": meta.get("flow"), **(meta.get("settings") or {})}
    return [f"{k} {have.get(k)!r} (requested {v!r})" for k, v in want.items() if have.get(k) != v]


def _plan(sources: Sequence[str | Path] | Mapping[Path, str], out_root: Path, shard: tuple[int, int], flow: FlowConfig | None,
          settings: dict[str, Any], force: bool, report: ExtractReport) -> list[tuple[Path, Path]]:
    """The (source, folder) pairs to extract; finished videos are skipped, unless their recorded
    settings differ: then they are redone with ``force`` and refused without it."""
    todo: list[tuple[Path, Path]] = []
    differ: list[tuple[Path, list[str]]] = []
    for src, vid in select_shard(sources, shard).items():
        vdir = out_root / vid
        if not store.is_complete(vdir):
            todo.append((src, vdir))
            continue
        try:
            diff = _differences(store.read_meta(vdir), flow, settings)
        except FrameStoreError as e:
            diff = [str(e)]
        if not diff:
            report.skipped.append(vdir.name)
        elif force:
            todo.append((src, vdir))
        else:
            differ.append((vdir, diff))
    if differ:
        vdir, diff = differ[0]
        raise OutputError(f"{out_root}: {len(differ)} finished video(s) were extracted with other settings, e.g. "
                          f"{vdir.name}: {'; '.join(diff)}; rerun with --force to re-extract them with the "
                          "settings given, or extract into another --out")
    return todo


def extract_many(
    sources: Sequence[str | Path] | Mapping[Path, str],
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
    limits: DecodeLimits | None = None,
    force: bool = False,
    device: str | None = None,
    flow_batch: int | None = None,
    progress: bool | None = None,
    on_result: Callable[[str, str | None], None] | None = None,
    on_written: OnWritten | None = None,
) -> ExtractReport:
    """Extract many videos into ``out_root/<video_id>``: parallel, resumable, shardable.

    Args:
        sources: ``{video file: id}`` (``collect_sources``), or video files (their ids then from
            ``tstam.data.records.video_ids``).
        out_root: the frame-store root (checked to be writable before any work).
        workers: worker processes (1: run in this process); each ends if this process is killed.
        shard: ``(i, n)``: extract only the videos of shard i of n (``shard_of``).
        flow: flow settings; None extracts RGB only. Pass ``FlowConfig()`` for TV-L1.
        size, short_side, max_frames, jpeg_quality, strict, limits: as ``extract_video``.
        force: re-extract finished videos whose recorded settings differ (else that is refused).
        device: with ``tvl1_torch`` flow, compute it in this process on this device (``cuda``,
            ``cuda:N``, ``cpu``), in batches of frame pairs across videos, while ``workers``
            processes decode (``tstam.extract_batched``); None: each worker computes its video's flow.
        flow_batch: pairs per flow batch on ``device`` (default: from its free memory).
        progress: show a progress bar (None: only when stderr is a terminal).
        on_result: called with (video id, error or None) after each video (e.g. for logging).
        on_written: called with (video folder, part) once a part of a video is on disk: ``"rgb"``
            (its RGB JPEGs), then ``"flow"`` (its flow JPEGs; meta.json, which marks the video
            complete, comes right after). It runs in the process that wrote the part: this one
            with ``workers=1`` and no ``device``, else a worker process, so it must then be
            picklable (a module-level function, or a ``functools.partial`` of one). For progress
            within a video, and for tests that stop a run at a known point.

    Returns:
        ExtractReport: done, skipped (already complete), failed ``(file, reason)`` and short
        (fewer frames than declared, within the tolerance) videos.

    Raises:
        OutputError: ``out_root`` is not writable, another extraction is writing there (its lock,
            naming its pid), finished videos differ in settings without ``force``, or ``size``
            is beyond JPEG's 65,535 pixels a side.
        InputError: ``device`` is not valid (or given without ``tvl1_torch`` flow).
    """

    dev = flow_device(flow, device)
    if flow_batch is not None and flow_batch < 1:
        raise ValueError(f"flow_batch={flow_batch} (--flow-batch) is not valid; expected a number of pairs >= 1")
    if size is not None:
        store.check_jpeg_size(int(size[0]), int(size[1]), f"--size {size[0]}x{size[1]}")
    if short_side is not None and short_side > store.JPEG_MAX_SIDE:
        store.check_jpeg_size(short_side, short_side, f"--short-side {short_side}")
    out_root = check_writable_dir(out_root)
    with _extraction_lock(out_root):
        return _extract(sources, out_root, workers, shard, flow, size, short_side, max_frames, jpeg_quality, strict,
                        limits, force, dev, flow_batch, progress, on_result, on_written)


LOCK_NAME = ".tstam-extract.lock"  # in --out: held (fcntl) by the extraction writing there


@contextlib.contextmanager
def _extraction_lock(out_root: Path) -> Iterator[None]:
    """Hold the frame store's lock for the run: a second extraction into the same ``--out`` is
    refused naming the first one's process. The lock is the kernel's (fcntl), so it ends with its
    process however that ends (a SIGKILL or an OOM kill leave no stale lock); the empty file stays."""
    path = out_root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            holder = _lock_holder(fd)
            who = f"pid {holder}" if holder else "another process"
            raise OutputError(f"{out_root}: another tstam extract ({who}) is writing to this frame store (it holds "
                              f"{path}); wait for it to end, or give another --out") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_holder(fd: int) -> int | None:
    """The pid holding a write lock on ``fd``'s file (fcntl F_GETLK), or None."""
    fmt = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid
    size = struct.calcsize(fmt) + 4  # the C struct's tail padding
    try:
        got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(fmt, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(size, b"\0"))
        l_type, _, _, _, pid = struct.unpack(fmt, got[:struct.calcsize(fmt)])
    except OSError:
        return None
    return int(pid) if l_type != fcntl.F_UNLCK and pid > 0 else None


def _extract(sources: Sequence[str | Path], out_root: Path, workers: int, shard: tuple[int, int],
             flow: FlowConfig | None, size: tuple[int, int] | None, short_side: int | None,
             max_frames: int | None, jpeg_quality: int, strict: bool, limits: DecodeLimits | None, force: bool,
             dev: Any, flow_batch: int | None, progress: bool | None,
             on_result: Callable[[str, str | None], None] | None, on_written: OnWritten | None) -> ExtractReport:
    """``extract_many``'s run, with the store's lock held."""
    start = time.perf_counter()
    report = ExtractReport()
    settings = extraction_settings(size, short_side, max_frames, jpeg_quality)
    todo = _plan(sources, out_root, shard, flow, settings, force, report)
    log.info("%d video(s) in shard %d/%d: %d to extract, %d already complete",
             len(todo) + len(report.skipped), shard[0], shard[1], len(todo), len(report.skipped))
    kwargs = dict(flow=flow, size=size, short_side=short_side, max_frames=max_frames, jpeg_quality=jpeg_quality,
                  strict=strict, limits=limits, on_written=on_written)
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
        if dev is None:
            run_jobs(todo, kwargs, workers, record)
        else:
            run_batched(todo, kwargs, workers=workers, device=dev, batch_size=flow_batch, record=record)
    finally:
        bar.close()
    report.done.sort()
    report.seconds = time.perf_counter() - start
    return report
