"""Hostile files and values below the command line: bounded YAML, checkpoints and score files that
load safely but hold what tstam never writes, fusion weights at the edge of float, paths from files
that would leave their root. The command-line cases are rows of tests/test_bad_inputs.py."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tstam
from tstam.checkpoint import CheckpointError, load_stream
from tstam.cli import main
from tstam.config import ConfigError, apply_overrides, load_yaml
from tstam.data.records import AnnotationError
from tstam.data.splits import parse_csv, parse_rawframe_list, parse_ucf101
from tstam.engine import scores as scores_mod
from tstam.engine.fuse import fuse
from tstam.engine.scores import ScoreSet, load_scores, save_scores
from tstam.errors import InputError, ScoreFileError
from tstam.models import fuse_scores
from tstam.report import build_report
from tstam.serve.options import parse_options
from tstam.serve.samples import folder_samples

from helpers.hostile import alias_bomb, alias_bomb_value, malformed_checkpoint
from helpers.models import CLIPS, make_checkpoints
from helpers.realdata import VIDEOS

CLIP = VIDEOS / CLIPS[0]


# --- YAML --------------------------------------------------------------------------------------

def test_alias_bomb_messages_stay_short(tmp_path):
    """The bomb is refused from its composed nodes; nothing expanded reaches a message."""
    (tmp_path / "bomb.yaml").write_text(alias_bomb(levels=12))
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path / "bomb.yaml")
    assert "expand it beyond" in str(err.value) and len(str(err.value)) < 300
    with pytest.raises(ConfigError) as err:
        apply_overrides({}, ["model.se_blocks=" + alias_bomb_value(levels=12)])
    assert "override 'model.se_blocks'" in str(err.value) and len(str(err.value)) < 300


def test_anchors_within_the_bounds_still_work(tmp_path):
    """A config that shares a section through an anchor (a common YAML idiom) is read as before."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("defaults: &d {lr: 0.01, momentum: 0.8}\noptim: *d\n")
    assert load_yaml(cfg)["optim"] == {"lr": 0.01, "momentum": 0.8}
    cfg.write_text("\ufeffoptim: {lr: 0.02}\n", encoding="utf-8")  # a UTF-8 byte-order mark is fine
    assert load_yaml(cfg)["optim"]["lr"] == 0.02


def test_long_values_are_cut_in_messages():
    with pytest.raises(ConfigError) as err:
        apply_overrides({}, ["run.device=" + "x" * 100_000, "bad"])
    assert len(str(err.value)) < 300
    from tstam.engine.config import load_train_config

    with pytest.raises(ConfigError) as err:
        load_train_config("synthetic_rgb", ["model.head=" + "y" * 100_000])
    assert "model.head=" in str(err.value) and len(str(err.value)) < 400


# --- checkpoints and exports -------------------------------------------------------------------

@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    return make_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("change,message", [
    ({"classes": ["a", "b", "a"]}, "classes lists 'a' twice"),
    ({"classes": [1, 2, 3]}, "classes is [1, 2, 3]; expected a list of class names"),
    ({"classes": ["a", "", "c"]}, "expected a list of class names"),
    ({"model": [1, 2]}, "model is not a state dict"),
    ({"flow": "tvl1"}, "flow is 'tvl1'; expected a mapping"),
    ({"config": [1]}, "config is [1]; expected a mapping"),
    ({"data": {"resize": [64, 10**6]}}, "data.resize=[64, 1000000] is not valid"),
    ({"data": {"test_frames": 0}}, "data.test_frames=0 is not valid; expected 1 <= test_frames <= 250"),
    ({"data": {"resize": "64x80"}}, "data.resize: expected a list, got '64x80'"),
])
def test_malformed_checkpoints_name_the_file_and_the_key(ckpts, tmp_path, change, message):
    data = change.pop("data", None)
    path = malformed_checkpoint(ckpts["rgb"], tmp_path / "bad.pt", data=data, **change)
    with pytest.raises(CheckpointError) as err:
        load_stream(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), err.value


def test_export_sidecar_that_is_not_utf8(ckpts, tmp_path):
    from tstam.export import export_safetensors

    st, side = export_safetensors(ckpts["rgb"], tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(st)), str(st))  # the weights without the metadata: the sidecar is read
    side.write_bytes(b"\xff\xfe{}")
    with pytest.raises(CheckpointError, match=r"m\.json: not UTF-8 JSON"):
        load_stream(st)
    side.write_text(json.dumps({"format": "tstam-export", "version": 1, "model_config": {"num_segments": 10**6}}))
    with pytest.raises(CheckpointError, match=r"m\.safetensors: model_config is not valid: model\.num_segments=1000000"):
        load_stream(st)


# --- score files -------------------------------------------------------------------------------

def _set(seed: int, stream: str, n: int = 6, **meta) -> ScoreSet:
    p = np.random.default_rng(seed).dirichlet(np.ones(3), n).astype(np.float32)
    return ScoreSet([f"v{i}" for i in range(n)], np.arange(n) % 3, p, np.log(p), ["a", "b", "c"],
                    {"stream": stream, "split": 1, **meta})


def test_save_refuses_what_load_refuses_and_writes_nothing(tmp_path):
    bad = _set(0, "fused")
    bad.probs[:] = 0  # what fusion with overflowing weights gave
    with pytest.raises(ScoreFileError, match=r"f\.npz \(not written\): probs of 6 video\(s\) are not probabilities"):
        save_scores(tmp_path / "f.npz", bad)
    empty = ScoreSet([], np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), ["a", "b", "c"], {})
    with pytest.raises(ScoreFileError, match=r"e\.npz \(not written\): holds no videos"):
        save_scores(tmp_path / "e.npz", empty)
    assert not list(tmp_path.iterdir())


def test_score_arrays_are_bounded_before_loading(tmp_path, monkeypatch):
    path = save_scores(tmp_path / "s.npz", _set(0, "rgb", n=500))
    monkeypatch.setattr(scores_mod, "MAX_SCORE_BYTES", 10_000)
    with pytest.raises(ScoreFileError, match=r"s\.npz: its arrays unpack to [\d,]+ bytes, more than a score file may hold"):
        load_scores(path)


# --- fusion weights ----------------------------------------------------------------------------

def test_weights_whose_sum_overflows_fuse_as_their_ratio():
    a, b = np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([[0.6, 0.4], [0.5, 0.5]])
    equal = (a + b) / 2  # the mean, computed here by hand
    np.testing.assert_allclose(fuse_scores([a, b], [1e308, 1e308]), equal, rtol=1e-6)
    np.testing.assert_allclose(fuse_scores([a, b], [1.7e308, 0.0]), a, rtol=1e-6)
    np.testing.assert_allclose(fuse_scores([a, b], [5e-324, 5e-324]), equal, rtol=1e-6)  # the smallest float
    with pytest.raises(InputError, match="not all 0"):
        fuse_scores([a, b], [0.0, 0.0])


def test_fuse_cli_with_huge_weights_writes_what_report_reads(tmp_path, capsys):
    rgb, flow = save_scores(tmp_path / "rgb.npz", _set(0, "rgb")), save_scores(tmp_path / "flow.npz", _set(1, "flow"))
    assert main(["fuse", str(rgb), str(flow), "--weights", "1", "1", "-o", str(tmp_path / "one.npz")]) == 0
    assert main(["fuse", str(rgb), str(flow), "--weights", "1e308", "1e308", "-o", str(tmp_path / "big.npz")]) == 0
    out = capsys.readouterr().out
    assert "top-1 nan" not in out
    one, big = load_scores(tmp_path / "one.npz"), load_scores(tmp_path / "big.npz")
    np.testing.assert_allclose(big.probs, one.probs, rtol=1e-6)
    assert big.probs.sum(1) == pytest.approx(1, abs=1e-5)
    assert main(["report", str(tmp_path / "big.npz")]) == 0


def test_predict_and_api_with_huge_weights_match_equal_weights(ckpts, tmp_path):
    model = tstam.load(ckpts["rgb"], ckpts["flow"])
    one = model.predict(CLIP, weights=(1, 1))
    big = model.predict(CLIP, weights=(1e308, 1e308))
    np.testing.assert_allclose(big.probabilities, one.probabilities, rtol=1e-5)
    assert big.probabilities.sum() == pytest.approx(1, abs=1e-5)
    # the API's field goes through the same check (the HTTP server is tests/test_serve_api.py's)
    assert parse_options({"weights": "1e308,1e308"}, crops=1, top_k=5, pictures=False).weights == [1e308, 1e308]
    with pytest.raises(InputError, match="weights='1e309,1' is not valid"):
        parse_options({"weights": "1e309,1"}, crops=1, top_k=5, pictures=False)


# --- fusing a stream with itself ---------------------------------------------------------------

def test_a_copy_of_a_stream_is_not_fused_with_it(tmp_path, capsys):
    rgb = save_scores(tmp_path / "rgb.npz", _set(0, "rgb"))
    copy = _set(0, "flow")  # the RGB scores under the flow's name
    save_scores(tmp_path / "flow.npz", copy)
    assert main(["fuse", str(rgb), str(tmp_path / "flow.npz")]) == 2
    assert f"{tmp_path / 'flow.npz'} and {rgb} hold the same scores" in capsys.readouterr().err
    with pytest.raises(InputError, match="hold the same scores"):
        build_report([rgb, tmp_path / "flow.npz"])


def test_two_scorings_of_one_checkpoint_fuse_with_a_warning(caplog):
    a, b = _set(0, "rgb", checkpoint="runs/x/best.pt"), _set(1, "flow", checkpoint="runs/x/best.pt")
    fused = fuse([a, b], [1, 1], names=["a.npz", "b.npz"])
    assert fused.probs.shape == (6, 3)
    assert "b.npz and a.npz were both scored from the checkpoint runs/x/best.pt" in caplog.text


# --- paths from files --------------------------------------------------------------------------

def _ucf(tmp_path: Path, line: str) -> Path:
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (tmp_path / "trainlist01.txt").write_text(f"{line}\n")
    (tmp_path / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    return tmp_path


@pytest.mark.parametrize("line,message", [
    ("/data/ApplyEyeMakeup/v_x.avi 1", "trainlist01.txt:1: path '/data/ApplyEyeMakeup/v_x.avi' is absolute"),
    ("ApplyEyeMakeup/..avi 1", "trainlist01.txt:1: video id '.' is not valid"),
    ("ApplyEyeMakeup/...avi 1", "trainlist01.txt:1: video id '..' is not valid"),
    ("ApplyEyeMakeup/v_\0x.avi 1", "holds a NUL character"),
])
def test_official_list_lines_that_leave_the_root(tmp_path, line, message):
    with pytest.raises(AnnotationError) as err:
        parse_ucf101(_ucf(tmp_path, line), 1)
    assert message in str(err.value)


def test_user_lists_may_name_files_under_the_root_only(tmp_path):
    root = tmp_path / "frames"
    csv = tmp_path / "l.csv"
    csv.write_text(f"path,label,video_id\n{root}/a/v1.mp4,0,v1\n")
    assert parse_csv(csv, root).records[0].path == f"{root}/a/v1.mp4"  # absolute, under the root: on purpose
    for row, message in [("a/v1.mp4,0,../../x", "l.csv:2: video id '../../x' is not valid"),
                         ("a/v1.mp4,0,a/b", "l.csv:2: video id 'a/b' is not valid"),
                         (f"{tmp_path}/other/v1.mp4,0,v1", "is outside the dataset root"),
                         ("../../etc/passwd,0,v1", "escapes the dataset root")]:
        csv.write_text(f"path,label,video_id\n{row}\n")
        with pytest.raises(AnnotationError, match=message.replace(".", r"\.").replace("(", r"\(")):
            parse_csv(csv, root)
    lst = tmp_path / "l.txt"
    lst.write_text(". 12 0\n")
    with pytest.raises(AnnotationError, match=r"l\.txt:1: path '\.' is the dataset root itself"):
        parse_rawframe_list(lst, root)


def test_sample_links_out_of_the_folder_are_not_offered(tmp_path):
    folder, outside = tmp_path / "samples", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    shutil.copy(CLIP, folder / "clip.avi")
    shutil.copy(CLIP, outside / "secret.avi")
    os.symlink(outside / "secret.avi", folder / "link.avi")
    os.symlink(folder / "clip.avi", folder / "alias.avi")  # a link inside the folder is fine
    assert sorted(s.name for s in folder_samples(folder)) == ["alias.avi", "clip.avi"]


def test_picture_names_stay_inside_their_folder(tmp_path):
    from tstam.visualize import visualize_video

    with pytest.raises(InputError, match=r"picture name '\.\./x' is not valid"):
        visualize_video(None, CLIP, tmp_path / "pics", name="../x")  # refused before any work
    assert not (tmp_path / "pics").exists()
