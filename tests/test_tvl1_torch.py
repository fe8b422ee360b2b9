"""tvl1_torch: its building blocks against the OpenCV functions they mirror, its flow
against OpenCV's TV-L1 on the real clips and against ground truth on known motions, batching,
memory per pair, and its use through FlowConfig. Every test runs on CPU and, when present, CUDA.

Real pairs: consecutive frames with motion of the three real clips at 160x120 (small, so the
suite stays fast; ``benchmarks/bench_flow.py`` measures 320x240)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import weakref

import cv2
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tstam.flow import (
    FlowConfig,
    TVL1Params,
    compute_flow,
    end_point_error,
    flow_pairs,
    known_motion_pairs,
    quantize_flow,
    to_gray,
)
from tstam.flow import tvl1_torch as tt
from tstam.flow.median import median_filter
from tstam.video import read_video

from helpers.models import CLIPS
from helpers.realdata import DATA, VIDEOS

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]
SIZE = (160, 120)  # width, height of the real pairs
FIRST = {0: 39, 1: 49, 2: 69}  # per clip of CLIPS: first frame of 3 consecutive pairs with motion
MARGIN = 8  # border pixels left out of the error against known motion (no correspondence there)


BENCHMARKS = DATA.parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """The real clips, grey, at ``SIZE`` (as ``benchmarks/bench_flow.py`` reads them)."""
    return [to_gray(read_video(VIDEOS / name, size=SIZE).frames) for name in CLIPS]


def _opencv(a: np.ndarray, b: np.ndarray, p: TVL1Params) -> np.ndarray:
    cv2.setNumThreads(1)
    return compute_flow(np.stack([a, b]), FlowConfig(tvl1=p))[0]


def _ours(a: np.ndarray, b: np.ndarray, p: TVL1Params, device: str, **kw) -> np.ndarray:
    ta, tb = (torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in (a, b))
    return tt.tvl1_flow(ta, tb, p, **kw).cpu().numpy()


# --- building blocks -------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hw,fx", [((120, 160), 0.5), ((64, 85), 0.5), ((192, 256), 0.8), ((154, 205), 0.8)])
def test_pyramid_matches_cv2_resize(device: str, hw: tuple[int, int], fx: float) -> None:
    img = np.random.default_rng(0).random(hw).astype(np.float32) * 255
    ref = cv2.resize(img, None, fx=fx, fy=fx, interpolation=cv2.INTER_LINEAR)
    size = tt.pyramid_sizes(*hw, TVL1Params(nscales=2, scale_step=fx))[1]
    assert size == ref.shape
    ours = tt._resize(torch.from_numpy(img).to(device), size, (1 / fx, 1 / fx)).cpu().numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    up = cv2.resize(ref, hw[::-1], interpolation=cv2.INTER_LINEAR)  # flow upsampling: by size
    ours_up = tt._resize(torch.from_numpy(ref).to(device), hw, (size[0] / hw[0], size[1] / hw[1]))
    np.testing.assert_allclose(ours_up.cpu().numpy(), up, atol=2e-3)


def test_pyramid_drops_levels_under_16_px() -> None:
    assert tt.pyramid_sizes(240, 320, TVL1Params()) == [(240, 320), (120, 160), (60, 80), (30, 40)]
    assert tt.pyramid_sizes(60, 80, TVL1Params()) == [(60, 80), (30, 40)]  # 15x20 would be too small
    assert tt.pyramid_sizes(256, 340, TVL1Params(nscales=3)) == [(256, 340), (128, 170), (64, 85)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode,flag", [("bicubic", cv2.INTER_CUBIC), ("bilinear", cv2.INTER_LINEAR)])
def test_warp_matches_cv2_remap(device: str, mode: str, flag: int) -> None:
    rng = np.random.default_rng(1)
    h, w = 20, 30
    img = rng.random((h, w)).astype(np.float32) * 255
    # whole-pixel positions (flat flow) and positions up to 4 px outside the image
    u = np.concatenate([np.zeros((2, 10, w), np.float32), rng.uniform(-4, 4, (2, 10, w)).astype(np.float32)], 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ref = cv2.remap(img, xx + u[0], yy + u[1], flag)
    stack = torch.from_numpy(img)[None, None].double().to(device)
    ours = tt._warp(stack, torch.from_numpy(u)[None].to(device), mode)[0, 0].cpu().numpy()
    np.testing.assert_array_equal(ours[:10], img[:10])  # integer positions give the pixel exactly
    # OpenCV's bilinear remap rounds positions to 1/32 px; bicubic is computed exactly
    np.testing.assert_allclose(ours, ref, atol=0.02 if mode == "bicubic" else 4.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k,ties", [(3, False), (5, False), (5, True), (7, False)])
def test_median_matches_opencv_and_numpy(device: str, k: int, ties: bool) -> None:
    x = np.random.default_rng(2).normal(0, 1, (3, 2, 37, 53)).astype(np.float32)
    if ties:  # many equal values in a window
        x = np.round(x)
    ours = median_filter(torch.from_numpy(x).to(device), k).cpu().numpy()
    if k <= 5:  # OpenCV's float median knows 3 and 5
        ref = np.stack([[cv2.medianBlur(c, k) for c in pair] for pair in x])
    else:
        r = k // 2
        pad = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="edge")
        ref = np.median(np.lib.stride_tricks.sliding_window_view(pad, (k, k), axis=(2, 3)), axis=(-2, -1))
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("device", DEVICES)
def test_differences_match_opencv_and_are_adjoint(device: str) -> None:
    img = np.random.default_rng(3).random((2, 17, 23)).astype(np.float32)
    g = tt._centered_gradient(torch.from_numpy(img).to(device)).cpu().numpy()
    kx = np.array([[-0.5, 0, 0.5]], np.float32)
    for i in range(2):
        np.testing.assert_allclose(g[i, 0], cv2.filter2D(img[i], -1, kx, borderType=cv2.BORDER_REPLICATE), atol=1e-6)
        np.testing.assert_allclose(g[i, 1], cv2.filter2D(img[i], -1, kx.T, borderType=cv2.BORDER_REPLICATE), atol=1e-6)
    # <grad u, p> = -<u, div p>: the divergence is the negative adjoint of the forward gradient, for
    # the dual fields the solver produces (x part 0 on the last column, y part on the last row)
    u = torch.randn(2, 2, 17, 23, dtype=torch.float64, device=device)
    p = torch.randn(2, 2, 2, 17, 23, dtype=torch.float64, device=device)
    p[:, :, 0, :, -1] = 0
    p[:, :, 1, -1, :] = 0
    lhs = (tt._forward_gradient(u) * p).sum()
    rhs = -(u * tt._divergence(p)).sum()
    assert abs(float(lhs - rhs)) < 1e-9 * float(p.abs().sum())


# --- the flow ---------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_matches_opencv_on_real_clips(device: str, clips: list[np.ndarray]) -> None:
    p = TVL1Params()
    for c, g in enumerate(clips):
        pairs = [(g[t], g[t + 1]) for t in range(FIRST[c], FIRST[c] + 3)]
        ref = [_opencv(a, b, p) for a, b in pairs]
        ours = _ours(np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]), p, device)
        diff = np.mean([end_point_error(o, r) for o, r in zip(ours, ref)])
        motion = np.mean([np.linalg.norm(r, axis=-1).mean() for r in ref])
        assert motion > 0.1, f"clip {CLIPS[c]}: pick frames with motion (mean |flow| {motion:.3f} px)"
        assert diff <= 0.1, f"clip {CLIPS[c]}: mean end-point difference to OpenCV {diff:.4f} px"


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("params", [TVL1Params.opencv_defaults(), TVL1Params(gamma=0.2, median_filtering=3)],
                         ids=["opencv-defaults", "gamma"])
def test_matches_opencv_with_other_parameters(device: str, params: TVL1Params, clips: list[np.ndarray]) -> None:
    g = clips[2]
    a, b = g[FIRST[2]], g[FIRST[2] + 1]
    ours = _ours(a[None], b[None], params, device)[0]
    assert end_point_error(ours, _opencv(a, b, params)) <= 0.1


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_ground_truth_error_no_worse_than_opencv(device: str, clips: list[np.ndarray]) -> None:
    synth = known_motion_pairs(clips, 6)  # the bench's known motions (up to 3, 6, 12 px), at 160x120
    p = TVL1Params()
    prev, nxt = np.stack([s[0] for s in synth]), np.stack([s[1] for s in synth])
    ours = _ours(prev, nxt, p, device)
    bilinear = _ours(prev, nxt, p, device, interpolation="bilinear")
    e_ours = np.mean([end_point_error(f, s[2], MARGIN) for f, s in zip(ours, synth)])
    e_bil = np.mean([end_point_error(f, s[2], MARGIN) for f, s in zip(bilinear, synth)])
    e_cv = np.mean([end_point_error(_opencv(s[0], s[1], p), s[2], MARGIN) for s in synth])
    assert e_ours <= e_cv + 0.005, (e_ours, e_cv)  # equal to ~1e-5 here; the margin is for rounding at large motion
    assert e_bil <= 1.5 * e_cv, (e_bil, e_cv)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_batch_equals_pairs_one_at_a_time(device: str, clips: list[np.ndarray]) -> None:
    # pairs of three videos, with different motion, so they stop after different iterations
    prev = np.stack([clips[c][FIRST[c] + 1] for c in range(3)] + [clips[2][FIRST[2] + 2]])
    nxt = np.stack([clips[c][FIRST[c] + 2] for c in range(3)] + [clips[2][FIRST[2] + 3]])
    batch = _ours(prev, nxt, TVL1Params(), device)
    for i in range(len(prev)):
        np.testing.assert_allclose(batch[i], _ours(prev[i:i + 1], nxt[i:i + 1], TVL1Params(), device)[0], atol=1e-5)
    np.testing.assert_allclose(_ours(prev, nxt, TVL1Params(), device, batch_size=3), batch, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compiled_iteration_gives_the_eager_flow(clips: list[np.ndarray]) -> None:
    # the fused kernels (Inductor's C++ here, Triton on CUDA) compute the same iteration: one step
    # on random state agrees to float32 rounding, and whole flows to far below the OpenCV tolerance
    g = torch.Generator().manual_seed(0)
    b, h, w = 2, 13, 17
    u, dual = torch.randn(b, 2, h, w, generator=g), 0.5 * torch.randn(b, 2, 2, h, w, generator=g)
    iw, rho_c = 10 * torch.randn(b, 2, h, w, generator=g), 10 * torch.randn(b, h, w, generator=g)
    neg_inv = -1.0 / (iw.square().sum(1) + 0.1)
    args = (u, dual, iw, neg_inv, rho_c, 0.15 * 0.3, 0.3, 0.25 / 0.3)
    explained = torch._dynamo.explain(tt._step)(*args)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons  # all of it fuses
    for eager, fused in zip(tt._step(*args), tt._compiled_step()(*args)):
        torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)
    prev = np.stack([clips[c][FIRST[c]] for c in range(3)])
    nxt = np.stack([clips[c][FIRST[c] + 1] for c in range(3)])
    eager = _ours(prev, nxt, TVL1Params(), "cpu", compile=False)
    fused = _ours(prev, nxt, TVL1Params(), "cpu", compile=True)
    motion = np.linalg.norm(eager, axis=-1).mean()
    diff = np.mean([end_point_error(f, e) for f, e in zip(fused, eager)])
    assert motion > 0.1 and diff <= 0.01, (motion, diff)


class _PeakMemory(TorchDispatchMode):
    """Peak bytes of the tensor storages alive at once while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st.data_ptr() not in self.live and st.nbytes():
                    self.live[st.data_ptr()] = st.nbytes()
                    self.now += st.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(st, self._free, st.data_ptr())
        return out


@pytest.mark.slow
@pytest.mark.parametrize("params", [TVL1Params(), TVL1Params(gamma=0.2)], ids=["default", "gamma"])
def test_memory_per_pair_bounds_the_batch(params: TVL1Params, clips: list[np.ndarray]) -> None:
    h, w = clips[2].shape[1:]
    budget = int(3.5 * tt.bytes_per_pair(h, w, params))
    b = tt.batch_size_for(budget, h, w, params)
    assert b == 3
    g = torch.from_numpy(clips[2][FIRST[2]:FIRST[2] + b + 1])
    prev, nxt = g[:-1].clone(), g[1:].clone()
    with _PeakMemory() as mem:
        tt.tvl1_flow(prev, nxt, params, batch_size=b)
    assert mem.peak <= budget, (mem.peak, budget)
    assert mem.peak >= 0.75 * b * tt.bytes_per_pair(h, w, params)  # the stated figure is not loose


# --- use through FlowConfig --------------------------------------------------------------------

def test_flow_config_records_tvl1_params() -> None:
    cfg = FlowConfig(algorithm="tvl1_torch", tvl1=TVL1Params(epsilon=0.05))
    d = cfg.describe()
    assert d["algorithm"] == "tvl1_torch"
    assert d["params"] == dataclasses.asdict(TVL1Params(epsilon=0.05))
    assert d["params"] == FlowConfig(tvl1=TVL1Params(epsilon=0.05)).describe()["params"]
    assert FlowConfig.from_describe(d) == cfg  # as a checkpoint or meta.json reads it back


def test_compute_flow_and_quantisation_as_opencv(clips: list[np.ndarray]) -> None:
    g = clips[2][FIRST[2]:FIRST[2] + 4]
    ours = compute_flow(g, FlowConfig(algorithm="tvl1_torch"))
    ref = compute_flow(g, FlowConfig())
    assert ours.shape == ref.shape == (3, *g.shape[1:], 2) and ours.dtype == ref.dtype == np.float32
    bound = FlowConfig().bound
    q_ours, q_ref = quantize_flow(ours, bound), quantize_flow(ref, bound)
    diff = np.abs(q_ours.astype(int) - q_ref.astype(int))
    assert (diff == 0).mean() >= 0.98 and (diff <= 1).mean() >= 0.999, ((diff == 0).mean(), diff.max())


@pytest.mark.parametrize("device", DEVICES)
def test_flow_pairs_on_a_device(device: str, clips: list[np.ndarray]) -> None:
    g = clips[1][FIRST[1]:FIRST[1] + 3]
    cfg = FlowConfig(algorithm="tvl1_torch")
    torch.set_num_threads(2)
    try:
        out = flow_pairs(g[:-1], g[1:], cfg, device=device, batch_size=1)
        assert torch.get_num_threads() == 2  # one thread inside, restored after
    finally:
        torch.set_num_threads(1)
    ref = compute_flow(g, cfg)                                     # the same solver on the CPU
    if device == "cpu":
        np.testing.assert_allclose(out, ref, atol=1e-5)
    else:
        # CUDA's float32 kernels round differently (fused multiply-adds, grid_sample), and the solver's
        # thresholds and median filter turn last-bit differences into whole pixels at a few places:
        # on an H200, 11.7 % of the values differed by more than 1e-5 px, the worst by 4.4 px. The
        # contract is the flow field: mean end-point difference 10x below the OpenCV tolerance above.
        assert max(end_point_error(o, r) for o, r in zip(out, ref)) <= 0.01


def test_bad_devices_and_inputs_are_named() -> None:
    g = np.zeros((2, 24, 32), np.uint8)
    cfg = FlowConfig(algorithm="tvl1_torch")
    for bad in ("gpu", "cuda:x", "mps"):
        with pytest.raises(ValueError, match=rf"device '{bad}' is not valid; expected auto, cpu, cuda or cuda:N"):
            flow_pairs(g[:1], g[1:], cfg, device=bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda': (this torch build has no CUDA|no CUDA GPU is visible); "
                                             r"use device=cpu"):
            flow_pairs(g[:1], g[1:], cfg, device="cuda")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(ValueError, match=rf"device 'cuda:{n}': only {n} CUDA device\(s\) visible"):
            flow_pairs(g[:1], g[1:], cfg, device=f"cuda:{n}")
    with pytest.raises(ValueError, match=r"device 'cuda' needs flow algorithm 'tvl1_torch'"):
        flow_pairs(g[:1], g[1:], FlowConfig(), device="cuda")
    with pytest.raises(ValueError, match="must be uint8"):
        flow_pairs(g[:1].astype(np.float32), g[1:].astype(np.float32), cfg)
    with pytest.raises(ValueError, match="NaN or infinite"):
        tt.tvl1_flow(torch.full((1, 8, 8), float("nan")), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="too small"):
        tt.tvl1_flow(torch.zeros(1, 2, 8, dtype=torch.uint8), torch.zeros(1, 2, 8, dtype=torch.uint8))
    assert tt.tvl1_flow(torch.zeros(0, 8, 8), torch.zeros(0, 8, 8)).shape == (0, 8, 8, 2)
    with pytest.raises(ValueError, match="must be odd"):
        tt.tvl1_flow(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8), TVL1Params(median_filtering=4))


# --- the GPU check's piece ---------------------------------------------------------------------

def test_gpu_check_reference_is_opencv_tvl1() -> None:
    """``benchmarks/data/tvl1_reference.npz``, which the GPU check measures tvl1_torch against,
    holds OpenCV's flow for the current defaults."""
    with np.load(BENCHMARKS / "data" / "tvl1_reference.npz") as f:
        params, prev, nxt, ref = json.loads(str(f["params"])), f["prev"], f["next"], f["flow"].astype(np.float32)
    assert params == dataclasses.asdict(TVL1Params())
    assert prev.shape == nxt.shape == (6, 240, 320) and ref.shape == (6, 240, 320, 2)
    for i in (0, 5):  # a UCF101 pair and an mp4 pair with large motion
        assert end_point_error(ref[i], _opencv(prev[i], nxt[i], TVL1Params())) <= 0.01


@pytest.mark.slow
def test_gpu_check_tiny_mode_runs_on_cpu() -> None:
    """``benchmarks/gpu_flow.py --tiny`` on the CPU: its one row (80x60, batches of 2), with the
    flow of the reference pairs within 0.1 px of OpenCV's."""
    r = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_flow.py"), "--device", "cpu", "--tiny"],
                       capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("cpu ")]
    assert len(rows) == 1, r.stdout
    size, compiled, batch, pairs_per_s, _peak, _stated, epe_mean, _worst = rows[0][1:]
    assert (size, compiled, batch) == ("80x60", "False", "2") and float(pairs_per_s) > 0, r.stdout
    assert float(epe_mean) <= 0.1, r.stdout
