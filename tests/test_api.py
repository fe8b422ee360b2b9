"""The Python API: ``tstam.load(...).predict(...)``, and the README's example run as written."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from predict_models import CLASSES, CLIPS, REAL_VIDEOS, RESIZE, make_checkpoint, moving_frames

import tstam

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_python_block() -> str:
    text = README.read_text()
    section = text.split("## Using a trained model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's 'Using a trained model' section should have one python example"
    return blocks[0]


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    make_checkpoint(tmp_path / "rgb.pt", "rgb", seed=6)
    make_checkpoint(tmp_path / "flow.pt", "flow", seed=7)
    shutil.copy(REAL_VIDEOS / CLIPS[1], tmp_path / "video.avi")
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_python_block(), str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] in CLASSES and len(out) == 5
    assert "(4, 25, 2, 2)" in out[-1]


def test_load_one_stream_and_frames(tmp_path):
    path = make_checkpoint(tmp_path / "rgb.pt", "rgb")
    model = tstam.load(path)
    assert model.modalities == ["rgb"] and model.classes == CLASSES and model.resize == RESIZE
    assert model.streams["rgb"].config.preprocess.channel_order == "BGR"
    pred = model.predict(moving_frames(16, (120, 160)))  # any size: resized to the training size
    assert pred.probabilities.shape == (3,) and np.isclose(pred.probabilities.sum(), 1.0, atol=1e-5)
    assert [c for c, _ in pred.top(3)] == [CLASSES[i] for i in np.argsort(-pred.probabilities)]
    with pytest.raises(ValueError, match="one or two checkpoints"):
        tstam.load(path, path, path)
    with pytest.raises(ValueError, match="uint8 RGB array"):
        model.predict(np.zeros((4, 64, 80), np.float32))
