"""The bounded prediction pool of ``tstam serve``: one job per uploaded video.

A request takes a slot when it arrives, before its body is read, and gives it back when its
answer is ready, so at most ``workers + queue`` uploads are on disk or in prediction at once;
one more gets :class:`Busy` (the server answers 503 with ``Retry-After``). Predictions run in a
thread pool of ``workers`` threads that share the loaded models (decoding, flow and the forward
release the GIL), never on the server's event loop. Each job's upload lives in its own folder
in the server's private work folder and is deleted as soon as the answer is computed; the
finished jobs (JSON and pictures) are kept in memory, the oldest dropped past ``keep``.

No web-framework import here: this is plain Python around ``Recognizer.predict``.
"""
from __future__ import annotations

import logging
import math
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tstam.errors import InputError, TstamError
from tstam.inference import Recognizer
from tstam.inference.recognizer import CENTRE_CROP
from tstam.models import check_weights

__all__ = ["Busy", "Options", "Job", "PredictionPool", "parse_options", "display_name", "upload_suffix",
           "PICTURES"]

log = logging.getLogger(__name__)

PICTURES = {"attention.png": "image/png", "animation.gif": "image/gif"}  # picture name -> media type
_FIELDS = ("file", "crops", "weights", "top_k", "attention", "pictures")  # the multipart fields a request may send
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_draw_lock = threading.Lock()  # matplotlib's pyplot keeps global state: one picture at a time


class Busy(Exception):
    """Every slot is taken; ``retry_after`` is a guess in seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"busy: all prediction slots are taken; retry in about {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Options:
    """What one request asks for (multipart fields besides ``file``)."""

    crops: int = 1                                  # 1, 3 or 10 crops per snippet
    weights: list[float] | None = None           # fusion (RGB, flow); None: the server's
    top_k: int = 5                                  # classes in "top"
    attention: bool = True                          # attention arrays in the JSON
    pictures: bool = False                          # draw the attention PNG and GIF (the page asks for them)


def parse_options(form: Mapping[str, Any], *, crops: int, top_k: int, pictures: bool) -> Options:
    """Options from a request's fields (strings); the keywords are the defaults.

    Raises:
        InputError: an unknown field or a bad value, naming it and what would be valid.
    """
    unknown = sorted(set(form) - set(_FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; expected {list(_FIELDS)}")

    def text(name: str) -> str | None:
        v = form.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str):
            raise InputError(f"field {name!r} must be a value, not a file")
        return v.strip()

    def integer(name: str, default: int) -> int:
        v = text(name)
        try:
            return default if v is None else int(v)
        except ValueError:
            raise InputError(f"{name}={v!r} is not an integer") from None

    def flag(name: str, default: bool) -> bool:
        v = text(name)
        if v is None:
            return default
        if v.lower() not in _TRUE + _FALSE:
            raise InputError(f"{name}={v!r} is not valid; expected one of {list(_TRUE + _FALSE)}")
        return v.lower() in _TRUE

    opts = Options(crops=integer("crops", crops), top_k=integer("top_k", top_k),
                   attention=flag("attention", True), pictures=flag("pictures", pictures))
    if opts.crops not in CENTRE_CROP:
        raise InputError(f"crops={opts.crops} is not valid; expected one of {sorted(CENTRE_CROP)}")
    if opts.top_k < 1:
        raise InputError(f"top_k={opts.top_k} is not valid; expected >= 1")
    w = text("weights")
    if w is not None:
        parts = [p for p in re.split(r"[,\s]+", w) if p]
        try:
            opts.weights = check_weights([float(p) for p in parts], 2)
        except ValueError:
            raise InputError(f"weights={w!r} is not valid; expected RGB,FLOW: two finite numbers >= 0, "
                             "not both 0, e.g. 1,3") from None
    return opts


def display_name(filename: str | None) -> str:
    """The client's file name for display only: its last path component, printable, <= 100 chars."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:100]
    return name if name not in ("", ".", "..") else "upload"


def upload_suffix(name: str) -> str:
    """The extension (lower case) an upload is saved with, so that the decoder can check it; only
    ``.`` and 1-8 letters or digits, else none (the decoder then says which extensions it reads)."""
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


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
    created: float = field(default_factory=time.perf_counter)
    future: Future | None = None
    _t: float = field(default_factory=time.perf_counter)

    def stage(self, name: str, stream: str | None = None) -> None:
        """Close the running stage and open ``name`` (a None name only closes)."""
        now = time.perf_counter()
        if self.stages and self.stages[-1]["seconds"] is None:
            self.stages[-1]["seconds"] = round(now - self._t, 4)
        if name:
            self.stages.append({"name": name, "stream": stream, "seconds": None})
        self._t = now

    def fail(self, status: int, message: str) -> None:
        self.stage("")
        self.state, self.status, self.error = "failed", status, message

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (GET /api/jobs/{id})."""
        return {"id": self.id, "name": self.name, "state": self.state, "stages": [dict(s) for s in self.stages],
                "status": self.status, "error": self.error, "result": self.result}


class PredictionPool:
    """``workers`` prediction threads and at most ``workers + queue`` jobs in flight.

    Args:
        recognizer: the loaded streams (shared by the threads).
        workdir: the server's private folder; uploads go to ``workdir/uploads/<job id>/``.
        workers: predictions at once.
        queue: jobs accepted beyond the running ones.
        keep: finished jobs kept for the page.
    """

    def __init__(self, recognizer: Recognizer, workdir: Path, *, workers: int = 1, queue: int = 4, keep: int = 16):
        self.recognizer = recognizer
        self.uploads = Path(workdir) / "uploads"
        self.uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.workers, self.queue, self.keep = workers, queue, keep
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tstam-predict")
        self._lock = threading.Lock()
        self._busy = 0                                   # slots taken: uploading, queued or running
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._seconds = 2.0                              # running mean of a job's time, for Retry-After

    def open(self) -> Job:
        """Take a slot for a new request and make its private upload folder.

        Raises:
            Busy: every slot is taken.
        """
        with self._lock:
            if self._busy >= self.capacity:
                raise Busy(max(1, math.ceil(self._seconds * self._busy / self.workers)))
            self._busy += 1
            job = Job(id=secrets.token_urlsafe(12), folder=self.uploads / secrets.token_hex(8))
            self._jobs[job.id] = job
            self._evict()
        job.folder.mkdir(mode=0o700)
        job.stage("upload")
        return job

    def abandon(self, job: Job, status: int, message: str) -> None:
        """A request that ends before its job starts (bad upload or options): free its slot."""
        job.fail(status, message)
        self._release(job)

    def start(self, job: Job, video: Path) -> Future:
        """Queue the prediction of ``video`` (inside ``job.folder``)."""
        job.state = "queued"
        job.stage("queue")
        job.future = self._executor.submit(self._run, job, video)
        return job.future

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"busy": self._busy, "capacity": self.capacity, "workers": self.workers, "queue": self.queue}

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _evict(self) -> None:
        """Drop the oldest finished jobs past ``keep`` (caller holds the lock)."""
        done = [j for j in self._jobs.values() if j.finished]
        for j in done[: max(0, len(done) - self.keep)]:
            del self._jobs[j.id]

    def _release(self, job: Job) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
        with self._lock:
            self._busy -= 1
            if job.state == "done":
                self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - job.created)
            self._evict()

    def _run(self, job: Job, video: Path) -> None:
        job.state = "running"
        opts = job.options
        try:
            pred = self.recognizer.predict(video, num_crops=opts.crops, weights=opts.weights,
                                           keep_video=opts.pictures, on_stage=job.stage)
            pred.source = job.name
            result = pred.to_dict(k=opts.top_k, attention=opts.attention)
            if opts.pictures:
                job.stage("pictures")
                job.pictures = self._draw(pred, job.folder)
                result["pictures"] = {n: f"/api/jobs/{job.id}/{n}" for n in job.pictures}
            pred.video = None
            job.stage("")
            result["job"] = {"id": job.id, "crops": opts.crops, "stages": [dict(s) for s in job.stages],
                             "seconds": round(time.perf_counter() - job.created, 4)}
            job.result, job.state = result, "done"
        except TstamError as e:  # VideoError (unreadable, truncated, empty, not a video), too short or too small
            job.fail(422, str(e).replace(str(video), job.name))
            log.info("job %s (%s): %s", job.id, job.name, job.error)
        except Exception as e:  # a bug: the server stays up and says so
            log.exception("job %s (%s) failed", job.id, job.name)
            job.fail(500, f"internal error while predicting {job.name}: {type(e).__name__}: {e}")
        finally:
            self._release(job)

    def _draw(self, pred: Any, folder: Path) -> dict[str, bytes]:
        from tstam.visualize import visualize_video

        with _draw_lock:
            pics = visualize_video(self.recognizer, pred.source, folder, prediction=pred, animation=".gif",
                                   name="result")
        out = {"attention.png": pics.png.read_bytes()}
        if pics.animation is not None:
            out["animation.gif"] = pics.animation.read_bytes()
        return out
