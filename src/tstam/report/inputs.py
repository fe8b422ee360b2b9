"""What a report is made of: run folders and score files -> the score sets per split and stream,
with the run folder (curves, checkpoint) behind each, and the fused scores.

A run folder (``run.out_dir`` of ``tstam train``) contributes its test score files (``tstam test``
writes them beside the checkpoint): every ``.npz`` in it whose ``meta`` says subset "test". When
it holds several of one stream and split (say ``--crops 1`` and the full 25 x 10), the one with the
most views (frames x crops) is used, the newest on a tie, and the report names it. A score file
given directly is used as it is; its run folder is its checkpoint's (``meta["checkpoint"]``).

A split with an RGB and a flow score set but no fused one gets a fused set computed here, with the
weights given, else those ``tstam fuse --search`` recorded for its two checkpoints
(``tstam.fusion_record``), else RGB:flow = 1:3.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tstam.engine.fuse import default_weights, fuse
from tstam.engine.scores import ScoreSet, load_scores
from tstam.errors import ScoreFileError
from tstam.fusion_record import find_record

__all__ = ["Entry", "ReportInputs", "gather", "entries_from_scores", "add_fused", "STREAM_ORDER"]

log = logging.getLogger(__name__)

STREAM_ORDER = {"rgb": 0, "flow": 1, "fused": 2}


@dataclass
class Entry:
    """One stream of one split: its scores, where they come from, and the run behind them."""

    scores: ScoreSet
    source: str                        # the score file, or how the fused scores were made
    run: Path | None = None            # the run folder (metrics.jsonl, checkpoints), if known
    checkpoint: Path | None = None     # the checkpoint the scores came from, if it is still there
    computed: bool = False             # fused here (``source`` says how), not read from a file

    @property
    def protocol(self) -> str:
        """``frames x crops`` of the test protocol, from the score file's meta."""
        m = self.scores.meta
        if m.get("test_frames") and m.get("test_crops"):
            return f"{m['test_frames']} x {m['test_crops']}"
        return "–"


@dataclass
class ReportInputs:
    """Score sets per split and stream (``rgb``, ``flow``, ``fused``, ...), and the fusion used."""

    splits: dict[str, dict[str, Entry]]                       # split -> stream -> entry
    fusion: dict[str, str] = field(default_factory=dict)      # split -> how its fused row was made
    mode: str = "softmax"

    @property
    def classes(self) -> list[str]:
        return next(iter(next(iter(self.splits.values())).values())).scores.classes

    def streams(self) -> list[str]:
        """Every stream present, in table order (RGB, flow, fused, others)."""
        names = {s for entries in self.splits.values() for s in entries}
        return sorted(names, key=lambda s: (STREAM_ORDER.get(s, 9), s))

    def split_names(self) -> list[str]:
        return sorted(self.splits, key=lambda s: (len(s), s))


def _views(s: ScoreSet) -> int:
    return int(s.meta.get("test_frames") or 0) * int(s.meta.get("test_crops") or 0)


def _checkpoint(s: ScoreSet) -> Path | None:
    ck = s.meta.get("checkpoint")
    return Path(ck) if ck and Path(ck).is_file() else None


def _from_run(folder: Path) -> list[tuple[Path, ScoreSet]]:
    """The test score files of a run folder, one per (stream, split)."""
    found: dict[tuple[str, str], tuple[Path, ScoreSet]] = {}
    for path in sorted(folder.glob("*.npz")):
        s = load_scores(path)
        if s.meta.get("subset", "test") != "test":
            continue
        key = (s.name(), str(s.meta.get("split", "?")))
        old = found.get(key)
        if old is None or (_views(s), path.stat().st_mtime) > (_views(old[1]), old[0].stat().st_mtime):
            if old is not None:
                log.info("%s: using %s (%d views) rather than %s", folder, path.name, _views(s), old[0].name)
            found[key] = (path, s)
    if not found:
        what = "no test score file" if any(folder.glob("*.pt")) else "neither a checkpoint nor a test score file"
        raise ScoreFileError(f"{folder}: run folder holds {what}; run `tstam test --checkpoint {folder}/best.pt` "
                             "first, or give score files (.npz)")
    return list(found.values())


def entries_from_scores(named: Sequence[tuple[str, ScoreSet]], *, run_folders: Sequence[Path | None] | None = None
                        ) -> dict[str, dict[str, Entry]]:
    """Group (source, scores) by split and stream; a second set of one stream and split is refused."""
    splits: dict[str, dict[str, Entry]] = {}
    for i, (source, s) in enumerate(named):
        split, stream = str(s.meta.get("split", "?")), s.name()
        entries = splits.setdefault(split, {})
        if stream in entries:
            raise ScoreFileError(f"{source}: a second {stream!r} score file for split {split} (the first: "
                                 f"{entries[stream].source}); give one per stream and split")
        ck = _checkpoint(s)
        run = run_folders[i] if run_folders is not None else None
        entries[stream] = Entry(s, source, run or (ck.parent if ck else None), ck)
    first = next((e for entries in splits.values() for e in entries.values()), None)
    for entries in splits.values():
        for e in entries.values():
            if first is not None and e.scores.classes != first.scores.classes:
                raise ScoreFileError(f"{e.source} and {first.source} have different class lists "
                                     f"({len(e.scores.classes)} vs {len(first.scores.classes)} classes, or another "
                                     "order); a report covers one set of classes")
    return splits


def add_fused(splits: dict[str, dict[str, Entry]], weights: Sequence[float] | None, mode: str) -> dict[str, str]:
    """Give each split with RGB and flow but no fused set a fused one; returns how each was made."""
    how: dict[str, str] = {}
    for split, entries in splits.items():
        if "fused" in entries:
            w = entries["fused"].scores.meta.get("weights")
            how[split] = f"fused score file {entries['fused'].source} (weights {w})"
            continue
        if not {"rgb", "flow"} <= set(entries):
            continue
        rgb, flow = entries["rgb"], entries["flow"]
        use, why = (list(weights), "given") if weights is not None else (None, "")
        if use is None and rgb.checkpoint is not None and flow.checkpoint is not None:
            rec = find_record({"rgb": rgb.checkpoint, "flow": flow.checkpoint})
            if rec is not None:
                use, why = rec.ordered(), rec.describe()
        if use is None:
            use = default_weights([rgb.scores, flow.scores])
            why = "the paper's default; none recorded for these checkpoints"
        fused = fuse([rgb.scores, flow.scores], use, mode=mode, names=[rgb.source, flow.source])
        w = ":".join(f"{x:g}" for x in use)
        how[split] = why if why.startswith("RGB:flow") else f"RGB:flow = {w}, {why}"
        entries["fused"] = Entry(fused, f"fused here, RGB:flow = {w} ({mode})", computed=True)
    return how


def gather(paths: Sequence[str | Path], *, weights: Sequence[float] | None = None,
           mode: str = "softmax") -> ReportInputs:
    """Read run folders and/or score files (see the module docstring).

    Raises:
        ScoreFileError: a path is neither; a run folder holds no test score file; two score sets of
            one stream and split; score files that disagree (classes, videos, labels).
    """
    named: list[tuple[str, ScoreSet]] = []
    runs: list[Path | None] = []
    for p in map(Path, paths):
        if p.is_dir():
            for path, s in _from_run(p):
                named.append((str(path), s))
                runs.append(p)
        elif p.exists() or p.suffix == ".npz":
            named.append((str(p), load_scores(p)))
            runs.append(None)
        else:
            raise ScoreFileError(f"{p}: no such run folder or score file; give run folders (run.out_dir of tstam "
                                 "train, after tstam test) or score files (.npz)")
    splits = entries_from_scores(named, run_folders=runs)
    return ReportInputs(splits, add_fused(splits, weights, mode), mode)
