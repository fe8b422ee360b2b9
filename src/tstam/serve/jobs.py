"""The bounded prediction pool of ``tstam serve``: one job per uploaded video.

A job is made when its request arrives (a private folder for the upload) and takes a slot of
the pool only once its video is uploaded (``start``): at most ``workers`` run and ``queue`` wait;
one more gets :class:`Busy` (the server answers 503 with ``Retry-After``), and so does a request
that arrives while every slot is taken, before it uploads anything. Uploads in progress are
bounded apart from the slots (``tstam.serve.guard``), so that slow uploaders cannot hold them.

Predictions run in ``workers`` threads that share the loaded models (decoding, flow and the
forward release the GIL), never on the server's event loop. A job ends with its answer, or is
stopped: over its time budget (``job_timeout`` from leaving the queue: 422), when its client
has gone (``cancel``: the request's connection closed; a job of ``POST /api/jobs`` not asked for
in ``poll_timeout`` seconds: 410), or when the server shuts down (503). A stopped job is
answered at once; a queued one gives its slot back at once, a running one at its next stage
boundary (decode, flow, model, pictures), where its thread stops. A watchdog thread checks the
budgets and the polls ten times a second. The threads are daemons, so that a stage that runs on
cannot hold the process at exit (``shutdown`` waits for it a bounded time).

Each job's upload lives in its own folder in the server's private work folder and is deleted as
soon as the answer is computed; the finished jobs (JSON and pictures) are kept in memory, the
oldest dropped past ``keep``.

No web-framework import here: this is plain Python around ``Recognizer.predict``.
"""
from __future__ import annotations

import errno
import logging
import math
import queue as queues
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tstam.errors import TstamError
from tstam.inference import Recognizer
from tstam.serve.options import Options
from tstam.video import DecodeLimits

__all__ = ["Busy", "Job", "PredictionPool", "PICTURES", "NO_SPACE", "no_space_message"]

log = logging.getLogger(__name__)

PICTURES = {"attention.png": "image/png", "animation.gif": "image/gif"}  # picture name -> media type
_draw_lock = threading.Lock()  # matplotlib's pyplot keeps global state: one picture at a time
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the disk, a quota or the file size limit is full
WATCH_S = 0.1  # how often the watchdog looks at the budgets and the polls


def no_space_message(what: str, e: OSError) -> str:
    """The answer (507) when the server cannot store ``what``; its private path is not shown."""
    return f"the server has no room to store {what} ({e.strerror}); try again later, or send a smaller video"


class Busy(Exception):
    """Every slot is taken, or the server is shutting down; ``retry_after`` is a guess in seconds."""

    def __init__(self, retry_after: int, why: str = "all prediction slots are taken"):
        super().__init__(f"busy: {why}; retry in about {retry_after} s")
        self.retry_after = retry_after


class Stopped(Exception):
    """Raised in a job's thread at a stage boundary once the job was stopped (and answered)."""


@dataclass
class Job:
    """One video: its upload, progress and answer."""

    id: str                                         # random, unguessable
    folder: Path                                    # private folder of the upload (deleted after the answer)
    name: str = "upload"                            # the client's file name, display only, never a path
    options: Options = field(default_factory=Options)
    state: str = "uploading"                        # uploading -> queued -> running -> done | failed
    stages: list[dict[str, Any]] = field(default_factory=list)  # {"name", "stream", "seconds" (None: running)}
    result: dict[str, Any] | None = None         # Prediction.to_dict(...) plus "job"
    status: int = 200                               # HTTP status of the answer
    error: str | None = None                     # the problem, when failed
    pictures: dict[str, bytes] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    polled: bool = False                            # a job of POST /api/jobs: stopped when no one asks for it
    seen: float = field(default_factory=time.monotonic)  # when its client last asked for it
    started: float | None = None                 # when it left the queue (its time budget counts from here)
    slot: bool = False                              # it holds a slot of the pool (queued or running)
    answered: Future = field(default_factory=Future)  # done once the answer (result or error) is known
    _t: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.answered.set_running_or_notify_cancel()  # a running Future cannot be cancelled, only answered

    def stage(self, name: str, stream: str | None = None) -> None:
        """Close the running stage and open ``name`` (a None name only closes)."""
        now = time.monotonic()
        if self.stages and self.stages[-1]["seconds"] is None:
            self.stages[-1]["seconds"] = round(now - self._t, 4)
        if name:
            self.stages.append({"name": name, "stream": stream, "seconds": None})
        self._t = now

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (GET /api/jobs/{id})."""
        return {"id": self.id, "name": self.name, "state": self.state, "stages": [dict(s) for s in self.stages],
                "status": self.status, "error": self.error, "result": self.result}


class PredictionPool:
    """``workers`` prediction threads, ``queue`` waiting jobs, time budgets and cancelling.

    Args:
        recognizer: the loaded streams (shared by the threads).
        workdir: the server's private folder; uploads go to ``workdir/uploads/<random>/``.
        workers: predictions at once.
        queue: uploaded videos waiting for a worker.
        keep: finished jobs kept for the page.
        job_timeout: seconds a prediction may run.
        poll_timeout: seconds a polled job may go without a question from its client.
        limits: the decoding budget of one upload (default ``tstam.video.DecodeLimits()``).
    """

    def __init__(self, recognizer: Recognizer, workdir: Path, *, workers: int = 1, queue: int = 4, keep: int = 16,
                 job_timeout: float = 120.0, poll_timeout: float = 30.0, limits: DecodeLimits | None = None):
        self.recognizer = recognizer
        self.limits = limits
        self.uploads = Path(workdir) / "uploads"
        self.uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.workers, self.queue, self.keep = workers, queue, keep
        self.job_timeout, self.poll_timeout = job_timeout, poll_timeout
        self.capacity = workers + queue
        self._lock = threading.Lock()
        self._held = 0                                   # slots taken: queued or running
        self._closing = False
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._seconds = 2.0                              # running mean of a job's time, for Retry-After
        self._todo: queues.SimpleQueue[tuple[Job, Path] | None] = queues.SimpleQueue()
        self._stop_watch = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"tstam-predict-{i}", daemon=True)
                         for i in range(workers)]
        self._watchdog = threading.Thread(target=self._watch, name="tstam-predict-watch", daemon=True)
        for t in (*self._threads, self._watchdog):
            t.start()

    def open(self) -> Job:
        """A new job for a request about to upload, with its private folder; it holds no slot yet.

        Raises:
            Busy: every slot is taken now (the upload would be for nothing), or shutting down.
        """
        with self._lock:
            busy = self._refusal()
            if busy is None:
                job = Job(id=secrets.token_urlsafe(12), folder=self.uploads / secrets.token_hex(8))
                self._jobs[job.id] = job
                self._evict()
        if busy is not None:
            raise busy
        job.folder.mkdir(mode=0o700)
        job.stage("upload")
        return job

    def abandon(self, job: Job, status: int, message: str) -> None:
        """A request that ends before its job starts (bad upload or options, the client left)."""
        self._answer(job, status=status, error=message)
        self._release(job)

    def start(self, job: Job, video: Path, *, polled: bool = False) -> None:
        """Queue the prediction of ``video`` (inside ``job.folder``): the job takes a slot now.
        ``polled``: its client asks for it (``get``), and it is stopped when no one does.

        Raises:
            Busy: every slot is taken (others finished their uploads first), or shutting down;
                the job is abandoned with that answer.
        """
        with self._lock:
            busy = self._refusal()
            if busy is None:
                self._held += 1
                job.slot, job.state, job.polled, job.seen = True, "queued", polled, time.monotonic()
                job.stage("queue")
        if busy is not None:
            self.abandon(job, 503, str(busy))
            raise busy
        self._todo.put((job, video))

    def get(self, job_id: str) -> Job | None:
        """The job ``job_id``; its client asks for it, so a polled job lives on."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.seen = time.monotonic()
            return job

    def cancel(self, job: Job, status: int, message: str) -> bool:
        """Stop ``job``, answered with ``message``: a queued job gives its slot back now, a
        running one at its next stage boundary. False if it had its answer already."""
        if not self._answer(job, status=status, error=message):
            return False
        log.info("job %s (%s) stopped: %s", job.id, job.name, message)
        with self._lock:
            queued = job.slot and job.started is None
        if queued:
            self._release(job)
        return True

    def stats(self) -> dict[str, Any]:
        """The pool's load: slots taken (``busy``) and free, running, queued, and stopped jobs whose
        thread is still in its stage (``stopping``)."""
        with self._lock:
            held = [j for j in self._jobs.values() if j.slot]
            running = [j for j in held if j.started is not None]
            stopping = sum(j.finished for j in running)
            return {"busy": self._held, "free": self.capacity - self._held, "capacity": self.capacity,
                    "workers": self.workers, "queue": self.queue, "running": len(running) - stopping,
                    "queued": len(held) - len(running), "stopping": stopping, "closing": self._closing}

    def begin_shutdown(self) -> None:
        """No new jobs; the queued ones are answered now (503), the running ones go on."""
        with self._lock:
            self._closing = True
            queued = [j for j in self._jobs.values() if j.slot and j.started is None]
        for job in queued:
            self.cancel(job, 503, "the server is shutting down; the video was not predicted")

    def stop_all(self) -> None:
        """No new jobs, and every job is answered now (503); running ones stop at their next stage."""
        self.begin_shutdown()
        with self._lock:
            running = [j for j in self._jobs.values() if j.slot]
        for job in running:
            self.cancel(job, 503, "the server shut down while predicting")

    def shutdown(self, timeout: float = 1.0) -> bool:
        """Stop every job (``stop_all``) and wait up to ``timeout`` s for the threads; False if
        one is still in a stage (a daemon thread: it ends with the process)."""
        self.stop_all()
        self._stop_watch.set()
        for _ in self._threads:
            self._todo.put(None)
        end = time.monotonic() + timeout
        for t in (*self._threads, self._watchdog):
            t.join(max(0.0, end - time.monotonic()))
        left = [t.name for t in self._threads if t.is_alive()]
        if left:
            log.warning("%d prediction(s) still in a stage after %g s; not waiting for them", len(left), timeout)
        return not left

    def _refusal(self) -> Busy | None:
        """Busy if no job may take a slot now (caller holds the lock)."""
        if not self._closing and self._held < self.capacity:
            return None
        retry = max(1, math.ceil(self._seconds * max(self._held, 1) / self.workers))
        return Busy(retry, "the server is shutting down") if self._closing else Busy(retry)

    def _answer(self, job: Job, *, result: dict[str, Any] | None = None, status: int = 200,
                error: str | None = None) -> bool:
        """Settle ``job`` with its result or error, once: False if it was settled already."""
        with self._lock:
            settled = self._settle(job, result, status, error)
        if settled:
            job.answered.set_result(None)
        return settled

    @staticmethod
    def _settle(job: Job, result: dict[str, Any] | None, status: int, error: str | None) -> bool:
        """(caller holds the lock)"""
        if job.finished:
            return False
        job.stage("")
        if result is not None:
            job.result, job.state = result, "done"
        else:
            job.state, job.status, job.error = "failed", status, error
        return True

    def _over_budget(self, job: Job) -> str:
        return (f"{job.name}: the prediction was stopped after {self.job_timeout:g} s, the server's time budget "
                "for one video (tstam serve --job-timeout); send a shorter or smaller video")

    def _checkpoint(self, job: Job, name: str, stream: str | None = None) -> None:
        """A stage boundary in the job's thread: go on to stage ``name`` (""; the work is done),
        or stop here."""
        if name and job.started is not None and time.monotonic() - job.started > self.job_timeout:
            self.cancel(job, 422, self._over_budget(job))  # no stage starts after the deadline
        with self._lock:
            if job.finished:
                raise Stopped
            job.stage(name, stream)

    def _watch(self) -> None:
        """The watchdog: answers a job over its budget, stops a polled job no one asks for."""
        while not self._stop_watch.wait(WATCH_S):
            now = time.monotonic()
            with self._lock:
                live = [j for j in self._jobs.values() if j.slot and not j.finished]
            for job in live:
                if job.started is not None and now - job.started > self.job_timeout:
                    self.cancel(job, 422, self._over_budget(job))
                elif job.polled and now - job.seen > self.poll_timeout:
                    self.cancel(job, 410, f"{job.name}: no one asked for this job for {self.poll_timeout:g} s "
                                          "(tstam serve --poll-timeout), so it was dropped; upload the video again")

    def _evict(self) -> None:
        """Drop the oldest finished jobs past ``keep`` (caller holds the lock)."""
        done = [j for j in self._jobs.values() if j.finished and not j.slot]
        for j in done[: max(0, len(done) - self.keep)]:
            del self._jobs[j.id]

    def _release(self, job: Job) -> None:
        """The job's folder goes, and its slot if it holds one."""
        shutil.rmtree(job.folder, ignore_errors=True)
        with self._lock:
            if job.slot:
                job.slot = False
                self._held -= 1
            if job.state == "done":
                self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - job.created)
            self._evict()

    def _work(self) -> None:
        while (item := self._todo.get()) is not None:
            job, video = item
            with self._lock:
                if job.finished:  # stopped while queued: its slot was given back then
                    continue
                job.started, job.state = time.monotonic(), "running"
            try:
                self._run(job, video)
            finally:
                self._release(job)

    def _run(self, job: Job, video: Path) -> None:
        opts = job.options
        try:
            pred = self.recognizer.predict(video, num_crops=opts.crops, weights=opts.weights,
                                           keep_video=opts.pictures, limits=self.limits,
                                           on_stage=lambda name, stream: self._checkpoint(job, name, stream))
            pred.source = job.name
            result = pred.to_dict(k=opts.top_k, attention=opts.attention)
            if opts.pictures:
                self._checkpoint(job, "pictures")
                job.pictures = self._draw(pred, job.folder)
                result["pictures"] = {n: f"/api/jobs/{job.id}/{n}" for n in job.pictures}
            pred.video = None
            self._checkpoint(job, "")  # closes the last stage; a job stopped meanwhile keeps its answer
            result["job"] = {"id": job.id, "crops": opts.crops, "stages": [dict(s) for s in job.stages],
                             "seconds": round(time.monotonic() - job.created, 4)}
            self._answer(job, result=result)
        except Stopped:
            log.info("job %s (%s): its thread stopped at a stage boundary", job.id, job.name)
        except TstamError as e:  # VideoError (unreadable, truncated, empty, not a video), too short or too small
            self._answer(job, status=422, error=str(e).replace(str(video), job.name))
            log.info("job %s (%s): %s", job.id, job.name, job.error)
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            self._answer(job, status=507, error=no_space_message(f"the pictures of {job.name}", e))
            log.warning("job %s (%s): %s", job.id, job.name, e)
        except Exception as e:  # a bug: the server stays up and says so
            log.exception("job %s (%s) failed", job.id, job.name)
            self._answer(job, status=500, error=f"internal error while predicting {job.name}: {type(e).__name__}: {e}")

    def _draw(self, pred: Any, folder: Path) -> dict[str, bytes]:
        from tstam.visualize import visualize_video

        with _draw_lock:
            pics = visualize_video(self.recognizer, pred.source, folder, prediction=pred, animation=".gif",
                                   name="result")
        out = {"attention.png": pics.png.read_bytes()}
        if pics.animation is not None:
            out["animation.gif"] = pics.animation.read_bytes()
        return out
