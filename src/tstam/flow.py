"""Dense optical flow between consecutive frames, and its uint8 quantisation (DESIGN section 3).

The paper (and TSN before it) feeds the temporal stream with TV-L1 flow computed on grayscale
frames, clipped to ``[-bound, bound]`` (bound = 20) and stored as one grayscale JPEG per
component: ``q = round(255 * (clip(v, -b, b) + b) / (2 b))``.

TV-L1 is OpenCV contrib's ``cv2.optflow.DualTVL1OpticalFlow``. Its default parameters cost
about 1-2.5 s per 320x240 pair on one core; our defaults (``TVL1Params``) were tuned with
``benchmarks/bench_flow.py`` (pairs/s per core and endpoint error against known motion and
against default-parameter TV-L1): a coarser pyramid (scale step 0.5, 4 levels instead of 0.8 and
5) reaches large motions that the default pyramid misses, and a looser stopping threshold
(epsilon 0.03 instead of 0.01) stops the outer iterations once the flow has settled. DIS and
Farneback are faster, less accurate options; the algorithm and its parameters go into each
video's metadata. ``tvl1_torch`` is the same TV-L1 written in PyTorch (``tstam.tvl1_torch``) with
the same ``TVL1Params``: it solves many pairs at once, on the CPU or a GPU (``flow_pairs``).

Flow convention (OpenCV's): ``prev[y, x] ~ next[y + flow[y, x, 1], x + flow[y, x, 0]]``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import cv2
import numpy as np

from tstam.config import ConfigError, check_literals, from_dict

__all__ = [
    "FLOW_ALGORITHMS", "TVL1Params", "DISParams", "FarnebackParams", "FlowConfig",
    "compute_flow", "iter_flow", "flow_pairs", "quantize_flow", "dequantize_flow", "to_gray",
]

FlowAlgorithm = Literal["tvl1", "dis", "farneback", "tvl1_torch"]
FLOW_ALGORITHMS: tuple[str, ...] = get_args(FlowAlgorithm)
_PARAMS = {"tvl1_torch": "tvl1"}  # algorithm -> FlowConfig field of its parameters, where they differ


@dataclass
class TVL1Params:
    """OpenCV DualTVL1OpticalFlow parameters; OpenCV's own default in each comment."""

    tau: float = 0.25  # time step of the numerical scheme (OpenCV 0.25)
    lambda_: float = 0.15  # data-term weight: smaller = smoother flow (OpenCV 0.15)
    theta: float = 0.3  # coupling of the two sub-problems (OpenCV 0.3)
    nscales: int = 4  # pyramid levels; with scale_step 0.5 the coarsest is 40x30 for 320x240 (OpenCV 5)
    warps: int = 5  # warpings per level (OpenCV 5); 3 is 1.3x faster but +50% error on large motion
    epsilon: float = 0.03  # stopping threshold of the outer loop; the main speed knob (OpenCV 0.01)
    inner_iterations: int = 30  # iterations per outer step (OpenCV 30)
    outer_iterations: int = 10  # cap on outer steps; epsilon usually stops earlier (OpenCV 10)
    scale_step: float = 0.5  # pyramid down-scaling factor; 0.5 sees motions the 0.8 pyramid misses (OpenCV 0.8)
    gamma: float = 0.0  # illumination-variation weight, 0 = off (OpenCV 0)
    median_filtering: int = 5  # median filter size on the flow between warps (OpenCV 5)

    @classmethod
    def opencv_defaults(cls) -> "TVL1Params":
        """OpenCV's own defaults (the baseline of ``benchmarks/bench_flow.py``)."""
        return cls(nscales=5, epsilon=0.01, scale_step=0.8)


@dataclass
class DISParams:
    """OpenCV DIS optical flow (Kroeger et al. 2016)."""

    preset: Literal["ultrafast", "fast", "medium"] = "medium"  # OpenCV's presets; medium is the most accurate


@dataclass
class FarnebackParams:
    """OpenCV Farneback polynomial-expansion flow (the values commonly used with OpenCV)."""

    pyr_scale: float = 0.5  # pyramid down-scaling factor
    levels: int = 4  # pyramid levels (reaches ~+-20 px at 320x240)
    winsize: int = 15  # averaging window: larger = smoother, more robust to noise
    iterations: int = 3  # iterations per level
    poly_n: int = 5  # neighbourhood of the polynomial expansion
    poly_sigma: float = 1.2  # Gaussian sigma of the expansion (OpenCV docs: 1.1 for poly_n 5; 1.2 is usual)


@dataclass
class FlowConfig:
    """Which flow to compute and how it is quantised."""

    algorithm: FlowAlgorithm = "tvl1"  # TV-L1 as the paper and TSN
    bound: float = 20.0  # flow is clipped to [-bound, bound] px before quantisation (TSN: 20)
    tvl1: TVL1Params = field(default_factory=TVL1Params)  # used when algorithm is "tvl1" or "tvl1_torch"
    dis: DISParams = field(default_factory=DISParams)  # used when algorithm == "dis"
    farneback: FarnebackParams = field(default_factory=FarnebackParams)  # used when "farneback"

    def __post_init__(self) -> None:
        check_literals(self, "flow")
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise ConfigError(f"flow.bound={self.bound!r} is not valid; expected a finite number > 0 (TSN: 20)")

    def params(self) -> dict[str, Any]:
        """The parameters of the selected algorithm, as stored in the frame-store metadata."""
        return dataclasses.asdict(getattr(self, _PARAMS.get(self.algorithm, self.algorithm)))

    def describe(self) -> dict[str, Any]:
        """``{"algorithm", "bound", "params"}``: the ``flow`` entry of a video's meta.json."""
        return {"algorithm": self.algorithm, "bound": float(self.bound), "params": self.params()}

    @classmethod
    def from_describe(cls, flow: dict[str, Any], *, source: str = "flow settings") -> "FlowConfig":
        """Inverse of :meth:`describe` (a meta.json or checkpoint ``flow`` entry).

        Raises:
            ConfigError: naming ``source``, when the settings cannot be reproduced exactly
                (unknown algorithm or parameters): flow computed otherwise would differ from training.
        """
        try:
            algorithm = flow["algorithm"]
            data = {"algorithm": algorithm, "bound": flow["bound"]}
            if flow.get("params") is not None:
                data[_PARAMS.get(algorithm, algorithm)] = dict(flow["params"])
            return from_dict(cls, data)
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{source}: flow settings {flow!r} cannot be reproduced by this tstam ({e}); "
                              f"expected an algorithm of {list(FLOW_ALGORITHMS)} with its parameters") from None


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
               batch_size: int | None = None) -> np.ndarray:
    """Flow of many frame pairs at once (from one video or many), e.g. on a GPU.

    Args:
        prev, nxt: (N, H, W) uint8 gray frames; the flow goes from ``prev[i]`` to ``nxt[i]``.
        cfg: algorithm and parameters (default: ``FlowConfig()``); only ``tvl1_torch`` runs on
            a GPU, the OpenCV algorithms run pair by pair on the CPU.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: pairs solved at once by ``tvl1_torch`` (default: from the free memory, see
            ``tstam.tvl1_torch.batch_size_for``).

    Returns:
        (N, H, W, 2) float32, channel 0 = x, 1 = y, in pixels.
    """
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    if prev.shape != nxt.shape or prev.ndim != 3 or prev.shape[0] < 1:
        raise ValueError(f"prev and nxt must both be (N, H, W) with N >= 1, got {prev.shape} and {nxt.shape}")
    return np.stack(list(_iter_pairs(prev, nxt, cfg or FlowConfig(), device, batch_size)))


def _iter_pairs(prev: np.ndarray, nxt: np.ndarray, cfg: FlowConfig, device: str,
                batch_size: int | None) -> Iterator[np.ndarray]:
    """(N, H, W) uint8 pairs -> their (H, W, 2) float32 flows, in order."""
    if prev.dtype != np.uint8 or nxt.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {prev.dtype} and {nxt.dtype}")
    if cfg.algorithm == "tvl1_torch":
        from tstam import tvl1_torch

        dev = tvl1_torch.resolve_device(device)
        _, h, w = prev.shape
        bs = batch_size or tvl1_torch.batch_size_for(tvl1_torch.default_budget(dev), h, w, cfg.tvl1)
        return _torch_batches(prev, nxt, cfg.tvl1, dev, bs)
    if str(device) != "cpu":
        raise ValueError(f"device {str(device)!r} needs flow algorithm 'tvl1_torch'; {cfg.algorithm!r} "
                         "(OpenCV) runs on 'cpu' only")
    estimate = _make_estimator(cfg)
    return (np.asarray(estimate(a, b), dtype=np.float32) for a, b in zip(prev, nxt))


def _torch_batches(prev: np.ndarray, nxt: np.ndarray, params: TVL1Params, device, batch_size: int):
    """tvl1_torch over batches of pairs. On the CPU with one torch thread during each batch, as
    OpenCV's TV-L1 runs (parallel work is one process per core, as ``tstam extract`` does): its
    many small operations ran ~10x slower on 2 threads of a busy 2-core machine than on 1."""
    import torch

    from tstam.tvl1_torch import tvl1_flow

    for i in range(0, prev.shape[0], batch_size):
        a = torch.from_numpy(np.ascontiguousarray(prev[i:i + batch_size])).to(device)
        b = torch.from_numpy(np.ascontiguousarray(nxt[i:i + batch_size])).to(device)
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(1)
        try:
            flows = tvl1_flow(a, b, params, batch_size=batch_size).cpu().numpy()
        finally:
            torch.set_num_threads(threads)
        yield from flows


def quantize_flow(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """``round(255 * (clip(v, -bound, bound) + bound) / (2 * bound))`` as uint8 (halves round up)."""
    if not bound > 0:
        raise ValueError(f"bound={bound!r} must be positive")
    v = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return np.floor(255.0 * (v + bound) / (2.0 * bound) + 0.5).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Inverse of ``quantize_flow`` (up to the step 2*bound/255): uint8 -> float32 pixels."""
    if not bound > 0:
        raise ValueError(f"bound={bound!r} must be positive")
    return (np.asarray(q, dtype=np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)
