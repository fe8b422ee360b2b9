"""Many videos: expanding folders, predicting each with a progress bar, reporting failures,
and the top-k table and JSON file of ``tstam predict``."""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from tstam.errors import BadFileError, InputError, OutputError
from tstam.files import check_output_file, write_text_atomic
from tstam.inference.recognizer import Prediction, Recognizer
from tstam.video import DecodeLimits, VideoError

__all__ = ["BatchResult", "collect_videos", "predict_many", "format_table", "write_json"]

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """Predictions in input order, and the files that failed with the reason."""

    predictions: list[Prediction] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message)


def collect_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the video files (by extension, sorted) inside each folder, recursively.

    Raises:
        BadFileError: an input does not exist.
        InputError: a folder holds no video file.
    """
    from tstam.video import VIDEO_EXTENSIONS

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise InputError(f"{p}: folder holds no video file (extensions {', '.join(VIDEO_EXTENSIONS)})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise BadFileError(f"{p}: no such file or folder")
    return out


def predict_many(recognizer: Recognizer, videos: list[Path], *, num_crops: int = 1, keep_video: bool = False,
                 strict: bool = False, limits: DecodeLimits | None = None, progress: bool | None = None,
                 on_result: Callable[[Prediction], None] | None = None) -> BatchResult:
    """Predict every video; a file that cannot be read is logged and skipped, the rest go on.

    Only unreadable videos (``tstam.video.VideoError``: missing, corrupt, cut, too short) are
    skipped; any other error (a model, config or flow problem) would fail every video alike and
    stops the run with its message.

    Args:
        recognizer: the loaded streams.
        videos: video files (see :func:`collect_videos`).
        num_crops: 1, 3 or 10 crops per snippet.
        keep_video: keep the decoded frames (for animations) in each prediction.
        strict: refuse videos that decode fewer frames than their header declares.
        limits: the decoding budget per video (default ``tstam.video.DecodeLimits()``); a video over
            it is reported and skipped like an unreadable one.
        progress: show a tqdm bar (default: when stderr is a terminal and there are several videos).
        on_result: called with each prediction as it comes (e.g. to draw pictures and drop frames).
    """
    result = BatchResult()
    show = (sys.stderr.isatty() and len(videos) > 1) if progress is None else progress
    for path in tqdm(videos, desc="predict", unit="video", disable=not show):
        try:
            pred = recognizer.predict(path, num_crops=num_crops, keep_video=keep_video, strict=strict,
                                     limits=limits)
        except VideoError as e:  # this file cannot be read: report, skip, go on
            log.error("skipped %s", e)
            result.failures.append((str(path), str(e)))
            continue
        if on_result is not None:
            on_result(pred)
        result.predictions.append(pred)
    return result


def format_table(pred: Prediction, *, k: int = 5) -> str:
    """A top-k table: rank, class, fused probability and each stream's probability."""
    streams = list(pred.streams)
    fused = len(streams) > 1
    head = ["#", "class"] + (["fused"] if fused else []) + streams
    rows = []
    for rank, (label, p) in enumerate(pred.top(k), 1):
        i = pred.classes.index(label)
        cells = [str(rank), label] + ([f"{p:.3f}"] if fused else [])
        cells += [f"{pred.streams[s].probabilities[i]:.3f}" for s in streams]
        rows.append(cells)
    widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
    lines = [f"{pred.source}  ({pred.num_frames} frames, weights " +
             ":".join(f"{s}={pred.weights[s]:g}" for s in streams) + ")"]
    for r in [head] + rows:
        lines.append("  ".join(cell.ljust(w) if c == 1 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def write_json(path: str | Path, result: BatchResult, *, k: int = 5, attention: bool = True) -> Path:
    """Write every prediction (and the failures) as JSON; the folder must be writable."""
    path = check_output_file(path)
    data = {"predictions": [p.to_dict(k=k, attention=attention) for p in result.predictions],
            "failures": [{"video": v, "error": m} for v, m in result.failures]}
    try:
        return write_text_atomic(path, json.dumps(data, indent=1))
    except OSError as e:
        raise OutputError(f"{path}: cannot write JSON ({e.strerror or e})") from None
