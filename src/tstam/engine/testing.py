"""``tstam test``: the paper's test protocol (section 4.2) on a trained checkpoint.

Per video: ``test_frames`` (25) evenly spaced snippets x ``test_crops`` (10: 4 corners + centre
and their flips; 1 or 3 as options). Each crop is one clip of 25 frames through the model (the
temporal attention sees all 25 frames at once). Per-video scores are the mean over crops of the
softmax probabilities (``probs``, what fusion uses) and of the raw scores (``logits``).

Memory: crops are run in chunks of at most ``chunk_frames`` frames per forward (whole crops, so
at least one crop of 25 frames). ``max_memory_mb`` derives ``chunk_frames`` from an estimate of
the activation memory of one frame (3 x the largest layer output, float32, inference mode).
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tstam.checkpoint import LoadedStream, load_stream
from tstam.config import to_dict
from tstam.data.records import VideoRecord
from tstam.engine.distributed import all_gather_objects, all_ranks_agree, cleanup_distributed, init_distributed
from tstam.engine.evaluate import autocast, resolve_amp
from tstam.engine.scores import ScoreSet
from tstam.errors import CheckpointError, InputError
from tstam.files import check_output_file

__all__ = ["frame_activation_bytes", "chunk_frames_for", "predict_views", "score_stream", "score_file_name", "run_test"]

log = logging.getLogger(__name__)


@torch.no_grad()
def frame_activation_bytes(model: nn.Module) -> int:
    """Estimated inference memory per frame: 3 x the largest module output for one frame (float32),
    plus the input as ``predict_views`` holds it (uint8 and two float32 copies while normalising):
    with 10 input channels a flow chunk overruns its budget when the input is left out
    (``benchmarks/gpu_check.py``, section 6, compares peak memory with the budget)."""
    cfg = model.cfg
    largest = [0]

    def hook(_m, _i, out):
        t = out[0] if isinstance(out, (tuple, list)) else out
        if isinstance(t, torch.Tensor):
            largest[0] = max(largest[0], t.numel())

    handles = [m.register_forward_hook(hook) for m in model.backbone.modules() if not list(m.children())]
    try:
        device = next(model.parameters()).device
        model.backbone.forward_features(torch.zeros(1, cfg.in_chans, cfg.input_size, cfg.input_size, device=device))
    finally:
        for h in handles:
            h.remove()
    return 3 * 4 * largest[0] + (1 + 2 * 4) * cfg.in_chans * cfg.input_size ** 2


def chunk_frames_for(model: nn.Module, *, frames: int, max_memory_mb: float) -> int:
    """Frames per forward that fit ``max_memory_mb`` (a multiple of ``frames``, at least one crop)."""
    per_frame = frame_activation_bytes(model)
    fit = int(max_memory_mb * 2**20 // per_frame)
    return max(frames, fit // frames * frames)


@torch.no_grad()
def predict_views(model: nn.Module, views: torch.Tensor, *, chunk_frames: int, amp: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 views (V, T, C, H, W) of one video -> (mean softmax (K,), mean raw scores (K,)), in
    chunks; each chunk is normalised on the model's device with ``model.cfg.preprocess``."""
    device = next(model.parameters()).device
    per = max(1, chunk_frames // views.shape[1])                  # crops per forward
    probs, logits = [], []
    for i in range(0, views.shape[0], per):
        x = views[i:i + per].to(device, non_blocking=True)        # (v, T, C, H, W) uint8
        x = model.cfg.preprocess.normalize_clip(x)
        with autocast(device, amp):
            out = model(x).logits.float()                          # (v, K)
        probs.append(out.softmax(-1).cpu())
        logits.append(out.cpu())
    return torch.cat(probs).mean(0), torch.cat(logits).mean(0)


def score_stream(stream: LoadedStream, records: Sequence[VideoRecord], *, root: str | Path, data: Any,
                 classes: Sequence[str] | None = None, chunk_frames: int = 250, max_memory_mb: float = 0,
                 amp: str = "none", workers: int = 0, fast: bool = True, channels_last: bool = True,
                 meta: dict[str, Any] | None = None) -> ScoreSet:
    """Run the test protocol on ``records`` and return per-video scores.

    Args:
        stream: the loaded stream (``tstam.checkpoint.load_stream``; runs on its model's device).
        records: the test videos (labels index the checkpoint's classes).
        root: the frame store (or the video root, with ``data.input = "video"``).
        data: a ``DataConfig`` giving resize, ``test_frames``, ``test_crops`` and file names (what a
            clip is comes from the stream's model).
        classes: the annotation's class names; must equal the checkpoint's when given.
        chunk_frames: most frames per forward; ``max_memory_mb`` > 0 overrides it.
        amp: autocast precision on CUDA.
        workers: loader processes.
        fast: run ``tstam.models.inference.prepare_for_inference``'s copy (BN folded into the convs,
            parallel 1x1 convs merged; equal to the model to 1e-4).
        channels_last: run the convolutions in channels_last layout (faster here on CPU and on CUDA).
        meta: extra entries for the score file's ``meta`` (split, ...).
    """
    from tstam.data.datasets import build_dataset
    from tstam.data.loader import build_loader, finish_batch

    model = stream.model
    if fast:
        from tstam.models.inference import prepare_for_inference

        model = prepare_for_inference(model, channels_last=channels_last)
    elif channels_last:
        model = model.to(memory_format=torch.channels_last)
    ck_classes = list(stream.classes)
    if classes is not None and list(classes) != ck_classes:
        raise CheckpointError(f"{stream.source}: trained on classes {ck_classes[:5]}... ({len(ck_classes)}), but the test "
                              f"annotations list {list(classes)[:5]}... ({len(classes)}); use the same class list")
    mcfg = model.cfg
    if max_memory_mb:
        chunk_frames = chunk_frames_for(model, frames=data.test_frames, max_memory_mb=max_memory_mb)
        log.info("chunks of %d frames for %.0f MB", chunk_frames, max_memory_mb)
    ds = build_dataset(records, root=root, mode="test", data=data, model=mcfg, seed=0)
    loader = build_loader(ds, batch_size=1, shuffle=False, workers=workers, distributed=False)
    probs, logits = [], []
    bar = tqdm(loader, desc=f"test {mcfg.modality}", unit="video", disable=not sys.stderr.isatty())
    device = next(model.parameters()).device
    for views, _label in bar:                                      # views (1, crops, T, C, H, W)
        views = finish_batch(loader, views.to(device))             # flow of frame pairs on the device, if any
        p, raw = predict_views(model, views[0], chunk_frames=chunk_frames, amp=amp)
        probs.append(p.numpy())
        logits.append(raw.numpy())
    info = {"stream": mcfg.modality, "checkpoint": stream.source, "test_frames": data.test_frames,
            "test_crops": data.test_crops, "score_average": "mean of per-crop softmax (probs) and raw scores (logits)",
            "model_config": to_dict(mcfg),
            "flow": stream.flow.describe() if stream.flow is not None else None, **(meta or {})}
    k = len(ck_classes)
    return ScoreSet([r.video_id for r in ds.records], np.array([r.label for r in ds.records]),
                    np.stack(probs) if probs else np.zeros((0, k)), np.stack(logits) if logits else np.zeros((0, k)),
                    ck_classes, info)


def score_file_name(stream: str, split: int, subset: str, frames: int, crops: int) -> str:
    """``tstam test``'s default score file name, e.g. ``scores_rgb_split1_test_25x10.npz``: stream, split,
    list scored, and the protocol (frames x crops per video)."""
    return f"scores_{stream}_split{split}_{subset}_{frames}x{crops}.npz"


def run_test(checkpoint: str | Path, *, overrides: Sequence[str] = (), frames: int | None = None,
             crops: int | None = None, chunk_frames: int = 250, max_memory_mb: float = 0, device: str = "auto",
             amp: str = "none", out: str | Path | None = None, subset: str = "test") -> tuple[ScoreSet, dict[str, Any], Path]:
    """``tstam test``: the protocol on the split stored in the checkpoint's config (plus overrides).

    Writes the score file (default ``<checkpoint dir>/scores_<stream>_split<k>_<subset>_<frames>x<crops>.npz``:
    the protocol is in the name, so that ``--crops 1`` and the default 10 crops keep two files), the
    confusion matrix (``.csv`` and ``.png`` beside it) and returns (scores, summary, score path).
    Under torchrun each rank scores every w-th video; the scores are gathered in the list's order
    (no video twice) on every rank, and rank 0 alone writes the files.
    """
    from tstam.engine.annotations import load_split
    from tstam.engine.config import load_train_config

    dist, dev = init_distributed(device)
    try:
        with all_ranks_agree():  # a missing file or a bad override ends every rank
            stream = load_stream(checkpoint, device=dev)
            if not stream.train_config:
                raise CheckpointError(f"{checkpoint}: holds no training config; test needs the annotations and data settings")
            extra = [f"data.test_frames={frames}"] if frames else []
            extra += [f"data.test_crops={crops}"] if crops else []
            cfg = load_train_config(stream.train_config, [*overrides, *extra])
            train, val, test, classes = load_split(cfg.annotations, cfg.data)
            records = {"train": train, "val": val, "test": test}.get(subset)
            if records is None:
                raise ValueError(f"subset={subset!r} is not valid; expected 'test', 'val' or 'train'")
            if subset == "val" and not val:
                raise InputError(f"{checkpoint}: the run held out no validation videos (annotations.val_fraction="
                                 f"{cfg.annotations.val_fraction}); --subset val needs a run trained with a hold-out, "
                                 "e.g. annotations.val_fraction=0.1 (the test list is never scored as validation)")
            name = score_file_name(stream.modality, cfg.annotations.split, subset, cfg.data.test_frames,
                                   cfg.data.test_crops)
            out = check_output_file(out or Path(checkpoint).parent / name, suffix=".npz")  # before hours of scoring
        with all_ranks_agree():
            part = score_stream(stream, records[dist.rank::dist.world_size], root=cfg.data.root, data=cfg.data,
                                classes=classes, chunk_frames=chunk_frames, max_memory_mb=max_memory_mb,
                                amp=resolve_amp(dev, amp, option="--amp"), workers=cfg.data.workers,
                                meta={"split": cfg.annotations.split, "subset": subset})
        scores = _gather_in_order(part)
        with all_ranks_agree():
            if dist.is_main:
                _write(scores, out)
    finally:
        cleanup_distributed(dist)
    summary = scores.summary()
    if dist.is_main:
        log.info("%s: top-1 %.4f, top-5 %.4f, mean class %.4f on %d videos", out, summary["top1"], summary["top5"],
                 summary["mean_class"], summary["videos"])
    return scores, summary, out


def _gather_in_order(part: ScoreSet) -> ScoreSet:
    """Collective: rank r scored videos r, r + w, ...; the whole list's scores in its order."""
    parts = all_gather_objects((part.video_ids, part.labels, part.probs, part.logits))
    w, n = len(parts), sum(len(p[0]) for p in parts)
    order = [(i % w, i // w) for i in range(n)]                   # (rank, index in its part) of video i
    ids = [parts[r][0][j] for r, j in order]
    labels, probs, logits = (np.stack([parts[r][k][j] for r, j in order]) if n else parts[0][k] for k in (1, 2, 3))
    return ScoreSet(ids, labels, probs, logits, part.classes, part.meta)


def _write(scores: ScoreSet, out: Path) -> None:
    from tstam.engine.metrics import confusion_matrix
    from tstam.engine.reports import save_confusion
    from tstam.engine.scores import save_scores

    save_scores(out, scores)
    save_confusion(confusion_matrix(scores.probs, scores.labels), scores.classes, out.with_name(out.stem + "_confusion"))
