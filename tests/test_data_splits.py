"""Split parsers on the real UCF101 / HMDB51 files and on bad lines."""
from pathlib import Path

import pytest

from tstam.data.records import AnnotationError, VideoRecord, frame_dir, safe_relpath
from tstam.data.splits import load_annotations, parse_csv, parse_hmdb51, parse_rawframe_list, parse_ucf101

from helpers.realdata import REALDATA as REAL

UCF = REAL / "ucf101_splits"
HMDB = REAL / "hmdb51_splits"


@pytest.mark.parametrize("split, n_train, n_test", [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_ucf101_real_counts(split, n_train, n_test):
    s = parse_ucf101(UCF, split)
    assert (len(s.train), len(s.test), len(s.classes)) == (n_train, n_test, 101)
    assert {r.label for r in s.train} == set(range(101)) == {r.label for r in s.test}
    assert not {r.video_id for r in s.train} & {r.video_id for r in s.test}
    first = s.train[0]
    assert first.video_id.startswith("v_ApplyEyeMakeup_") and first.label == 0 and not first.path.endswith("\r")
    assert s.classes[36] == "HandstandPushups"
    hs = [r for r in s.test if r.video_id.startswith("v_HandStandPushups_")]
    assert hs and {r.label for r in hs} == {36}


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_real_counts(split):
    s = parse_hmdb51(HMDB, split)
    assert (len(s.train), len(s.test), len(s.classes)) == (3570, 1530, 51)
    assert s.classes[0] == "brush_hair" and s.classes[-1] == "wave"
    assert all(r.path == f"{s.classes[r.label]}/{r.video_id}.avi" for r in s.train[:50])


def _ucf_dir(tmp_path, train_lines, test_lines=("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",)):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    (tmp_path / "trainlist01.txt").write_text("\r\n".join(train_lines) + "\r\n")
    (tmp_path / "testlist01.txt").write_text("\r\n".join(test_lines) + "\r\n")
    return tmp_path


@pytest.mark.parametrize("line, match", [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", r"trainlist01\.txt:2: too few fields"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1 7", r"trainlist01\.txt:2: too many fields"),
    ("Skydiving/v_Skydiving_g08_c01.avi 1", r"trainlist01\.txt:2: unknown class 'Skydiving'"),
    ("../../etc/v_x.avi 1", r"trainlist01\.txt:2: path .* escapes the dataset root"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2", r"trainlist01\.txt:2: label 2 .*disagrees"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 9", r"trainlist01\.txt:2: label 9 out of range"),
])
def test_ucf101_bad_lines(tmp_path, line, match):
    d = _ucf_dir(tmp_path, ["HandstandPushups/v_HandStandPushups_g01_c01.avi 2", line])
    with pytest.raises(AnnotationError, match=match):
        parse_ucf101(d, 1)


def test_ucf101_case_insensitive_and_unknown_test_class(tmp_path):
    d = _ucf_dir(tmp_path, ["handstandpushups/v_HandStandPushups_g01_c01.avi 2"])
    assert parse_ucf101(d, 1).train[0].label == 1
    (d / "testlist01.txt").write_text("Juggling/v_Juggling_g01_c01.avi\r\n")
    with pytest.raises(AnnotationError, match=r"testlist01\.txt:1: unknown class 'Juggling'"):
        parse_ucf101(d, 1)


def test_bad_split_number():
    with pytest.raises(AnnotationError, match=r"split=4 .*\[1, 2, 3\]"):
        parse_ucf101(UCF, 4)


@pytest.mark.parametrize("line, match", [
    ("a.avi", "too few fields"), ("a.avi 1 2", "too many fields"), ("a.avi 3", "split flag '3'"),
    ("../b.avi 1", "video name '../b.avi' must be a plain file name"),
])
def test_hmdb51_bad_lines(tmp_path, line, match):
    (tmp_path / "jump_test_split1.txt").write_text("ok.avi 1 \n" + line + " \n")
    with pytest.raises(AnnotationError, match=r"jump_test_split1\.txt:2: " + match):
        parse_hmdb51(tmp_path, 1)


def test_rawframe_list(tmp_path):
    p = tmp_path / "list.txt"
    p.write_text("ApplyEyeMakeup/v_a 120 0\r\nBoxing/v_b 80 3 \r\n\r\n")
    ann = parse_rawframe_list(p, tmp_path)
    assert [(r.video_id, r.path, r.num_frames, r.label) for r in ann] == [
        ("v_a", "ApplyEyeMakeup/v_a", 120, 0), ("v_b", "Boxing/v_b", 80, 3)]
    assert ann.classes == ["0", "1", "2", "3"]
    assert frame_dir(ann.records[0], tmp_path) == tmp_path / "ApplyEyeMakeup/v_a"
    named = tmp_path / "named.txt"
    named.write_text("a 5 boxing\n")
    assert parse_rawframe_list(named, classes=["Juggling", "Boxing"]).records[0].label == 1


@pytest.mark.parametrize("line, match", [
    ("v_a 120", "too few fields"), ("v_a 0 120 3", "too many fields"), ("v_a x 0", "frame count 'x'"),
    ("../other/v_a 12 0", "path .* escapes the dataset root"), ("/elsewhere/v_a 12 0", "path .* outside the dataset root"),
    ("v_a 12 Juggling", "unknown class 'Juggling'"),
])
def test_rawframe_list_bad_lines(tmp_path, line, match):
    p = tmp_path / "list.txt"
    p.write_text("v_ok 10 0\n" + line + "\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:2: " + match):
        parse_rawframe_list(p, tmp_path / "root", classes=["Boxing"])


def test_csv_with_class_names(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text("path,label,num_frames\nvids/b1.mp4,boxing,30\nvids/j1.mp4,Juggling,\n\n")
    ann = parse_csv(p)
    assert ann.classes == ["Juggling", "boxing"]
    assert [(r.video_id, r.label, r.num_frames) for r in ann] == [("b1", 1, 30), ("j1", 0, None)]
    test = tmp_path / "test.csv"
    test.write_text("path,label\nvids/x.mp4,Skating\n")
    with pytest.raises(AnnotationError, match=r"test\.csv:2: unknown class 'Skating'"):
        parse_csv(test, classes=ann.classes)
    assert load_annotations("csv", p).classes == ann.classes


@pytest.mark.parametrize("text, match", [
    ("path,lable\na.mp4,1\n", r"x\.csv:1: header"),
    ("path,label\na.mp4\n", r"x\.csv:2: too few fields"),
    ("path,label\na.mp4,1,2\n", r"x\.csv:2: too many fields"),
    ("path,label\n../a.mp4,1\n", r"x\.csv:2: path .* escapes"),
    ("path,label\na.mp4,-1\n", r"x\.csv:2: label -1 out of range"),
])
def test_csv_bad(tmp_path, text, match):
    p = tmp_path / "x.csv"
    p.write_text(text)
    with pytest.raises(AnnotationError, match=match):
        parse_csv(p)


def test_missing_file_and_format(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.txt: annotation file not found"):
        parse_rawframe_list(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match=r"format 'kinetics' .*ucf101"):
        load_annotations("kinetics", tmp_path)


def test_safe_relpath_normalises():
    assert safe_relpath("a\\b/./c.avi ", where="f:1") == "a/b/c.avi"
    assert safe_relpath("a/../b.avi", where="f:1") == "b.avi"
    assert frame_dir(VideoRecord("v_x", "C/v_x.avi", 0), "/store") == Path("/store/v_x")


def test_repeated_lines_warn_and_one_id_twice_is_refused(tmp_path, caplog):
    line = "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    d = _ucf_dir(tmp_path, [line, "HandstandPushups/v_HandStandPushups_g01_c01.avi 2", line])
    s = parse_ucf101(d, 1)
    assert [r.video_id for r in s.train] == ["v_ApplyEyeMakeup_g08_c01", "v_HandStandPushups_g01_c01"]
    assert f"{d / 'trainlist01.txt'}:3 repeats {d / 'trainlist01.txt'}:1 (v_ApplyEyeMakeup_g08_c01)" in caplog.text
    # the same id in two class folders: one frame folder and one score row cannot hold both
    _ucf_dir(tmp_path, [line, "HandstandPushups/v_ApplyEyeMakeup_g08_c01.avi 2"])
    with pytest.raises(AnnotationError, match=r"trainlist01\.txt:2: video 'v_ApplyEyeMakeup_g08_c01' "
                                              r"\(HandstandPushups/.*\) was already listed at .*trainlist01\.txt:1"):
        parse_ucf101(d, 1)
    (tmp_path / "jump_test_split1.txt").write_text("a.avi 1\nb.avi 2\na.avi 1\n")
    assert [r.video_id for r in parse_hmdb51(tmp_path, 1).train] == ["a"]
    assert "jump_test_split1.txt:3 repeats" in caplog.text


def test_train_and_test_lists_sharing_videos_are_refused(tmp_path):
    from tstam.data.config import DataConfig
    from tstam.engine.annotations import load_split
    from tstam.engine.config import AnnotationConfig

    (tmp_path / "jump_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 1\na.avi 2\n")
    with pytest.raises(AnnotationError, match=r"1 video\(s\) are in both the training list .* \(split 1\) and the "
                                              r"test list of the same split, e.g. a; a model must not train on its test"):
        load_split(AnnotationConfig(format="hmdb51", path=str(tmp_path)), DataConfig())
