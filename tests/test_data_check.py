"""Frame-store checks: every bad folder is reported by name before training."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tstam.data.check import check_records, fill_num_frames, raise_on_problems
from tstam.data.frames import FrameLayout, read_flow_frames, read_rgb_frames
from tstam.data.records import VideoRecord
from tstam.data.store import write_meta

from helpers.realdata import MMA_FRAMES as MMA


def write_video(root: Path, vid: str, n: int, *, flow: int | None = None, size=(24, 32)) -> Path:
    """A real frame folder: n RGB JPEGs and (n - 1 by default) flow x/y JPEGs."""
    d = root / vid
    d.mkdir(parents=True)
    h, w = size
    for i in range(1, n + 1):
        cv2.imwrite(str(d / f"img_{i:05d}.jpg"), np.full((h, w, 3), i * 5 % 256, np.uint8))
    for i in range(1, (n - 1 if flow is None else flow) + 1):
        cv2.imwrite(str(d / f"flow_x_{i:05d}.jpg"), np.full((h, w), 128, np.uint8))
        cv2.imwrite(str(d / f"flow_y_{i:05d}.jpg"), np.full((h, w), 128, np.uint8))
    return d


def rec(vid, n=None):
    return VideoRecord(video_id=vid, path=f"Cls/{vid}.avi", label=0, num_frames=n)


def test_good_store_has_no_problems(tmp_path):
    write_video(tmp_path, "v_ok", 8)
    assert check_records([rec("v_ok")], tmp_path, "both") == []


@pytest.mark.parametrize("make, modality, match", [
    (lambda d: None, "rgb", "frame folder does not exist"),
    (lambda d: d.mkdir(), "rgb", "no RGB frames"),
    (lambda d: d.mkdir(), "flow", "no flow frames"),
    (lambda d: (write_video(d.parent, d.name, 8), (d / "img_00004.jpg").unlink()), "rgb",
     r"missing frame\(s\) img_00004\.jpg"),
    (lambda d: (write_video(d.parent, d.name, 8), (d / "flow_y_00002.jpg").unlink()), "flow",
     r"missing frame\(s\) flow_y_00002\.jpg"),
    (lambda d: write_video(d.parent, d.name, 8, flow=5), "both", "RGB/flow count mismatch: 8 RGB frames but 5"),
    (lambda d: (write_video(d.parent, d.name, 8), (d / "flow_x_00007.jpg").unlink()), "flow",
     "flow x/y count mismatch: 6 x vs 7 y"),
    (lambda d: (write_video(d.parent, d.name, 8), write_meta(d, {"frames": 9, "flow_frames": 8})), "rgb",
     "meta.json says 9 frames but the folder has 8"),
])
def test_bad_folders_are_named(tmp_path, make, modality, match):
    d = tmp_path / "v_bad"
    make(d)
    write_video(tmp_path, "v_fine", 4)
    problems = check_records([rec("v_fine"), rec("v_bad")], tmp_path, modality)
    assert problems and all(p.video_id == "v_bad" and p.path == str(d) for p in problems)
    assert any(__import__("re").search(match, p.message) for p in problems), [str(p) for p in problems]
    with pytest.raises(ValueError, match="v_bad"):
        raise_on_problems(problems)


def test_annotation_count_disagrees(tmp_path):
    write_video(tmp_path, "v_a", 6)
    (p,) = check_records([rec("v_a", 10)], tmp_path, "rgb")
    assert "annotation says 10 frames but the folder has 6" in p.message


def test_fill_num_frames_from_meta_or_counting(tmp_path):
    d = write_video(tmp_path, "v_meta", 5)
    write_meta(d, {"frames": 5, "flow_frames": 4})
    write_video(tmp_path, "v_count", 7)
    out = fill_num_frames([rec("v_meta"), rec("v_count"), rec("v_known", 3)], tmp_path, "rgb")
    assert [r.num_frames for r in out] == [5, 7, 3]
    assert fill_num_frames([rec("v_count")], tmp_path, "flow")[0].num_frames == 7
    with pytest.raises(ValueError, match=r"v_missing.*does not exist"):
        fill_num_frames([rec("v_missing")], tmp_path, "rgb")


@pytest.mark.parametrize("meta", [{"frames": "6"}, {"frames": 6.5}, {"frames": -1}, {"frames": True},
                                  {"frames": 6, "flow_frames": "5"}])
def test_metadata_counts_that_are_not_whole_numbers_are_refused_naming_the_file(tmp_path, meta):
    """A meta.json whose counts are not whole numbers is refused by name (not a bare int() error),
    and the frame counts come from the files instead, as for unreadable metadata."""
    from tstam.data.store import read_meta
    from tstam.errors import FrameStoreError

    d = write_video(tmp_path, "v_bad_meta", 6)
    write_meta(d, meta)
    with pytest.raises(FrameStoreError, match=r"v_bad_meta/meta\.json: metadata (flow_)?frames=.* is not valid; "
                                              "expected a whole number >= 0"):
        read_meta(d)
    assert fill_num_frames([rec("v_bad_meta")], tmp_path, "rgb")[0].num_frames == 6
    assert check_records([rec("v_bad_meta")], tmp_path, "both") == []


def test_mmaction_layout_reads_with_its_templates(tmp_path):
    r = VideoRecord(MMA.name, MMA.name, 0)
    layout = FrameLayout.mmaction()
    assert check_records([r], MMA.parent, "rgb", layout=layout) == []
    assert check_records([r], MMA.parent, "flow", layout=layout) == []
    assert "RGB/flow count mismatch" in check_records([r], MMA.parent, "both", layout=layout)[0].message
    assert "no flow frames" in check_records([r], MMA.parent, "flow")[0].message  # default template
    assert fill_num_frames([r], MMA.parent, "flow", layout=layout)[0].num_frames == 6
    rgb = read_rgb_frames(MMA, [0, 9])
    assert rgb.shape == (2, 240, 320, 3) and rgb.dtype == np.uint8
    assert read_flow_frames(MMA, [4], layout).shape == (1, 2, 240, 320)


def test_reading_a_missing_or_corrupt_frame_names_it(tmp_path):
    d = write_video(tmp_path, "v_a", 3)
    with pytest.raises(ValueError, match=r"img_00009\.jpg: frame missing"):
        read_rgb_frames(d, [8])
    (d / "img_00002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match=r"img_00002\.jpg: frame not a readable image"):
        read_rgb_frames(d, [1])
    shutil.rmtree(d)
