"""The web app of ``tstam serve`` (FastAPI): the page at ``/`` and the HTTP API under ``/api``.

    POST /api/predict          multipart ``file`` (+ crops, weights, top_k, attention, pictures):
                               the JSON of ``tstam predict --json`` for that video (schema_version)
    POST /api/jobs             the same, answered at once (202) with a job id; the page polls
    GET  /api/jobs/{id}        state, stages (upload, queue, decode, flow, model, pictures), result
    GET  /api/jobs/{id}/attention.png | animation.gif   the attention pictures (``tstam.visualize``)
    GET  /api/model            streams, classes, preprocessing, flow settings, limits
    GET  /api/samples[/{name}] the sample clips of the page
    GET  /healthz              liveness and load;  /docs, /redoc, /openapi.json: the API's docs

Bad requests get JSON ``{"detail": "..."}``: 413 over the upload limit (checked on the declared
length before the body is read, and on the bytes as they arrive), 422 for a bad option or a
video the decoder cannot read (its message, with the client's file name instead of the private
path), 503 with ``Retry-After`` when every slot of the pool is taken. No CORS headers are sent,
so other sites' pages cannot read the answers.
"""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
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
from tstam.serve.config import ServeConfig
from tstam.serve.jobs import PICTURES, Busy, Job, PredictionPool, display_name, parse_options, upload_suffix
from tstam.serve.samples import Sample, folder_samples, synthetic_samples

__all__ = ["create_app", "model_info", "BodyLimit"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# the page loads nothing from elsewhere; the browser enforces it
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                           "base-uri 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff"}
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
ERRORS = {400: {"description": "not a multipart upload, or no field 'file'"},
          413: {"description": "the upload is over the server's limit (tstam serve --max-upload-mb)"},
          422: {"description": "a bad option, or a video the decoder cannot read (its message)"},
          503: {"description": "every prediction slot is taken; see Retry-After"}}


class UploadTooLarge(Exception):
    pass


def _too_large(size: str, limit: int) -> str:
    return (f"upload is {size}; the limit is {limit / 2**20:g} MB (the server's --max-upload-mb); "
            "send a shorter or smaller video")


async def _send_json(send: Callable, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """ASGI middleware: a POST body over ``max_bytes`` gets 413, without being stored.

    A declared Content-Length over the limit is answered before the body is read; a body without
    one (chunked) is counted as it arrives. A body of up to twice the limit is read to its end
    and dropped before the answer, so that a client that sends without waiting for it (a
    browser; curl waits with ``Expect: 100-continue``) reads the 413 instead of seeing the
    connection reset; a larger one is cut off.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _drain(self, receive: Callable, seen: int, more: bool) -> None:
        while more and seen <= 2 * self.max_bytes:
            message = await receive()
            seen += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            if int(length) <= 2 * self.max_bytes and b"100-continue" not in headers.get(b"expect", b"").lower():
                await self._drain(receive, 0, True)
            return await _send_json(send, 413, {"detail": _too_large(f"{int(length) / 2**20:.2f} MB", self.max_bytes)})
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._drain(receive, seen, message.get("more_body", False))
                raise UploadTooLarge(_too_large(f"more than {self.max_bytes / 2**20:g} MB", self.max_bytes))
            return message

        await self.app(scope, limited, send)


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def _discard_body(request: Request) -> None:
    """Read and drop a request's body (bounded by ``BodyLimit``) so that a client that is still
    sending it reads the answer; a client that waits (``Expect: 100-continue``) sends nothing."""
    if "100-continue" in request.headers.get("expect", "").lower():
        return
    try:
        async for _ in request.stream():
            pass
    except (UploadTooLarge, ClientDisconnect):
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
                       "torch_threads": cfg.torch_threads}}


def create_app(recognizer: Recognizer, cfg: ServeConfig) -> FastAPI:
    """The app; its private work folder (uploads, synthetic samples) is made now and removed
    when the server shuts down (or by ``app.state.close()``).

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
    pool = PredictionPool(recognizer, workdir, workers=cfg.workers, queue=cfg.queue, keep=cfg.keep_results)
    info = model_info(recognizer, cfg)

    def close() -> None:
        pool.shutdown()
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
    app.state.close, app.state.workdir, app.state.pool = close, workdir, pool
    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def accept(request: Request, *, pictures: bool) -> Job | JSONResponse:
        """Take a slot, save the upload in the job's folder, parse the options, queue the job."""
        try:
            job = pool.open()
        except Busy as e:
            await _discard_body(request)
            return JSONResponse({"detail": str(e)}, 503, headers={"Retry-After": str(e.retry_after)})
        try:
            try:
                form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
            except UploadTooLarge as e:
                raise _Refused(413, str(e)) from None
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
        except BaseException:  # the client went away, or a bug: free the slot, then let the server log it
            pool.abandon(job, 400, "the upload did not complete")
            raise
        pool.start(job, video)
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

    @app.get("/healthz", summary="liveness and load")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **pool.stats()}

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
        job = await accept(request, pictures=False)
        if isinstance(job, JSONResponse):
            return job
        assert job.future is not None
        await asyncio.shield(asyncio.wrap_future(job.future))  # a client that leaves does not cancel a queued job
        return answer(job)

    @app.post("/api/jobs", status_code=202, summary="start classifying one uploaded video; poll the job",
              responses=ERRORS, openapi_extra=UPLOAD_BODY)
    async def submit(request: Request) -> Response:
        job = await accept(request, pictures=True)
        if isinstance(job, JSONResponse):
            return job
        return JSONResponse(job.public(), 202, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs/{job_id}", summary="a job's state, stages and result")
    async def job_state(job_id: str) -> dict[str, Any]:
        return find(job_id).public()

    @app.get("/api/jobs/{job_id}/{picture}", summary="a finished job's attention.png or animation.gif")
    async def job_picture(job_id: str, picture: str) -> Response:
        job = find(job_id)
        if picture not in PICTURES or picture not in job.pictures:
            raise HTTPException(404, f"job {job_id} has no {picture!r}; it has {sorted(job.pictures)}")
        return Response(job.pictures[picture], media_type=PICTURES[picture])

    return app
