"""Tiny trained-model files and small videos for the prediction, visualisation, export and API
tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tstam.checkpoint import save_checkpoint
from tstam.config import to_dict
from tstam.models import ModelConfig, build_model

CLIPS = ("v_ApplyEyeMakeup_g01_c01.avi", "v_BaseballPitch_g01_c01.avi", "mmaction2_test.mp4")
CLASSES = ["ApplyEyeMakeup", "BaseballPitch", "Clap"]
RESIZE = [64, 80]                      # H, W frames are decoded at (small: fast tests)
FLOW = {"algorithm": "farneback", "bound": 20.0,
        "params": {"pyr_scale": 0.5, "levels": 2, "winsize": 9, "iterations": 2, "poly_n": 5, "poly_sigma": 1.1}}


def tiny_config(modality: str, **kw) -> ModelConfig:
    return ModelConfig(modality=modality, num_classes=len(CLASSES), num_segments=3, input_size=64,
                       width_mult=0.125, **kw)


def make_checkpoint(path: Path, modality: str, *, seed: int = 0, sharpen: float = 1.0, **kw) -> Path:
    """A tiny stream saved with the engine's save_checkpoint, as training writes it (model, config,
    classes, flow settings, the data config's frame size). ``sharpen`` scales the attention
    weights so that the attention is not flat."""
    torch.manual_seed(seed)
    cfg = tiny_config(modality, **kw)
    model = build_model(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "att" in n and p.dim() > 1:
                p.mul_(sharpen)
        model.fc.weight.normal_(0, 0.3)  # distinct class scores
    return save_checkpoint(path, {
        "model": model.state_dict(), "model_config": to_dict(cfg), "classes": list(CLASSES),
        "flow": FLOW if modality == "flow" else None,
        "config": {"data": {"resize": list(RESIZE), "test_frames": 25}},
    })


def make_checkpoints(folder: Path, *, seeds: tuple[int, int] = (1, 2), sharpen: float = 20.0) -> dict[str, Path]:
    """An RGB and a flow stream (``make_checkpoint``) in ``folder``: {"rgb": path, "flow": path}."""
    return {m: make_checkpoint(folder / f"{m}.pt", m, seed=seed, sharpen=sharpen) for m, seed in zip(("rgb", "flow"), seeds)}


def moving_frames(n: int, size: tuple[int, int] = (64, 80), seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: a textured square moving right over noise (flow has something to see)."""
    rng = np.random.default_rng(seed)
    h, w = size
    bg = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    frames = np.repeat(bg[None], n, 0).copy()
    tex = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    for t in range(n):
        x = (4 + 3 * t) % (w - 16)
        frames[t, 20:36, x:x + 16] = tex
    return frames
