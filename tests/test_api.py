"""The Python API: ``tstam.load(...).predict(...)``, and the README's example run as written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tstam

from helpers.models import CLASSES, CLIPS, RESIZE, make_checkpoint, moving_frames
from helpers.readme import python_block
from helpers.realdata import VIDEOS as REAL_VIDEOS


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
    """The example, saved as a script, run by a fresh interpreter in a folder with the files it names."""
    make_checkpoint(tmp_path / "rgb.pt", "rgb", seed=6)
    make_checkpoint(tmp_path / "flow.pt", "flow", seed=7)
    shutil.copy(REAL_VIDEOS / CLIPS[1], tmp_path / "video.avi")
    (tmp_path / "example.py").write_text(python_block("Using a trained model", "tstam.load("))
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.splitlines()
    assert out[0] in CLASSES and len(out) == 5, r.stdout
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
