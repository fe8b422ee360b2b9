"""``tstam report``: a report of any runs, the user's own classes or UCF101's three splits.

Given run folders and/or score files, it writes into one folder ``report.md`` with top-1, top-5
and mean class accuracy per stream and fused (and the paper's table of top-1 over splits when
there are several), a per-class table, the confusion matrices as pictures, each run's training
curves, attention pictures of a few test clips, and ``summary.json`` with the numbers. The demo's
report is this report with the demo's own sections added (``tstam.demo.report``).

    from tstam.report import build_report
    text, path = build_report(["runs/rgb", "runs/flow"], out="report")
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tstam.report.inputs import Entry, ReportInputs, add_fused, entries_from_scores, gather
from tstam.report.tables import accuracy_lines, summary
from tstam.report.write import Clip, pick_clips, write_report

__all__ = ["build_report", "gather", "write_report", "ReportInputs", "Entry", "Clip", "entries_from_scores",
           "add_fused", "pick_clips", "summary"]


def build_report(paths: Sequence[str | Path], *, out: str | Path | None = None, weights: Sequence[float] | None = None,
                 mode: str = "softmax", title: str = "Report", clips: int = 4) -> tuple[str, Path | None]:
    """The accuracy tables as Markdown, and with ``out`` the whole report folder.

    Args:
        paths: run folders and/or score files (``tstam.report.inputs``).
        out: the report folder; None: only the tables.
        weights: RGB:flow weights of fused rows computed here (default: recorded, else 1:3).
        mode: fuse and score "softmax" probabilities or "raw" scores.
        title: the report's heading.
        clips: test clips drawn with their attention (0: none).

    Returns:
        (the accuracy section as Markdown, ``report.md`` or None).
    """
    inputs = gather(paths, weights=weights, mode=mode)
    text = "\n".join(accuracy_lines(inputs)).rstrip("\n") + "\n"
    if out is None:
        return text, None
    return text, write_report(inputs, out, title=title, clips=clips)
