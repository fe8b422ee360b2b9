"""Extraction under hostile conditions: a worker killed mid-video (kill -9, as the OOM killer), Ctrl-C
to the main process, two runs into one frame store, a full disk, a frame size JPEG cannot hold.
Each case is a row of docs/bad_inputs.md."""
from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tstam.data import store
from tstam.errors import OutputError
from tstam.extract import collect_sources, extract_many
from tstam.extract.many import LOCK_NAME
from tstam.flow import FlowConfig

from helpers.cli import run_tstam
from helpers.clips import drifting_clip
from helpers.extract_driver import kill_self_at
from helpers.extraction import start_driver
from helpers.processes import assert_all_exit, kill_all, process_tree, wait_until
from helpers.serve import FSIZE

FAST = FlowConfig(algorithm="farneback")


def clips(folder: Path, n: int, frames: int = 6) -> Path:
    for k in range(n):
        drifting_clip(folder / f"clip{k}.avi", frames, k)
    return folder


def _held_extraction(tmp_path: Path, videos: Path, out: Path, *, workers: int) -> subprocess.Popen:
    """A real extraction (farneback) whose ``workers`` workers each hold mid-video (after their RGB
    JPEGs), returned once all of them hold."""
    ready = tmp_path / "ready"
    ready.mkdir()
    log = tmp_path / "driver.log"
    proc = start_driver("hold", videos, out, {"flow": "farneback", "workers": workers}, ready, log=log)
    try:
        wait_until(lambda: len(list(ready.iterdir())) == workers or None, 120, f"{workers} worker(s) to hold mid-video",
                   state=lambda: log.read_text()[-2000:])
    except BaseException:
        kill_all(process_tree(proc.pid) | {proc.pid})
        raise
    return proc


@pytest.mark.slow  # 17-20 s on 2 loaded cores: two spawned workers, a third after the kill, and a rerun
def test_a_killed_worker_fails_only_its_video(tmp_path, caplog):
    """kill -9 of the worker on clip1 (after its RGB JPEGs): clip1 fails, named with the signal, in
    the log and the failures; a new worker extracts the other four; a rerun finishes clip1."""
    videos = clips(tmp_path / "v", 5)
    out = tmp_path / "s"
    hook = functools.partial(kill_self_at, "clip1")
    with caplog.at_level(logging.ERROR, logger="tstam.extract.workers"):
        report = extract_many(collect_sources(videos), out, workers=2, flow=FAST, progress=False, on_written=hook)
    assert sorted(report.done) == ["clip0", "clip2", "clip3", "clip4"], report
    assert len(report.failed) == 1 and report.failed[0][0].endswith("clip1.avi"), report.failed
    assert "the worker process died (crash or killed): killed by SIGKILL while extracting this video" in report.failed[0][1]
    assert any("clip1.avi" in r.getMessage() and "SIGKILL" in r.getMessage() for r in caplog.records), caplog.text
    assert not store.is_complete(out / "clip1")
    assert all(store.is_complete(out / f"clip{k}") for k in (0, 2, 3, 4))
    again = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "farneback", "--workers", "2"])
    assert again.returncode == 0 and "1 extracted, 4 already done" in again.stdout, again.stdout + again.stderr
    assert store.is_complete(out / "clip1")


def test_ctrl_c_stops_promptly_leaves_no_worker_and_resumes(tmp_path):
    """SIGINT to the main process while both workers are mid-video (each holding after its RGB
    JPEGs): it ends at once (was: it went on to the end), no worker is left, and a rerun completes."""
    videos, out = clips(tmp_path / "v", 4), tmp_path / "s"
    proc = _held_extraction(tmp_path, videos, out, workers=2)
    try:
        spawned = process_tree(proc.pid)
        assert len(spawned) >= 2, spawned
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # the workers hold for 600 s: only an interrupt that ends them returns here
    except BaseException:
        kill_all(process_tree(proc.pid) | {proc.pid})
        raise
    assert_all_exit(spawned, "extraction workers")
    assert not any(store.is_complete(d) for d in out.iterdir() if d.is_dir())
    again = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "farneback"])
    assert again.returncode == 0 and "4 extracted" in again.stdout, again.stdout + again.stderr


def test_a_second_extraction_into_the_same_store_is_refused(tmp_path):
    """The first run holds the store's lock (here: a process holding it as the extraction does); a
    second run is refused naming its pid and writes nothing; once it ends, the store is free."""
    videos = clips(tmp_path / "v", 1)
    out = tmp_path / "s"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from tstam.extract.many import _extraction_lock\n"
        "with _extraction_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)"), str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "none"])
        assert r.returncode == 2, r.stderr
        assert f"another tstam extract (pid {holder.pid}) is writing to this frame store" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            extract_many(collect_sources(videos), out, flow=None, progress=False)
    finally:
        holder.kill()
        holder.wait()
    r = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "none"])  # the kernel dropped the lock
    assert r.returncode == 0, r.stderr


def test_a_second_run_while_a_real_one_works_is_refused(tmp_path):
    """A real extraction (``extract_many``, held mid-video by its hook) and a second `tstam extract`
    with other settings into the same --out (was: both "succeeded", mixing their frames): the second
    is refused naming the first one's pid; once the first is killed, the second runs."""
    videos, out = clips(tmp_path / "v", 2), tmp_path / "s"
    first = _held_extraction(tmp_path, videos, out, workers=1)
    try:
        r = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "none", "--size", "32x24"])
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"another tstam extract (pid {first.pid}) is writing to this frame store" in r.stderr, r.stderr
        assert not any(store.is_complete(d) for d in out.iterdir() if d.is_dir())
    finally:
        kill_all(process_tree(first.pid) | {first.pid})
        first.wait(timeout=30)
    r = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "none", "--size", "32x24"])
    assert r.returncode == 0 and "2 extracted" in r.stdout, r.stdout + r.stderr


def test_a_full_disk_is_reported_with_the_path(tmp_path):
    """A file size limit (RLIMIT_FSIZE: writes past it fail with EFBIG, as a full disk with ENOSPC;
    both go through the same branch): the video fails naming the JPEG and "no space left"; was
    "could not write JPEG"."""
    videos = clips(tmp_path / "v", 1)
    out = tmp_path / "s"
    r = subprocess.run([sys.executable, "-c", FSIZE, "300", "-m", "tstam", "extract", str(videos), "--out", str(out),
                        "--flow", "none"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stderr
    assert f"{out / 'clip0' / 'img_00001.jpg'}: no space left to write the frame store (File too large)" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_jpeg_side_limit_is_refused_before_the_work(tmp_path):
    videos = clips(tmp_path / "v", 1)
    r = run_tstam(["extract", str(videos), "--out", str(tmp_path / "s"), "--flow", "none", "--size", "70000x16"])
    assert r.returncode == 2 and "--size 70000x16: frames of 70000 x 16 cannot be stored as JPEG, whose sides are " \
                                 "at most 65,535 pixels" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
    # from the video's own header: a 70,000-pixel-wide frame (1.1 megapixels, within the decoding budget)
    import av
    import numpy as np
    wide = tmp_path / "w" / "wide.mkv"
    wide.parent.mkdir()
    with av.open(str(wide), "w") as c:
        s = c.add_stream("ffv1", rate=5)
        s.width, s.height, s.pix_fmt = 70_000, 16, "yuv420p"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((16, 70_000, 3), np.uint8), format="rgb24")):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    r = run_tstam(["extract", str(wide), "--out", str(tmp_path / "s2"), "--flow", "none"])
    assert r.returncode == 1 and "wide.mkv: frames of 70000 x 16 cannot be stored as JPEG" in r.stderr, r.stderr
    assert not any((tmp_path / "s2" / "wide").glob("*.jpg"))


def test_long_video_flow_in_chunks_equals_the_flow_of_all_frames(tmp_path):
    """150 frames: the flow is computed over chunks of FLOW_CHUNK pairs while decoding; the truth is
    the flow of all the frames at once (``compute_flow``), quantised and written the same way."""
    from tstam.extract import extract_video
    from tstam.extract.video import FLOW_CHUNK
    from tstam.flow import compute_flow, quantize_flow
    from tstam.video import read_video

    src = drifting_clip(tmp_path / "long.avi", 150, 3)
    assert 149 > 2 * FLOW_CHUNK
    meta = extract_video(src, tmp_path / "s" / "long", flow=FAST)
    assert meta["frames"] == 150 and meta["flow_frames"] == 149
    frames = read_video(src).frames
    truth = tmp_path / "truth"
    truth.mkdir()
    store.write_flow(truth, quantize_flow(compute_flow(frames, FAST), FAST.bound), 95)
    store.write_rgb(truth, frames, 95)
    for f in sorted(truth.iterdir()):
        assert (tmp_path / "s" / "long" / f.name).read_bytes() == f.read_bytes(), f.name


def test_extraction_memory_does_not_grow_with_the_video(tmp_path):
    """Peak memory (ru_maxrss) of `tstam extract --size 320x240` on 5,000 tiny black frames is within
    1.5x of its peak on 75: the frames are written as they decode (holding them took 5,000 x 230 KB
    = 1.15 GB), the flow computed over chunks."""
    from helpers.hostile import many_frames_video, peak_rss_kb

    peaks = {}
    for name, n in (("short", 75), ("long", 5000)):
        video = many_frames_video(tmp_path / f"{name}.mp4", n)
        code, peaks[name], err = peak_rss_kb(["extract", str(video), "--out", str(tmp_path / name), "--flow", "none",
                                              "--size", "320x240", "--no-progress"])
        assert code == 0, err
        print(f"tstam extract {name} ({n} frames at 320x240): peak {peaks[name] / 1024:.0f} MB")
    assert len(list((tmp_path / "long" / "long").glob("img_*.jpg"))) == 5000
    assert peaks["long"] <= 1.5 * peaks["short"], peaks


def test_batched_flow_a_killed_worker_fails_only_the_videos_it_held(tmp_path):
    """The batched path (tvl1_torch on a device; here the CPU): kill -9 of the decoding worker on
    clip1. ProcessPoolExecutor cannot say which video killed it, so the videos the workers held then
    fail (clip1, and clip2 queued behind it with one worker), named; a new pool extracts the rest
    (was: every video left failed, those never started too); a rerun finishes the failed ones."""
    videos = clips(tmp_path / "v", 5)
    out = tmp_path / "s"
    torch_flow = FlowConfig(algorithm="tvl1_torch")
    report = extract_many(collect_sources(videos), out, workers=1, flow=torch_flow, device="cpu", progress=False,
                          on_written=functools.partial(kill_self_at, "clip1"))
    failed = {Path(f).stem for f, _ in report.failed}
    assert "clip1" in failed and failed <= {"clip1", "clip2"}, report.failed
    assert {"clip0", "clip3", "clip4"} <= set(report.done), report
    assert all("the worker process died (crash or killed) while this video was being decoded or written" in why
               for _, why in report.failed), report.failed
    again = run_tstam(["extract", str(videos), "--out", str(out), "--flow", "tvl1_torch", "--device", "cpu"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(store.is_complete(out / f"clip{k}") for k in range(5))
