"""Extraction to the frame store: layout, metadata, resume after SIGKILL, shards, failures."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from tstam.cli import main as cli_main
from tstam.data import store
from tstam.data.frames import read_flow_frames, read_rgb_frames
from tstam.data.records import AnnotationError
from tstam.extract import (
    collect_sources,
    extract_many,
    extract_video,
    parse_shard,
    parse_size,
    select_shard,
    shard_of,
)
from tstam.flow import FlowConfig, compute_flow, dequantize_flow, quantize_flow
from tstam.video import VideoError, read_video

from helpers.clips import avi_declaring, drifting_clip, tree_bytes
from helpers.extraction import kill_mid_video_and_rerun, start_driver
from helpers.processes import assert_all_exit, kill_all, process_tree, wait_until
from helpers.realdata import REALDATA as REAL

REAL_CLIP = REAL / "videos" / "v_ApplyEyeMakeup_g01_c01.avi"
FAST = FlowConfig(algorithm="farneback")  # fast flow for tests of the machinery


def test_real_clip_layout_and_meta(tmp_path: Path) -> None:
    out = tmp_path / "store" / REAL_CLIP.stem
    meta = extract_video(REAL_CLIP, out, flow=FlowConfig(), max_frames=6)
    names = sorted(os.listdir(out))
    assert names == ([f"flow_x_{i:05d}.jpg" for i in range(1, 6)] + [f"flow_y_{i:05d}.jpg" for i in range(1, 6)]
                     + [f"img_{i:05d}.jpg" for i in range(1, 7)] + ["meta.json"])
    assert store.read_meta(out) == {**meta, "version": store.META_VERSION}
    assert meta["video_id"] == "v_ApplyEyeMakeup_g01_c01" and meta["source"] == str(REAL_CLIP)
    assert (meta["frames"], meta["flow_frames"], meta["width"], meta["height"]) == (6, 5, 320, 240)
    assert meta["fps"] == pytest.approx(25.0)
    assert meta["flow"] == FlowConfig().describe() and meta["flow"]["algorithm"] == "tvl1"
    # What the dataset side reads back: RGB close to the decoded frames, flow close to computed flow.
    decoded = read_video(REAL_CLIP, max_frames=6).frames
    rgb = read_rgb_frames(out, range(6))
    assert rgb.shape == decoded.shape and np.abs(rgb.astype(int) - decoded).mean() < 3
    flow = compute_flow(decoded[:2])[0]  # (H, W, 2)
    stored = read_flow_frames(out, [0])[0].transpose(1, 2, 0)  # (2, H, W) -> (H, W, 2)
    assert np.abs(stored.astype(int) - quantize_flow(flow)).mean() < 1.0  # JPEG adds < 1 level on average
    assert np.abs(dequantize_flow(stored) - flow).mean() < 0.2


def test_resize_and_rgb_only(tmp_path: Path) -> None:
    src = drifting_clip(tmp_path / "a.mp4", 4, 0)
    meta = extract_video(src, tmp_path / "s" / "a", flow=None, size=(40, 30))
    assert (meta["frames"], meta["flow_frames"], meta["flow"], meta["width"], meta["height"]) == (4, 0, None, 40, 30)
    assert not list((tmp_path / "s" / "a").glob("flow_*"))
    assert cv2.imread(str(tmp_path / "s" / "a" / "img_00004.jpg")).shape == (30, 40, 3)
    meta = extract_video(src, tmp_path / "s" / "a", flow=FAST, short_side=24)
    assert (meta["width"], meta["height"], meta["flow_frames"]) == (32, 24, 3)


def test_odd_frame_size_and_gif_input(tmp_path: Path) -> None:
    odd = drifting_clip(tmp_path / "odd.avi", 3, 2, h=241, w=321)
    meta = extract_video(odd, tmp_path / "s" / "odd", flow=FAST)
    assert (meta["width"], meta["height"], meta["frames"], meta["flow_frames"]) == (321, 241, 3, 2)
    assert read_flow_frames(tmp_path / "s" / "odd", [1]).shape == (1, 2, 241, 321)
    gif = drifting_clip(tmp_path / "anim.gif", 4, 3)
    assert extract_video(gif, tmp_path / "s" / "anim", flow=FAST)["flow_frames"] == 3


def test_single_frame_video_with_flow(tmp_path: Path) -> None:
    src = drifting_clip(tmp_path / "one.mp4", 1, 0)
    with pytest.raises(VideoError, match=r"one\.mp4: only 1 frame.*at least 2"):
        extract_video(src, tmp_path / "s" / "one", flow=FAST)
    assert not (tmp_path / "s" / "one").exists()  # nothing written for a failed video
    assert extract_video(src, tmp_path / "s" / "one", flow=None)["frames"] == 1


def test_half_written_folder_is_redone(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    drifting_clip(videos / "a.avi", 5, 1)
    stale = tmp_path / "s" / "a"
    stale.mkdir(parents=True)
    for name in ("img_00001.jpg", "img_00009.jpg", "flow_x_00007.jpg", ".meta.abc.tmp"):
        (stale / name).write_bytes(b"partial")
    (stale / "notes.txt").write_text("not ours")
    report = extract_many(collect_sources(videos), tmp_path / "s", flow=FAST, progress=False)
    assert report.done == ["a"] and report.ok
    names = set(os.listdir(stale))
    assert "img_00009.jpg" not in names and "flow_x_00007.jpg" not in names and ".meta.abc.tmp" not in names
    assert "notes.txt" in names and len([n for n in names if n.startswith("img_")]) == 5
    again = extract_many(collect_sources(videos), tmp_path / "s", flow=FAST, progress=False)
    assert again.skipped == ["a"] and again.done == []


def test_shards_partition_the_videos(tmp_path: Path) -> None:
    ids = [f"v_Class{c}_g{g:02d}_c01" for c in range(20) for g in range(10)]
    shards = [select_shard([f"/data/{i}.avi" for i in ids], (k, 3)) for k in range(3)]
    flat = [v for s in shards for v in s.values()]
    assert sorted(flat) == sorted(ids)  # each video in exactly one shard
    assert all(len(s) > 30 for s in shards)  # and the hash spreads them
    # pinned: these values were computed once (SHA-1 of the id); a machine, Python or release that
    # sharded differently would extract some videos twice and others never
    pinned = {"v_ApplyEyeMakeup_g01_c01": [0, 2, 0, 12], "v_YoYo_g25_c05": [0, 0, 0, 0],
              "April_09_brush_hair_u_nm_np1_ba_goo_0": [1, 2, 1, 13]}
    assert {v: [shard_of(v, n) for n in (2, 3, 4, 16)] for v in pinned} == pinned
    # Real extraction with 3 shards into one store: every video done once.
    for k in range(4):
        drifting_clip(tmp_path / "v" / f"clip{k}.avi", 3, k)
    sources = collect_sources(tmp_path / "v")
    reports = [extract_many(sources, tmp_path / "s", shard=(k, 3), flow=None, progress=False) for k in range(3)]
    done = [v for r in reports for v in r.done]
    assert sorted(done) == [f"clip{k}" for k in range(4)]
    assert all(store.is_complete(tmp_path / "s" / v) for v in done)
    with pytest.raises(ValueError, match=r"shard=\(3, 3\)"):
        select_shard(sources, (3, 3))


def test_parse_shard_and_size() -> None:
    assert parse_shard("1/4") == (1, 4) and parse_size("340x256") == (340, 256)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="expected i/n"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="expected WIDTHxHEIGHT"):
        parse_size("340")


def test_collect_sources(tmp_path: Path) -> None:
    drifting_clip(tmp_path / "v" / "ClassA" / "v_ClassA_g01_c01.avi", 2, 0)
    drifting_clip(tmp_path / "v" / "ClassB" / "deep" / "x.mp4", 2, 1)
    (tmp_path / "v" / "ClassA" / "readme.txt").write_text("x")
    assert [p.name for p in collect_sources(tmp_path / "v")] == ["v_ClassA_g01_c01.avi", "x.mp4"]
    ucf = tmp_path / "trainlist01.txt"
    ucf.write_bytes(b"ClassA/v_ClassA_g01_c01.avi 1\r\nClassB/deep/x.mp4 2 \r\n\r\n")
    assert list(collect_sources(ucf, root=tmp_path / "v")) == [tmp_path / "v" / "ClassA" / "v_ClassA_g01_c01.avi",
                                                         tmp_path / "v" / "ClassB" / "deep" / "x.mp4"]
    hmdb = tmp_path / "ClassA_test_split1.txt"
    hmdb.write_text("v_ClassA_g01_c01.avi 1 \nmissing.avi 0 \n")
    assert list(collect_sources(hmdb, root=tmp_path / "v")) == [tmp_path / "v" / "ClassA" / "missing.avi",
                                                          tmp_path / "v" / "ClassA" / "v_ClassA_g01_c01.avi"]
    bad = tmp_path / "list.txt"
    bad.write_text("../outside.avi\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:1.*escapes"):
        collect_sources(bad)
    dup = tmp_path / "dup.txt"  # one stem in two folders: the folder joins the id
    dup.write_text("a/x.avi\nb/x.mp4\na__b/y.avi\na/b/y.mp4\n")
    with pytest.raises(AnnotationError, match=r"a/b/y\.mp4 and .*a__b/y\.avi would share the frame-store id 'a__b__y'"):
        collect_sources(dup)
    dup.write_text("a/x.avi\nb/x.mp4\nc/x.mp4\nc/y.mp4\n")
    assert list(collect_sources(dup).values()) == ["a__x", "b__x", "c__x", "y"]
    with pytest.raises(ValueError, match="nowhere: no such folder"):
        collect_sources(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["..avi", "...avi"])
def test_a_video_named_dots_is_refused_and_nothing_written_outside_out(tmp_path: Path, capsys, name: str) -> None:
    # its stem ('.' or '..') would make <out>/<stem> the store itself or the folder above it
    src = tmp_path / "in"
    drifting_clip(src / "ok.avi", 3, 0)
    (src / name).write_bytes((src / "ok.avi").read_bytes())
    (tmp_path / "store").mkdir()
    code = cli_main(["extract", str(src), "--out", str(tmp_path / "store" / "out"), "--flow", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{src / name}: video id {Path(name).stem!r} is not valid" in err and "Traceback" not in err
    assert list((tmp_path / "store").iterdir()) == []  # not even --out was made
    assert sorted(p.name for p in src.iterdir()) == sorted(["ok.avi", name])


def test_real_ucf101_split_file() -> None:
    sources = collect_sources(REAL / "ucf101_splits" / "testlist01.txt", root="/data/UCF-101")
    assert len(sources) == 3783
    assert Path("/data/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi") in sources
    assert len(set(sources.values())) == 3783 and sources[Path("/data/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi")] == "v_ApplyEyeMakeup_g01_c01"


@pytest.mark.slow
def test_corrupt_video_reported_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = tmp_path / "v"
    for k in range(2):
        drifting_clip(videos / f"good{k}.avi", 3, k)
    (videos / "broken.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 20)
    (videos / "empty.mp4").write_bytes(b"")
    code = cli_main(["extract", str(videos), "--out", str(tmp_path / "s"), "--flow", "farneback",
                     "--workers", "2", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "broken.avi" in err and "empty.mp4: empty file" in err
    assert store.is_complete(tmp_path / "s" / "good0") and store.is_complete(tmp_path / "s" / "good1")
    assert not (tmp_path / "s" / "broken").exists() and not (tmp_path / "s" / "empty").exists()
    assert store.read_meta(tmp_path / "s" / "good1")["flow"]["algorithm"] == "farneback"


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path: Path) -> None:
    videos = tmp_path / "v"
    for k in range(3):
        drifting_clip(videos / f"clip{k}.avi", 16, k, h=96, w=128)
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert extract_many(collect_sources(videos), ref, flow=FlowConfig(), progress=False).ok  # uninterrupted
    kill_mid_video_and_rerun(videos, out, ref, {"flow": "tvl1"}, ["--flow", "tvl1", "--no-progress"])


# --- headers that over-count, single files, changed settings, killed runs -----------

def test_header_over_count_recorded_and_counted_cut_file_fails(tmp_path: Path, capsys) -> None:
    videos = tmp_path / "v"
    videos.mkdir()
    avi_declaring(REAL_CLIP, videos / "plus1.avi", 165)               # 164 decode: within tolerance
    data = REAL_CLIP.read_bytes()
    (videos / "third.avi").write_bytes(data[: len(data) // 3])        # a real break
    out = tmp_path / "s"
    code = cli_main(["extract", str(videos), "--out", str(out), "--flow", "none", "--size", "80x60", "--no-progress"])
    printed = capsys.readouterr()
    assert code == 1 and "FAILED" in printed.err and "third.avi: truncated or damaged" in printed.err
    assert "1 video(s) decoded fewer frames than their header declares" in printed.out
    assert "plus1: 164 of 165" in printed.out
    meta = store.read_meta(out / "plus1")
    assert (meta["frames"], meta["declared_frames"]) == (164, 165)
    assert len(list((out / "plus1").glob("img_*.jpg"))) == 164 and not (out / "third").exists()
    strict = extract_many([videos / "plus1.avi"], tmp_path / "strict", flow=None, size=(80, 60), strict=True,
                          progress=False)
    assert strict.failed and "--strict" in strict.failed[0][1]


def test_single_video_file_and_changed_settings(tmp_path: Path, capsys) -> None:
    clip = drifting_clip(tmp_path / "one.avi", 4, 0)
    out = tmp_path / "s"
    assert cli_main(["extract", str(clip), "--out", str(out), "--flow", "farneback", "--no-progress"]) == 0
    assert store.read_meta(out / "one")["frames"] == 4 and "1 extracted" in capsys.readouterr().out
    before = tree_bytes(out)
    # the same settings again: nothing to do; other settings: refused before any work, nothing changed
    assert cli_main(["extract", str(clip), "--out", str(out), "--flow", "farneback", "--no-progress"]) == 0
    assert "1 already done" in capsys.readouterr().out
    for args, what in ((["--size", "32x24"], "size None (requested [32, 24])"),
                       (["--max-frames", "2"], "max_frames None (requested 2)"),
                       (["--bound", "4"], "'bound': 20.0")):
        assert cli_main(["extract", str(clip), "--out", str(out), "--flow", "farneback", "--no-progress", *args]) == 2
        err = capsys.readouterr().err
        assert "1 finished video(s) were extracted with other settings" in err and what in err and "--force" in err
        assert tree_bytes(out) == before
    assert cli_main(["extract", str(clip), "--out", str(out), "--flow", "farneback", "--no-progress",
                     "--size", "32x24", "--force"]) == 0
    meta = store.read_meta(out / "one")
    assert (meta["width"], meta["height"], meta["settings"]["size"]) == (32, 24, [32, 24])
    assert cv2.imread(str(out / "one" / "img_00004.jpg")).shape == (24, 32, 3)


def test_output_checked_before_work_and_binary_list_refused(tmp_path: Path, capsys) -> None:
    clip = drifting_clip(tmp_path / "v" / "one.avi", 3, 0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli_main(["extract", str(clip.parent), "--out", str(blocker), "--flow", "none"]) == 2
    assert f"{blocker}: output folder is an existing file" in capsys.readouterr().err
    binary = tmp_path / "list.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert cli_main(["extract", str(binary), "--out", str(tmp_path / "s"), "--flow", "none"]) == 2
    err = capsys.readouterr().err
    assert "list.bin: not a text list of videos (binary data)" in err and "\x00" not in err


@pytest.mark.slow
@pytest.mark.parametrize("sig,flow", [(signal.SIGKILL, {"flow": "tvl1"}), (signal.SIGTERM, {"flow": "tvl1"}),
                                      (signal.SIGKILL, {"flow": "tvl1_torch", "device": "cpu"})])  # batched: decode workers
def test_killed_extraction_leaves_no_process(tmp_path: Path, sig, flow) -> None:
    """Killed while both workers are mid-video (each holds after writing a video's RGB JPEGs)."""
    for k in range(4):
        drifting_clip(tmp_path / "v" / f"clip{k}.avi", 8, k)
    ready = tmp_path / "ready"
    ready.mkdir()
    log = tmp_path / "driver.log"
    proc = start_driver("hold", tmp_path / "v", tmp_path / "s", {**flow, "workers": 2}, ready, log=log)

    def holding() -> set[int] | None:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed:\n{log.read_text()[-3000:]}")
        pids = {int(p.name) for p in ready.iterdir()}
        return pids if len(pids) == 2 else None

    try:
        workers = wait_until(holding, 120, "both workers to hold after writing a video's RGB JPEGs",
                             state=lambda: log.read_text()[-2000:])
        spawned = process_tree(proc.pid)
        assert workers <= spawned, (workers, spawned)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    except BaseException:
        kill_all(process_tree(proc.pid) | {proc.pid})
        raise
    assert_all_exit(spawned, "extraction processes")
