"""Bad input to prediction and its CLI: each is reported with the file and the reason; a folder
goes on past a bad file and exits non-zero at the end."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tstam.cli import main
from tstam.inference import Recognizer, load_stream
from tstam.models import build_model
from tstam.video import VideoError, write_video

from helpers.cli import run_tstam
from helpers.models import CLIPS, RESIZE, make_checkpoint, moving_frames, tiny_config
from helpers.realdata import VIDEOS as REAL_VIDEOS


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {"rgb": make_checkpoint(d / "rgb.pt", "rgb"), "flow": make_checkpoint(d / "flow.pt", "flow")}


@pytest.fixture(scope="module")
def both(ckpts) -> Recognizer:
    return Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"])


def _bad_videos(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    (d / "notes.mp4").write_text("this is not a video\n")
    (d / "empty.avi").write_bytes(b"")
    data = (REAL_VIDEOS / CLIPS[0]).read_bytes()
    (d / "truncated.avi").write_bytes(data[: len(data) // 3])
    return {"not a video": d / "notes.mp4", "zero-byte": d / "empty.avi", "truncated": d / "truncated.avi"}


@pytest.mark.parametrize("kind,match", [("not a video", "notes.mp4"), ("zero-byte", "empty"),
                                        ("truncated", "truncated")])
def test_unreadable_videos_raise_naming_the_file(tmp_path, both, kind, match):
    path = _bad_videos(tmp_path)[kind]
    with pytest.raises(VideoError, match=match) as e:
        both.predict(path)
    assert str(path) in str(e.value)


def test_short_videos(tmp_path, both, ckpts):
    three = write_video(tmp_path / "three.avi", moving_frames(3, tuple(RESIZE)), 10.0)
    pred = both.predict(three)  # fewer frames than a flow snippet: snippets repeat, no crash
    assert pred.num_frames == 3 and pred.streams["flow"].starts.max() <= 1
    one = moving_frames(1, tuple(RESIZE))
    with pytest.raises(ValueError, match="at least 2 needed"):
        both.predict(one)  # no flow from a single frame
    rgb_only = Recognizer.from_paths(rgb=ckpts["rgb"]).predict(one)
    assert rgb_only.frame_indices.tolist() == [0] * 25


def test_wrong_stream_for_flag(ckpts):
    with pytest.raises(ValueError, match="'flow' stream checkpoint but it was given as the 'rgb'"):
        Recognizer.from_paths(rgb=ckpts["flow"])
    with pytest.raises(ValueError, match="two rgb streams"):
        Recognizer([load_stream(ckpts["rgb"]), load_stream(ckpts["rgb"])])


def test_checkpoint_of_another_format(tmp_path):
    plain = tmp_path / "state_dict.pt"
    torch.save(build_model(tiny_config("rgb")).state_dict(), plain)  # a bare state dict
    with pytest.raises(ValueError, match="not a tstam checkpoint"):
        load_stream(plain)
    other = tmp_path / "weights.onnx"
    other.write_bytes(b"\x08\x07")
    with pytest.raises(ValueError, match="unsupported checkpoint type '.onnx'"):
        load_stream(other)
    bad_st = tmp_path / "w.safetensors"
    bad_st.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_stream(bad_st)
    with pytest.raises(ValueError, match="not found"):
        load_stream(tmp_path / "missing.pt")


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump(  # a plain pickle (protocol 2, as torch.load expects) whose loading would run a command
{"format": "tstam-checkpoint", "version": 1, "x": _RunsCode(str(marker))}, f, protocol=2)
    evil_torch = tmp_path / "evil_torch.pt"
    torch.save({"format": "tstam-checkpoint", "version": 1, "x": _RunsCode(str(marker))}, evil_torch)
    for path in (evil, evil_torch):
        with pytest.raises(ValueError, match="weights-only .* could run code"):
            load_stream(path)
        assert main(["predict", str(REAL_VIDEOS / CLIPS[0]), "--rgb", str(path)]) == 2
    assert not marker.exists()
    with open(evil, "rb") as f:  # the payload is live: an unsafe load would have run it
        pickle.load(f)
    assert marker.exists()


def test_output_folder_not_writable(tmp_path, ckpts, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    video = str(REAL_VIDEOS / CLIPS[1])
    assert main(["predict", video, "--rgb", str(ckpts["rgb"]), "--visualize", str(blocker / "pics")]) == 2
    assert "output folder is not writable" in capsys.readouterr().err
    assert main(["predict", video, "--rgb", str(ckpts["rgb"]), "--json", str(blocker / "out.json")]) == 2
    assert f"{blocker}: output folder is an existing file" in capsys.readouterr().err
    assert main(["visualize", video, "--rgb", str(ckpts["rgb"]), "-o", "/proc/tstam-pics"]) == 2
    assert "/proc/tstam-pics: output folder is not writable" in capsys.readouterr().err
    assert main(["export", str(ckpts["rgb"]), "--safetensors", str(blocker / "m.safetensors")]) == 2
    assert f"{blocker}: output folder is an existing file" in capsys.readouterr().err


def test_folder_skips_bad_files_and_exits_nonzero(tmp_path, ckpts, capsys, caplog):
    d = tmp_path / "videos"
    _bad_videos(d)
    shutil.copy(REAL_VIDEOS / CLIPS[1], d / CLIPS[1])
    (d / "readme.txt").write_text("not listed: not a video extension")
    out = tmp_path / "p.json"
    rc = main(["predict", str(d), "--rgb", str(ckpts["rgb"]), "--flow", str(ckpts["flow"]), "--json", str(out), "-k", "2"])
    assert rc == 1
    cap = capsys.readouterr()
    assert CLIPS[1] in cap.out and "#  class" in cap.out
    assert "3 of 4 video(s) could not be read" in cap.err
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    assert sorted(Path(m.split()[1].rstrip(":")).name for m in skipped) == ["empty.avi", "notes.mp4", "truncated.avi"]
    data = json.loads(out.read_text())
    assert [Path(p["video"]).name for p in data["predictions"]] == [CLIPS[1]]
    assert {Path(f["video"]).name for f in data["failures"]} == {"notes.mp4", "empty.avi", "truncated.avi"}
    p = data["predictions"][0]
    assert len(p["top"]) == 2 and len(p["attention"]["flow"]["spatial"]) == 4
    assert np.isclose(sum(p["probabilities"]["fused"]), 1.0, atol=1e-5)


@pytest.mark.slow  # a real `tstam` process: its log goes to its stderr, as a user sees it
@pytest.mark.parametrize("command", ["predict", "visualize"])
def test_a_skipped_file_is_reported_once(tmp_path, ckpts, command):
    d = tmp_path / "videos"
    bad = _bad_videos(d)["truncated"]
    for other in ("notes.mp4", "empty.avi"):
        (d / other).unlink()
    shutil.copy(REAL_VIDEOS / CLIPS[1], d / CLIPS[1])
    extra = ["-o", str(tmp_path / "pics"), "--animation", "none"] if command == "visualize" else []
    r = run_tstam([command, str(d), "--rgb", str(ckpts["rgb"]), *extra], timeout=300)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count(str(bad)) == 1, r.stderr
    assert f"tstam {command}: 1 of 2 video(s) could not be read" in r.stderr
    assert CLIPS[1] in r.stdout


def test_predict_cli_needs_a_checkpoint(capsys):
    assert main(["predict", str(REAL_VIDEOS / CLIPS[0])]) == 2
    assert "give an RGB checkpoint, a flow checkpoint, or both" in capsys.readouterr().err


def test_batch_skips_unreadable_videos_only(tmp_path, both):
    """An error that is not about one video file (here a setting every video would fail on) stops
    the batch with its message instead of being reported as N unreadable videos."""
    from tstam.inference import predict_many

    bad = _bad_videos(tmp_path)
    good = REAL_VIDEOS / CLIPS[1]
    res = predict_many(both, [bad["zero-byte"], good], num_crops=1)
    assert [Path(p).name for p, _ in res.failures] == ["empty.avi"] and len(res.predictions) == 1
    with pytest.raises(ValueError, match=r"num_crops=5 is not valid; expected one of \[1, 3, 10\]"):
        predict_many(both, [good, good], num_crops=5)
