"""Attention pictures: the PNG (frames, alpha bars, one row per head and stream) and the animation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predict_models import CLIPS, REAL_VIDEOS, RESIZE, make_checkpoint, moving_frames
from tstam.cli import main
from tstam.inference import Recognizer
from tstam.visualize import GAP, TILE, attention_animation, attention_figure, visualize_video


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {"rgb": make_checkpoint(d / "rgb.pt", "rgb", seed=3, sharpen=20.0),
            "flow": make_checkpoint(d / "flow.pt", "flow", seed=4, sharpen=20.0),
            "tsn": make_checkpoint(d / "tsn.pt", "rgb", head="tsn")}


def test_png_layout_and_content(tmp_path, ckpts):
    rec = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"])
    pred = rec.predict(REAL_VIDEOS / CLIPS[1], keep_video=True)
    pics = visualize_video(rec, pred.source, tmp_path / "pics", prediction=pred)
    assert pics.png.name == "v_BaseballPitch_g01_c01_attention.png"
    img = np.asarray(Image.open(pics.png).convert("RGB"))
    # rows: frames + per stream (alpha bars + 4 heads); 25 tiles wide
    assert img.shape[1] == 110 + 25 * (TILE + GAP) - GAP + 16
    assert img.shape[0] == 44 + 9 * TILE + 2 * 56 + 10 * 6 + 44
    # the first tile is the first sampled frame's centre crop (resized), not blank
    tile = img[44:44 + TILE, 110:110 + TILE].astype(float)
    assert tile.std() > 10
    # head rows are coloured (heat map), the frame row is the plain frame
    head = img[44 + TILE + 6 + 56 + 6: 44 + 2 * TILE + 6 + 56 + 6, 110:110 + TILE].astype(float)
    assert np.abs(head - tile).mean() > 5
    gif = Image.open(pics.animation)
    assert pics.animation.suffix == ".gif" and gif.n_frames > 50 and gif.size == (192, 192)


def test_no_attention_head_and_errors(tmp_path, ckpts):
    rec = Recognizer.from_paths(rgb=ckpts["tsn"])
    pred = rec.predict(moving_frames(10, tuple(RESIZE)), keep_video=True)
    png = attention_figure(pred, tmp_path / "tsn.png")  # frames only, no attention rows
    assert np.asarray(Image.open(png)).shape[0] == 44 + TILE + 44
    with pytest.raises(ValueError, match="returns no attention"):
        attention_animation(pred, tmp_path / "tsn.gif")
    rec2 = Recognizer.from_paths(rgb=ckpts["rgb"])
    with pytest.raises(ValueError, match="keep_video=True"):
        attention_animation(rec2.predict(moving_frames(10, tuple(RESIZE))), tmp_path / "x.gif")


def test_visualize_cli_mp4_and_predict_flag(tmp_path, ckpts, capsys):
    video = str(REAL_VIDEOS / CLIPS[0])
    assert main(["visualize", video, "--flow", str(ckpts["flow"]), "-o", str(tmp_path / "v"), "--animation", "mp4"]) == 0
    out = tmp_path / "v" / "v_ApplyEyeMakeup_g01_c01_attention"
    assert out.with_suffix(".png").stat().st_size > 0 and out.with_suffix(".mp4").stat().st_size > 0
    from tstam.video import read_video

    assert read_video(out.with_suffix(".mp4")).num_frames > 50
    assert main(["predict", video, "--rgb", str(ckpts["rgb"]), "--visualize", str(tmp_path / "p"),
                 "--animation", "none"]) == 0
    assert "pictures:" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["v_ApplyEyeMakeup_g01_c01_attention.png"]
