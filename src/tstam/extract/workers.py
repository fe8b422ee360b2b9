"""How ``tstam extract`` runs its videos in worker processes (docs/design.md, Data flow).

Two ways, chosen by ``extract_many(device=...)``:

- per video (``run_jobs``): each of ``workers`` processes takes one video at a time, decodes it,
  writes its RGB JPEGs, computes its flow (OpenCV, or ``tvl1_torch`` on one core) and writes the
  flow JPEGs and meta.json. Parallelism is one video per core.
- batched (``run_batched``: ``tvl1_torch`` with a ``device``, e.g. a GPU): the workers decode
  videos, write their RGB JPEGs and send back the grey frames; this process gathers the frame
  pairs of many videos into batches of one frame size, computes and quantises their flow on the
  device (``tstam.flow.flow_pairs``), and hands each finished video back to a worker, which
  writes its flow JPEGs and then its meta.json. Decoding runs while the device computes: at most
  ``2 x workers`` videos are being decoded, and once as many wait to be written the next batch
  waits for them, so host memory holds those videos' frames plus about one batch of pairs. A
  CUDA out-of-memory error halves the batch.

Every worker runs OpenCV and torch on one thread and ends when this process is gone
(``tstam.watchdog.exit_with``). A video that fails is reported through ``record`` while the
others go on; its meta.json is written last, so a killed run resumes as before.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tstam.data import store
from tstam.errors import InputError, TstamError
from tstam.flow import FlowConfig, flow_pairs, to_gray
from tstam.watchdog import exit_with

from .pool import run_each
from .video import OnWritten, decode_and_write_rgb, extract_video

__all__ = ["run_jobs", "run_batched", "flow_device"]

log = logging.getLogger(__name__)

Record = Callable[[Path, str, int, int, "str | None"], None]  # (source, folder, frames, declared, error)
Todo = list[tuple[Path, Path]]  # (video file, frame-store folder)
# a bad video, folder or output (tstam's user errors, an OSError, OpenCV refusing a frame): reported, the others go
# on; anything else is a bug and ends the extraction
JOB_ERRORS = (TstamError, OSError, cv2.error)
_DIED = "the worker process died (crash or killed)"


def _init_worker(parent: int) -> None:
    cv2.setNumThreads(1)  # one video per core; see tstam.extract's docstring
    import torch

    torch.set_num_threads(1)  # tvl1_torch in a worker: one thread, as OpenCV
    exit_with(parent)     # a killed extraction leaves no worker behind


def _pool(workers: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")  # no fork after OpenCV/torch threads started
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))


def _extract_job(src: str, video_dir: str, kwargs: dict[str, Any]) -> tuple[str, int, int, str | None]:
    """Run in a worker: (video_dir, frames, declared frames, error or None). Never raises for a bad video."""
    try:
        meta = extract_video(src, video_dir, **kwargs)
        return video_dir, int(meta["frames"]), int(meta["declared_frames"]), None
    except JOB_ERRORS as e:
        return video_dir, 0, 0, str(e)
    except MemoryError:
        return video_dir, 0, 0, f"{src}: out of memory while extracting"


def run_jobs(todo: Todo, kwargs: dict[str, Any], workers: int, record: Record) -> None:
    """Extract every (source, folder) pair in this process or in ``workers`` processes, whole videos.

    A worker that dies (killed, as by the kernel's OOM killer, or crashed) fails only the video it
    was on, named with how the worker ended; a new worker takes its place and the run goes on. An
    interrupt (Ctrl-C) ends every worker at once: the videos under way have no meta.json yet, so a
    rerun redoes them and skips the finished ones.
    """
    threads = cv2.getNumThreads()
    try:
        if workers <= 1:
            cv2.setNumThreads(1)  # as in the workers: the same bytes whatever the worker count
            for src, vdir in todo:
                record(src, *_extract_job(str(src), str(vdir), kwargs))
            return

        def died(item: tuple[str, str, dict[str, Any]], how: str) -> None:
            src, vdir, _ = item
            log.error("the worker extracting %s died (%s); a new worker goes on with the rest", src, how)
            record(Path(src), vdir, 0, 0, f"{src}: {_DIED}: {how} while extracting this video")

        run_each([(str(src), str(vdir), kwargs) for src, vdir in todo], job=_extract_job, init=_init_worker,
                 init_args=(os.getpid(),), workers=workers,
                 on_result=lambda item, result: record(Path(item[0]), *result), on_death=died)
    finally:
        cv2.setNumThreads(threads)


def flow_device(flow: FlowConfig | None, device: str | None):
    """The ``torch.device`` of batched ``tvl1_torch`` flow, or None (flow in the workers).

    Raises:
        InputError: ``device`` is not valid (``tstam.device.resolve_device``) or is given for
            another flow algorithm.
    """
    if device is None:
        return None
    if flow is None or flow.algorithm != "tvl1_torch":
        what = "RGB-only extraction" if flow is None else f"flow {flow.algorithm!r}"
        raise InputError(f"device {device!r} is for --flow tvl1_torch (flow in batches on that device); "
                         f"{what} runs in the worker processes on the CPU: leave --device out")
    from tstam.device import resolve_device

    return resolve_device(device)


# --- batched: decoding in the workers, flow on the device --------------------------------------


def _decode_job(src: str, video_dir: str, kwargs: dict[str, Any]) -> tuple[np.ndarray | None, dict[str, Any] | str]:
    """Run in a worker: decode, write the RGB JPEGs; (grey frames (T, H, W) uint8, metadata) or
    (None, error)."""
    try:
        frames, meta = decode_and_write_rgb(src, video_dir, **kwargs)
        return to_gray(frames), meta
    except JOB_ERRORS as e:
        return None, str(e)
    except MemoryError:
        return None, f"{src}: out of memory while decoding"


def _write_job(video_dir: str, fields: np.ndarray, meta: dict[str, Any], jpeg_quality: int,
               on_written: OnWritten | None) -> str | None:
    """Run in a worker: the flow JPEGs, then meta.json (last); the error, or None."""
    try:
        meta["flow_frames"] = store.write_flow(video_dir, fields, jpeg_quality)
        if on_written is not None:
            on_written(Path(video_dir), "flow")
        store.write_meta(video_dir, meta)
        return None
    except JOB_ERRORS as e:
        return str(e)


@dataclass
class _Video:
    """A decoded video whose flow is being computed."""

    src: Path
    vdir: str
    gray: np.ndarray    # (T, H, W) uint8
    meta: dict[str, Any]
    fields: np.ndarray  # (T - 1, H, W, 2) uint8 quantised flow, filled in order
    done: int = 0       # pairs whose flow is in ``fields``

    @property
    def pairs(self) -> int:
        return len(self.fields)


class _Batcher:
    """The loop of ``run_batched``: keeps the workers decoding and the device busy."""

    def __init__(self, pool: ProcessPoolExecutor, kwargs: dict[str, Any], device, batch_size: int | None,
                 depth: int, record: Record):
        self.pool, self.kwargs, self.device, self.record, self.depth = pool, kwargs, device, record, depth
        self.flow: FlowConfig = kwargs["flow"]
        self.batch_size = batch_size
        self.sizes: dict[tuple[int, int], int] = {}  # (H, W) -> pairs per batch
        self.pending: dict[tuple[int, int], list[_Video]] = {}  # per frame size, in decoding order
        self.decoding: dict[Future, tuple[Path, Path]] = {}
        self.writing: dict[Future, _Video] = {}
        self.unsent: list[tuple[Path, Path]] = []  # taken from the list when the pool broke: sent again
        self.unwritten: list[_Video] = []           # flow done when the pool broke: sent again

    def run(self, todo: Iterator[tuple[Path, Path]]) -> None:
        while self.unwritten:
            self._write(self.unwritten.pop())
        while True:
            while len(self.decoding) < self.depth:
                item = self.unsent.pop() if self.unsent else next(todo, None)
                if item is None:
                    break
                try:
                    self.decoding[self.pool.submit(_decode_job, str(item[0]), str(item[1]), self.kwargs)] = item
                except BrokenProcessPool:
                    self.unsent.append(item)
                    raise
            key = self._next_batch()
            if key is not None:
                if len(self.writing) >= self.depth:
                    self._wait(self.writing)  # writing is behind: keep the finished videos bounded
                self._flow(key)
            elif self.decoding or self.writing:
                self._wait({**self.decoding, **self.writing})
            else:
                return

    def _next_batch(self) -> tuple[int, int] | None:
        """The frame size to run a batch of now: one with a full batch; else, when no more videos
        are coming or part-filled sizes hold over two batches of pairs, the one with the most."""
        left = {k: sum(v.pairs - v.done for v in vs) for k, vs in self.pending.items()}
        full = [k for k, n in left.items() if n >= self._batch(k)]
        if full:
            return full[0]
        if left and (not self.decoding or sum(left.values()) > 2 * max(self.sizes.values())):
            return max(left, key=left.__getitem__)
        return None

    def _batch(self, key: tuple[int, int]) -> int:
        if key not in self.sizes:
            from tstam.flow.tvl1_torch import batch_size_for, default_budget

            self.sizes[key] = self.batch_size or batch_size_for(default_budget(self.device), *key, self.flow.tvl1)
            log.info("flow of %dx%d frames on %s in batches of %d pairs", key[1], key[0], self.device, self.sizes[key])
        return self.sizes[key]

    def _wait(self, futures: dict[Future, Any]) -> None:
        finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
        for fut in finished:
            if fut in self.decoding:  # result() first: a dead worker leaves the video listed for fail_in_flight
                (gray, meta), (src, vdir) = fut.result(), self.decoding.pop(fut)
                if gray is None:
                    self.record(src, str(vdir), 0, 0, str(meta))
                    continue
                fields = np.empty((len(gray) - 1, *gray.shape[1:], 2), np.uint8)
                self.pending.setdefault(gray.shape[1:], []).append(_Video(src, str(vdir), gray, meta, fields))
            else:
                error, v = fut.result(), self.writing.pop(fut)
                self.record(v.src, v.vdir, v.meta["frames"], v.meta["declared_frames"], error)

    def _flow(self, key: tuple[int, int]) -> None:
        """One batch of pairs of ``key``-sized frames, from the oldest videos on; finished videos
        go to the workers for writing."""
        chunks, n, bs = [], 0, self._batch(key)
        for v in self.pending[key]:
            take = min(v.pairs - v.done, bs - n)
            chunks.append((v, v.done, v.done + take))
            n += take
            if n == bs:
                break
        prev = np.concatenate([v.gray[a:b] for v, a, b in chunks])          # (n, H, W)
        nxt = np.concatenate([v.gray[a + 1:b + 1] for v, a, b in chunks])   # (n, H, W)
        try:
            q = self._solve(prev, nxt, key)                                 # (n, H, W, 2) uint8
        except InputError as e:  # frames the flow cannot take (e.g. under 3x3): every video of the batch
            for v, _, _ in chunks:
                self.record(v.src, v.vdir, 0, 0, f"{v.src}: {e}")
                self._drop(key, v)
            return
        i = 0
        for v, a, b in chunks:
            v.fields[a:b] = q[i:i + b - a]
            v.done, i = b, i + b - a
            if v.done == v.pairs:  # the whole video: its flow JPEGs and meta.json to a worker
                fields = v.fields
                self._drop(key, v)
                v.fields = fields
                self._write(v)

    def _write(self, v: _Video) -> None:
        try:
            jpeg, hook = self.kwargs["jpeg_quality"], self.kwargs["on_written"]
            self.writing[self.pool.submit(_write_job, v.vdir, v.fields, v.meta, jpeg, hook)] = v
        except BrokenProcessPool:
            self.unwritten.append(v)
            raise

    def _drop(self, key: tuple[int, int], v: _Video) -> None:
        """``v`` leaves the pending videos (its frames and flow are freed here)."""
        self.pending[key].remove(v)
        if not self.pending[key]:
            del self.pending[key]
        v.gray = v.fields = None  # type: ignore[assignment]

    def _solve(self, prev: np.ndarray, nxt: np.ndarray, key: tuple[int, int]) -> np.ndarray:
        import torch

        while True:
            try:
                return flow_pairs(prev, nxt, self.flow, device=self.device, batch_size=self.sizes[key], quantize=True)
            except torch.cuda.OutOfMemoryError:
                if self.sizes[key] == 1:
                    raise
                self.sizes[key] //= 2
                torch.cuda.empty_cache()
                log.warning("%s out of memory: flow batches of %d pairs from now on", self.device, self.sizes[key])

    def fail_in_flight(self) -> None:
        """After a worker died (the pool is broken): report the videos the workers held, being
        decoded or written; one of them killed it. The decoded videos waiting for their flow and
        the videos not started go on with a new pool."""
        held = [*self.decoding.values(), *((v.src, Path(v.vdir)) for v in self.writing.values())]
        names = ", ".join(Path(src).name for src, _ in held)
        log.error("a worker died (crash or killed) while the workers held %s; they fail, a new pool goes on "
                  "with the rest", names)
        for src, vdir in held:
            self.record(src, str(vdir), 0, 0, f"{src}: {_DIED} while this video was being decoded or written, "
                                              f"with {len(held) - 1} other(s) ({names}); rerun to redo them")
        self.decoding.clear()
        self.writing.clear()


def run_batched(todo: Todo, kwargs: dict[str, Any], *, workers: int, device, batch_size: int | None,
                record: Record) -> None:
    """Extract the (source, folder) pairs with ``workers`` decoding processes and ``tvl1_torch``
    flow computed here on ``device`` in batches of ``batch_size`` pairs (default: from the free
    memory, ``tstam.flow.tvl1_torch.batch_size_for``). Writes the same files as ``extract_video``.
    A worker that dies fails the videos the workers held then; a new pool goes on with the rest."""
    pool = _pool(max(1, workers))
    batcher, rest = _Batcher(pool, kwargs, device, batch_size, 2 * max(1, workers), record), iter(todo)
    try:
        while True:
            try:
                batcher.run(rest)
                return
            except BrokenProcessPool:
                batcher.fail_in_flight()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = batcher.pool = _pool(max(1, workers))
    finally:
        pool.shutdown()
