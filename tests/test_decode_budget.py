"""Decoding with a bound: the frames a prediction needs are kept while decoding (the result is the
one of decoding everything), and a file that would cost more than the decoding budget (frames,
pixels, frame size) is refused on every path with a message naming the file, the bound and the
option. Files that are not what they seem: a still picture named ``.mp4``, a display matrix that
says "rotate 90", a cover picture as the first video stream. The hostile files are made here for
real (PyAV, Pillow, a GIF written after its specification); docs/bad_inputs.md lists them."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from tstam.data.config import DataConfig
from tstam.data.datasets import VideoDataset
from tstam.data.records import VideoRecord
from tstam.inference import Recognizer
from tstam.models import ModelConfig
from tstam.serve.jobs import PredictionPool
from tstam.video import DecodeLimits, FrameSubset, VideoError, read_video, write_video

from helpers.cli import run_tstam
from helpers.hostile import (
    gif_bomb,
    malformed_checkpoint,
    many_frames_video,
    mp4_turned,
    peak_rss_kb,
    still_image_named_video,
    with_cover_first,
)
from helpers.models import CLIPS, RESIZE, make_checkpoints, moving_frames
from helpers.realdata import VIDEOS

CLIP = VIDEOS / CLIPS[1]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("budget_ckpt"))


@pytest.fixture(scope="module")
def both(ckpts) -> Recognizer:
    return Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """{name: path}: the 8000 x 8000 GIF of 2,000 one-pixel frames (46 KB), a small one of the same
    kind, 2,000 tiny frames in MP4 (declares its count) and in Matroska (declares none)."""
    d = tmp_path_factory.mktemp("hostile")
    return {"bomb": gif_bomb(d / "bomb.gif"), "small_bomb": gif_bomb(d / "small.gif", (1000, 1000), 200),
            "mp4": many_frames_video(d / "many.mp4", 2000), "mkv": many_frames_video(d / "many.mkv", 2000)}


# --- only what the protocol needs is kept ------------------------------------------------------

def test_predict_keeps_only_the_snippet_frames_and_answers_as_decoding_all(both):
    """The truth: the prediction from every frame decoded (the array path decodes nothing itself)."""
    full = read_video(CLIP, size=(RESIZE[1], RESIZE[0])).frames
    sparse = both.predict(CLIP)
    dense = both.predict(full)
    np.testing.assert_allclose(sparse.probabilities, dense.probabilities, atol=1e-6)
    for name in ("rgb", "flow"):
        np.testing.assert_array_equal(sparse.streams[name].starts, dense.streams[name].starts)
    assert sparse.num_frames == len(full) and np.array_equal(sparse.frames, dense.frames)


def test_keep_holds_only_the_asked_frames_and_indexes_like_the_whole_video():
    full = read_video(CLIP).frames
    clip = read_video(CLIP, keep=lambda n: np.array([0, n // 2, n - 1]))
    assert isinstance(clip.frames, FrameSubset) and clip.frames.frames.shape[0] == 3
    assert len(clip.frames) == len(full) == clip.num_frames
    np.testing.assert_array_equal(clip.frames[[0, len(full) - 1]], full[[0, -1]])
    np.testing.assert_array_equal(clip.frames[len(full) // 2, 2:5, 1:3], full[len(full) // 2, 2:5, 1:3])
    with pytest.raises(IndexError, match="not kept"):
        clip.frames[[1]]


def test_keep_counts_first_when_the_header_declares_nothing(hostile):
    """Matroska declares no frame count: the count comes from a first pass, the frames from the second."""
    clip = read_video(hostile["mkv"], keep=lambda n: np.array([n - 1]))
    assert clip.declared_frames == 0 and clip.num_frames == 2000 and clip.frames.indices.tolist() == [1999]


def test_video_dataset_keeps_only_its_snippets(tmp_path):
    """VideoDataset draws its snippets for the decoded count and keeps only those frames; a video
    over data.decode is refused naming data.decode."""
    frames = moving_frames(40, (40, 48))
    write_video(tmp_path / "a.avi", frames, 10)
    model = ModelConfig(modality="rgb", num_classes=1, num_segments=3, input_size=32)
    rec = [VideoRecord("a", "a.avi", 0)]
    ds = VideoDataset(rec, data=DataConfig(input="video", resize=[40, 48]), model=model, root=tmp_path, mode="val")
    clip = ds[0][0]
    assert clip.shape[0] == 3
    small = DataConfig(input="video", resize=[40, 48], decode=DecodeLimits(max_frames=30))
    with pytest.raises(VideoError, match=r"a\.avi: declares frames: 40, over the decoding budget of 30 per video "
                                         r"\(--decode-max-frames, data\.decode\.max_frames\)"):
        VideoDataset(rec, data=small, model=model, root=tmp_path, mode="val")[0]


# --- the decoding budget -----------------------------------------------------------------------

@pytest.mark.parametrize("name, limits, match", [
    ("bomb", DecodeLimits(), r"frames of 8000 x 8000 = 64,000,000, over the decoding budget of 16,777,216 per frame "
                             r"\(--decode-max-frame-pixels, data.decode.max_frame_pixels\)"),
    ("small_bomb", DecodeLimits(max_pixels=5e7), r"declares 200 frames of 1000 x 1000, pixels: 200,000,000, over "
                                                 r"the decoding budget of 50,000,000 per video \(--decode-max-pixels"),
    ("mp4", DecodeLimits(max_frames=1000), r"declares frames: 2,000, over the decoding budget of 1,000 per video "
                                           r"\(--decode-max-frames"),
    # Matroska declares nothing: refused while decoding, once past the bound
    ("mkv", DecodeLimits(max_frames=1000), r"decoded frames: more than 1,000, over the decoding budget of 1,000"),
    ("mkv", DecodeLimits(max_pixels=32 * 24 * 500), r"decoded 501 frames, pixels: 384,768, over the decoding "
                                                    r"budget of 384,000 per video \(--decode-max-pixels"),
])
def test_budget_refuses_naming_file_bound_and_option(hostile, name, limits, match):
    path = hostile[name]
    t0 = time.perf_counter()
    with pytest.raises(VideoError, match=match) as err:
        read_video(path, size=(80, 64), limits=limits)
    assert str(err.value).startswith(f"{path}: ")
    print(f"{name}: refused in {time.perf_counter() - t0:.3f} s")


def test_budget_admits_what_it_bounds_and_the_datasets_clips(hostile):
    """The bounds are inclusive, and the defaults admit the real clips."""
    assert read_video(hostile["mp4"], limits=DecodeLimits(max_frames=2000), keep=lambda n: [0]).num_frames == 2000
    assert read_video(hostile["mkv"], limits=DecodeLimits(max_pixels=32 * 24 * 2000), keep=lambda n: [0]).num_frames == 2000
    for clip in CLIPS:
        read_video(VIDEOS / clip, keep=lambda n: [0])


def test_cli_paths_refuse_the_bomb_and_say_so(tmp_path, hostile, ckpts):
    """predict and visualize report and skip it (exit 1), extract fails that video (exit 1); each
    names the file, the bound and the option, without a traceback, and within seconds."""
    runs = {
        "predict": ["predict", str(hostile["bomb"]), "--rgb", str(ckpts["rgb"])],
        "visualize": ["visualize", str(hostile["bomb"]), "--rgb", str(ckpts["rgb"]), "--out", str(tmp_path / "v")],
        "extract": ["extract", str(hostile["bomb"]), "--out", str(tmp_path / "store"), "--flow", "none"],
    }
    for name, argv in runs.items():
        t0 = time.perf_counter()
        r = run_tstam(argv, timeout=120)
        took = time.perf_counter() - t0
        assert r.returncode == 1, (name, r.stderr)
        assert "bomb.gif: frames of 8000 x 8000" in r.stderr and "--decode-max-frame-pixels" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        print(f"tstam {name} on the 8000x8000 GIF bomb: exit 1 in {took:.1f} s (process start included)")


def test_cli_option_sets_the_budget(tmp_path, hostile):
    r = run_tstam(["extract", str(hostile["mkv"]), "--out", str(tmp_path / "s"), "--flow", "none",
                   "--decode-max-frames", "100"])
    assert r.returncode == 1 and "many.mkv: decoded frames: more than 100" in r.stderr, r.stderr
    r = run_tstam(["extract", str(hostile["mkv"]), "--out", str(tmp_path / "s"), "--flow", "none",
                   "--decode-max-frames", "0"])
    assert r.returncode == 2 and "--decode-max-frames" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_serve_answers_422_naming_the_upload(tmp_path, both, hostile):
    """The prediction pool of tstam serve: the budget's refusal is the job's 422, with the client's
    file name instead of the server's path, and the pool goes on with the next upload."""
    pool = PredictionPool(both, tmp_path, workers=1, queue=1, limits=DecodeLimits(max_frames=500))
    try:
        for name, src, status in (("bomb.gif", hostile["bomb"], 422), ("many.mp4", hostile["mp4"], 422),
                                  ("clip.avi", CLIP, 200)):
            job = pool.open()
            job.name = name
            video = job.folder / f"upload{src.suffix}"
            shutil.copy(src, video)
            pool.start(job, video)
            job.answered.result(timeout=120)
            assert job.status == status, (name, job.error)
            if status == 422:
                assert job.error.startswith(f"{name}: ") and "over the decoding budget" in job.error, job.error
                assert str(tmp_path) not in job.error
    finally:
        pool.shutdown()


def test_predict_memory_does_not_grow_with_the_video(tmp_path, ckpts):
    """Peak memory (the kernel's ru_maxrss) of ``tstam predict`` on a 30,000-frame file (20 minutes
    of tiny black frames, 0.5 MB) decoded at 240 x 320 is within 1.5x its peak on a 75-frame clip
    of the same kind: keeping every frame would need 30,000 x 230 KB = 6.9 GB."""
    big = malformed_checkpoint(ckpts["rgb"], tmp_path / "rgb240.pt", data={"resize": [240, 320]})
    long = many_frames_video(tmp_path / "long.mp4", 30_000)
    short = many_frames_video(tmp_path / "short.mp4", 75)
    peaks = {}
    for name, video in (("short", short), ("long", long)):
        t0 = time.perf_counter()
        code, peaks[name], err = peak_rss_kb(["predict", str(video), "--rgb", str(big)])
        assert code == 0, err
        print(f"tstam predict {name}: peak {peaks[name] / 1024:.0f} MB in {time.perf_counter() - t0:.1f} s")
    assert peaks["long"] <= 1.5 * peaks["short"], peaks


# --- files that are not what they seem ----------------------------------------------------------

@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_still_image_named_mp4_is_refused(tmp_path, both, fmt):
    path = still_image_named_video(tmp_path / "photo.mp4", fmt)
    with pytest.raises(VideoError, match=rf"photo\.mp4: a still image \({fmt} data\), not a video"):
        both.predict(path)
    r = run_tstam(["extract", str(path), "--out", str(tmp_path / "s"), "--flow", "none"])
    assert r.returncode == 1 and f"a still image ({fmt} data)" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("quarters", [1, 2, 3], ids=["rotate90", "rotate180", "rotate270"])
def test_display_matrix_rotate_90_is_decoded_upright(tmp_path, both, quarters):
    """The truth: the upright frames the file was made from (stored turned, with the matrix saying
    "turn 90 (180, 270) clockwise to show", as a phone held upright records)."""
    upright = np.zeros((6, 48, 32, 3), np.uint8)
    upright[:, :16, :16] = 255          # a white square top left of a portrait picture
    path = mp4_turned(tmp_path / "phone.mp4", upright, quarters=quarters)
    clip = read_video(path)
    assert clip.size == (32, 48)
    np.testing.assert_allclose(clip.frames.mean(-1), upright.mean(-1), atol=40)
    assert read_video(path, size=(16, 24)).frames.shape == (6, 24, 16, 3)
    pred = both.predict(path)  # decoded at the model's (H, W): the upright picture, squeezed to landscape
    assert pred.num_frames == 6


@pytest.mark.parametrize("flagged", [True, False], ids=["attached_pic", "one_frame_first_stream"])
def test_cover_picture_first_is_not_the_video(tmp_path, both, flagged):
    """The file's video is 8 green frames after a red cover picture: decoding and prediction use
    the video (the truth: the same frames written as a file of their own)."""
    frames = moving_frames(8, (48, 64))
    frames[..., 1] = 200
    cover = np.zeros((48, 64, 3), np.uint8)
    cover[..., 0] = 250
    path = with_cover_first(tmp_path / ("cover.mp4" if flagged else "cover.mkv"), frames, cover, flagged=flagged)
    plain = write_video(tmp_path / "plain.mp4", frames, 10, codec="mpeg4")
    clip = read_video(path)
    assert clip.num_frames == 8 and clip.frames[..., 1].mean() > 150 and clip.frames[..., 0].mean() < 200
    np.testing.assert_allclose(both.predict(path).probabilities, both.predict(plain).probabilities, atol=1e-4)


def test_animation_from_kept_frames_at_any_length(tmp_path, both, hostile):
    """keep_video keeps the default animation's 120 frames (of 2,000) besides the snippets': an
    animation of another length uses the nearest kept frames instead of failing on frames never kept."""
    from PIL import Image

    from tstam.visualize import attention_animation

    pred = both.predict(hostile["mp4"], keep_video=True)
    assert isinstance(pred.video, FrameSubset) and len(pred.video.indices) < 400 and pred.num_frames == 2000
    for n in (120, 30):
        gif = attention_animation(pred, tmp_path / f"a{n}.gif", max_frames=n)
        frames = Image.open(gif).n_frames
        assert n // 2 < frames <= n, (n, frames)
