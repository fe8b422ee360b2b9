"""Optical flow on pairs with known motion, and the uint8 quantisation of docs/design.md, Data flow."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tstam.config import ConfigError, from_dict, to_dict
from tstam.flow import FlowConfig, TVL1Params, compute_flow, dequantize_flow, iter_flow, quantize_flow, to_gray


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth random texture with fine and coarse structure (blurred noise), uint8 gray."""
    noise = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0) + 4 * cv2.GaussianBlur(noise, (0, 0), 6.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255).astype(np.uint8)


def _shifted_pair(dx: float, dy: float, h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """prev, next with next(x + d) = prev(x): the true flow is (dx, dy) everywhere."""
    nxt = _texture(h, w)
    h, w = nxt.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    prev = cv2.remap(nxt, xx + dx, yy + dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return prev, nxt


def _epe(flow: np.ndarray, dx: float, dy: float, margin: int = 12) -> float:
    err = np.hypot(flow[..., 0] - dx, flow[..., 1] - dy)
    return float(err[margin:-margin, margin:-margin].mean())


@pytest.mark.parametrize("algorithm,tol", [("tvl1", 0.15), ("dis", 0.3), ("farneback", 0.3)])
@pytest.mark.parametrize("dx,dy", [(2.0, -1.0), (-3.5, 2.25)])
def test_known_translation(algorithm: str, tol: float, dx: float, dy: float) -> None:
    prev, nxt = _shifted_pair(dx, dy)
    flow = compute_flow(np.stack([prev, nxt]), FlowConfig(algorithm=algorithm))
    assert flow.shape == (1, *prev.shape, 2) and flow.dtype == np.float32
    assert _epe(flow[0], dx, dy) < tol


def test_large_motion_needs_the_coarse_pyramid() -> None:
    # 12 px at 320x240: our pyramid (step 0.5, coarsest 40x30) finds it; OpenCV's default
    # pyramid (step 0.8, coarsest 131x98) does not (EPE ~6 px, see benchmarks/bench_flow.py).
    prev, nxt = _shifted_pair(12.0, -3.0, 240, 320)
    ours = compute_flow(np.stack([prev, nxt]))[0]
    assert _epe(ours, 12.0, -3.0, margin=16) < 0.1


def test_rgb_and_gray_input_agree() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    rgb = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in rgb])
    gray = to_gray(rgb)
    assert gray.shape == (3, 32, 40)
    np.testing.assert_array_equal(gray[0], cv2.cvtColor(rgb[0], cv2.COLOR_RGB2GRAY))
    cfg = FlowConfig(algorithm="farneback")
    np.testing.assert_array_equal(compute_flow(rgb, cfg), compute_flow(gray, cfg))
    assert compute_flow(rgb, cfg).shape == (2, 32, 40, 2)
    assert len(list(iter_flow(rgb, cfg))) == 2


def test_needs_two_frames() -> None:
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        compute_flow(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        compute_flow(np.zeros((2, 8, 8, 4), np.uint8))


def test_frames_smaller_than_the_algorithm_supports() -> None:
    """TV-L1 fails an OpenCV assertion on 1-px frames; farneback works on any size; DIS (whose
    crash on small wide frames is tested in a subprocess, test_bad_inputs.py) at its minimum."""
    tiny = np.random.default_rng(0).integers(0, 255, (2, 1, 100), dtype=np.uint8)
    with pytest.raises(ValueError, match="100x1 frames are too small for tvl1 optical flow, which needs at least 2x2 px"):
        compute_flow(tiny)
    assert compute_flow(tiny, FlowConfig(algorithm="farneback")).shape == (1, 1, 100, 2)
    for preset, side in (("medium", 16), ("fast", 32), ("ultrafast", 32)):
        cfg = FlowConfig(algorithm="dis")
        cfg.dis.preset = preset
        frames = np.random.default_rng(1).integers(0, 255, (2, side, 100), dtype=np.uint8)
        assert compute_flow(frames, cfg).shape == (1, side, 100, 2)
        with pytest.raises(ValueError, match=f"8x8 frames are too small for dis optical flow \\(preset {preset}\\), "
                                             f"which needs at least {side}x{side} px"):
            compute_flow(frames[:, :8, :8], cfg)  # OpenCV raises (no crash) at 8x8


def test_quantize_formula() -> None:
    b = 20.0
    v = np.array([-100.0, -20.0, -10.0, -0.05, 0.0, 0.07, 7.3, 19.99, 20.0, 55.0], np.float32)
    expected = [round(255 * (min(max(x, -b), b) + b) / (2 * b) + 1e-9) for x in v.tolist()]
    q = quantize_flow(v, b)
    assert q.dtype == np.uint8
    assert q.tolist() == expected
    assert q[0] == 0 and q[-1] == 255 and q[4] == 128  # 127.5 rounds up


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])])
def test_quantize_tensors_where_they_lie(device: str) -> None:
    """A torch tensor is quantised on its device to the bytes numpy gives, also at the rounding
    edges (values whose scaled value is k + 0.5, and their float32 neighbours)."""
    rng = np.random.default_rng(0)
    for b in (20.0, 7.5):
        edges = ((np.arange(256) + 0.5) * (2 * b) / 255 - b).astype(np.float32)
        v = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf)),
                            rng.normal(0, b, 20000).astype(np.float32), [np.inf, -np.inf]]).astype(np.float32)
        q = quantize_flow(torch.from_numpy(v).to(device), b)
        assert q.dtype == torch.uint8 and q.device.type == device
        np.testing.assert_array_equal(q.cpu().numpy(), quantize_flow(v, b))


def test_dequantize_inverts_within_half_a_step() -> None:
    for bound in (20.0, 5.0):
        v = np.linspace(-bound, bound, 1001, dtype=np.float32)
        back = dequantize_flow(quantize_flow(v, bound), bound)
        assert np.abs(back - v).max() <= bound / 255 + 1e-5  # half of the step 2*bound/255
        np.testing.assert_array_equal(quantize_flow(back, bound), quantize_flow(v, bound))
    assert dequantize_flow(np.array([0, 255], np.uint8)).tolist() == [-20.0, 20.0]


def test_config_roundtrip_and_errors() -> None:
    cfg = from_dict(FlowConfig, {"algorithm": "dis", "bound": 15, "tvl1": {"epsilon": 0.05}})
    assert cfg.bound == 15.0 and cfg.tvl1.epsilon == 0.05 and cfg.tvl1.nscales == TVL1Params().nscales
    assert from_dict(FlowConfig, to_dict(cfg)) == cfg
    assert cfg.describe() == {"algorithm": "dis", "bound": 15.0, "params": {"preset": "medium"}}
    with pytest.raises(ConfigError, match=r"algorithm='raft'.*tvl1"):
        FlowConfig(algorithm="raft")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) tvl1.warp\b.*warps"):
        from_dict(FlowConfig, {"tvl1": {"warp": 3}})
    with pytest.raises(ValueError, match="bound"):
        FlowConfig(bound=0)
    base = TVL1Params.opencv_defaults()
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    assert (base.nscales, base.epsilon, base.scale_step, base.warps) == (
        tvl1.getScalesNumber(), tvl1.getEpsilon(), tvl1.getScaleStep(), tvl1.getWarpingsNumber())
