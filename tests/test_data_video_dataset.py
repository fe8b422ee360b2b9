"""VideoDataset on a real UCF101 clip: the same clips as FrameDataset on a store of the same frames."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from torch.utils.data import default_collate

from tstam.data.config import DataConfig
from tstam.data.datasets import FrameDataset, VideoDataset
from tstam.data.records import VideoRecord
from tstam.flow import FlowConfig, compute_flow, quantize_flow
from tstam.models import ModelConfig
from tstam.video import read_video

from helpers.realdata import VIDEOS

CLIP = "v_ApplyEyeMakeup_g01_c01.avi"
DATA = DataConfig(resize=[40, 56])


def finished(ds, key):
    """A training clip as the training loop gets it: batched, then finished (``finish_batch``)."""
    return ds.batch_transform(default_collate([ds[key][0]]))[0].numpy()


def clip_of(modality):
    return ModelConfig(modality=modality, num_classes=1, num_segments=3, input_size=32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A frame store written from the decoded clip (JPEG quality 100), flow only where needed."""
    root = tmp_path_factory.mktemp("vstore")
    frames = read_video(VIDEOS / CLIP, size=(56, 40)).frames
    d = root / Path(CLIP).stem
    d.mkdir()
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(d / f"img_{i:05d}.jpg"), f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    flow = quantize_flow(compute_flow(frames, FlowConfig()), 20.0)
    for i, q in enumerate(flow, start=1):
        cv2.imwrite(str(d / f"flow_x_{i:05d}.jpg"), q[..., 0], [cv2.IMWRITE_JPEG_QUALITY, 100])
        cv2.imwrite(str(d / f"flow_y_{i:05d}.jpg"), q[..., 1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    return root, len(frames)


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_video_dataset_matches_frame_store(store, modality):
    root, n = store
    assert n == 164
    rec = VideoRecord(Path(CLIP).stem, CLIP, 0)
    from_video = VideoDataset([rec], root=VIDEOS, mode="val", data=DATA, model=clip_of(modality))
    from_store = FrameDataset([rec], root=root, mode="val", data=DATA, model=clip_of(modality))
    (a, la), (b, lb) = from_video[0], from_store[0]
    assert a.shape == b.shape == ((3, 3, 32, 32) if modality == "rgb" else (3, 10, 32, 32)) and la == lb == 0
    assert float((a.float() - b.float()).abs().mean()) < 1.5  # JPEG round trip only
    # training clips: a function of (seed, epoch, index) only, so two datasets agree, another seed differs
    one, two = (VideoDataset([rec], root=VIDEOS, mode="train", data=DATA, model=clip_of(modality), seed=s)
                for s in (2, 2))
    other = VideoDataset([rec], root=VIDEOS, mode="train", data=DATA, model=clip_of(modality), seed=3)
    assert np.array_equal(finished(one, (0, 1)), finished(two, (0, 1)))
    assert any(not np.array_equal(finished(one, (0, e)), finished(other, (0, e))) for e in range(3))


def test_video_dataset_missing_file():
    with pytest.raises(ValueError, match=r"1 video file\(s\) not found, e.g. .*v_nope\.avi"):
        VideoDataset([VideoRecord("v_nope", "v_nope.avi", 0)], root=VIDEOS, mode="val", data=DATA, model=clip_of("rgb"))
