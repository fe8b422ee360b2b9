"""The report's numbers and Markdown tables, pure functions of the score sets.

- Accuracy: top-1 (the paper's metric), top-5 and mean class accuracy per stream and fused, for
  each split; with two or more splits (UCF101, HMDB51) also the paper's table of top-1 per split
  with the mean and the sample standard deviation over splits (no spread with one split).
- Per class (test videos of all splits pooled): the share of each class's videos that each stream
  puts first, and the class the fused model most often takes it for.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tstam.engine import metrics
from tstam.report.inputs import ReportInputs

__all__ = ["pct", "stream_summary", "pooled", "accuracy_lines", "top1_over_splits", "per_class_lines", "summary"]


def pct(v: float | None) -> str:
    """A fraction as a percentage with one decimal; "–" for none."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _mode(inputs: ReportInputs, stream: str, meta: dict[str, Any]) -> str:
    """Fused score files were made in their own mode; the others are read in the report's."""
    return str(meta.get("mode", inputs.mode)) if stream == "fused" else inputs.mode


def stream_summary(inputs: ReportInputs, split: str, stream: str) -> dict[str, float]:
    """top1, top5, mean_class and videos of one stream of one split."""
    s = inputs.splits[split][stream].scores
    return s.summary(_mode(inputs, stream, s.meta))


def pooled(inputs: ReportInputs, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores (V, K), labels (V,)) of one stream over every split that has it."""
    parts = [(e.scores.scores(_mode(inputs, stream, e.scores.meta)), e.scores.labels)
             for split in inputs.split_names() if (e := inputs.splits[split].get(stream)) is not None]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def top1_over_splits(inputs: ReportInputs, *, title: str | None = "Top-1 accuracy (%)") -> list[str]:
    """One row per stream: top-1 of each split, then mean and ± sample std when >= 2 splits."""
    splits = inputs.split_names()
    spread = len(splits) > 1
    head = ["stream", *[f"split {sp}" for sp in splits]] + (["mean", "± std"] if spread else [])
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stream in inputs.streams():
        vals = {sp: stream_summary(inputs, sp, stream)["top1"] for sp in splits if stream in inputs.splits[sp]}
        cells = [pct(vals.get(sp)) for sp in splits]
        if spread:
            arr = np.array(list(vals.values())) * 100
            std = f"{arr.std(ddof=1):.1f}" if arr.size > 1 else "–"
            cells += [f"{arr.mean():.1f}", std]
        lines.append("| " + " | ".join([stream, *cells]) + " |")
    return lines + [""]


def accuracy_lines(inputs: ReportInputs) -> list[str]:
    """The accuracy section: per split, per stream (and with several splits, top-1 over splits)."""
    splits = inputs.split_names()
    lines = ["## Accuracy", "", "Top-1, top-5 and mean class accuracy (%) on the test videos; mean class accuracy is "
             "the mean over classes of each class's top-1.", ""]
    several = len(splits) > 1
    head = (["split"] if several else []) + ["stream", "top-1", "top-5", "mean class", "videos", "test protocol"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sp in splits:
        for stream in inputs.streams():
            e = inputs.splits[sp].get(stream)
            if e is None:
                continue
            s = stream_summary(inputs, sp, stream)
            cells = ([sp] if several else []) + [stream, pct(s["top1"]), pct(s["top5"]), pct(s["mean_class"]),
                                                 str(s["videos"]), e.protocol]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for sp in splits:
        if sp in inputs.fusion:
            lines.append(f"Fusion{f' (split {sp})' if several else ''}: {inputs.fusion[sp]}.")
    lines.append("")
    if several:
        lines += top1_over_splits(inputs, title="Top-1 over splits (%): mean and sample standard deviation")
    return lines


def per_class_lines(inputs: ReportInputs) -> list[str]:
    """Per class: videos, top-1 of each stream, and what the fused (else last) stream mistakes it for."""
    classes = inputs.classes
    streams = inputs.streams()
    cms = {s: metrics.confusion_matrix(*pooled(inputs, s)) for s in streams}
    judge = "fused" if "fused" in cms else streams[-1]
    several = len(inputs.splits) > 1
    lines = ["## Per class", "", f"Top-1 (%) of each class's test videos{' (all splits together)' if several else ''}, "
             f"and the class the {judge} scores most often put first instead (with how many videos).", "",
             "| class | videos | " + " | ".join(streams) + f" | most often taken for ({judge}) |",
             "|---|---|" + "---|" * len(streams) + "---|"]
    for k, name in enumerate(classes):
        support = int(cms[streams[0]][k].sum())
        if support == 0:
            continue
        accs = [pct(cms[s][k, k] / cms[s][k].sum()) for s in streams]
        row = cms[judge][k].copy()
        row[k] = 0
        wrong = f"{classes[int(row.argmax())]} ({int(row.max())})" if row.max() > 0 else "–"
        lines.append("| " + " | ".join([name, str(support), *accs, wrong]) + " |")
    return lines + [""]


def summary(inputs: ReportInputs) -> dict[str, Any]:
    """The numbers, JSON-able: per split and stream the three accuracies; their means over splits
    (``top1``, ``top5``, ``mean_class``: stream -> value); per-class top-1; how each fusion was made."""
    per_split = {sp: {st: stream_summary(inputs, sp, st) for st in entries} for sp, entries in inputs.splits.items()}
    out: dict[str, Any] = {"splits": per_split, "fusion": dict(inputs.fusion), "classes": list(inputs.classes)}
    for key in ("top1", "top5", "mean_class"):
        out[key] = {st: float(np.mean([per_split[sp][st][key] for sp in per_split if st in per_split[sp]]))
                    for st in inputs.streams()}
    per_class = {}
    for st in inputs.streams():
        cm = metrics.confusion_matrix(*pooled(inputs, st))
        per_class[st] = {c: float(cm[k, k] / cm[k].sum()) for k, c in enumerate(inputs.classes) if cm[k].sum()}
    out["per_class_top1"] = per_class
    return out
