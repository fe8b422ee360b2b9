"""TSN sparse sampling (paper section 1 and 4.2; docs/design.md, Data flow; Wang et al. 2016).

A video of ``num_frames`` items (RGB frames, or flow fields for the flow stream) is cut into
``num_segments`` equal segments. Training takes one random snippet start per segment, validation
the segment centres, testing ``num_frames_test`` (25) evenly spaced starts. A snippet is
``new_length`` consecutive items (1 RGB frame, 5 flow fields). All functions are pure: the only
randomness is the numpy Generator passed in.

Segments are laid over the ``num_frames - new_length + 1`` valid starts with real-valued bounds,
so the whole video is covered (TSN's integer segment length leaves the remainder at the end
unsampled). When a video has fewer valid starts than segments, starts repeat evenly
(e.g. 3 frames, 6 segments -> 0 0 1 1 2 2), and a video shorter than one snippet repeats its last
item (``snippet_indices`` clamps). Indices are 0-based.
"""
from __future__ import annotations

import numpy as np

__all__ = ["train_indices", "val_indices", "protocol_indices", "snippet_indices"]


def _check(num_frames: int, num_segments: int, new_length: int) -> int:
    """Number of valid snippet starts (at least 1)."""
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: a video needs at least 1 frame (for flow: 2 RGB frames)")
    if num_segments < 1:
        raise ValueError(f"num_segments={num_segments} is not valid; expected >= 1")
    if new_length < 1:
        raise ValueError(f"new_length={new_length} is not valid; expected >= 1")
    return max(num_frames - new_length + 1, 1)


def train_indices(num_frames: int, num_segments: int, new_length: int, rng: np.random.Generator) -> np.ndarray:
    """One random snippet start per equal segment (training).

    Args:
        num_frames: items in the video (RGB frames, or flow fields = RGB frames - 1).
        num_segments: N, the number of segments.
        new_length: items per snippet.
        rng: the only source of randomness.

    Returns:
        int64 array (num_segments,) of 0-based starts, non-decreasing, each ``<= max(num_frames - new_length, 0)``.
    """
    avail = _check(num_frames, num_segments, new_length)
    bounds = np.floor(np.arange(num_segments + 1) * avail / num_segments).astype(np.int64)
    lo, hi = bounds[:-1], np.maximum(bounds[1:], bounds[:-1] + 1)  # empty segment -> its start
    return lo + (rng.random(num_segments) * (hi - lo)).astype(np.int64)


def val_indices(num_frames: int, num_segments: int, new_length: int) -> np.ndarray:
    """The centre start of each equal segment (validation; TSN's ``_get_val_indices``)."""
    avail = _check(num_frames, num_segments, new_length)
    tick = avail / num_segments
    starts = np.floor(tick / 2.0 + tick * np.arange(num_segments)).astype(np.int64)
    return np.minimum(starts, avail - 1)


def protocol_indices(num_frames: int, num_frames_test: int = 25, new_length: int = 1) -> np.ndarray:
    """``num_frames_test`` evenly spaced starts (testing, paper 4.2: 25 frames per video)."""
    return val_indices(num_frames, num_frames_test, new_length)


def snippet_indices(starts: np.ndarray, new_length: int, num_frames: int) -> np.ndarray:
    """Indices of every item of every snippet, (len(starts), new_length), clamped to the last item."""
    offsets = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(new_length, dtype=np.int64)[None, :]
    return np.minimum(offsets, num_frames - 1)
