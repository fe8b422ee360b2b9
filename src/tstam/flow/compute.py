"""Computing flow: OpenCV's TV-L1, DIS and Farneback, or ``tvl1_torch`` in batches on a device,
and the uint8 quantisation of the frame store (see the package docstring)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import cv2
import numpy as np

from .config import FlowConfig

__all__ = ["compute_flow", "iter_flow", "flow_pairs", "quantize_flow", "dequantize_flow", "to_gray"]


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) RGB uint8 -> (T, H, W) uint8 (ITU-R 601 luma, as cv2.COLOR_RGB2GRAY)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        return frames
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB or (T, H, W) gray, got shape {frames.shape}")
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


def _make_estimator(cfg: FlowConfig):
    """A callable (prev_gray, next_gray) -> (H, W, 2) float32 flow."""
    if cfg.algorithm == "tvl1":
        p = cfg.tvl1
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
            tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.nscales, warps=p.warps,
            epsilon=p.epsilon, innnerIterations=p.inner_iterations, outerIterations=p.outer_iterations,
            scaleStep=p.scale_step, gamma=p.gamma, medianFiltering=p.median_filtering,
        )
        return lambda a, b: tvl1.calc(a, b, None)
    if cfg.algorithm == "dis":
        preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[cfg.dis.preset]
        dis = cv2.DISOpticalFlow_create(preset)
        return lambda a, b: dis.calc(a, b, None)
    p = cfg.farneback
    return lambda a, b: cv2.calcOpticalFlowFarneback(
        a, b, None, p.pyr_scale, p.levels, p.winsize, p.iterations, p.poly_n, p.poly_sigma, 0
    )


def iter_flow(frames: np.ndarray, cfg: FlowConfig | None = None) -> Iterator[np.ndarray]:
    """Yield the flow of each consecutive pair, (H, W, 2) float32, one at a time (low memory;
    ``tvl1_torch`` solves the pairs in batches of bounded memory on the CPU).

    Args:
        frames: (T, H, W, 3) uint8 RGB or (T, H, W) uint8 gray, T >= 2.
        cfg: algorithm and parameters (default: ``FlowConfig()``, our tuned TV-L1).
    """
    gray = to_gray(frames)
    if gray.shape[0] < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {gray.shape[0]}")
    return _iter_pairs(gray[:-1], gray[1:], cfg or FlowConfig(), "cpu", None)


def compute_flow(frames: np.ndarray, cfg: FlowConfig | None = None) -> np.ndarray:
    """Dense flow between consecutive frames.

    Args:
        frames: (T, H, W, 3) uint8 RGB or (T, H, W) uint8 gray, T >= 2.
        cfg: algorithm and parameters (default: ``FlowConfig()``, our tuned TV-L1).

    Returns:
        (T-1, H, W, 2) float32, channel 0 = x (horizontal), 1 = y, in pixels.
    """
    return np.stack(list(iter_flow(frames, cfg)))


def flow_pairs(prev: np.ndarray, nxt: np.ndarray, cfg: FlowConfig | None = None, *, device: str = "cpu",
               batch_size: int | None = None, quantize: bool = False) -> np.ndarray:
    """Flow of many frame pairs at once (from one video or many), e.g. on a GPU.

    Args:
        prev, nxt: (N, H, W) uint8 gray frames; the flow goes from ``prev[i]`` to ``nxt[i]``.
        cfg: algorithm and parameters (default: ``FlowConfig()``); only ``tvl1_torch`` runs on
            a GPU, the OpenCV algorithms run pair by pair on the CPU.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (``tstam.device.resolve_device``).
        batch_size: pairs solved at once by ``tvl1_torch`` (default: from the free memory, see
            ``tstam.flow.tvl1_torch.batch_size_for``).
        quantize: return ``quantize_flow(flow, cfg.bound)`` instead (for ``tvl1_torch`` computed on
            the device, so a quarter of the bytes comes back).

    Returns:
        (N, H, W, 2) float32, channel 0 = x, 1 = y, in pixels; uint8 with ``quantize``.
    """
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    if prev.shape != nxt.shape or prev.ndim != 3 or prev.shape[0] < 1:
        raise ValueError(f"prev and nxt must both be (N, H, W) with N >= 1, got {prev.shape} and {nxt.shape}")
    cfg = cfg or FlowConfig()
    flows = np.stack(list(_iter_pairs(prev, nxt, cfg, device, batch_size, quantize)))
    return quantize_flow(flows, cfg.bound) if quantize and flows.dtype != np.uint8 else flows


def _iter_pairs(prev: np.ndarray, nxt: np.ndarray, cfg: FlowConfig, device: str,
                batch_size: int | None, quantize: bool = False) -> Iterator[np.ndarray]:
    """(N, H, W) uint8 pairs -> their (H, W, 2) float32 flows, in order (uint8 from ``tvl1_torch``
    with ``quantize``)."""
    if prev.dtype != np.uint8 or nxt.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {prev.dtype} and {nxt.dtype}")
    cfg.check_frame_size(prev.shape[2], prev.shape[1])  # before OpenCV, which can crash on small frames
    if cfg.algorithm == "tvl1_torch":
        from . import tvl1_torch

        dev = tvl1_torch.resolve_device(device, option="device")
        _, h, w = prev.shape
        bs = batch_size or tvl1_torch.batch_size_for(tvl1_torch.default_budget(dev), h, w, cfg.tvl1)
        return _torch_batches(prev, nxt, cfg, dev, bs, quantize)
    if str(device) not in ("cpu", "auto"):
        raise ValueError(f"device {str(device)!r} needs flow algorithm 'tvl1_torch'; {cfg.algorithm!r} "
                         "(OpenCV) runs on 'cpu' only")
    estimate = _make_estimator(cfg)
    return (np.asarray(estimate(a, b), dtype=np.float32) for a, b in zip(prev, nxt))


def _torch_batches(prev: np.ndarray, nxt: np.ndarray, cfg: FlowConfig, device, batch_size: int, quantize: bool):
    """tvl1_torch over batches of pairs. On the CPU with one torch thread during each batch, as
    OpenCV's TV-L1 runs (parallel work is one process per core, as ``tstam extract`` does): its
    many small operations ran ~10x slower on 2 threads of a busy 2-core machine than on 1."""
    import torch

    from .tvl1_torch import tvl1_flow

    for i in range(0, prev.shape[0], batch_size):
        a = torch.from_numpy(np.ascontiguousarray(prev[i:i + batch_size])).to(device)
        b = torch.from_numpy(np.ascontiguousarray(nxt[i:i + batch_size])).to(device)
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(1)
        try:
            flows = tvl1_flow(a, b, cfg.tvl1, batch_size=batch_size)  # (b, H, W, 2) float32
            flows = quantize_flow(flows, cfg.bound) if quantize else flows
        finally:
            torch.set_num_threads(threads)
        yield from flows.cpu().numpy()


def quantize_flow(flow, bound: float = 20.0):
    """``round(255 * (clip(v, -bound, bound) + bound) / (2 * bound))`` as uint8 (halves round up).

    ``flow`` is a numpy array (or array-like), or a torch tensor (quantised where it lies, e.g. on
    the GPU that computed it, with the same float32 operations in the same order: equal bytes).
    """
    if not bound > 0:
        raise ValueError(f"bound={bound!r} must be positive")
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(flow, torch.Tensor):
        v = flow.float().clamp(-bound, bound) + bound
        two_b = torch.tensor(2.0 * bound, dtype=torch.float32, device=v.device)  # a tensor: CUDA would
        # divide by a Python number as a product with its reciprocal, one ulp off numpy's quotient
        return torch.floor(v.mul_(255.0).div_(two_b).add_(0.5)).to(torch.uint8)
    v = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return np.floor(255.0 * (v + bound) / (2.0 * bound) + 0.5).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Inverse of ``quantize_flow`` (up to the step 2*bound/255): uint8 -> float32 pixels."""
    if not bound > 0:
        raise ValueError(f"bound={bound!r} must be positive")
    return (np.asarray(q, dtype=np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)
