"""Prediction: real clips, both streams, fusion, attention, crops, frames input, parity with the
training input pipeline (VideoDataset), other containers (.gif, .webm)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tstam.inference import Recognizer, format_table, load_stream
from tstam.models import fuse_scores

from helpers.models import CLASSES, CLIPS, RESIZE, make_checkpoints, moving_frames
from helpers.realdata import VIDEOS as REAL_VIDEOS


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    return make_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def both(ckpts) -> Recognizer:
    return Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"])


@pytest.mark.parametrize("name", CLIPS)
def test_real_clips_both_streams(both, name):
    pred = both.predict(REAL_VIDEOS / name)
    assert pred.classes == CLASSES and pred.num_frames > 25
    rgb, flow = pred.streams["rgb"], pred.streams["flow"]
    np.testing.assert_allclose(pred.probabilities, (rgb.probabilities + 3 * flow.probabilities) / 4, atol=1e-6)
    softmax = [torch.from_numpy(s.logits).softmax(-1).numpy() for s in (rgb, flow)]
    np.testing.assert_allclose(pred.probabilities, fuse_scores(softmax, (1, 3)), atol=1e-6)  # one crop: softmax of the mean
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(rgb.probabilities, flow.probabilities)
    for s in (rgb, flow):
        assert s.temporal.shape == (25,) and s.temporal.sum() == pytest.approx(1.0, abs=1e-5)
        assert s.spatial.shape == (4, 25, 2, 2)
        np.testing.assert_allclose(s.spatial.sum((-1, -2)), 1.0, atol=1e-5)
    assert pred.frames.shape == (25, 64, 64, 3) and pred.crop == (0, 8, 64)
    assert pred.label == pred.top(1)[0][0]
    table = format_table(pred, k=3)
    assert name in table and "fused" in table and len(table.splitlines()) == 5
    d = pred.to_dict(k=2)
    assert set(d["probabilities"]) == {"fused", "rgb", "flow"} and len(d["top"]) == 2
    assert len(d["attention"]["flow"]["temporal"]) == 25


def test_ten_crops_keep_centre_attention(ckpts):
    rec = Recognizer.from_paths(rgb=ckpts["rgb"])
    frames = moving_frames(30, tuple(RESIZE))
    one, ten = rec.predict(frames, num_crops=1), rec.predict(frames, num_crops=10)
    # crop 4 of the 10 is the centre crop: its attention equals the 1-crop run's
    np.testing.assert_allclose(one.streams["rgb"].temporal, ten.streams["rgb"].temporal, atol=1e-6)
    np.testing.assert_allclose(one.streams["rgb"].spatial, ten.streams["rgb"].spatial, atol=1e-6)
    assert not np.allclose(one.streams["rgb"].logits, ten.streams["rgb"].logits)  # averaged over 10 crops
    chunked = rec.predict(frames, num_crops=10, batch_crops=3)  # same result in chunks of 3 crops
    np.testing.assert_allclose(chunked.probabilities, ten.probabilities, atol=1e-6)
    np.testing.assert_allclose(chunked.streams["rgb"].spatial, ten.streams["rgb"].spatial, atol=1e-6)


def test_frames_input_equals_file(tmp_path, both):
    from tstam.video import read_video

    path = REAL_VIDEOS / CLIPS[1]
    frames = read_video(path, size=(RESIZE[1], RESIZE[0])).frames
    a, b = both.predict(path), both.predict(frames)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    assert b.source == "<frames>"


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_same_input_as_training_pipeline(tmp_path, ckpts, modality):
    """The clip a stream sees equals what VideoDataset (test mode) gives the model in testing."""
    from tstam.data.config import DataConfig
    from tstam.data.datasets import VideoDataset
    from tstam.data.records import VideoRecord
    from tstam.data.transforms import eval_crops
    from tstam.video import read_video

    path = REAL_VIDEOS / CLIPS[0]
    stream = load_stream(ckpts[modality])
    rec = Recognizer([stream])
    data = DataConfig(resize=list(RESIZE), test_crops=10, flow=stream.flow)
    ds = VideoDataset([VideoRecord("v", str(path), 0)], root="/", mode="test", data=data, model=stream.config)
    expect, _ = ds[0]                                                     # (10, 25, C, 64, 64) uint8
    frames = read_video(path, size=(RESIZE[1], RESIZE[0])).frames
    clip, _ = rec.sample(modality, frames)
    got = eval_crops(clip, size=64, num_crops=10, flow=modality == "flow")
    torch.testing.assert_close(got, expect)


@pytest.mark.parametrize("ext", [".gif", ".webm"])
def test_gif_and_webm(tmp_path, both, ext):
    from tstam.video import write_video

    path = write_video(tmp_path / f"clip{ext}", moving_frames(20, (72, 96)), 10.0)
    pred = both.predict(path)
    assert pred.num_frames == 20 and pred.probabilities.shape == (3,)


def test_weights_and_single_stream(ckpts):
    frames = moving_frames(12, tuple(RESIZE))
    only_flow = Recognizer.from_paths(flow=ckpts["flow"]).predict(frames)
    rgb_heavy = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"], weights=(1, 0)).predict(frames)
    np.testing.assert_allclose(rgb_heavy.probabilities, rgb_heavy.streams["rgb"].probabilities, atol=1e-6)
    np.testing.assert_allclose(only_flow.probabilities, only_flow.streams["flow"].probabilities, atol=1e-6)
    assert list(only_flow.streams) == ["flow"] and only_flow.weights == {"flow": 3.0}


def test_weights_per_call_and_stages(both):
    """``predict(weights=...)`` fuses this call only; ``on_stage`` sees the stages in order."""
    frames = moving_frames(12, tuple(RESIZE))
    seen = []
    rgb_only = both.predict(frames, weights=(1, 0), on_stage=lambda stage, stream: seen.append((stage, stream)))
    np.testing.assert_allclose(rgb_only.probabilities, rgb_only.streams["rgb"].probabilities, atol=1e-6)
    assert rgb_only.weights == {"rgb": 1.0, "flow": 0.0} and both.weights == {"rgb": 1.0, "flow": 3.0}
    assert seen == [("decode", None), ("model", "rgb"), ("flow", "flow"), ("model", "flow")]
    default = both.predict(frames)
    np.testing.assert_allclose(default.probabilities, (default.streams["rgb"].probabilities
                                                       + 3 * default.streams["flow"].probabilities) / 4, atol=1e-6)
    for bad in ((float("nan"), 1), (1, float("inf")), (-1, 2), (0, 0), (1, 2, 3)):
        with pytest.raises(ValueError, match="fusion weight"):
            both.predict(frames, weights=bad)


def test_fast_path_matches_plain_model(ckpts):
    """The BN-folded inference copy gives the plain model's probabilities and attention."""
    frames = moving_frames(40, tuple(RESIZE), seed=3)
    fast = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"]).predict(frames)
    plain = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"], fast=False).predict(frames)
    np.testing.assert_allclose(fast.probabilities, plain.probabilities, atol=1e-4)
    for m in ("rgb", "flow"):
        np.testing.assert_allclose(fast.streams[m].logits, plain.streams[m].logits, atol=1e-4)
        np.testing.assert_allclose(fast.streams[m].temporal, plain.streams[m].temporal, atol=1e-4)
        np.testing.assert_allclose(fast.streams[m].spatial, plain.streams[m].spatial, atol=1e-4)
