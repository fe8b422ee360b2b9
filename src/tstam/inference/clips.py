"""Test-time clips from decoded frames, as in training (paper 4.2; DESIGN section 3).

The decoded frames (already at the training frame size) are sampled with TSN's test indices
(``tstam.data.sampling``: 25 evenly spaced snippet starts), the flow of each snippet's frame
pairs is computed with the algorithm recorded in the flow checkpoint and quantised as extraction
does, and the clip is cut into 1, 3 or 10 crops by ``tstam.data.transforms.eval_crops``.
Normalisation (``Preprocess``) is applied last, by the caller.
"""
from __future__ import annotations

import numpy as np
import torch

from tstam.data.sampling import snippet_indices, test_indices
from tstam.data.transforms import eval_crops

__all__ = ["rgb_clip", "flow_clip", "crop_clip", "MIN_FLOW_FRAMES"]

MIN_FLOW_FRAMES = 2  # one flow field needs two frames


def rgb_clip(frames: np.ndarray, *, num_snippets: int, new_length: int = 1) -> tuple[torch.Tensor, np.ndarray]:
    """Sampled RGB snippets.

    Args:
        frames: (T, H, W, 3) uint8 RGB, T >= 1.
        num_snippets: snippets to sample (25 at test).
        new_length: frames per snippet (1 for T-STAM's RGB stream).

    Returns:
        uint8 clip (S, 3 * new_length, H, W) and the snippet start indices (S,).
    """
    starts = test_indices(len(frames), num_snippets, new_length)
    idx = snippet_indices(starts, new_length, len(frames))                  # (S, L)
    clip = torch.from_numpy(np.ascontiguousarray(frames[idx.ravel()]))     # (S*L, H, W, 3)
    clip = clip.permute(0, 3, 1, 2)                                         # (S*L, 3, H, W)
    return clip.reshape(idx.shape[0], -1, *clip.shape[-2:]), starts         # (S, 3L, H, W)


def flow_clip(frames: np.ndarray, *, num_snippets: int, new_length: int, flow_cfg) -> tuple[torch.Tensor, np.ndarray]:
    """Sampled flow snippets, computed on the fly for the sampled frame pairs only.

    Args:
        frames: (T, H, W, 3) uint8 RGB, T >= 2.
        num_snippets: snippets to sample (25 at test).
        new_length: flow fields per snippet (5: 10 channels).
        flow_cfg: a ``tstam.flow.FlowConfig`` (algorithm, parameters, bound).

    Returns:
        uint8 clip (S, 2 * new_length, H, W), channels x1, y1, ..., and the starts (S,).
    """
    from tstam.flow import compute_flow, quantize_flow

    if len(frames) < MIN_FLOW_FRAMES:
        raise ValueError(f"optical flow needs at least {MIN_FLOW_FRAMES} frames, the video has {len(frames)}")
    n_fields = len(frames) - 1
    starts = test_indices(n_fields, num_snippets, new_length)
    idx = snippet_indices(starts, new_length, n_fields)                     # (S, L) field indices
    needed = np.unique(idx)
    fields: dict[int, np.ndarray] = {}
    # consecutive runs of needed fields share frames: one compute_flow call per run
    runs = np.split(needed, np.flatnonzero(np.diff(needed) > 1) + 1)
    for run in runs:
        a, b = int(run[0]), int(run[-1])
        q = quantize_flow(compute_flow(frames[a:b + 2], flow_cfg), flow_cfg.bound)  # (b-a+1, H, W, 2)
        for k in range(q.shape[0]):
            fields[a + k] = q[k]
    stack = np.stack([fields[int(i)] for i in idx.ravel()])                # (S*L, H, W, 2)
    clip = torch.from_numpy(stack).permute(0, 3, 1, 2)                      # (S*L, 2, H, W)
    return clip.reshape(idx.shape[0], -1, *clip.shape[-2:]), starts         # (S, 2L, H, W)


def crop_clip(clip: torch.Tensor, *, size: int, num_crops: int, flow: bool) -> torch.Tensor:
    """(S, C, H, W) uint8 -> (num_crops, S, C, size, size) uint8; crop 0 of 1 is the centre."""
    return eval_crops(clip, size=size, num_crops=num_crops, flow=flow).contiguous()
