"""``tstam serve`` against clients that misbehave, on real servers on loopback whose limits are
shortened by their options (tests/helpers/serve.py): request heads that never end, uploads that
crawl or stall, connections left open by the dozen, jobs over their time budget or no longer
wanted, a shutdown with work under way, a full disk, a fault inside the server; and on the
suite's server: HEAD, the security headers of every page, the Host and Origin checks (DNS
rebinding, cross-site posts)."""
from __future__ import annotations

import http.client
import re
import select
import shutil
import signal
import socket
import threading
import time

import pytest

from helpers.processes import wait_until
from helpers.realdata import VIDEOS as REAL_VIDEOS
from helpers.serve import QUEUE, TEST_SETTINGS, WORKERS, multipart, read_answer, start_server, stop_server

pytestmark = pytest.mark.slow  # real servers in subprocesses, real sockets

CLIP = REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"   # 311 kB
SMALL = REAL_VIDEOS / "v_ApplyEyeMakeup_g01_c01.avi"  # 288 kB
HEAD_S, BODY_S, POLL_S = 1, 3, 1
MAX_UPLOADS, MAX_CONNECTIONS = 2, 8
GUARDED = (*TEST_SETTINGS, "--header-timeout", str(HEAD_S), "--body-timeout", str(BODY_S), "--poll-timeout",
           str(POLL_S), "--max-uploads", str(MAX_UPLOADS), "--max-connections", str(MAX_CONNECTIONS))
LONG = {"crops": "10", "pictures": "true"}  # a job that holds its worker for seconds (10 crops, then the pictures)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, serve_ckpts):
    """A server with deadlines of seconds: heads 1 s, upload pauses 3 s, polls 1 s; 2 uploads and
    8 connections at once."""
    tmp = tmp_path_factory.mktemp("guarded")
    s = start_server(tmp, serve_ckpts, *GUARDED)
    yield s
    assert stop_server(s) == 0, "".join(s.output)


def _send_request(server, path: str, fields: dict[str, str], clip=CLIP, name: str | None = None) -> socket.socket:
    """A whole upload sent on a raw connection; the answer is left to read (or not)."""
    body, ctype = multipart(fields, (name or clip.name, clip.read_bytes()))
    s = server.connect()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: {server.netloc}\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


PART = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.avi"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n")  # the start of a file part (boundary b)


def _begin_upload(server, declared: int, data: bytes = b"") -> socket.socket:
    """An upload of ``declared`` bytes of which only the start of its file part and ``data`` are sent."""
    s = server.connect()
    s.sendall(server.post_head("/api/predict", declared) + PART + data)
    return s


def _closed(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (what it sent first is read and dropped)."""
    if not select.select([s], [], [], 0)[0]:
        return False
    try:
        while s.recv(65536):
            if not select.select([s], [], [], 0)[0]:
                return False
    except (ConnectionResetError, BlockingIOError):
        pass
    return True


def _job_line(server, name: str, what: str) -> re.Match | None:
    """The server's log line about the job of the file ``name`` that goes on with ``what``."""
    return re.search(rf"job (\S+) \({re.escape(name)}\){re.escape(what)}", "".join(server.output))


def test_a_request_head_that_does_not_end_is_closed(guarded):
    partial = guarded.connect()
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: ")  # and nothing more
    idle = guarded.connect()                            # sends nothing at all
    kept = http.client.HTTPConnection(guarded.host, guarded.port, timeout=60)  # one request, then a slow next one
    kept.request("GET", "/healthz")
    assert kept.getresponse().read()
    kept.sock.sendall(b"GET /api/model HTTP/1.1\r\n")
    assert guarded.health()["status"] == "ok"           # meanwhile the others are answered
    status, headers, body = read_answer(partial)
    assert status == 408 and headers["content-type"] == "application/json", (status, body)
    assert f"the request head did not come within {HEAD_S} s (tstam serve --header-timeout)" in body.decode()
    assert read_answer(idle)[0] is None                 # closed without a word: it had asked nothing
    assert read_answer(kept.sock)[0] == 408
    for s in (partial, idle):
        s.close()
    kept.close()


def test_an_upload_that_crawls_or_stalls_gets_408_and_frees_its_slot(guarded):
    guarded.wait_idle()
    crawl, stall = _begin_upload(guarded, 100_000), guarded.connect()
    stall.sendall(guarded.post_head("/api/predict", 100_000))  # the head, then nothing
    wait_until(lambda: guarded.health()["uploads"] == 2, 60, "the two uploads to begin", state=guarded.health)
    h = guarded.health()
    assert h["status"] == "saturated" and h["free"] == WORKERS + QUEUE, h  # no prediction slot is held by an upload
    end = time.monotonic() + 60
    while not select.select([crawl], [], [], 0.2)[0]:  # a byte every 0.2 s until the server answers
        assert time.monotonic() < end, "no answer to an upload of 5 bytes/s"
        try:
            crawl.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            break
    status, headers, body = read_answer(crawl)
    assert status == 408 and headers["connection"] == "close", body
    assert "upload too slow: " in body.decode() and "the server needs at least 50 KB/s after the first 3 s" in body.decode()
    status, _, body = read_answer(stall)
    assert status == 408 and f"upload stalled: nothing came for {BODY_S} s (tstam serve --body-timeout)" in body.decode()
    h = guarded.health()
    assert h["uploads"] == 0 and h["status"] == "ok", h
    assert guarded.predict(CLIP).status == 200
    guarded.wait_idle()
    assert not list((guarded.workdir / "uploads").iterdir())


def test_slow_uploads_do_not_stop_a_normal_one(guarded):
    guarded.wait_idle()
    slow = [_begin_upload(guarded, 500_000) for _ in range(MAX_UPLOADS)]
    wait_until(lambda: guarded.health()["uploads"] == MAX_UPLOADS, 60, "the slow uploads to hold every upload slot",
               state=guarded.health)
    time.sleep(1.2)  # older than a second: below the minimum rate, a slot may be taken from them
    r = guarded.predict(CLIP)
    assert r.status == 200, r.body
    answers = [read_answer(s) for s in slow]
    assert [a[0] for a in answers] == [408] * MAX_UPLOADS, answers
    assert any(b"while other uploads waited; the server needs at least 50 KB/s" in a[2] for a in answers), answers


def test_open_connections_are_bounded(guarded):
    guarded.wait_idle()
    socks = []
    for _ in range(3 * MAX_CONNECTIONS):
        s = guarded.connect()
        s.sendall(b"GET / HTTP/1.1\r\n")  # a head that never ends
        socks.append(s)
    wait_until(lambda: sum(not _closed(s) for s in socks) <= MAX_CONNECTIONS, 60,
               f"at most {MAX_CONNECTIONS} of the {len(socks)} connections to stay open",
               state=lambda: sum(not _closed(s) for s in socks))
    h = guarded.health()  # refused while every connection is new; then the oldest makes room for it
    assert h["status"] == "ok" and h["connections"] <= MAX_CONNECTIONS, h
    wait_until(lambda: sum(not _closed(s) for s in socks) <= MAX_CONNECTIONS - 1, 30, "one of them to make room")
    wait_until(lambda: all(_closed(s) for s in socks), 60, "the rest to be closed at the head deadline")
    for s in socks:
        s.close()


def test_a_client_that_leaves_stops_its_job(guarded):
    guarded.wait_idle()
    running = _send_request(guarded, "/api/predict", LONG, name="leaver.avi")
    wait_until(lambda: guarded.health()["running"] == 1, 60, "the job to run", state=guarded.health)
    queued = _send_request(guarded, "/api/predict", LONG, name="impatient.avi")
    wait_until(lambda: guarded.health()["queued"] == 1, 60, "the second job to wait", state=guarded.health)
    queued.close()
    wait_until(lambda: guarded.health()["queued"] == 0, 60, "the queued job to give its slot back",
               state=guarded.health)
    running.close()
    guarded.wait_idle()
    gone = " stopped: the client closed its connection before the answer"
    left, waited = _job_line(guarded, "leaver.avi", gone), _job_line(guarded, "impatient.avi", gone)
    assert left and waited, "".join(guarded.output[-30:])
    assert _job_line(guarded, "leaver.avi", ": its thread stopped at a stage boundary").group(1) == left.group(1)
    assert not _job_line(guarded, "impatient.avi", ": its thread stopped")  # it never ran


def test_a_job_no_one_asks_for_is_dropped(guarded):
    guarded.wait_idle()
    done: list = []
    runner = threading.Thread(target=lambda: done.append(guarded.predict(CLIP, **LONG)))
    runner.start()
    wait_until(lambda: guarded.health()["running"] == 1, 60, "the first job to run", state=guarded.health)
    r = guarded.upload("/api/jobs", "forgotten.avi", CLIP.read_bytes(), **LONG)
    assert r.status == 202, r.body
    job_id = r.json()["id"]
    wait_until(lambda: _job_line(guarded, "forgotten.avi", " stopped: "), 60, "the forgotten job to be dropped",
               state=guarded.health)
    job = guarded.get(f"/api/jobs/{job_id}").json()
    assert job["state"] == "failed" and job["status"] == 410, job
    assert f"no one asked for this job for {POLL_S} s (tstam serve --poll-timeout)" in job["error"]
    runner.join(120)
    assert done and done[0].status == 200, done  # the job whose client waits is answered as before


# a server whose limits make the cases below certain: every job is over its 1 ms budget, an upload
# is never below a rate of 1 byte/s (so the one upload slot cannot be taken from it), no file it
# writes may grow beyond 256 kB (the clips are larger: as a full disk, with EFBIG for ENOSPC)
STRICT = (*TEST_SETTINGS, "--job-timeout", "0.001", "--max-uploads", "1", "--min-upload-rate", "0.001",
          "--body-timeout", "30")
FILE_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def strict(tmp_path_factory, serve_ckpts):
    tmp = tmp_path_factory.mktemp("strict")
    s = start_server(tmp, serve_ckpts, *STRICT, max_file_bytes=FILE_LIMIT)
    yield s
    assert stop_server(s) == 0, "".join(s.output)


def _sample(server) -> tuple[str, bytes]:
    """A sample clip of the server's (15 kB: under the file limit)."""
    s = server.get("/api/samples").json()[0]
    return s["name"], server.get(s["url"]).body


def test_a_job_over_its_time_budget_is_stopped_at_a_stage_boundary(strict):
    name, data = _sample(strict)
    assert len(data) < FILE_LIMIT
    r = strict.upload("/api/predict", name, data)
    assert r.status == 422, r.body
    message = f"{name}: the prediction was stopped after 0.001 s, the server's time budget for one video " \
              "(tstam serve --job-timeout)"
    assert message in r.json()["detail"]
    r = strict.upload("/api/jobs", name, data)
    job = wait_until(lambda: (lambda j: j if j["state"] in ("done", "failed") else None)(
        strict.get(f"/api/jobs/{r.json()['id']}").json()), 60, "the job to end")
    assert job["status"] == 422 and message in job["error"], job
    assert [s["name"] for s in job["stages"]] == ["upload", "queue", "decode"]  # no model ran after the deadline
    strict.wait_idle()


def test_every_upload_slot_taken_gets_503(strict):
    strict.wait_idle()
    slow = _begin_upload(strict, 500_000, b"x" * 10_000)  # then nothing: 10 kB, so never below 1 byte/s
    wait_until(lambda: strict.health()["uploads"] == 1, 60, "the upload to hold the slot", state=strict.health)
    h = strict.health()
    assert h["status"] == "saturated" and h["free"] == WORKERS + QUEUE, h
    r = strict.upload("/api/predict", *_sample(strict))
    assert r.status == 503 and "busy: 1 uploads are being received (the server's --max-uploads)" in r.json()["detail"]
    assert int(r.headers["retry-after"]) >= 1
    slow.close()
    strict.wait_idle()


def test_a_full_disk_is_answered_with_json(strict):
    r = strict.predict(SMALL)  # 288 kB: over the 256 kB this server may write
    assert r.status == 507 and r.headers["content-type"] == "application/json", r.body
    detail = r.json()["detail"]
    assert detail == (f"the server has no room to store the upload {SMALL.name} (File too large); try again later, "
                      "or send a smaller video")
    strict.wait_idle()
    assert not list((strict.workdir / "uploads").iterdir())


def test_a_fault_inside_the_server_is_a_json_500_without_its_traceback(strict):
    uploads = strict.workdir / "uploads"
    shutil.rmtree(uploads)
    uploads.write_text("a file where the server keeps its upload folders")  # mkdir of a job's folder fails
    try:
        r = strict.upload("/api/predict", *_sample(strict))
    finally:
        uploads.unlink()
        uploads.mkdir(mode=0o700)
    assert r.status == 500 and r.headers["content-type"] == "application/json", r.body
    assert r.json() == {"detail": "internal error (NotADirectoryError); the server's log has the details"}
    strict.out.wait_for("NotADirectoryError", 30, "the traceback in the server's log")  # logged after the answer
    assert strict.upload("/api/predict", *_sample(strict)).status == 422  # and goes on (over the budget here)


SHUTDOWN_S = 1


def test_shutdown_ends_within_its_time_with_work_under_way(tmp_path, serve_ckpts):
    s = start_server(tmp_path, serve_ckpts, *TEST_SETTINGS, "--shutdown-timeout", str(SHUTDOWN_S))
    try:
        running = _send_request(s, "/api/predict", LONG)
        wait_until(lambda: s.health()["running"] == 1, 60, "a job to run", state=s.health)
        slow, idle = _begin_upload(s, 500_000), s.connect()  # begun while a prediction slot is free
        wait_until(lambda: s.health()["uploads"] == 1, 60, "an upload to begin", state=s.health)
        queued = _send_request(s, "/api/predict", LONG)
        wait_until(lambda: s.health()["queued"] == 1, 60, "a job to wait", state=s.health)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGINT)  # Ctrl-C
        s.out.wait_for(r"tstam\.serve\.server: stopped", 30, "the server to stop")
        seconds = time.monotonic() - t0
        code = s.proc.wait(30)
        exited = time.monotonic() - t0
    finally:
        s.proc.kill()
    print(f"stopped in {seconds:.2f} s, exited in {exited:.2f} s (--shutdown-timeout {SHUTDOWN_S}: the bound is "
          f"{SHUTDOWN_S} + 1 s, then the interpreter's exit)")
    assert code == 0, "".join(s.output)
    # a bound, with room for a loaded machine; without the limits it was 10 s (uvicorn's wait for the upload),
    # then as long as the running job's stages took
    assert seconds < SHUTDOWN_S + 1 + 2, "".join(s.output[-20:])
    status, _, body = read_answer(queued)
    assert status == 503 and b"the server is shutting down; the video was not predicted" in body
    assert read_answer(running)[0] in (200, 503)  # done in time, or stopped: "the server shut down while predicting"
    status, _, body = read_answer(slow)
    assert status == 503 and b"the server is shutting down; send the video again later" in body
    assert read_answer(idle)[0] is None
    assert not list(tmp_path.glob("tstam-serve-*")), "the work folder was not removed"


def test_head_is_answered_as_get_without_a_body(server):
    for path in ("/", "/api/model", "/static/app.js", "/docs", "/redoc", "/api/samples", "/healthz"):
        get, head = server.get(path), server.request("HEAD", path)
        assert head.status == get.status == 200 and head.body == b"" and get.body, path
        assert head.headers["content-type"] == get.headers["content-type"], path
        if path != "/healthz":  # its JSON counts connections, which change between the two
            assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.body)), path


def test_every_page_carries_the_security_headers(server):
    for path in ("/", "/docs", "/redoc", "/api/model", "/static/app.js", "/no/such/page"):
        r = server.get(path)
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY", path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, (path, csp)
    for path in ("/docs", "/redoc"):
        csp = dict(d.strip().split(" ", 1) for d in server.get(path).headers["content-security-policy"].split(";"))
        assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"], csp
        assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'", csp
    script = dict(d.strip().split(" ", 1) for d in server.get("/docs").headers["content-security-policy"].split(";"))
    assert "'sha256-" in script["script-src"]  # the page's one inline script, by its hash (the browser test runs it)


def test_host_and_origin_are_checked_on_loopback(server):
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost", "LOCALHOST"):
        assert server.request("GET", "/healthz", headers={"Host": host}).status == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", "localhost.:80"):
        r = server.request("GET", "/api/model", headers={"Host": host})
        assert r.status == 400, (host, r.body)
        assert f"Host {host!r} is not a name of this server; it answers to 127.0.0.1, ::1, localhost " \
               "(tstam serve --allowed-hosts)" == r.json()["detail"]
    assert server.request("GET", "/healthz", headers={"Host": "a b"}).status == 400
    body, ctype = multipart({}, (CLIP.name, CLIP.read_bytes()))
    for origin in ("http://evil.example", "null", f"http://localhost:{port + 1}", f"https://127.0.0.1:{port}x"):
        r = server.request("POST", "/api/predict", body, {"Content-Type": ctype, "Origin": origin,
                                                          "Host": f"localhost:{port}"})
        assert r.status == 403 and f"(Origin {origin!r}) is refused" in r.json()["detail"], (origin, r.body)
    r = server.request("POST", "/api/predict", body, {"Content-Type": ctype, "Origin": f"http://127.0.0.1:{port}"})
    assert r.status == 200, r.body  # the server's own page
    r = server.request("GET", "/api/model", headers={"Origin": "http://evil.example"})
    assert r.status == 200 and not any(k.startswith("access-control") for k in r.headers)  # readable by no page


def test_bytes_that_are_not_http_get_json(server):
    with server.connect(30) as s:
        s.sendall(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")  # e.g. a TLS client on the plain port
        status, headers, body = read_answer(s)
    assert status == 400 and headers["content-type"] == "application/json", body
    assert "not a valid HTTP/1.1 request" in body.decode()
