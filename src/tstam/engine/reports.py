"""Run artefacts: per-epoch metrics (CSV, JSON lines, TensorBoard events, PNG curves) and the
confusion matrix (CSV and PNG with class names). Only rank 0 writes them."""
from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tstam.plotting import pyplot

__all__ = ["MetricsLogger", "plot_curves", "save_confusion"]

log = logging.getLogger(__name__)


class MetricsLogger:
    """Appends one row per epoch to ``metrics.csv`` and ``metrics.jsonl``, mirrors scalars to
    TensorBoard (``tb/``), and redraws ``curves.png``.

    Rows carry ``epoch`` = epochs completed (1-based). A resumed run keeps the rows up to the
    resume point and drops later ones (they are recomputed), so no epoch appears twice.
    """

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, resume_epoch: int | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.out_dir / "metrics.jsonl"
        self.csv = self.out_dir / "metrics.csv"
        self.png = self.out_dir / "curves.png"
        self.rows: list[dict[str, Any]] = []
        if resume_epoch is not None and self.jsonl.is_file():
            for line in self.jsonl.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row.get("epoch", 0) <= resume_epoch:
                        self.rows.append(row)
        self._rewrite()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # on resume, events after the resume point are dropped (they are recomputed)
                purge = resume_epoch + 1 if resume_epoch is not None else None
                self.tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)
            except Exception as e:  # tensorboard missing or broken: the files above still exist
                log.warning("TensorBoard events disabled: %s", e)

    def _rewrite(self) -> None:
        with open(self.jsonl, "w") as f:
            for row in self.rows:
                f.write(json.dumps(row) + "\n")
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        with open(self.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

    def log(self, row: dict[str, Any]) -> None:
        """Record one epoch's metrics (``epoch`` and ``step`` keys expected)."""
        self.rows.append(row)
        self._rewrite()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k.replace("_", "/", 1), v, row.get("epoch", 0))
            self.tb.flush()
        plot_curves(self.rows, self.png)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Loss (left) and accuracy (right) against epoch, as a PNG."""
    plt = pyplot()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [r["epoch"] for r in rows]
    for key in ("train_loss", "val_loss"):
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if r.get(key) is not None]
        if pts:
            ax_l.plot(*zip(*pts), marker="o", label=key)
    for key in ("train_top1", "val_top1", "val_top5"):
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if r.get(key) is not None]
        if pts:
            ax_a.plot(*zip(*pts), marker="o", label=key)
    ax_l.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_a.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_l, ax_a):
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_confusion(cm: np.ndarray, classes: Sequence[str], out_prefix: str | Path) -> tuple[Path, Path]:
    """Write ``<prefix>.csv`` (rows true, columns predicted, with class names) and ``<prefix>.png``."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_prefix.with_suffix(".csv"), out_prefix.with_suffix(".png")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, cm):
            w.writerow([name, *row.tolist()])
    plt = pyplot()
    k = len(classes)
    size = min(4 + 0.25 * k, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fs = max(3, min(9, 300 // max(k, 1)))
    ax.set_xticks(range(k), classes, rotation=90, fontsize=fs)
    ax.set_yticks(range(k), classes, fontsize=fs)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (row-normalised)")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=fs,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
    return csv_path, png_path
