"""Running trained streams on a video: ``Recognizer.predict`` -> a typed ``Prediction``.

One video is decoded once at the training frame size; each stream samples its 25 snippets
(``tstam.data.clips``, as ``VideoDataset``), takes 1, 3 or 10 crops, normalises them with the
``Preprocess`` stored with its weights and runs the model; softmax probabilities are averaged over
crops (as ``tstam test``). With both streams the class probabilities are fused
(``tstam.models.fuse_scores``) with the weights given, else those ``tstam fuse --search`` chose on
validation for exactly these two checkpoints (``tstam.fusion_record``), else RGB:flow = 1:3 (paper
4.3.3); ``Recognizer.weights_source`` says which.
The attention that the forward returns (alpha over frames, the l spatial maps) is kept for the
centre crop, for the pictures of ``tstam.visualize``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tstam.checkpoint import LoadedStream, load_stream
from tstam.data.clips import MIN_FLOW_FRAMES
from tstam.data.transforms import eval_crops
from tstam.errors import CheckpointError, InputError
from tstam.fusion_record import find_record
from tstam.inference.clip import animation_frames, decode_frames, sample_snippets, snippet_frames
from tstam.models import DEFAULT_FUSION_WEIGHTS, check_weights, fuse_scores, prepare_for_inference
from tstam.video import DecodeLimits

__all__ = ["StreamResult", "Prediction", "Recognizer", "CENTRE_CROP", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

CENTRE_CROP = {1: 0, 3: 1, 10: 4}  # index of the centre crop in eval_crops' output
STREAM_ORDER = ("rgb", "flow")      # fusion weights are given in this order
# Version of the JSON of one prediction (``Prediction.to_dict``: ``tstam predict --json`` and
# ``tstam serve``'s API). Bump when a key is renamed, removed or changes meaning.
SCHEMA_VERSION = 1


@dataclass
class StreamResult:
    """What one stream said about one video."""

    modality: str                          # "rgb" or "flow"
    logits: np.ndarray                     # (K,) raw scores averaged over crops
    probabilities: np.ndarray              # (K,) softmax probabilities averaged over crops (as ``tstam test``)
    starts: np.ndarray                     # (S,) 0-based snippet starts (frames for RGB, flow fields for flow)
    temporal: np.ndarray | None         # (S,) alpha over snippets of the centre crop, sums to 1; None without
    spatial: np.ndarray | None          # (l, S, h, w) maps of the centre crop, each sums to 1; None without


@dataclass
class Prediction:
    """The result for one video: fused (or single-stream) probabilities, per-stream results, attention."""

    source: str                            # the video file, or "<frames>"
    classes: list[str]                     # class names, index = label
    probabilities: np.ndarray              # (K,) fused class probabilities (or the one stream's)
    streams: dict[str, StreamResult]       # per stream, "rgb" and/or "flow"
    weights: dict[str, float]              # fusion weight per stream
    num_frames: int                        # decoded frames
    fps: float                             # frame rate of the video (25.0 for raw frames without one)
    crop: tuple[int, int, int]             # (y, x, size) of the centre crop in the decoded frame
    frames: np.ndarray                     # (S, size, size, 3) uint8: centre crop of each sampled RGB frame
    frame_indices: np.ndarray              # (S,) the decoded frames shown in ``frames``
    video: np.ndarray | None = None     # (T, H, W, 3) with keep_video: a FrameSubset holding the animation's frames
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, flow, model

    @property
    def label(self) -> str:
        """The top-1 class name."""
        return self.classes[int(np.argmax(self.probabilities))]

    def top(self, k: int = 5, stream: str | None = None) -> list[tuple[str, float]]:
        """The ``k`` most probable (class name, probability), fused or of one ``stream``."""
        probs = self.probabilities if stream is None else self.streams[stream].probabilities
        order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(probs)))]
        return [(self.classes[i], float(probs[i])) for i in order]

    def to_dict(self, *, k: int = 5, attention: bool = True) -> dict[str, Any]:
        """JSON-able summary: top-k, probabilities per stream and fused, and the attention."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "video": self.source,
            "label": self.label,
            "top": [{"label": c, "probability": p} for c, p in self.top(k)],
            "classes": list(self.classes),
            "probabilities": {"fused": self.probabilities.tolist()},
            "weights": dict(self.weights),
            "num_frames": self.num_frames,
            "frame_indices": self.frame_indices.tolist(),
            "timings_s": {n: round(t, 4) for n, t in self.timings.items()},
        }
        for name, s in self.streams.items():
            out["probabilities"][name] = s.probabilities.tolist()
            if attention:
                out.setdefault("attention", {})[name] = {
                    "snippet_starts": s.starts.tolist(),
                    "temporal": None if s.temporal is None else s.temporal.tolist(),
                    "spatial": None if s.spatial is None else s.spatial.tolist(),
                }
        return out


class Recognizer:
    """One or two trained T-STAM streams with their preprocessing and class names.

    Build with :meth:`from_paths` (or ``tstam.load``). Both streams must share class names and
    the frame size they were trained at.

    Args:
        streams: one or two loaded streams (different modalities).
        weights: fusion weights (RGB, flow); default: the weights recorded for these two checkpoints
            by ``tstam fuse --search`` (``fusion.json`` beside them), else 1:3.
        fast: run inference copies with BatchNorm folded and 1x1 convs merged (same outputs to 1e-4).
    """

    def __init__(self, streams: Sequence[LoadedStream], *, weights: Sequence[float] | None = None,
                 fast: bool = True):
        if not streams:
            raise InputError("a Recognizer needs at least one stream (an RGB or a flow checkpoint)")
        by_name: dict[str, LoadedStream] = {}
        for s in streams:
            if s.modality in by_name:
                raise InputError(f"two {s.modality} streams given ({by_name[s.modality].source}, {s.source}); "
                                 "give one RGB and/or one flow checkpoint")
            by_name[s.modality] = s
        self.streams = {m: by_name[m] for m in STREAM_ORDER if m in by_name}
        first = next(iter(self.streams.values()))
        for s in self.streams.values():
            if s.classes != first.classes:
                raise CheckpointError(f"{s.source} and {first.source} have different class lists; "
                                      "both streams must be trained on the same classes")
            if list(s.resize) != list(first.resize):
                raise CheckpointError(f"{s.source} was trained on {s.resize} frames but {first.source} on "
                                      f"{first.resize}; both streams must use the same frame size")
        self.classes = list(first.classes)
        self.resize = list(first.resize)
        self.weights = self._weights(weights)
        self.weights_source = "one stream, no fusion"  # how the weights were chosen, for people
        if len(self.streams) == 2:
            rec = find_record({m: s.source for m, s in self.streams.items()}) if weights is None else None
            if rec is not None:
                self.weights = self._weights(rec.ordered())
            w = ":".join(f"{self.weights[m]:g}" for m in STREAM_ORDER)
            self.weights_source = (f"RGB:flow = {w}, given" if weights is not None else rec.describe() if rec else
                                   f"RGB:flow = {w}, the paper's default (none recorded for these checkpoints)")
            log.info("fusion weights %s", self.weights_source)
        # fast: run a copy with BN folded into the convs and the parallel 1x1 convs merged
        # (tstam.models.prepare_for_inference; same outputs to 1e-4); ``streams`` keep the originals
        self._runners = {m: prepare_for_inference(s.model) if fast else s.model for m, s in self.streams.items()}
        flow = self.streams.get("flow")
        if flow is not None and flow.flow is None:
            raise CheckpointError(f"{flow.source}: this flow stream records no flow settings (algorithm, parameters, "
                                  "bound), so the flow it was trained on cannot be reproduced; re-save it from a "
                                  "training run of this tstam")

    @classmethod
    def from_paths(cls, *, rgb: str | Path | None = None, flow: str | Path | None = None,
                   weights: Sequence[float] | None = None, device: str | torch.device = "cpu",
                   fast: bool = True) -> Recognizer:
        """Load the RGB and/or flow checkpoint (each refused if it is of the other stream)."""
        if rgb is None and flow is None:
            raise InputError("give an RGB checkpoint, a flow checkpoint, or both")
        streams = [load_stream(p, modality=m, device=device) for m, p in (("rgb", rgb), ("flow", flow)) if p]
        return cls(streams, weights=weights, fast=fast)

    def __repr__(self) -> str:
        parts = ", ".join(f"{m}={s.source!r}" for m, s in self.streams.items())
        return f"Recognizer({parts}, classes={len(self.classes)}, weights={self.weights})"

    def _weights(self, weights: Sequence[float] | None) -> dict[str, float]:
        """Fusion weight per loaded stream from (RGB, flow); None: the default 1:3."""
        w = check_weights([DEFAULT_FUSION_WEIGHTS[m] for m in STREAM_ORDER] if weights is None else weights, 2)
        return {m: w[STREAM_ORDER.index(m)] for m in self.streams}

    @property
    def modalities(self) -> list[str]:
        return list(self.streams)

    def sample(self, name: str, frames: np.ndarray, *, num_snippets: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """One stream's uint8 clip (S, C, H, W) from decoded frames, and its starts. Flow is computed
        here: ``tvl1_torch`` on the stream's device (e.g. its GPU), OpenCV's algorithms on the CPU."""
        stream = self.streams[name]
        return sample_snippets(frames, modality=name, new_length=int(stream.config.new_length),
                               num_snippets=num_snippets or stream.test_frames, flow=stream.flow,
                               device=next(stream.model.parameters()).device)

    @torch.inference_mode()
    def run_stream(self, name: str, clip: torch.Tensor, starts: np.ndarray, *, num_crops: int = 1,
                   batch_crops: int = 10) -> StreamResult:
        """Crop, normalise and classify one stream's sampled clip (see :meth:`sample`).

        Args:
            name: "rgb" or "flow".
            clip: uint8 (S, C, H, W) at the training frame size.
            starts: the snippet starts (kept in the result).
            num_crops: 1, 3 or 10.
            batch_crops: crops per forward (lower it to save memory).
        """
        stream = self.streams[name]
        cfg = stream.config
        if num_crops not in CENTRE_CROP:
            raise ValueError(f"num_crops={num_crops} is not valid; expected one of {sorted(CENTRE_CROP)}")
        batch_crops = max(1, batch_crops)
        crops = eval_crops(clip, size=cfg.input_size, num_crops=num_crops, flow=cfg.modality == "flow")  # (n, S, C, s, s)
        device = next(stream.model.parameters()).device
        logits, probs, alphas, betas = [], [], [], []
        for i in range(0, num_crops, batch_crops):
            x = cfg.preprocess.normalize_clip(crops[i:i + batch_crops].to(device))  # uint8 -> float on the device
            out = self._runners[name](x)                                         # batch = crops
            logits.append(out.logits.float().cpu())
            probs.append(out.logits.float().softmax(-1).cpu())
            alphas.append(None if out.temporal is None else out.temporal.float().cpu())
            betas.append(None if out.spatial is None else out.spatial.float().cpu())
        scores = torch.cat(logits).mean(0)                                  # (K,) raw scores, mean over crops
        p = torch.cat(probs).mean(0)                                        # (K,) as tstam test: mean softmax
        c, j = divmod(CENTRE_CROP[num_crops], batch_crops)
        alpha = None if alphas[c] is None else alphas[c][j].numpy()        # (S,)
        beta = None if betas[c] is None else betas[c][j].numpy()           # (l, S, h, w)
        return StreamResult(cfg.modality, scores.numpy(), p.numpy(), starts, alpha, beta)

    def predict(self, video: str | Path | np.ndarray, *, num_crops: int = 1, num_snippets: int | None = None,
                keep_video: bool = False, batch_crops: int = 10, strict: bool = False,
                weights: Sequence[float] | None = None,
                on_stage: Callable[[str, str | None], None] | None = None,
                clips: Mapping[str, tuple[torch.Tensor, np.ndarray]] | None = None,
                limits: DecodeLimits | None = None) -> Prediction:
        """Classify one video.

        Args:
            video: a video file, or (T, H, W, 3) uint8 RGB frames (resized to the training size).
            num_crops: 1 (centre), 3 or 10 (corners, centre and flips; paper 4.2) per snippet.
            num_snippets: snippets sampled per stream (default: the checkpoint's, 25).
            keep_video: keep the frames an animation shows in ``Prediction.video`` too (the
                ``tstam.inference.clip.animation_frames``). Only the frames the snippets (and the
                animation) need are kept while decoding a file, so memory does not grow with its length.
            batch_crops: crops run through the model at once (lower it to save memory).
            strict: refuse a file that decodes fewer frames than its header declares (by default
                a shortfall of ``tstam.video.allowed_shortfall`` frames is accepted).
            weights: fusion weights (RGB, flow) for this call (default: the recognizer's).
            on_stage: called as each stage starts with (stage, stream): ("decode", None),
                ("flow", "flow"), ("model", "rgb" or "flow"); e.g. to show progress.
            clips: per stream, its snippets already sampled (uint8 (S, C, H, W) at the training
                frame size, and their starts), e.g. the flow a frame store holds; those streams
                are not sampled (nor their flow computed) from the frames.
            limits: the decoding budget of a file (default ``tstam.video.DecodeLimits()``).

        Returns:
            A :class:`Prediction`.

        Raises:
            VideoError: the file cannot be read, or has too few frames.
            InputError: its frames are too small for the flow stream's algorithm.
        """
        if num_crops not in CENTRE_CROP:
            raise ValueError(f"num_crops={num_crops} is not valid; expected one of {sorted(CENTRE_CROP)}")
        fuse_w = self.weights if weights is None else self._weights(weights)
        stage = on_stage or (lambda name, stream: None)
        timings = {"decode": 0.0, "flow": 0.0, "model": 0.0}
        stage("decode", None)
        t0 = time.perf_counter()
        sampled = [m for m in self.streams if not (clips and m in clips)]

        def keep(total: int) -> np.ndarray:  # the frames the streams' snippets read, for a video of total frames
            parts = [snippet_frames(total, modality=m, new_length=int(self.streams[m].config.new_length),
                                    num_snippets=num_snippets or self.streams[m].test_frames) for m in sampled]
            first = next(iter(self.streams))  # the frames shown come from the first stream's starts
            if first not in sampled:
                parts.append(np.asarray(clips[first][1], np.int64) if clips else np.zeros(0, np.int64))
            if keep_video:
                parts.append(animation_frames(total))
            return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

        frames, fps, source = decode_frames(video, self.resize, MIN_FLOW_FRAMES if "flow" in self.streams else 1,
                                            strict, keep=keep, limits=limits)
        timings["decode"] = time.perf_counter() - t0
        if len(frames) < 6:
            log.warning("%s: only %d frame(s); snippets repeat frames", source, len(frames))
        results: dict[str, StreamResult] = {}
        for name in self.streams:
            if name == "flow":
                stage("flow", name)
            t0 = time.perf_counter()
            clip, starts = clips[name] if clips and name in clips else self.sample(name, frames, num_snippets=num_snippets)
            if name == "flow":
                timings["flow"] += time.perf_counter() - t0
            stage("model", name)
            t0 = time.perf_counter()
            results[name] = self.run_stream(name, clip, starts, num_crops=num_crops, batch_crops=batch_crops)
            timings["model"] += time.perf_counter() - t0
        probs = fuse_scores([r.probabilities for r in results.values()], [fuse_w[m] for m in results])
        size = next(iter(self.streams.values())).config.input_size
        h, w = frames.shape[1:3]
        y, x = (h - size) // 2, (w - size) // 2
        shown = next(iter(results.values())).starts
        shown = np.minimum(shown, len(frames) - 1)
        return Prediction(
            source=source, classes=self.classes, probabilities=probs, streams=results, weights=dict(fuse_w),
            num_frames=len(frames), fps=fps, crop=(y, x, size),
            frames=np.ascontiguousarray(frames[shown, y:y + size, x:x + size]), frame_indices=shown,
            video=frames if keep_video else None, timings=timings,
        )
