"""Training straight from video files with TV-L1 on the training device:
``VideoDataset`` with ``data.flow_on = "device"`` sends frame pairs (``FlowPairs``), the loop's
``finish_batch`` computes the batch's flow on its device. The clips equal those of the loader path
and (up to JPEG) of the frame store; ``tstam train`` / ``tstam test`` run on video files; a
``tvl1_torch`` stream predicts with the same clip. Every test runs on CPU and, when present, CUDA."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tstam.cli import main as cli_main
from tstam.config import ConfigError
from tstam.data.clips import FlowPairs
from tstam.data.config import DataConfig
from tstam.data.datasets import FrameDataset, VideoDataset
from tstam.data.loader import build_loader, finish_batch
from tstam.data.records import VideoRecord
from tstam.flow import FlowConfig
from tstam.models import ModelConfig
from tstam.video import read_video

from helpers.realdata import VIDEOS

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]
CLIPS = ("v_ApplyEyeMakeup_g01_c01.avi", "v_BaseballPitch_g01_c01.avi", "mmaction2_test.mp4")
TORCH_FLOW = FlowConfig(algorithm="tvl1_torch")
RESIZE = [40, 56]  # H, W frames are decoded at


def _data(flow_on: str, **kw) -> DataConfig:
    return DataConfig(input="video", resize=RESIZE, flow=TORCH_FLOW, flow_on=flow_on, test_frames=2, test_crops=3, **kw)


def _model() -> ModelConfig:
    return ModelConfig(modality="flow", num_classes=3, num_segments=2, new_length=2, input_size=32)


def _records() -> list[VideoRecord]:
    return [VideoRecord(Path(c).stem, c, i) for i, c in enumerate(CLIPS)]


def _batch(ds, device: str, epoch: int = 0) -> torch.Tensor:
    """All items of ``ds`` through a real loader (collate), moved to ``device``, finished there."""
    loader = build_loader(ds, batch_size=len(ds), shuffle=False, workers=0, distributed=False)
    loader.set_epoch(epoch)
    (x, _y), = list(loader)
    return finish_batch(loader, x.to(device)).cpu()


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["train", "val", "test"])
def test_device_flow_clips_equal_loader_clips(device: str, mode: str) -> None:
    on_device = VideoDataset(_records(), root=VIDEOS, mode=mode, data=_data("device"), model=_model(), seed=4)
    in_loader = VideoDataset(_records(), root=VIDEOS, mode=mode, data=_data("loader"), model=_model(), seed=4)
    item, label = on_device[(1, 3)]
    assert isinstance(item, FlowPairs) and label == 1
    assert item.frames.shape == (2 * 2, 2, *RESIZE) and item.frames.dtype == torch.uint8  # S*L pairs
    for epoch in (0, 1):
        got, want = _batch(on_device, device, epoch), _batch(in_loader, "cpu", epoch)
        assert got.dtype == torch.uint8 and got.shape == want.shape
        assert got.shape == ((3, 3, 2, 4, 32, 32) if mode == "test" else (3, 2, 4, 32, 32))
        if device == "cpu":
            torch.testing.assert_close(got, want, rtol=0, atol=0)  # the same bytes
        else:  # another float unit: a quantisation step at a few pixels
            assert (got.int() - want.int()).abs().float().mean() < 0.05
    if mode == "train":  # the augmentation draws differ by epoch (a flip inverts x: 255 - x)
        assert not torch.equal(_batch(on_device, device, 0), _batch(on_device, device, 1))


def test_device_flow_clips_equal_frame_store_clips(tmp_path: Path) -> None:
    """The store that ``tstam extract --flow tvl1_torch`` writes gives the same clips up to JPEG."""
    from tstam.extract import extract_video

    clip = CLIPS[1]
    extract_video(VIDEOS / clip, tmp_path / Path(clip).stem, flow=TORCH_FLOW, size=(RESIZE[1], RESIZE[0]),
                  jpeg_quality=100)
    rec = [VideoRecord(Path(clip).stem, clip, 0)]
    from_video = VideoDataset(rec, root=VIDEOS, mode="val", data=_data("device"), model=_model())
    from_store = FrameDataset(rec, root=tmp_path, mode="val", data=DataConfig(resize=RESIZE), model=_model())
    a, b = _batch(from_video, "cpu")[0], from_store[0][0]
    assert a.shape == b.shape == (2, 4, 32, 32)
    diff = (a.int() - b.int()).abs()
    assert float(diff.float().mean()) < 0.5 and int(diff.max()) <= 4  # JPEG at quality 100 only


def test_flow_on_device_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="data.flow_on=device .* needs data.input=video and "
                                          "data.flow.algorithm=tvl1_torch .*data.flow.algorithm=tvl1\\)"):
        DataConfig(input="video", flow=FlowConfig(), flow_on="device")
    with pytest.raises(ConfigError, match="data.input=frames"):
        DataConfig(flow=TORCH_FLOW, flow_on="device")
    with pytest.raises(ConfigError, match=r"data.flow_on='gpu' is not valid; expected one of \['loader', 'device'\]"):
        DataConfig(flow_on="gpu")
    out = tmp_path / "run"
    assert cli_main(["train", "--config", "synthetic_flow", "data.flow_on=device", f"run.out_dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "data.flow_on=device" in err and "needs data.input=video" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_train_and_test_from_video_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tstam train`` on video files (flow on the training device) a few steps, then ``tstam test``."""
    lists = {}
    for part, clips in (("train", CLIPS[:2]), ("test", CLIPS[2:])):
        lists[part] = tmp_path / f"{part}.csv"
        lists[part].write_text("path,label\n" + "".join(f"{c},{CLIPS.index(c) % 2}\n" for c in clips))
    cfg = {
        "model": {"modality": "flow", "num_classes": 2, "num_segments": 2, "new_length": 2, "input_size": 32,
                  "width_mult": 0.125, "num_heads": 2, "attention_hidden": 16},
        "annotations": {"format": "csv", "path": str(lists["train"]), "test_path": str(lists["test"]),
                        "val_fraction": 0.0},
        "data": {"root": str(VIDEOS), "input": "video", "flow_on": "device", "flow": {"algorithm": "tvl1_torch"},
                 "resize": RESIZE, "batch_size": 2, "workers": 0, "test_frames": 2, "test_crops": 1},
        "optim": {"lr": 0.01, "epochs": 2, "lr_steps": [1], "bn": "full"},
        "run": {"out_dir": str(tmp_path / "run"), "seed": 0, "eval_every": 0, "device": "cpu",
                "tensorboard": False},
    }
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(cfg))
    assert cli_main(["train", "--config", str(tmp_path / "flow.yaml")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["train_loss"]) for r in rows)
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["flow"] == TORCH_FLOW.describe()  # the flow travels with the model, as from a store
    capsys.readouterr()
    assert cli_main(["test", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--device", "cpu"]) == 0
    assert "top-1" in capsys.readouterr().out
    from tstam.engine.scores import load_scores

    scores = load_scores(tmp_path / "run" / "scores_flow_split1_test_2x1.npz")
    assert scores.video_ids == [Path(CLIPS[2]).stem] and scores.probs.shape == (1, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_tvl1_torch_stream_predicts_with_the_training_clip(tmp_path: Path, device: str) -> None:
    """A ``tvl1_torch`` flow stream computes its flow with flow_pairs on its own device; its clip
    equals the test clip that training from video files gives (flow on the device)."""
    from tstam.data.transforms import eval_crops
    from tstam.inference import Recognizer, load_stream

    from helpers.models import make_checkpoint

    path = make_checkpoint(tmp_path / "flow.pt", "flow")
    ck = torch.load(path, weights_only=True)
    ck["flow"] = TORCH_FLOW.describe()
    torch.save(ck, path)
    stream = load_stream(path, device=device)
    rec = Recognizer([stream])
    data = DataConfig(input="video", resize=list(stream.resize), flow=TORCH_FLOW, flow_on="device", test_frames=3,
                      test_crops=1)
    ds = VideoDataset([VideoRecord("v", CLIPS[0], 0)], root=VIDEOS, mode="test", data=data, model=stream.config)
    want = _batch(ds, device)[0]                                             # (1, 3, 10, 64, 64)
    frames = read_video(VIDEOS / CLIPS[0], size=(stream.resize[1], stream.resize[0])).frames
    clip, _ = rec.sample("flow", frames, num_snippets=3)
    torch.testing.assert_close(eval_crops(clip, size=64, num_crops=1, flow=True), want, rtol=0, atol=0)
