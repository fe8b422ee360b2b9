"""What the demo measures beyond top-1: accuracy per class group, and where temporal attention looks.

Temporal attention: each test clip is run once more through its stream (the test protocol's
``test_frames`` evenly spaced snippets, centre crop) and the weight alpha of each snippet is
compared with the clip's true action window. A snippet is inside the window when its centre
frame is. ``share_in_window`` is the mean over clips of the alpha mass inside the window;
``uniform_share`` is what uniform weights would give (the window's share of the sampled snippets).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tstam.data.sampling import test_indices
from tstam.engine import metrics
from tstam.engine.scores import ScoreSet

__all__ = ["group_accuracy", "snippet_centres", "temporal_attention"]

log = logging.getLogger(__name__)


def group_accuracy(scores: ScoreSet, annotations: Mapping[str, Any]) -> dict[str, float]:
    """Top-1 per class group ("motion", "interaction", "appearance") and "all"."""
    groups = np.array([annotations[v].group for v in scores.video_ids])
    out = {"all": metrics.topk_accuracy(scores.probs, scores.labels, 1)}
    for g in sorted(set(groups)):
        keep = groups == g
        out[str(g)] = metrics.topk_accuracy(scores.probs[keep], scores.labels[keep], 1)
    return out


def snippet_centres(num_frames: int, modality: str, num_snippets: int, new_length: int) -> np.ndarray:
    """Centre frame (float) of each test snippet of a clip with ``num_frames`` RGB frames.

    A flow field k lies between frames k and k+1, so a flow snippet of fields s .. s+L-1 spans
    frames s .. s+L and is centred on s + L/2; an RGB snippet of frames s .. s+L-1 on s + (L-1)/2.
    """
    items = num_frames if modality == "rgb" else num_frames - 1
    starts = test_indices(items, num_snippets, new_length).astype(np.float64)
    return starts + ((new_length - 1) / 2 if modality == "rgb" else new_length / 2)


@torch.inference_mode()
def temporal_attention(checkpoint: str | Path, video_ids: Sequence[str], annotations: Mapping[str, Any],
                       data: Any, batch: int = 8) -> dict[str, Any]:
    """Alpha of each test clip against its action window (see the module docstring).

    Args:
        checkpoint: the stream's checkpoint.
        video_ids: the test clips (ids of ``annotations``).
        annotations: ``tstam.synthetic.load_annotations`` of the benchmark.
        data: the stream's ``DataConfig`` (root, resize, test_frames).
        batch: clips per forward pass.

    Returns:
        ``share_in_window``, ``uniform_share`` (means over clips), ``clips`` (count), per group
        ``share_in_window/<group>`` and ``uniform_share/<group>``, and ``per_clip``: a list of
        dicts (video_id, alpha, centres, window) for pictures. Empty dict without temporal attention.
    """
    from tstam.data.datasets import FrameDataset
    from tstam.data.records import VideoRecord
    from tstam.checkpoint import load_stream

    model = load_stream(checkpoint).model
    mcfg = model.cfg
    if mcfg.head not in ("tstam", "temporal"):
        return {}
    data = dataclasses.replace(data, test_crops=1)
    records = [VideoRecord(v, annotations[v].path, annotations[v].label) for v in video_ids]
    ds = FrameDataset(records, mode="test", data=data, model=mcfg, seed=0)
    per_clip, shares, uniform, groups = [], [], [], []
    alphas: list[np.ndarray] = []
    for first in range(0, len(ds), batch):                       # a few clips per call: far fewer small calls
        views = torch.cat([ds[i][0] for i in range(first, min(first + batch, len(ds)))])  # (b, S, C, H, W) uint8
        alphas.extend(model(mcfg.preprocess.normalize_clip(views)).temporal.numpy())  # b x (S,)
    for i, rec in enumerate(ds.records):
        alpha = alphas[i]
        ann = annotations[video_ids[i]]
        centres = snippet_centres(int(rec.num_frames), mcfg.modality, data.test_frames, int(mcfg.new_length))
        lo, hi = ann.window
        inside = (centres >= lo) & (centres < hi)
        shares.append(float(alpha[inside].sum()))
        uniform.append(float(inside.mean()))
        groups.append(ann.group)
        per_clip.append({"video_id": video_ids[i], "alpha": alpha.tolist(), "centres": centres.tolist(),
                         "window": [int(lo), int(hi)], "num_frames": int(rec.num_frames), "group": ann.group})
    out: dict[str, Any] = {"share_in_window": float(np.mean(shares)), "uniform_share": float(np.mean(uniform)),
                           "clips": len(shares)}
    g_arr = np.array(groups)
    for g in sorted(set(groups)):
        keep = g_arr == g
        out[f"share_in_window/{g}"] = float(np.mean(np.array(shares)[keep]))
        out[f"uniform_share/{g}"] = float(np.mean(np.array(uniform)[keep]))
    log.info("%s: %.1f %% of alpha inside the action window (uniform: %.1f %%) over %d clips", mcfg.modality,
             100 * out["share_in_window"], 100 * out["uniform_share"], len(shares))
    out["per_clip"] = per_clip
    return out
