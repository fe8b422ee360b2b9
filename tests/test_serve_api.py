"""``tstam serve``'s HTTP API against a real server on loopback (tests/helpers/serve.py): real
uploads of real clips compared with ``tstam predict --json``, the options, the bad inputs (and
the next request still answered), the private upload folder, concurrent requests, 503 when the
pool is full, the jobs of the page and their pictures, the samples, the docs."""
from __future__ import annotations

import io
import json
import socket
import stat
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tstam.cli import main
from tstam.serve.client import ServeError, predict_file
from tstam.serve.samples import SAMPLE_CLASSES

from helpers.hostile import gif_bomb, still_image_named_video
from helpers.models import CLASSES, FLOW, RESIZE
from helpers.processes import wait_until
from helpers.realdata import VIDEOS as REAL_VIDEOS
from helpers.serve import LIMIT_MB, QUEUE, WORKERS, Reply, multipart

pytestmark = pytest.mark.slow  # a real server in a subprocess, real uploads

CLIPS = [REAL_VIDEOS / "v_ApplyEyeMakeup_g01_c01.avi", REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"]
BIG = REAL_VIDEOS / "mmaction2_test.mp4"  # 1.35 MB: over the test server's 1 MB limit


@pytest.fixture(scope="module")
def cli_json(server, tmp_path_factory) -> dict[str, dict]:
    """What `tstam predict --json` writes for the clips, per file name (the truth the API must match)."""
    out = tmp_path_factory.mktemp("cli") / "preds.json"
    assert main(["predict", *map(str, CLIPS), "--rgb", str(server.ckpts["rgb"]), "--flow",
                 str(server.ckpts["flow"]), "--json", str(out)]) == 0
    return {p["video"].rsplit("/", 1)[-1]: p for p in json.loads(out.read_text())["predictions"]}


def assert_same_prediction(api: dict, cli: dict, atol: float = 1e-5) -> None:
    assert api["schema_version"] == cli["schema_version"]
    for key in ("label", "classes", "weights", "num_frames", "frame_indices"):
        assert api[key] == cli[key], key
    assert [t["label"] for t in api["top"]] == [t["label"] for t in cli["top"]]
    for name in ("fused", "rgb", "flow"):
        np.testing.assert_allclose(api["probabilities"][name], cli["probabilities"][name], atol=atol)
    for name in ("rgb", "flow"):
        for key in ("temporal", "spatial"):
            np.testing.assert_allclose(api["attention"][name][key], cli["attention"][name][key], atol=atol)


def test_health_model_page_and_docs(server):
    h = server.get("/healthz").json()
    assert h["status"] == "ok" and h["capacity"] == WORKERS + QUEUE
    m = server.get("/api/model").json()
    assert m["classes"] == CLASSES and set(m["streams"]) == {"rgb", "flow"} and m["resize"] == RESIZE
    assert m["streams"]["flow"]["flow"]["algorithm"] == FLOW["algorithm"]
    assert m["streams"]["rgb"]["preprocess"]["channel_order"] == "BGR" and m["streams"]["rgb"]["file"] == "rgb.pt"
    assert m["weights"] == {"rgb": 1.0, "flow": 3.0} and m["limits"]["max_upload_bytes"] == LIMIT_MB * 2**20
    page = server.get("/")
    assert page.status == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    html = page.body.decode()
    assert "/static/app.js" in html and "http" not in html.replace("http-equiv", "").split("<footer")[0]
    for asset in ("/static/app.js", "/static/style.css"):
        assert server.get(asset).status == 200
    spec = server.get("/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and {"crops", "weights", "top_k"} <= set(body["properties"])
    docs = server.get("/docs").body.decode()  # Swagger UI from the package, not from a CDN
    scripts = [s.split('"')[1] for s in docs.split("src=")[1:]]
    assert scripts and all(s.startswith("/") for s in scripts), scripts
    assert all(server.get(s).status == 200 for s in scripts)


def test_predict_real_clips_match_the_cli(server, cli_json):
    for clip in CLIPS:
        r = server.predict(clip)
        assert r.status == 200, r.body
        api = r.json()
        assert api["video"] == clip.name and api["schema_version"] >= 1
        assert_same_prediction(api, cli_json[clip.name])
        assert set(api["timings_s"]) == {"decode", "flow", "model"} and api["job"]["crops"] == 1


def test_predict_options(server, cli_json):
    clip = CLIPS[1]
    r = server.predict(clip, crops="3", top_k="2", weights="1,0", attention="false")
    assert r.status == 200, r.body
    d = r.json()
    assert len(d["top"]) == 2 and "attention" not in d and d["job"]["crops"] == 3
    assert d["weights"] == {"rgb": 1.0, "flow": 0.0}
    np.testing.assert_allclose(d["probabilities"]["fused"], d["probabilities"]["rgb"], atol=1e-6)  # flow weighs 0
    assert not np.allclose(d["probabilities"]["rgb"], cli_json[clip.name]["probabilities"]["rgb"])  # 3 crops, not 1
    d = predict_file(server.url, clip, top_k=1, weights="1 3")  # the stdlib client of tstam.serve.client
    assert [t["label"] for t in d["top"]] == [cli_json[clip.name]["label"]] and d["weights"] == {"rgb": 1.0, "flow": 3.0}
    with pytest.raises(ServeError, match="HTTP 422: .*crops=4 is not valid") as e:
        predict_file(server.url, clip, crops=4)
    assert e.value.status == 422


@pytest.mark.parametrize("fields, message", [
    ({"crops": "2"}, "crops=2 is not valid; expected one of [1, 3, 10]"),
    ({"weights": "nan,1"}, "weights='nan,1' is not valid"),
    ({"weights": "1"}, "weights='1' is not valid"),
    ({"weights": "0,0"}, "not both 0"),
    ({"top_k": "0"}, "top_k=0 is not valid"),
    ({"top_k": "five"}, "top_k='five' is not an integer"),
    ({"pictures": "maybe"}, "pictures='maybe' is not valid"),
    ({"crop": "10"}, "unknown field(s) ['crop']"),
])
def test_bad_options_422(server, fields, message):
    r = server.predict(CLIPS[0], **fields)
    assert r.status == 422 and message in r.json()["detail"], r.body


def _chunked_upload(server, size: int) -> tuple[int, dict]:
    """A body without Content-Length (chunked), as a streaming client sends it."""
    body, ctype = multipart({}, ("big.avi", b"\0" * size))
    conn = socket.create_connection((server.host, server.port), timeout=60)
    try:
        conn.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {server.netloc}\r\nContent-Type: {ctype}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for i in range(0, len(body), 1 << 16):
                chunk = body[i:i + (1 << 16)]
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading at the limit
        f = conn.makefile("rb")
        status = int(f.readline().split()[1])
        while f.readline() not in (b"\r\n", b""):
            pass
        return status, json.loads(f.read())
    finally:
        conn.close()


def test_bad_uploads_answer_and_the_server_stays_up(server, tmp_path):
    real = CLIPS[1].read_bytes()
    bomb = gif_bomb(tmp_path / "bomb.gif").read_bytes()  # 46 KB: an 8000 x 8000 canvas, 2,000 one-pixel frames
    photo = still_image_named_video(tmp_path / "photo.mp4", "PNG").read_bytes()
    cases = [  # (file name, bytes, status, part of the decoder's message)
        ("empty.avi", b"", 422, "empty.avi: empty file (0 bytes)"),
        ("cut.avi", real[: len(real) * 2 // 5], 422, "cut.avi: truncated or damaged"),
        ("text.avi", b"just some text, not a video\n" * 50, 422, "text.avi: corrupt or not a video file"),
        ("notes.txt", real, 422, "notes.txt: unsupported extension '.txt'; expected one of .avi"),
        ("noext", real, 422, "noext: unsupported extension ''"),
        ("bomb.gif", bomb, 422, "bomb.gif: frames of 8000 x 8000 = 64,000,000, over the decoding budget of "
                                "16,777,216 per frame (--decode-max-frame-pixels"),
        ("photo.mp4", photo, 422, "photo.mp4: a still image (PNG data), not a video"),
        (BIG.name, BIG.read_bytes(), 413, f"the limit is {LIMIT_MB} MB"),
    ]
    for name, data, status, message in cases:
        r = server.upload("/api/predict", name, data)
        assert r.status == status and message in r.json()["detail"], (name, r.status, r.body)
        assert str(server.tmp) not in r.json()["detail"]  # the private path is not shown
    status, body = _chunked_upload(server, LIMIT_MB * 2**20 + 100_000)
    assert status == 413 and "the limit is" in body["detail"]
    with server.connect(30) as s:  # as curl sends a large file: 4 GB, none of it sent until the server asks
        s.sendall(server.post_head("/api/predict", 4_000_000_000, extra="Expect: 100-continue\r\n"))
        assert s.makefile("rb").readline().split()[1] == b"413"
    body, ctype = multipart({"crops": "1"})
    r = server.request("POST", "/api/predict", body, {"Content-Type": ctype})
    assert r.status == 400 and "no field 'file'" in r.json()["detail"]
    other_boundary = multipart({})[1]
    r = server.request("POST", "/api/predict", body, {"Content-Type": other_boundary})
    assert r.status == 400 and "not a valid multipart upload" in r.json()["detail"]
    r = server.request("POST", "/api/predict", b'{"file": "x"}', {"Content-Type": "application/json"})
    assert r.status == 400
    server.wait_idle()
    assert not list((server.workdir / "uploads").iterdir())  # every upload was deleted
    r = server.predict(CLIPS[0])  # and the next request is answered as before
    assert r.status == 200 and r.json()["label"] in CLASSES


def test_uploads_are_private_and_named_by_the_server(server):
    r = server.predict(CLIPS[0], name="../../../escape.avi")
    assert r.status == 200 and r.json()["video"] == "escape.avi"
    assert not list(server.tmp.rglob("escape.avi")) and not (server.tmp.parent / "escape.avi").exists()
    for d in (server.workdir, server.workdir / "uploads"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    server.wait_idle()
    assert not list((server.workdir / "uploads").iterdir())


def test_cors_is_off(server):
    r = server.request("GET", "/api/model", headers={"Origin": "http://elsewhere.example"})
    assert r.status == 200 and not any(k.startswith("access-control") for k in r.headers)
    r = server.request("OPTIONS", "/api/predict", headers={"Origin": "http://elsewhere.example",
                                                           "Access-Control-Request-Method": "POST"})
    assert r.status == 405 and not any(k.startswith("access-control") for k in r.headers)


def test_concurrent_uploads_each_get_their_own_answer(server, cli_json):
    server.wait_idle()
    with ThreadPoolExecutor(len(CLIPS)) as ex:  # = the pool's capacity: both are accepted
        replies = list(ex.map(server.predict, CLIPS))
    for clip, r in zip(CLIPS, replies):
        assert r.status == 200, r.body
        assert_same_prediction(r.json(), cli_json[clip.name])


def _long_job(server, clip) -> Reply:
    """/api/jobs with the pictures and 10 crops: it holds its slot for seconds."""
    return server.upload("/api/jobs", clip.name, clip.read_bytes(), crops="10")


def test_full_queue_gets_503_with_retry_after(server):
    server.wait_idle()
    held = [_long_job(server, CLIPS[0]) for _ in range(WORKERS + QUEUE)]  # each takes a slot before its 202
    assert all(r.status == 202 for r in held), held
    r = server.predict(CLIPS[0])
    assert r.status == 503 and "busy: all prediction slots are taken" in r.json()["detail"], r.body
    assert int(r.headers["retry-after"]) >= 1
    assert server.upload("/api/jobs", CLIPS[0].name, CLIPS[0].read_bytes()).status == 503
    h = server.health()
    assert h["status"] == "saturated" and h["free"] == 0, h
    for job_id in (r.json()["id"] for r in held):  # they finish (the page would poll them; this test asks at the end)
        wait_until(lambda job_id=job_id: server.get(f"/api/jobs/{job_id}").json()["state"] == "done", 120,
                   f"job {job_id} to finish", state=server.health)
    server.wait_idle()
    assert server.predict(CLIPS[0]).status == 200


def test_job_stages_and_pictures(server, cli_json):
    clip = CLIPS[1]
    r = server.upload("/api/jobs", clip.name, clip.read_bytes())
    assert r.status == 202 and r.headers["location"] == f"/api/jobs/{r.json()['id']}"
    job_id, states = r.json()["id"], []

    def finished() -> dict | None:  # the server answers while the job runs: predictions never block its event loop
        job = server.get(f"/api/jobs/{job_id}").json()
        states.append(job["state"])
        return job if job["state"] in ("done", "failed") else None

    job = wait_until(finished, 120, f"job {job_id} to finish", state=lambda: states[-3:])
    assert job["state"] == "done" and "running" in states, (job, states)
    assert [(s["name"], s["stream"]) for s in job["stages"]] == [
        ("upload", None), ("queue", None), ("decode", None), ("model", "rgb"), ("flow", "flow"), ("model", "flow"),
        ("pictures", None)]
    assert all(s["seconds"] >= 0 for s in job["stages"])
    result = job["result"]
    assert_same_prediction(result, cli_json[clip.name])
    png = server.get(result["pictures"]["attention.png"])
    gif = server.get(result["pictures"]["animation.gif"])
    assert png.headers["content-type"] == "image/png" and gif.headers["content-type"] == "image/gif"
    img, anim = Image.open(io.BytesIO(png.body)), Image.open(io.BytesIO(gif.body))
    assert img.width > 25 * 96 and img.height > 96  # 25 tiles of 96 px, rows per stream and head
    assert anim.n_frames > 1 and anim.size == (192, 192)
    assert server.get(f"/api/jobs/{job_id}/other.png").status == 404
    assert server.get("/api/jobs/nosuchjob").status == 404


def test_samples_are_the_demo_benchmarks_test_clips(server, tmp_path):
    from tstam.synthetic import generate, make_config

    samples = server.get("/api/samples").json()
    assert [s["label"] for s in samples] == list(SAMPLE_CLASSES)
    # the benchmark `tstam demo` makes (seed 0), with one test clip per class and no training clips
    splits = generate(tmp_path / "bench", make_config("demo", {"train_per_class": 0, "test_per_class": 1}), seed=0)
    for s in samples:
        data = server.get(s["url"]).body
        assert data == (splits.parent / "videos" / s["label"] / s["name"]).read_bytes(), s["name"]
    r = server.upload("/api/predict", samples[0]["name"], server.get(samples[0]["url"]).body)
    assert r.status == 200 and r.json()["video"] == samples[0]["name"]
    assert server.get("/api/samples/..%2F..%2Fetc%2Fpasswd").status == 404
