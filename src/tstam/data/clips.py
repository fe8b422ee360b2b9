"""Snippets from decoded video frames, with optical flow computed on the fly (docs/design.md, Data flow).

The one implementation used wherever a clip is cut from decoded frames rather than read from
the frame store: ``VideoDataset`` (training and testing from video files) and
``tstam.inference.Recognizer`` (prediction). Flow is computed only for the frame pairs the
sampled snippets need, with the ``FlowConfig`` the model was trained on, and quantised exactly as
``tstam extract`` stores it, so a model sees the same input as from the frame store. With
``tvl1_torch`` the flow can run on a GPU: per video (``flow_snippets(device=...)``), or for a
whole training batch (``FlowPairs``: the dataset sends frame pairs, the training device computes).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..flow import FlowConfig, flow_pairs, to_gray
from .sampling import snippet_indices

__all__ = ["MIN_FLOW_FRAMES", "rgb_snippets", "flow_snippets", "flow_fields", "frame_pairs", "fields_to_clip",
           "FlowPairs"]

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


def flow_snippets(frames: np.ndarray, starts: np.ndarray, new_length: int, flow: FlowConfig, *,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Flow snippets of ``new_length`` fields from each start, computed for the needed pairs only.

    Args:
        frames: (T, H, W, 3) uint8 RGB (or (T, H, W) gray), T >= 2; field k lies between frames k, k+1.
        starts: (S,) 0-based starts over the T - 1 flow fields.
        new_length: flow fields per snippet (5: 10 channels).
        flow: algorithm, parameters and bound (quantisation as in the frame store).
        device: where ``tvl1_torch`` runs (``tstam.flow.flow_pairs``); OpenCV's algorithms run on the CPU.

    Returns:
        uint8 (S, 2 * new_length, H, W), channels x1, y1, ..., xL, yL.
    """
    idx = flow_fields(frames, starts, new_length)                          # (S, L) field indices
    needed, where = np.unique(idx, return_inverse=True)                    # each field computed once
    prev, nxt = frame_pairs(frames, needed)
    q = flow_pairs(prev, nxt, flow, device=device if flow.algorithm == "tvl1_torch" else "cpu",
                   quantize=True)                                          # (n, H, W, 2) uint8
    return fields_to_clip(torch.from_numpy(q[where.ravel()]), idx.shape[0])


def flow_fields(frames: np.ndarray, starts: np.ndarray, new_length: int) -> np.ndarray:
    """(S, L) indices of the flow fields of each snippet (field k lies between frames k, k + 1)."""
    if len(frames) < MIN_FLOW_FRAMES:
        raise ValueError(f"optical flow needs at least {MIN_FLOW_FRAMES} frames, the video has {len(frames)}")
    return snippet_indices(starts, new_length, len(frames) - 1)


def frame_pairs(frames: np.ndarray, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gray frames (N, H, W) uint8 before and after each of the (N,) flow fields."""
    return to_gray(frames[fields]), to_gray(frames[fields + 1])


def fields_to_clip(q: torch.Tensor, num_snippets: int) -> torch.Tensor:
    """Quantised fields (S*L, H, W, 2), snippet by snippet -> uint8 clip (S, 2L, H, W): x1, y1, ..., xL, yL."""
    clip = q.permute(0, 3, 1, 2)                                           # (S*L, 2, H, W)
    return clip.reshape(num_snippets, -1, *clip.shape[-2:])                # (S, 2L, H, W)


class FlowPairs(NamedTuple):
    """A flow clip whose flow is still to be computed, on the training device (``VideoDataset``
    with ``data.flow_on = "device"``): the frame pairs of its fields and its crop. The loader
    batches it field by field (``default_collate`` keeps the type) and ``.to`` moves both."""

    frames: torch.Tensor  # uint8 (S*L, 2, H, W): gray frame before / after each field; (B, S*L, 2, H, W) batched
    crop: torch.Tensor    # int64 (5,): y, x, h, w, flip of the training crop (zeros otherwise); (B, 5) batched

    def to(self, device: str | torch.device, non_blocking: bool = False) -> FlowPairs:
        return FlowPairs(*(t.to(device, non_blocking=non_blocking) for t in self))
