"""Dual TV-L1 optical flow in PyTorch tensor ops: batched, on CPU or CUDA tensors.

The method is Zach, Pock and Bischof, "A Duality Based Approach for Realtime TV-L1 Optical Flow"
(DAGM 2007), with the numerical scheme of Sanchez, Meinhardt-Llopis and Facciolo, "TV-L1 Optical
Flow Estimation" (IPOL 2013, Algorithm 1), in the variant of OpenCV's
``cv::optflow::DualTVL1OpticalFlow``, whose output it reproduces (``tests/test_tvl1_torch.py``). For
each pair it minimises ``sum |grad u| + lambda |rho(u)|`` with the linearised residual
``rho(u) = I1(x + u0) + grad I1(x + u0) . (u - u0) - I0(x)`` (+ ``gamma u3`` for illumination
changes), split by a quadratic coupling ``(u - v)^2 / (2 theta)`` (ZPB eq. 4) into:

- the point-wise thresholding step TH on ``v`` (ZPB eq. 5, IPOL eq. 17),
  ``v = u + {lambda theta grad I1 if rho < -lambda theta |grad I1|^2; -lambda theta grad I1 if
  rho > lambda theta |grad I1|^2; -rho grad I1 / |grad I1|^2 otherwise}``;
- Chambolle's projection for the TV part: ``u = v + theta div p`` and the dual update
  ``p <- (p + tau/theta grad u) / (1 + tau/theta |grad u|)`` (IPOL eqs. 19-20) with forward
  differences for ``grad`` and the matching backward differences for ``div`` (IPOL eqs. 22-23);
- the inner loop stops when ``sum |u_new - u|^2 <= epsilon^2 H W`` (OpenCV's rule, per pair), after
  at most ``inner_iterations`` x ``outer_iterations`` steps; the flow is median filtered at the start
  of each outer iteration (OpenCV, after Wedel et al. 2009);
- ``warps`` re-linearisations per level: ``I1`` and its centred gradient are warped by the current
  flow with bicubic interpolation (OpenCV's ``remap`` ``INTER_CUBIC``, Keys a = -0.75, zero
  outside the image) or bilinear;
- a pyramid of ``nscales`` levels, each ``scale_step`` times the previous (bilinear, as OpenCV's
  ``resize``; levels under 16 px are dropped), coarse to fine; the flow is upsampled bilinearly and
  divided by ``scale_step``; the dual variables restart at zero on each level.

Parameters are ``tstam.flow.TVL1Params``. Shapes: B pairs, H x W pixels, K = 2 flow components
(3 with ``gamma``: the third is the illumination term ``u3``).
"""
from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F

from tstam.device import resolve_device  # the one device check (re-exported: benchmarks/gpu_flow.py)

from .config import TVL1Params
from .median import median_filter

__all__ = ["tvl1_flow", "resolve_device", "bytes_per_pair", "batch_size_for", "default_budget", "pyramid_sizes"]

_EPS = float(torch.finfo(torch.float32).eps)  # below this |grad I1|^2 the TH step leaves v = u (OpenCV)
_MIN_LEVEL = 16  # OpenCV drops pyramid levels narrower or shorter than this


def pyramid_sizes(h: int, w: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(height, width) of each level, finest first, as OpenCV sizes them (round half to even)."""
    sizes = [(h, w)]
    for _ in range(1, params.nscales):
        ph, pw = sizes[-1]
        nh, nw = round(ph * params.scale_step), round(pw * params.scale_step)
        if nh < _MIN_LEVEL or nw < _MIN_LEVEL:
            break
        sizes.append((nh, nw))
    return sizes


# Peak memory per pair, in float32 H x W buffers of the finest level (the peak is inside _step;
# tests/test_tvl1_torch.py measures it), with K flow components (2, or 3 with gamma):
#   the level's frames I0, I1: 2; I1 and its gradient, kept in float64 for _warp: 6       = 8
#   flow u and dual p (K + 2K) for the write-back, and their working copies (K + 2K)      = 6K
#   linearisation constants: I1x, I1y[, gamma] (K), -1/|grad I1|^2 and rho_c (2)         = K + 2
#   step temporaries: TH 1, divergence K, new u K, grad u 2K, |grad u| K                  = 1 + 5K
#   slack: copies while the batch is compacted, median bands (<= 8 buffers, off-peak)     = 5
# Coarser levels are smaller; other tensors are O(H + W).
def bytes_per_pair(h: int, w: int, params: TVL1Params | None = None) -> int:
    """Peak memory of one pair of h x w frames, in bytes (the derivation is in the comment above)."""
    k = 3 if (params or TVL1Params()).gamma else 2
    return 4 * h * w * (8 + 6 * k + (k + 2) + (1 + 5 * k) + 5)


def batch_size_for(budget_bytes: int, h: int, w: int, params: TVL1Params | None = None) -> int:
    """The most pairs of h x w whose peak memory fits in ``budget_bytes`` (at least 1)."""
    return max(1, int(budget_bytes // bytes_per_pair(h, w, params)))


def default_budget(device: torch.device) -> int:
    """Half the free memory of a GPU; 128 MiB on the CPU (10 pairs at 320x240: larger batches
    gain nothing there; ``benchmarks/bench_flow.py`` compares them with one pair at a time)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return 128 << 20


# ---------------------------------------------------------------------------------------------
# Building blocks (each matches the OpenCV function named in its docstring).


def _linear_taps(n_in: int, n_out: int, scale: float, device: torch.device):
    """Source indices (i0, i1) and weight a of i1 for 1-D linear resampling as OpenCV ``resize``
    ``INTER_LINEAR``: output i reads source coordinate (i + 0.5) * scale - 0.5, clamped to the
    edge pixels. Each (n_out,)."""
    f = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).float()
    s = torch.floor(f)
    a = f - s
    a[(s < 0) | (s >= n_in - 1)] = 0.0
    s = s.long().clamp(0, n_in - 1)
    return s.to(device), (s + 1).clamp(max=n_in - 1).to(device), a.to(device)


def _resize(x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float]) -> torch.Tensor:
    """(..., H, W) -> (..., h, w) bilinear, ``scale`` = source pixels per output pixel (y, x);
    rows first, then columns, as OpenCV (element-wise, so TF32 matmul settings cannot touch it)."""
    i0, i1, a = _linear_taps(x.shape[-1], size[1], scale[1], x.device)
    x = torch.lerp(x[..., i0], x[..., i1], a)  # (..., H, w)
    i0, i1, a = _linear_taps(x.shape[-2], size[0], scale[0], x.device)
    return torch.lerp(x[..., i0, :], x[..., i1, :], a[:, None])  # (..., h, w)


def _centered_gradient(img: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 2, H, W) x and y central differences / 2, one-sided at the border
    (OpenCV ``centeredGradient``; = edge replication then central differences)."""
    pad = F.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]  # (B, H + 2, W + 2)
    dx = 0.5 * (pad[:, 1:-1, 2:] - pad[:, 1:-1, :-2])
    dy = 0.5 * (pad[:, 2:, 1:-1] - pad[:, :-2, 1:-1])
    return torch.stack((dx, dy), 1)


def _forward_gradient(u: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) -> (B, K, 2, H, W) forward differences, 0 on the last column / row (IPOL eq. 22)."""
    if torch.compiler.is_compiling():
        # torch.compile cannot trace ``out=`` into strided views (a graph break would leave this
        # step unfused); this form fuses with the dual update into one kernel
        gx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1))
        gy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
        return torch.stack((gx, gy), 2)
    g = u.new_empty(*u.shape[:2], 2, *u.shape[2:])
    torch.sub(u[..., :, 1:], u[..., :, :-1], out=g[:, :, 0, :, :-1])
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=g[:, :, 1, :-1, :])
    g[:, :, 0, :, -1] = 0.0
    g[:, :, 1, -1, :] = 0.0
    return g


def _divergence(p: torch.Tensor) -> torch.Tensor:
    """(B, K, 2, H, W) -> (B, K, H, W) backward differences, the adjoint of -_forward_gradient
    (IPOL eq. 23; OpenCV ``divergence``: p taken as 0 left of / above the image)."""
    px, py = p[:, :, 0], p[:, :, 1]
    div = px + py
    div[..., :, 1:] -= px[..., :, :-1]
    div[..., 1:, :] -= py[..., :-1, :]
    return div


def _warp(stack: torch.Tensor, u: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, C, H, W) float64 sampled at (x + u1, y + u2), u (B, 2, H, W); taps outside the image read 0
    (OpenCV ``remap`` with ``BORDER_CONSTANT``; bicubic is Keys' kernel with a = -0.75 in both).

    The positions x + u are formed in float32 as OpenCV does, then normalised for ``grid_sample``
    in float64: in float32 the normalisation moves integer positions by ~1e-5 px, which next to
    the zero border (a jump of up to 255) changes the flow of flat regions by whole pixels."""
    b, c, h, w = stack.shape
    x = torch.arange(w, device=u.device, dtype=u.dtype) + u[:, 0]  # (B, H, W)
    y = torch.arange(h, device=u.device, dtype=u.dtype)[:, None] + u[:, 1]
    grid = torch.stack((x.double() * (2.0 / (w - 1)) - 1.0, y.double() * (2.0 / (h - 1)) - 1.0), -1)  # (B, H, W, 2)
    return F.grid_sample(stack, grid, mode=mode, padding_mode="zeros", align_corners=True).float()


# ---------------------------------------------------------------------------------------------
# The solver.


def _step(u: torch.Tensor, dual: torch.Tensor, iw: torch.Tensor, neg_inv: torch.Tensor, rho_c: torch.Tensor,
          l_t: float, theta: float, taut: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One inner iteration: TH step, primal step, dual step. Returns new u, p and the per-pair
    ``sum |u_new - u|^2`` (B,). u (B, K, H, W), dual (B, K, 2, H, W), iw (B, K, H, W) = warped
    (I1x, I1y[, gamma]), rho_c = I1w - (I1x, I1y) . u0 - I0 and neg_inv = -1 / |grad I1|^2 (B, H, W).

    The three cases of TH are one clamp: ``v = u + clamp(-rho / |grad I1|^2, -lambda theta,
    lambda theta) grad I1``; where |grad I1|^2 <= float eps OpenCV leaves v = u unless |rho| >
    lambda theta |grad I1|^2, and neg_inv = -1e30 there gives the same up to |rho| < 1e-29.

    Memory traffic, in passes over one (B, H, W) float32 plane (read or written), K = 2: run op by
    op, the residual 8, its scaling and clamp 5, the divergence 18, v + theta div p 14, err 12,
    the forward gradient 12, 1 + tau/theta |grad u| 14, the dual update 24: 107 per iteration,
    with the iteration bound by memory bandwidth on a GPU. Compiled (``_compiled_step``: one graph,
    no break), the ops fuse: at least u, p, iw, neg_inv and rho_c are read (10) and u_new, p written
    (6), 16 passes; 22 where u_new is written and read back for its forward gradient."""
    fi = rho_c
    for k in range(u.shape[1]):
        fi = torch.addcmul(fi, iw[:, k], u[:, k])  # (B, H, W) residual rho at u
    fi = fi.mul_(neg_inv).clamp_(-l_t, l_t)[:, None]  # (B, 1, H, W)
    u_new = torch.addcmul(u, fi, iw).add_(_divergence(dual), alpha=theta)  # v + theta div p
    err = (u_new - u).square_().sum((1, 2, 3))  # (B,)
    g = _forward_gradient(u_new)  # (B, K, 2, H, W)
    ng = torch.hypot(g[:, :, 0], g[:, :, 1]).mul_(taut).add_(1.0)[:, :, None]  # (B, K, 1, H, W)
    if torch.compiler.is_compiling():  # traced, ``out=`` into g (which has live views) came out wrong; this form fuses as well
        return u_new, (dual + taut * g) / ng, err
    dual_new = torch.add(dual, g, alpha=taut, out=g).div_(ng)  # (p + tau/theta grad u) / ng, in g
    return u_new, dual_new, err


@functools.cache
def _compiled_step():
    """``_step`` through ``torch.compile`` (one fused kernel per group of element-wise ops)."""
    return torch.compile(_step, dynamic=True)


def _linearise(stack: torch.Tensor, i0: torch.Tensor, u: torch.Tensor, gamma: float,
               mode: str) -> list[torch.Tensor]:
    """Warp I1 and its gradient by u and linearise the data term around it (OpenCV
    ``calcGradRho``): [iw (B, K, H, W), neg_inv (B, H, W), rho_c (B, H, W)] for ``_step``."""
    warped = _warp(stack, u[:, :2], mode)  # (B, 3, H, W): I1, I1x, I1y at x + u
    i1w, iw = warped[:, 0], warped[:, 1:]
    grad = iw[:, 0].square() + iw[:, 1].square()  # (B, H, W) |grad I1(x + u0)|^2
    neg_inv = torch.where(grad > _EPS, -1.0 / grad, -1e30)
    rho_c = i1w - (iw[:, 0] * u[:, 0] + iw[:, 1] * u[:, 1]) - i0
    if u.shape[1] == 3:
        iw = torch.cat((iw, torch.full_like(i1w, gamma)[:, None]), 1)  # (B, 3, H, W)
    return [iw.clone(memory_format=torch.contiguous_format), neg_inv, rho_c]


def _iterate(u: torch.Tensor, dual: torch.Tensor, consts: list[torch.Tensor], p: TVL1Params,
             stop: float, step) -> None:
    """Outer and inner iterations of one warp, in place on u and dual, each pair stopping on its
    own as OpenCV does (``sum |u_new - u|^2 <= stop``). Pairs that stop leave the working batch,
    so a batch costs the sum of its pairs' iterations, not B times the slowest."""
    l_t, taut = p.lambda_ * p.theta, p.tau / p.theta
    idx = torch.arange(u.shape[0], device=u.device)  # pairs still iterating
    uw, dw = u, dual
    for _ in range(p.outer_iterations):
        if p.median_filtering > 1:
            uw = torch.cat((median_filter(uw[:, :2], p.median_filtering), uw[:, 2:]), 1)
        for _ in range(p.inner_iterations):
            uw, dw, err = step(uw, dw, *consts, l_t, p.theta, taut)
            going = err > stop  # (b,)
            n = int(going.sum())
            if n < idx.numel():
                done = idx[~going]
                u[done], dual[done] = uw[~going], dw[~going]
                if n == 0:
                    return
                idx, uw, dw = idx[going], uw[going], dw[going]
                consts = [c[going] for c in consts]
    u[idx], dual[idx] = uw, dw


def _solve_level(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, p: TVL1Params, mode: str,
                 step) -> None:
    """One pyramid level (OpenCV ``procOneScale``), in place on u (B, K, H, W); i0, i1 (B, H, W)."""
    b, k, h, w = u.shape
    stop = float(torch.tensor(p.epsilon ** 2 * h * w, dtype=torch.float32))  # OpenCV compares in float32
    stack = torch.cat((i1[:, None], _centered_gradient(i1)), 1).double()  # (B, 3, H, W): I1, dI1/dx, dI1/dy
    dual = u.new_zeros(b, k, 2, h, w)
    for _ in range(p.warps):
        _iterate(u, dual, _linearise(stack, i0, u, p.gamma, mode), p, stop, step)


def tvl1_flow(prev: torch.Tensor, nxt: torch.Tensor, params: TVL1Params | None = None, *,
              interpolation: Literal["bicubic", "bilinear"] = "bicubic",
              batch_size: int | None = None, compile: bool | None = None) -> torch.Tensor:
    """Dual TV-L1 flow from each ``prev`` frame to the matching ``nxt`` frame.

    Args:
        prev, nxt: (B, H, W) grayscale frames on one device (CPU or CUDA), uint8 or float in
            0..255 (OpenCV multiplies float input by 255; this does not).
        params: ``TVL1Params`` (default: ours, as ``FlowConfig().tvl1``).
        interpolation: warping of I1 and its gradient: bicubic (OpenCV's) or bilinear.
        batch_size: pairs solved at once (default: ``batch_size_for(default_budget(device))``).
        compile: run the inner iteration through ``torch.compile``: its element-wise ops fuse,
            16 to 22 passes over a pair's full-size buffers per iteration instead of 107 (the
            count is in ``_step``'s docstring); the first call compiles for tens of
            seconds. None (default): on CUDA devices, where memory traffic bounds the iteration;
            on a CPU the eager ops are as fast and nothing needs compiling.

    Returns:
        (B, H, W, 2) float32 on the input's device, channel 0 = x, 1 = y, in pixels:
        ``prev[y, x] ~ nxt[y + flow[..., 1], x + flow[..., 0]]``.
    """
    p = params or TVL1Params()
    if prev.shape != nxt.shape or prev.dim() != 3:
        raise ValueError(f"prev and nxt must both be (B, H, W), got {tuple(prev.shape)} and {tuple(nxt.shape)}")
    if prev.device != nxt.device:
        raise ValueError(f"prev is on {prev.device} but nxt on {nxt.device}")
    b, h, w = prev.shape
    if h < 3 or w < 3:
        raise ValueError(f"frames of {h}x{w} (HxW) are too small for TV-L1; need at least 3x3")
    if interpolation not in ("bicubic", "bilinear"):
        raise ValueError(f"interpolation={interpolation!r} is not valid; expected 'bicubic' or 'bilinear'")
    if p.median_filtering > 1 and p.median_filtering % 2 == 0:
        raise ValueError(f"median_filtering={p.median_filtering} must be odd (or <= 1 for none)")
    if prev.is_floating_point() and not (torch.isfinite(prev).all() and torch.isfinite(nxt).all()):
        raise ValueError("frames contain NaN or infinite values")
    if b == 0:
        return torch.zeros(0, h, w, 2, device=prev.device)
    bs = batch_size or batch_size_for(default_budget(prev.device), h, w, p)
    if compile is None:
        compile = prev.device.type == "cuda"
    step = _compiled_step() if compile else _step
    out = [_tvl1_batch(prev[i:i + bs], nxt[i:i + bs], p, interpolation, step) for i in range(0, b, bs)]
    return torch.cat(out).permute(0, 2, 3, 1).contiguous()  # (B, 2, H, W) -> (B, H, W, 2)


def _tvl1_batch(prev: torch.Tensor, nxt: torch.Tensor, p: TVL1Params, mode: str, step) -> torch.Tensor:
    """(B, H, W) prev and next -> (B, 2, H, W) flow (OpenCV ``DualTVL1OpticalFlow::calc``)."""
    frames = torch.stack((prev, nxt), 1).float()  # (B, 2, H, W)
    sizes = pyramid_sizes(frames.shape[-2], frames.shape[-1], p)
    pyramid = [frames]
    for size in sizes[1:]:
        pyramid.append(_resize(pyramid[-1], size, (1.0 / p.scale_step, 1.0 / p.scale_step)))  # (B, 2, h, w)
    del frames
    u = pyramid[0].new_zeros(prev.shape[0], 3 if p.gamma else 2, *sizes[-1])  # (B, K, h, w), coarsest level
    for s in range(len(sizes) - 1, -1, -1):
        level = pyramid.pop()
        _solve_level(level[:, 0], level[:, 1], u, p, mode, step)
        del level
        if s > 0:
            (h0, w0), (h1, w1) = sizes[s], sizes[s - 1]
            u = _resize(u, (h1, w1), (h0 / h1, w0 / w1))
            u[:, :2] *= 1.0 / p.scale_step  # the illumination term u3 is not a length
    return u[:, :2]
