"""Every run's row as data: ``runs.csv`` beside the tables, read back to rebuild them or to compare
settings across output folders.

``runs.csv`` holds one line per row of ``collect_rows`` (the flow and RGB runs, and the fusion and
fused rows computed from their saved test scores) with every field but ``scores`` (a path on the
machine that ran it): group, setting, stream, seed, epochs, top-1, size, training seconds and the
analysis (alpha's share in the window and the uniform share, also per class group; top-1 under each
intervention; the evidence sums). Committed next to the docs, it makes a folder's tables
recomputable from the repository (``tstam ablate --from-csv``), and any two settings of any two
folders comparable with the same paired interval as the claims (``tstam ablate --compare``).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tstam.demo import INTERVENTIONS
from tstam.errors import BadFileError, InputError
from tstam.files import write_text_atomic

from .claims import by_seed
from .stats import Paired, paired

__all__ = ["RUNS_NAME", "EVIDENCE", "METRICS", "write_runs", "read_runs", "runs_path", "find_setting", "parse_side",
           "Comparison", "compare"]

RUNS_NAME = "runs.csv"
EVIDENCE = ("temporal_in", "temporal_out", "value_in", "value_out", "spatial_in", "spatial_out", "frames_in",
            "frames_out")
# The fields that are fractions (shown as points, x100): what --compare can compare.
METRICS = ("top1", "share_in_window", "uniform_share", *(f"top1/{k}" for k in INTERVENTIONS))
_FIRST = ("group", "setting", "stream", "seed", "epochs", "top1", "params", "train_s", "clips", *METRICS[1:],
          *EVIDENCE)
_REQUIRED = ("group", "setting", "stream", "seed", "epochs", "top1", "params", "train_s")
_TEXT = frozenset({"group", "setting", "stream", "run"})
_INTS = frozenset({"seed", "epochs", "params", "clips", "analysis_version"})
_LEFT_OUT = frozenset({"scores"})
# value_in / value_out are means over snippets of one side, NaN for a clip set with none there.
_NAN_OK = frozenset({"value_in", "value_out"})


def write_runs(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """``runs.csv``: one line per row, the known fields first, then the others sorted; a field a row
    lacks is empty."""
    keys = {k for r in rows for k in r} - _LEFT_OUT
    fields = [k for k in _FIRST if k in keys] + sorted(keys - set(_FIRST))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)  # floats as repr: read back to the same value
    return write_text_atomic(path, buf.getvalue())


def _value(path: Path, line: int, key: str, text: str) -> Any:
    if key in _TEXT:
        return text
    try:
        value: float | int = int(text) if key in _INTS else float(text)
    except ValueError:
        kind = "an integer" if key in _INTS else "a number"
        raise BadFileError(f"{path}: line {line}, column {key!r}: {text!r} is not valid; expected {kind}") from None
    if not math.isfinite(value) and not (key in _NAN_OK and math.isnan(value)):
        raise BadFileError(f"{path}: line {line}, column {key!r}: {text!r} is not valid; expected a finite number")
    return value


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``runs.csv`` (as ``collect_rows`` made them; an empty cell is a missing field).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a runs.csv (a required column missing, a value that is not a number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = reader.fieldnames or []
        records = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise BadFileError(f"{path}: not a CSV file ({e}); expected a runs.csv written by tstam ablate") from None
    missing = [k for k in _REQUIRED if k not in fields]
    if missing:
        raise BadFileError(f"{path}: not a tstam ablate runs.csv; columns {missing} are missing "
                         f"(expected at least {list(_REQUIRED)})")
    rows = []
    for line, rec in enumerate(records, start=2):
        row = {k: _value(path, line, k, v) for k, v in rec.items() if k is not None and v not in ("", None)}
        absent = [k for k in _REQUIRED if k not in row]
        if absent:
            raise BadFileError(f"{path}: line {line} has no value in {absent}")
        rows.append(row)
    return rows


def runs_path(source: str | Path) -> Path:
    """``source`` itself (a runs.csv) or the ``runs.csv`` of a ``tstam ablate`` output folder."""
    p = Path(source)
    if p.is_dir():
        p = p / RUNS_NAME
    if not p.is_file():
        raise BadFileError(f"{p}: no such file; expected a runs.csv or a tstam ablate output folder holding one")
    return p


def find_setting(rows: Sequence[dict[str, Any]], name: str, where: str = "") -> tuple[str, str]:
    """The (group, setting) that ``name`` ("group/setting", or a setting that only one group has) means."""
    keys = list(dict.fromkeys((r["group"], r["setting"]) for r in rows))
    group, sep, setting = name.partition("/")
    if sep and (group, setting) in keys:
        return group, setting
    matches = [k for k in keys if k[1] == name]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(f"{g}/{s}" for g, s in keys)
    why = "is in several groups" if matches else "is not there"
    raise InputError(f"{where}setting {name!r} {why}; expected one of: {listed}")


def parse_side(spec: str) -> tuple[Path, str]:
    """``PATH:SETTING`` (PATH a runs.csv or an output folder; SETTING may hold colons too) -> (runs.csv, SETTING)."""
    for i, ch in enumerate(spec):
        if ch == ":" and Path(spec[:i]).exists():
            return runs_path(spec[:i]), spec[i + 1:]
    raise InputError(f"{spec!r} is not valid; expected PATH:SETTING with PATH an existing runs.csv or tstam ablate "
                     "output folder and SETTING e.g. 'baselines/TSN average consensus'")


@dataclass(frozen=True)
class Comparison:
    """Setting a against setting b, seed by seed, in points (x100)."""

    a: dict[int, float]
    b: dict[int, float]
    diff: Paired                    # a - b over the seeds both have, with its 95 % t interval


def compare(a_rows: Sequence[dict[str, Any]], a: tuple[str, str], b_rows: Sequence[dict[str, Any]],
            b: tuple[str, str], metric: str = "top1") -> Comparison:
    """The paired per-seed difference a - b of ``metric`` (one of METRICS), as the claims compute it."""
    if metric not in METRICS:
        raise InputError(f"metric={metric!r} is not valid; expected one of {list(METRICS)}")
    va = {s: 100 * v for s, v in by_seed(a_rows, a, metric).items()}
    vb = {s: 100 * v for s, v in by_seed(b_rows, b, metric).items()}
    return Comparison(va, vb, paired(va, vb))
