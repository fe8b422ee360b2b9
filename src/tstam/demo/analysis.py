"""What a trained stream does with time, measured on the synthetic benchmark's test clips.

Each test clip is run once through the backbone (the test protocol's ``test_frames`` evenly spaced
snippets, centre crop); the head is then run on those features several times. A snippet is
*inside* the clip's true action window when its centre frame is (``snippet_centres``).

- **Where alpha looks**: ``share_in_window`` is the mean over clips of the temporal weights' mass on
  the inside snippets; ``uniform_share`` is what uniform weights give (the inside snippets' share).
- **Interventions** (``INTERVENTIONS``): top-1 with the model's own alpha, and with alpha replaced
  (``TSTAM.forward_head(feats, alpha)``) by uniform weights, by an oracle on the window (uniform on
  the inside snippets, 0 elsewhere), by the reversed window (uniform on the outside snippets) and by
  the reversed ranking (the largest weight moved to the snippet with the smallest, and so on).
  Heads without temporal attention (TSN, spatial-only) take the window weights as their frame
  weights, which shows what knowing the window would give them.
- **Per-frame evidence** (``TSTAM.frame_terms``): the logits are a sum over snippets of what each
  adds through f_t (temporal) and through the f_sj (spatial). Per clip, the true class's share of
  each, centred over classes (a constant added to every class changes no prediction), summed over
  the inside and over the outside snippets (``*_in`` / ``*_out``, logit units, means over clips);
  ``value_in`` / ``value_out`` are the per-snippet means of the temporal term without alpha
  (sum_j W_j x_hat_i): what the classifier would read from each snippet with weight 1.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tstam.data.sampling import protocol_indices, train_indices
from tstam.engine import metrics
from tstam.engine.scores import ScoreSet

__all__ = ["INTERVENTIONS", "group_accuracy", "snippet_centres", "window_miss_rate", "intervention_weights",
           "analyse_stream"]

log = logging.getLogger(__name__)

INTERVENTIONS = ("own", "uniform", "window", "outside", "reversed")


def group_accuracy(scores: ScoreSet, annotations: Mapping[str, Any]) -> dict[str, float]:
    """Top-1 per class group ("motion", "interaction", "appearance") and "all"."""
    groups = np.array([annotations[v].group for v in scores.video_ids])
    out = {"all": metrics.topk_accuracy(scores.probs, scores.labels, 1)}
    for g in sorted(set(groups)):
        keep = groups == g
        out[str(g)] = metrics.topk_accuracy(scores.probs[keep], scores.labels[keep], 1)
    return out


def snippet_centres(num_frames: int, modality: str, num_snippets: int, new_length: int,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Centre frame (float) of each snippet of a clip with ``num_frames`` RGB frames: the test
    protocol's ``num_snippets`` evenly spaced ones, or with ``rng`` one training draw (TSN: one
    random snippet per segment, ``num_snippets`` segments).

    A flow field k lies between frames k and k+1, so a flow snippet of fields s .. s+L-1 spans
    frames s .. s+L and is centred on s + L/2; an RGB snippet of frames s .. s+L-1 on s + (L-1)/2.
    """
    items = num_frames if modality == "rgb" else num_frames - 1
    starts = (protocol_indices(items, num_snippets, new_length) if rng is None
              else train_indices(items, num_snippets, new_length, rng)).astype(np.float64)
    return starts + ((new_length - 1) / 2 if modality == "rgb" else new_length / 2)


def window_miss_rate(annotations: Mapping[str, Any], *, num_segments: int, modality: str, new_length: int,
                     draws: int = 20, seed: int = 0) -> float:
    """Share of training draws (``draws`` per training clip of ``annotations``) in which no sampled
    snippet's centre lies inside the clip's action window: clips a model then learns from idle
    frames only, whatever its attention does."""
    rng = np.random.default_rng(seed)
    train = [a for a in annotations.values() if a.split == "train"]
    if not train or draws < 1:
        raise ValueError(f"need training clips and draws >= 1 (got {len(train)} clips, draws={draws})")
    miss = 0
    for a in train:
        lo, hi = a.window
        for _ in range(draws):
            c = snippet_centres(int(a.num_frames), modality, num_segments, new_length, rng)
            miss += not bool(((c >= lo) & (c < hi)).any())
    return miss / (len(train) * draws)


def intervention_weights(name: str, alpha: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The (S,) weights of one intervention (see the module docstring) for one clip.

    Args:
        name: one of ``INTERVENTIONS``.
        alpha: (S,) the model's own weights (uniform for heads without temporal attention).
        inside: (S,) bool, the snippets inside the action window.
    """
    s = len(alpha)
    if name == "own":
        return alpha
    if name == "uniform":
        return np.full(s, 1.0 / s)
    if name in ("window", "outside"):
        keep = inside if name == "window" else ~inside
        if not keep.any():  # no snippet centre on that side (a window of the whole clip): uniform
            return np.full(s, 1.0 / s)
        return keep / keep.sum()
    if name == "reversed":
        order = np.argsort(alpha, kind="stable")                  # ascending
        out = np.empty(s)
        out[order] = alpha[order[::-1]]
        return out
    raise ValueError(f"intervention {name!r} is not valid; expected one of {list(INTERVENTIONS)}")


def _centred_true(terms: torch.Tensor, label: int) -> np.ndarray:
    """(S, K) per-snippet class terms -> (S,) the true class's term minus the mean over classes."""
    return (terms[:, label] - terms.mean(1)).numpy()


@torch.inference_mode()
def analyse_stream(checkpoint: str | Path, video_ids: Sequence[str], annotations: Mapping[str, Any],
                   data: Any, batch: int = 8) -> dict[str, Any]:
    """Where the temporal weights look, what replacing them does, and where the evidence comes from.

    Args:
        checkpoint: the stream's checkpoint.
        video_ids: the test clips (ids of ``annotations``).
        annotations: ``tstam.synthetic.load_annotations`` of the benchmark.
        data: the stream's ``DataConfig`` (root, resize, test_frames).
        batch: clips per backbone pass.

    Returns:
        ``clips``; ``top1/<intervention>``; with temporal attention ``share_in_window``,
        ``uniform_share`` and per group ``share_in_window/<group>``, ``uniform_share/<group>``;
        the evidence sums ``<path>_in``, ``<path>_out`` (path: frames, temporal, spatial) and
        ``value_in``, ``value_out``; and ``per_clip``: dicts (video_id, alpha, centres, window,
        num_frames, group) for pictures.
    """
    from tstam.checkpoint import load_stream
    from tstam.data.datasets import FrameDataset
    from tstam.data.records import VideoRecord
    from tstam.models import HEADS

    model = load_stream(checkpoint).model
    mcfg = model.cfg
    has_alpha = HEADS[mcfg.head].temporal
    data = dataclasses.replace(data, test_crops=1)
    records = [VideoRecord(v, annotations[v].path, annotations[v].label) for v in video_ids]
    ds = FrameDataset(records, mode="test", data=data, model=mcfg, seed=0)
    hits = {name: [] for name in INTERVENTIONS if has_alpha or name != "reversed"}
    sums: dict[str, list[float]] = {}
    per_clip, groups, shares, uniform = [], [], [], []
    for first in range(0, len(ds), batch):                       # backbone once per clip, head per intervention
        idx = range(first, min(first + batch, len(ds)))
        views = torch.cat([ds[i][0] for i in idx])               # (b, S, C, H, W) uint8
        feats = model.forward_features(mcfg.preprocess.normalize_clip(views))  # (b, S, C', h, w)
        own = model.forward_head(feats).temporal if has_alpha else None      # (b, S)
        for j, i in enumerate(idx):
            rec, ann = ds.records[i], annotations[video_ids[i]]
            f = feats[j:j + 1]                                   # (1, S, C, h, w)
            s = f.shape[1]
            centres = snippet_centres(int(rec.num_frames), mcfg.modality, s, int(mcfg.new_length))
            lo, hi = ann.window
            inside = (centres >= lo) & (centres < hi)
            alpha = own[j].double().numpy() if has_alpha else np.full(s, 1.0 / s)
            for name in hits:
                w = torch.from_numpy(intervention_weights(name, alpha, inside)).float()[None]  # (1, S)
                logits = model.forward_head(f, None if name == "own" else w).logits
                hits[name].append(int(logits.argmax(1).item() == rec.label))
            terms = model.frame_terms(f)
            parts = {"frames": terms.frames, "temporal": terms.temporal, "spatial": terms.spatial}
            for path, t in parts.items():
                if t is not None:
                    c = _centred_true(t[0], rec.label)
                    sums.setdefault(f"{path}_in", []).append(float(c[inside].sum()))
                    sums.setdefault(f"{path}_out", []).append(float(c[~inside].sum()))
            if has_alpha:
                value = _centred_true(model.frame_terms(f, torch.ones(1, s)).temporal[0], rec.label)
                sums.setdefault("value_in", []).append(float(value[inside].mean()) if inside.any() else np.nan)
                sums.setdefault("value_out", []).append(float(value[~inside].mean()) if (~inside).any() else np.nan)
                shares.append(float(alpha[inside].sum()))
                uniform.append(float(inside.mean()))
                per_clip.append({"video_id": video_ids[i], "alpha": alpha.tolist(), "centres": centres.tolist(),
                                 "window": [int(lo), int(hi)], "num_frames": int(rec.num_frames),
                                 "group": ann.group})
            groups.append(ann.group)
    out: dict[str, Any] = {"clips": len(groups)}
    out.update({f"top1/{name}": float(np.mean(v)) for name, v in hits.items()})
    out.update({k: float(np.nanmean(v)) for k, v in sums.items()})
    if has_alpha:
        out.update(share_in_window=float(np.mean(shares)), uniform_share=float(np.mean(uniform)))
        g_arr = np.array(groups)
        for g in sorted(set(groups)):
            keep = g_arr == g
            out[f"share_in_window/{g}"] = float(np.mean(np.array(shares)[keep]))
            out[f"uniform_share/{g}"] = float(np.mean(np.array(uniform)[keep]))
        log.info("%s: %.1f %% of alpha inside the action window (uniform: %.1f %%) over %d clips", mcfg.modality,
                 100 * out["share_in_window"], 100 * out["uniform_share"], len(shares))
    out["per_clip"] = per_clip
    return out
