"""From a video (or its frames) to one stream's input: decode at the training frame size, sample
the test protocol's evenly spaced snippets (flow computed for them with the stream's recorded
settings), crop and normalise. ``Recognizer`` runs these steps with the PyTorch model;
:func:`prepare_clip` runs them from an export's metadata alone, for a model run elsewhere (the
ONNX file of ``tstam export`` under onnxruntime, README "Using a trained model")."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tstam.config import ConfigError, from_dict
from tstam.data.clips import MIN_FLOW_FRAMES, flow_snippets, rgb_snippets
from tstam.data.sampling import protocol_indices, snippet_indices
from tstam.data.transforms import eval_crops
from tstam.errors import CheckpointError
from tstam.flow import FlowConfig
from tstam.models import ModelConfig
from tstam.video import DecodeLimits

__all__ = ["decode_frames", "sample_snippets", "prepare_clip", "snippet_frames", "animation_frames",
           "ANIMATION_FRAMES"]

ANIMATION_FRAMES = 120  # frames an attention animation shows at most, evenly spaced over the video


def animation_frames(num_frames: int, max_frames: int = ANIMATION_FRAMES) -> np.ndarray:
    """The frames an attention animation shows (``tstam.visualize.attention_animation``): at most
    ``max_frames``, evenly spaced, first and last included."""
    return np.unique(np.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().astype(np.int64))


def snippet_frames(num_frames: int, *, modality: str, new_length: int, num_snippets: int) -> np.ndarray:
    """The frames :func:`sample_snippets` reads from a video of ``num_frames`` frames (sorted, unique):
    what decoding has to keep (``tstam.video.read_video(keep=...)``)."""
    if modality == "rgb":
        starts = protocol_indices(num_frames, num_snippets, new_length)
        return np.unique(snippet_indices(starts, new_length, num_frames))
    fields = snippet_indices(protocol_indices(max(num_frames - 1, 1), num_snippets, new_length), new_length,
                             max(num_frames - 1, 1))
    return np.unique(np.minimum(np.concatenate([fields.ravel(), fields.ravel() + 1]), num_frames - 1))


def decode_frames(video: str | Path | np.ndarray, resize: Sequence[int], min_frames: int,
                  strict: bool = False, *, keep: Callable[[int], np.ndarray] | None = None,
                  limits: DecodeLimits | None = None) -> tuple[np.ndarray, float, str]:
    """Decode a file at (H, W) = ``resize`` (``tstam.video``'s decoding policy and budget
    ``limits``; only the frames ``keep`` names, when given), or resize an array of RGB frames;
    returns (frames (T, H, W, 3) uint8, or a ``FrameSubset`` of them, fps, source name)."""
    h, w = int(resize[0]), int(resize[1])
    if isinstance(video, (str, Path)):
        from tstam.video import read_video

        clip = read_video(video, size=(w, h), min_frames=min_frames, strict=strict, keep=keep, limits=limits)
        return clip.frames, clip.fps, str(video)
    frames = np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 RGB array, got {frames.shape} {frames.dtype}")
    if len(frames) < min_frames:
        raise ValueError(f"<frames>: only {len(frames)} frame(s); at least {min_frames} needed")
    if frames.shape[1:3] != (h, w):
        from tstam.data.transforms import resize as resize_clip

        t = resize_clip(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), (h, w))
        frames = t.permute(0, 2, 3, 1).contiguous().numpy()
    return frames, 25.0, "<frames>"


def sample_snippets(frames: np.ndarray, *, modality: str, new_length: int, num_snippets: int,
                    flow: FlowConfig | None = None, device: str | torch.device = "cpu") -> tuple[torch.Tensor, np.ndarray]:
    """The test protocol's ``num_snippets`` evenly spaced snippets of decoded frames: uint8
    (S, C, H, W) and their 0-based starts (frames for RGB, flow fields for flow). Flow is computed
    here for the sampled fields only, with ``flow`` (``tvl1_torch`` on ``device``)."""
    if modality == "rgb":
        starts = protocol_indices(len(frames), num_snippets, new_length)
        return rgb_snippets(frames, starts, new_length), starts
    if flow is None:
        raise ValueError("a flow stream needs its FlowConfig")
    starts = protocol_indices(len(frames) - 1, num_snippets, new_length)
    return flow_snippets(frames, starts, new_length, flow, device=device), starts


def prepare_clip(video: str | Path | np.ndarray, meta: Mapping[str, Any], *, num_crops: int = 1,
                 num_snippets: int | None = None, strict: bool = False,
                 limits: DecodeLimits | None = None) -> np.ndarray:
    """The input an exported stream takes for one video, from the export's metadata alone.

    Args:
        video: a video file, or (T, H, W, 3) uint8 RGB frames (resized to the training size).
        meta: the export's JSON (``tstam.export.read_metadata`` of the ``.onnx``, ``.safetensors``
            or ``.json``): model config, preprocessing, frame size, flow settings.
        num_crops: 1 (centre), 3 or 10 (corners, centre and their flips) per snippet.
        num_snippets: snippets sampled (default: the export's ``data.test_frames``, 25).
        strict: refuse a file that decodes fewer frames than its header declares.
        limits: the decoding budget (default ``tstam.video.DecodeLimits()``).

    Returns:
        float32 (num_crops, S, C, size, size), cropped and normalised: the ONNX model's ``input``
        with the crops as its batch. Average the softmax of the ``num_crops`` rows of its logits
        to get the video's class probabilities, as ``tstam predict`` and ``tstam test`` do.

    Raises:
        CheckpointError: the metadata lacks what is needed.
        VideoError: the file cannot be read or has too few frames.
    """
    try:
        cfg = from_dict(ModelConfig, dict(meta["model_config"]))
        data = meta.get("data") or {}
        resize = [int(v) for v in data["resize"]]
        flow = FlowConfig.from_describe(meta["flow"]) if meta.get("flow") else None
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"export metadata lacks what prepare_clip needs ({type(e).__name__}: {e}); "
                              "expected the JSON of tstam export (tstam.export.read_metadata)") from None
    n = int(num_snippets or data.get("test_frames", 25))
    length = int(cfg.new_length)
    keep = lambda t: snippet_frames(t, modality=cfg.modality, new_length=length, num_snippets=n)  # noqa: E731
    frames, _fps, _source = decode_frames(video, resize, MIN_FLOW_FRAMES if cfg.modality == "flow" else 1, strict,
                                          keep=keep, limits=limits)
    clip, _starts = sample_snippets(frames, modality=cfg.modality, new_length=int(cfg.new_length), num_snippets=n,
                                    flow=flow)
    crops = eval_crops(clip, size=cfg.input_size, num_crops=num_crops, flow=cfg.modality == "flow")
    return cfg.preprocess.normalize_clip(crops).numpy().astype(np.float32, copy=False)
