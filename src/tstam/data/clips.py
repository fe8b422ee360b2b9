"""Snippets from decoded video frames, with optical flow computed on the fly (DESIGN section 3).

The one implementation used wherever a clip is cut from decoded frames rather than read from
the frame store: ``VideoDataset`` (training and testing from video files) and
``tstam.inference.Recognizer`` (prediction). Flow is computed only for the frame pairs the
sampled snippets need, with the ``FlowConfig`` the model was trained on, and quantised exactly as
``tstam extract`` stores it, so a model sees the same input as from the frame store.
"""
from __future__ import annotations

import numpy as np
import torch

from ..flow import FlowConfig, compute_flow, quantize_flow
from .sampling import snippet_indices

__all__ = ["MIN_FLOW_FRAMES", "rgb_snippets", "flow_snippets"]

MIN_FLOW_FRAMES = 2  # one flow field needs two frames


def rgb_snippets(frames: np.ndarray, starts: np.ndarray, new_length: int) -> torch.Tensor:
    """RGB snippets of ``new_length`` frames from each start.

    Args:
        frames: (T, H, W, 3) uint8 RGB, T >= 1.
        starts: (S,) 0-based snippet starts (``tstam.data.sampling``).
        new_length: frames per snippet (1 for T-STAM's RGB stream).

    Returns:
        uint8 (S, 3 * new_length, H, W), frames stacked along channels.
    """
    idx = snippet_indices(starts, new_length, len(frames))                 # (S, L)
    clip = torch.from_numpy(np.ascontiguousarray(frames[idx.ravel()]))    # (S*L, H, W, 3)
    clip = clip.permute(0, 3, 1, 2)                                        # (S*L, 3, H, W)
    return clip.reshape(idx.shape[0], -1, *clip.shape[-2:])                # (S, 3L, H, W)


def flow_snippets(frames: np.ndarray, starts: np.ndarray, new_length: int, flow: FlowConfig) -> torch.Tensor:
    """Flow snippets of ``new_length`` fields from each start, computed for the needed pairs only.

    Args:
        frames: (T, H, W, 3) uint8 RGB (or (T, H, W) gray), T >= 2; field k lies between frames k, k+1.
        starts: (S,) 0-based starts over the T - 1 flow fields.
        new_length: flow fields per snippet (5: 10 channels).
        flow: algorithm, parameters and bound (quantisation as in the frame store).

    Returns:
        uint8 (S, 2 * new_length, H, W), channels x1, y1, ..., xL, yL.
    """
    if len(frames) < MIN_FLOW_FRAMES:
        raise ValueError(f"optical flow needs at least {MIN_FLOW_FRAMES} frames, the video has {len(frames)}")
    n_fields = len(frames) - 1
    idx = snippet_indices(starts, new_length, n_fields)                    # (S, L) field indices
    needed = np.unique(idx)
    fields: dict[int, np.ndarray] = {}
    # consecutive runs of needed fields share frames: one compute_flow call per run
    for run in np.split(needed, np.flatnonzero(np.diff(needed) > 1) + 1):
        a, b = int(run[0]), int(run[-1])
        q = quantize_flow(compute_flow(frames[a:b + 2], flow), flow.bound)  # (b-a+1, H, W, 2)
        for k in range(q.shape[0]):
            fields[a + k] = q[k]
    stack = np.stack([fields[int(i)] for i in idx.ravel()])               # (S*L, H, W, 2)
    clip = torch.from_numpy(stack).permute(0, 3, 1, 2)                     # (S*L, 2, H, W)
    return clip.reshape(idx.shape[0], -1, *clip.shape[-2:])                # (S, 2L, H, W)
