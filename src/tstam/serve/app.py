"""The web app of ``tstam serve`` (FastAPI): the page at ``/`` and the HTTP API under ``/api``.

    POST /api/predict          multipart ``file`` (+ crops, weights, top_k, attention, pictures):
                               the JSON of ``tstam predict --json`` for that video (schema_version)
    POST /api/jobs             the same, answered at once (202) with a job id; the page polls
    GET  /api/jobs/{id}        state, stages (upload, queue, decode, flow, model, pictures), result
    GET  /api/jobs/{id}/attention.png | animation.gif   the attention pictures (``tstam.visualize``)
    GET  /api/model            streams, classes, preprocessing, flow settings, limits
    GET  /api/samples[/{name}] the sample clips of the page
    GET  /healthz              load; 503 while saturated;  /docs, /redoc, /openapi.json: the API's docs

Every GET is answered to HEAD too. Errors are JSON ``{"detail": "..."}`` (docs/serve.md lists
them): 400 a broken upload or a ``Host`` that is not the server's, 403 a POST from another
site's page, 408 an upload too slow, 410 a job no one asked for, 413 over the upload limit, 422
a bad option, a video the decoder cannot read (its message, with the client's file name instead
of the private path) or one over the time budget, 503 with ``Retry-After`` when every slot is
taken, 507 when the disk is full, 500 for a bug (its traceback only in the server's log). No CORS
headers are sent, so other sites' pages cannot read the answers.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import tstam
from tstam.errors import InputError
from tstam.inference import Recognizer, stream_metadata
from tstam.inference.recognizer import CENTRE_CROP, SCHEMA_VERSION
from tstam.serve.config import LOOPBACK_NAMES, ServeConfig
from tstam.serve.guard import DRAIN_SECONDS, UploadGuard, UploadRefused, Uploads, WebGuard
from tstam.serve.jobs import NO_SPACE, PICTURES, Busy, Job, PredictionPool, no_space_message
from tstam.serve.options import display_name, parse_options, upload_suffix
from tstam.serve.samples import Sample, folder_samples, synthetic_samples

__all__ = ["create_app", "model_info"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# the page loads nothing from elsewhere; the browser enforces it (tstam.serve.guard adds the rest)
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"}
_FORM_FIELD = {"type": "string"}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the video (.avi, .mp4, .webm, ...)"},
        "crops": {**_FORM_FIELD, "enum": ["1", "3", "10"], "description": "crops per snippet (10: paper 4.2)"},
        "weights": {**_FORM_FIELD, "example": "1,3", "description": "fusion weights RGB,FLOW (default 1,3)"},
        "top_k": {**_FORM_FIELD, "example": "5", "description": "classes in 'top'"},
        "attention": {**_FORM_FIELD, "enum": ["true", "false"], "description": "attention arrays in the JSON"},
        "pictures": {**_FORM_FIELD, "enum": ["true", "false"],
                     "description": "draw the attention PNG and GIF (URLs in 'pictures')"},
    }}}}}}
ERRORS = {400: {"description": "not a multipart upload, no field 'file', or a Host that is not the server's"},
          403: {"description": "a POST from the page of another site (its Origin is not the server's)"},
          408: {"description": "the upload paused too long or came too slowly (--body-timeout, --min-upload-rate)"},
          413: {"description": "the upload is over the server's limit (tstam serve --max-upload-mb)"},
          422: {"description": "a bad option, a video the decoder cannot read (its message), or a video over the "
                               "time budget of one job (--job-timeout)"},
          503: {"description": "every prediction or upload slot is taken, or the server is shutting down; "
                               "see Retry-After"},
          507: {"description": "the server's disk is full"}}


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def _discard_body(request: Request) -> None:
    """Read and drop a request's body (bounded by ``UploadGuard``, and for at most
    ``DRAIN_SECONDS``) so that a client that is still sending it reads the answer; a client that
    waits (``Expect: 100-continue``) sends nothing."""
    if "100-continue" in request.headers.get("expect", "").lower():
        return

    async def drain() -> None:
        async for _ in request.stream():
            pass

    try:
        await asyncio.wait_for(drain(), DRAIN_SECONDS)
    except (UploadRefused, ClientDisconnect, asyncio.TimeoutError):
        pass


async def _client_gone(request: Request) -> None:
    """Returns when the client of ``request`` (whose body was read) closes its connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _save(src: Any, dest: Path) -> None:
    with open(dest, "xb") as f:  # a new file in the job's private folder
        shutil.copyfileobj(src, f, 1 << 20)


def model_info(recognizer: Recognizer, cfg: ServeConfig) -> dict[str, Any]:
    """What GET /api/model answers: the streams' facts (as an export carries them), classes, limits."""
    streams = {}
    for m, s in recognizer.streams.items():
        meta = {k: v for k, v in stream_metadata(s).items() if k not in ("format", "version", "classes")}
        streams[m] = {"file": Path(s.source).name, **meta}
    return {"schema_version": SCHEMA_VERSION, "tstam": tstam.__version__, "classes": list(recognizer.classes),
            "streams": streams, "weights": dict(recognizer.weights), "resize": list(recognizer.resize),
            "defaults": {"crops": cfg.crops, "top_k": cfg.top_k}, "choices": {"crops": sorted(CENTRE_CROP)},
            "limits": {"max_upload_bytes": cfg.max_upload_bytes, "workers": cfg.workers, "queue": cfg.queue,
                       "torch_threads": cfg.torch_threads, "max_uploads": cfg.max_uploads,
                       "max_connections": cfg.max_connections, "header_timeout_s": cfg.header_timeout,
                       "body_timeout_s": cfg.body_timeout, "min_upload_rate_kb_s": cfg.min_upload_rate,
                       "job_timeout_s": cfg.job_timeout, "poll_timeout_s": cfg.poll_timeout}}


def create_app(recognizer: Recognizer, cfg: ServeConfig, *,
               host_names: frozenset[str] | None = frozenset(LOOPBACK_NAMES)) -> FastAPI:
    """The app; its private work folder (uploads, synthetic samples) is made now and removed
    when the server shuts down (or by ``app.state.close()``). ``host_names``: the names a
    request's ``Host`` may carry (``ServeConfig.host_names`` of the bound address; None: any).

    ``app.state`` holds ``pool``, ``uploads``, ``workdir``, ``close``; ``begin_shutdown`` and
    ``end_requests``, which the server calls when it starts to shut down (queued jobs are
    answered) and just before its time is up (the running jobs and the uploads are answered);
    and ``connections``: a function giving the number of open connections, which the server
    sets (``/healthz`` shows it).

    Raises:
        InputError: ``cfg.samples`` is not a folder of videos.
    """
    workdir = Path(tempfile.mkdtemp(prefix="tstam-serve-"))  # mode 0700: this user only
    try:
        samples = folder_samples(cfg.samples) if cfg.samples else synthetic_samples(workdir / "samples")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    by_name: dict[str, Sample] = {s.name: s for s in samples}
    pool = PredictionPool(recognizer, workdir, workers=cfg.workers, queue=cfg.queue, keep=cfg.keep_results,
                          job_timeout=cfg.job_timeout, poll_timeout=cfg.poll_timeout, limits=cfg.decode)
    uploads = Uploads(limit=cfg.max_uploads, max_bytes=cfg.max_upload_bytes, pause=cfg.body_timeout,
                      min_rate=cfg.min_upload_rate * 1024)
    info = model_info(recognizer, cfg)

    def close() -> None:
        pool.shutdown(timeout=1.0)
        shutil.rmtree(workdir, ignore_errors=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        log.info("work folder %s; %d worker(s), queue %d, uploads up to %g MB", workdir, cfg.workers, cfg.queue,
                 cfg.max_upload_mb)
        yield
        await run_in_threadpool(close)

    app = FastAPIOffline(title="tstam serve", version=tstam.__version__, lifespan=lifespan,
                         description="T-STAM two-stream action recognition: upload a video, get the classes "
                                     "and where the model looks. The page is at /.")
    def end_requests() -> None:  # the last moment of a graceful shutdown: every request gets its JSON
        pool.stop_all()
        uploads.stop_all("the server is shutting down; send the video again later")

    app.state.close, app.state.begin_shutdown, app.state.end_requests = close, pool.begin_shutdown, end_requests
    app.state.workdir, app.state.pool, app.state.uploads = workdir, pool, uploads
    app.state.connections = None  # set by tstam.serve.server.serve: () -> open connections
    app.add_middleware(UploadGuard, uploads=uploads)
    app.add_middleware(WebGuard, host_names=host_names)  # added last: runs first
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception) -> JSONResponse:
        # the traceback goes to the server's log (Starlette logs it after this answer), not to the client
        return JSONResponse({"detail": f"internal error ({type(e).__name__}); the server's log has the details"}, 500)

    async def accept(request: Request, *, pictures: bool, polled: bool) -> Job | JSONResponse:
        """Make the job, save the upload in its folder, parse the options, queue the job (it
        takes a slot of the pool now that its video is here)."""
        try:
            job = pool.open()
        except Busy as e:
            await _discard_body(request)
            return JSONResponse({"detail": str(e)}, 503, headers={"Retry-After": str(e.retry_after)})
        try:
            try:
                form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
            except StarletteHTTPException as e:  # what Starlette's form parser raises on a broken body
                raise _Refused(400, f"not a valid multipart upload: {e.detail}") from None
            try:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise _Refused(400, "no field 'file': send the video as multipart form data, "
                                        "e.g. curl -F file=@clip.avi http://HOST:PORT/api/predict")
                try:
                    job.options = parse_options(form, crops=cfg.crops, top_k=cfg.top_k, pictures=pictures)
                except InputError as e:
                    raise _Refused(422, str(e)) from None
                job.name = display_name(upload.filename)
                video = job.folder / f"video{upload_suffix(job.name)}"
                await run_in_threadpool(_save, upload.file, video)
            finally:
                await form.close()
        except _Refused as e:
            pool.abandon(job, e.status, e.message)
            return JSONResponse({"detail": e.message}, e.status)
        except OSError as e:
            if e.errno not in NO_SPACE:
                pool.abandon(job, 500, "the upload could not be stored")
                raise
            log.warning("upload %s: %s", job.name, e)
            pool.abandon(job, 507, no_space_message(f"the upload {job.name}", e))
            return JSONResponse({"detail": job.error}, 507)
        except ClientDisconnect:  # the client left during its upload: no one to answer, nothing to log
            pool.abandon(job, 499, "the client closed its connection during the upload")
            return JSONResponse({"detail": job.error}, 499)
        except BaseException:  # too large or too slow (UploadGuard answers), or a bug
            pool.abandon(job, 400, "the upload did not complete")
            raise
        try:
            pool.start(job, video, polled=polled)
        except Busy as e:
            return JSONResponse({"detail": str(e)}, 503, headers={"Retry-After": str(e.retry_after)})
        return job

    def answer(job: Job) -> JSONResponse:
        if job.state == "done":
            return JSONResponse(job.result)
        return JSONResponse({"detail": job.error}, job.status)

    def find(job_id: str) -> Job:
        job = pool.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}: unknown, or dropped (the server keeps the last "
                                     f"{cfg.keep_results} finished jobs)")
        return job

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/healthz", summary="load: 200 and status 'ok', or 503 and 'saturated' while a new upload would be "
                                 "refused", responses={503: {"description": "saturated (or shutting down)"}})
    async def healthz() -> JSONResponse:
        stats = pool.stats()
        saturated = stats["free"] == 0 or len(uploads.active) >= uploads.limit or stats["closing"]
        body = {"status": "saturated" if saturated else "ok", **stats, "uploads": len(uploads.active),
                "max_uploads": uploads.limit}
        if app.state.connections is not None:
            body.update(connections=app.state.connections(), max_connections=cfg.max_connections)
        return JSONResponse(body, 503 if saturated else 200)

    @app.get("/api/model", summary="streams, classes, preprocessing, flow settings, limits")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/api/samples", summary="the sample clips the page offers")
    async def sample_list() -> list[dict[str, Any]]:
        return [{"name": s.name, "label": s.label, "in_model": s.label in recognizer.classes, "about": s.about,
                 "url": f"/api/samples/{s.name}"} for s in samples]

    @app.get("/api/samples/{name}", summary="one sample clip (video file)")
    async def sample_file(name: str) -> FileResponse:
        if name not in by_name:  # a key of the list, never a path
            raise HTTPException(404, f"no sample {name!r}; GET /api/samples lists them")
        return FileResponse(by_name[name].path, media_type="application/octet-stream", filename=name)

    @app.post("/api/predict", summary="classify one uploaded video", responses=ERRORS, openapi_extra=UPLOAD_BODY)
    async def predict(request: Request) -> Response:
        job = await accept(request, pictures=False, polled=False)
        if isinstance(job, JSONResponse):
            return job
        answered = asyncio.wrap_future(job.answered)
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({answered, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not job.finished:  # its client closed the connection: no one will read the answer
            pool.cancel(job, 499, "the client closed its connection before the answer")
        return answer(job)

    @app.post("/api/jobs", status_code=202, summary="start classifying one uploaded video; poll the job",
              responses={**ERRORS, 410: {"description": "(GET /api/jobs/{id}) no one asked for the job for "
                                                        "--poll-timeout s, so it was dropped"}},
              openapi_extra=UPLOAD_BODY)
    async def submit(request: Request) -> Response:
        job = await accept(request, pictures=True, polled=True)
        if isinstance(job, JSONResponse):
            return job
        return JSONResponse(job.public(), 202, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs/{job_id}", summary="a job's state, stages and result (ask at least every --poll-timeout s)")
    async def job_state(job_id: str) -> dict[str, Any]:
        return find(job_id).public()

    @app.get("/api/jobs/{job_id}/{picture}", summary="a finished job's attention.png or animation.gif")
    async def job_picture(job_id: str, picture: str) -> Response:
        job = find(job_id)
        if picture not in PICTURES or picture not in job.pictures:
            raise HTTPException(404, f"job {job_id} has no {picture!r}; it has {sorted(job.pictures)}")
        return Response(job.pictures[picture], media_type=PICTURES[picture])

    return app
