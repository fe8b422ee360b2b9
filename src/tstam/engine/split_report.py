"""``tstam report``: score files of splits 1-3 -> one Markdown table like the paper's.

Rows are streams (RGB, flow, fused, ...), columns the splits' top-1 and the mean +- spread
(sample standard deviation over splits; 0 with a single split). Fused rows come from fused score
files, or are computed from the RGB and flow files of each split with the given weights.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tstam.engine.fuse import fuse
from tstam.engine.scores import ScoreSet, load_scores
from tstam.errors import ScoreFileError

__all__ = ["collect", "markdown_table", "build_report"]

_ORDER = {"rgb": 0, "flow": 1, "fused": 2}


def collect(paths: Sequence[str | Path], *, fuse_streams: bool = True, weights: Sequence[float] | None = None,
            mode: str = "softmax") -> dict[str, dict[str, float]]:
    """{stream: {split: top-1}} from score files (their ``meta`` says stream and split).

    With ``fuse_streams``, each split that has both an RGB and a flow file but no fused file gets
    a fused row computed with ``weights`` (default RGB:flow = 1:3).
    """
    by_split: dict[str, dict[str, ScoreSet]] = defaultdict(dict)
    for p in paths:
        s = load_scores(p)
        stream = s.name()
        split = str(s.meta.get("split", "?"))
        if stream in by_split[split]:
            raise ScoreFileError(f"{p}: a second {stream!r} score file for split {split}")
        by_split[split][stream] = s
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for split, streams in by_split.items():
        if fuse_streams and "fused" not in streams and {"rgb", "flow"} <= set(streams):
            streams["fused"] = fuse([streams["rgb"], streams["flow"]], weights, mode=mode,
                                    names=[f"rgb split {split}", f"flow split {split}"])
        for stream, s in streams.items():
            use = s.meta.get("mode", mode) if stream == "fused" else mode
            table[stream][split] = s.summary(use)["top1"]
    return dict(table)


def markdown_table(table: dict[str, dict[str, float]], *, title: str | None = None) -> str:
    """Top-1 in percent, one row per stream, one column per split, then mean +- std."""
    splits = sorted({sp for row in table.values() for sp in row})
    head = ["stream", *[f"split {sp}" for sp in splits], "mean", "± std"]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stream in sorted(table, key=lambda s: (_ORDER.get(s, 9), s)):
        row = table[stream]
        vals = np.array([row[sp] for sp in splits if sp in row]) * 100
        cells = [f"{row[sp] * 100:.1f}" if sp in row else "–" for sp in splits]
        std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        lines.append("| " + " | ".join([stream, *cells, f"{vals.mean():.1f}", f"{std:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


def build_report(paths: Sequence[str | Path], *, weights: Sequence[float] | None = None, mode: str = "softmax",
                 title: str | None = "Top-1 accuracy (%)") -> str:
    """The Markdown report for a set of score files."""
    return markdown_table(collect(paths, weights=weights, mode=mode), title=title)
