"""Attention pictures: the PNG (frames, alpha bars, one row per head and stream) and the animation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tstam.cli import main
from tstam.inference import Recognizer
from tstam.visualize import attention_animation, attention_figure, visualize_video

from helpers.models import CLIPS, RESIZE, make_checkpoint, moving_frames
from helpers.realdata import VIDEOS as REAL_VIDEOS


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {"rgb": make_checkpoint(d / "rgb.pt", "rgb", seed=3, sharpen=20.0),
            "flow": make_checkpoint(d / "flow.pt", "flow", seed=4, sharpen=20.0),
            "tsn": make_checkpoint(d / "tsn.pt", "rgb", head="tsn")}


def runs(band: np.ndarray, axis: int) -> list[tuple[int, int]]:
    """(start, length) of each run of lines along ``axis`` of an RGB band with any non-white pixel:
    the white gaps between tiles end the runs, white areas inside a tile do not."""
    ink = (band < 250).any(-1).any(1 - axis)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ink.astype(int), [0]])))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def square_tiles(img: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The tile grid found in the picture itself: (columns, rows) of image tiles (with their axes frame)."""
    x = next(x for x in range(img.shape[1]) if any(r[1] >= 40 for r in runs(img[:, x:x + 1], 0)))  # left edge
    rows = [r for r in runs(img[:, x + 4:x + 12], 0) if r[1] >= 40]
    y0, h = rows[0]
    cols = [c for c in runs(img[y0 + 4:y0 + h - 4], 1) if c[1] >= 40]
    return cols, rows


@pytest.mark.slow
def test_png_layout_and_content(tmp_path, ckpts):
    rec = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"])
    pred = rec.predict(REAL_VIDEOS / CLIPS[1], keep_video=True)
    pics = visualize_video(rec, pred.source, tmp_path / "pics", prediction=pred)
    assert pics.png.name == "v_BaseballPitch_g01_c01_attention.png"
    img = np.asarray(Image.open(pics.png).convert("RGB"))
    cols, rows = square_tiles(img)
    # one column per sampled snippet (25); rows: the frames, then 4 heads per stream (2 streams);
    # every tile square and of one size (to the axes frame's antialiased pixel or two)
    size = int(np.median([c[1] for c in cols]))
    assert len(cols) == 25 and len(rows) == 1 + 2 * 4
    assert all(abs(w - size) <= 3 for _, w in cols) and all(abs(h - size) <= 4 for _, h in rows)
    # between the frame row and each stream's heads lies that stream's row of alpha bars
    assert rows[1][0] - (rows[0][0] + size) > 0.3 * size and rows[5][0] - (rows[4][0] + size) > 0.3 * size
    # the first tile is the first sampled frame's centre crop (what the model saw), resized
    (x0, _), (y0, _) = cols[1], rows[0]  # the second tile: the first carries the axes' left spine
    tile = img[y0 + 2:y0 + size - 2, x0 + 2:x0 + size - 2].astype(float)
    crop = np.asarray(Image.fromarray(pred.frames[1]).resize((size, size), Image.BICUBIC))[2:-2, 2:-2].astype(float)
    other = np.asarray(Image.fromarray(pred.frames[-1]).resize((size, size), Image.BICUBIC))[2:-2, 2:-2].astype(float)
    assert np.abs(tile - crop).mean() < 0.5 * np.abs(tile - other).mean() and tile.std() > 10
    # head rows are the same frame under a heat map: coloured, not the plain frame
    head = img[rows[1][0] + 2:rows[1][0] + size - 2, x0 + 2:x0 + size - 2].astype(float)
    assert np.abs(head - tile).mean() > 5
    gif = Image.open(pics.animation)
    assert pics.animation.suffix == ".gif" and gif.n_frames > 50 and gif.size == (192, 192)


def test_no_attention_head_and_errors(tmp_path, ckpts):
    rec = Recognizer.from_paths(rgb=ckpts["tsn"])
    pred = rec.predict(moving_frames(10, tuple(RESIZE)), keep_video=True)
    png = attention_figure(pred, tmp_path / "tsn.png")  # frames only, no attention rows
    cols, rows = square_tiles(np.asarray(Image.open(png).convert("RGB")))
    assert len(cols) == 25 and len(rows) == 1
    with pytest.raises(ValueError, match="returns no attention"):
        attention_animation(pred, tmp_path / "tsn.gif")
    rec2 = Recognizer.from_paths(rgb=ckpts["rgb"])
    with pytest.raises(ValueError, match="keep_video=True"):
        attention_animation(rec2.predict(moving_frames(10, tuple(RESIZE))), tmp_path / "x.gif")


@pytest.mark.slow
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
