"""A training run's folder (``run.out_dir``): never silently replaced, nothing left by a failed start.

``claim_run_dir`` is the first thing ``tstam.engine.train.fit`` does (rank 0, before any work):

- a folder that holds a run (``RUN_FILES``: a checkpoint, metrics, TensorBoard events) is refused
  unless the run is resumed (``--resume``) or started over (``--force``);
- ``--force`` moves the old run aside, to ``<out_dir>.old-<YYYYmmdd-HHMMSS>``, rather than deleting
  it: a mistaken ``--force`` loses nothing (the checkpoints may be days of GPU time), and deleting
  the old folder afterwards is one ``rm -r`` the user can choose;
- the folder is created and checked writable.

``RunDir.discard_if_unstarted`` undoes that for a new run that fails before its first checkpoint (a
bad setting found later, Ctrl-C, a crash of the first epoch): a folder the run created is removed
(with the parents it created), and in a folder that existed, the entries the run added are removed,
so the next attempt does not meet a "run" that is only the debris of this one. A resumed run and
a run with a checkpoint keep everything.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tstam.errors import InputError, OutputError
from tstam.files import check_writable_dir

__all__ = ["RUN_FILES", "RunDir", "run_contents", "claim_run_dir", "remove_run"]

log = logging.getLogger(__name__)

# What tstam.engine.train writes under run.out_dir that makes it a run (validation.txt and
# curves.png alone are remains of a start, written again by any run).
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.jsonl", "tb")


def run_contents(out_dir: str | Path) -> list[str]:
    """The entries of ``RUN_FILES`` that ``out_dir`` holds (``tb`` as a folder, the others as files)."""
    d = Path(out_dir)
    return [n for n in RUN_FILES if ((d / n).is_dir() if n == "tb" else (d / n).is_file())]


def remove_run(out_dir: str | Path) -> None:
    """Delete the run in ``out_dir`` (``RUN_FILES`` and ``validation.txt``, ``curves.png``); other files stay.
    For callers that own the folder and decided to train it again (``tstam demo``)."""
    d = Path(out_dir)
    for name in (*RUN_FILES, "validation.txt", "curves.png"):
        p = d / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


@dataclass(frozen=True)
class RunDir:
    """``claim_run_dir``'s result: what a failed start must undo."""

    path: Path
    created: Path | None                 # the top folder this run created (out_dir or a parent)
    before: frozenset[str]               # the entries out_dir held before
    moved_to: Path | None = None         # where --force moved the old run

    def discard_if_unstarted(self) -> None:
        """After a failure: remove what this new run wrote, unless it wrote a checkpoint."""
        if (self.path / "last.pt").is_file() and "last.pt" not in self.before:
            return  # a checkpoint to resume from: keep the run
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
            log.info("removed %s: the run stopped before its first checkpoint", self.created)
            return
        added = sorted(n for n in os.listdir(self.path) if n not in self.before) if self.path.is_dir() else []
        for name in added:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if added:
            log.info("removed %s from %s: the run stopped before its first checkpoint", ", ".join(added), self.path)


def _top_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` (itself or a parent) that does not exist yet."""
    top = None
    for p in (path, *path.parents):
        if p.exists():
            break
        top = p
    return top


def _aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{path.name}.old-{stamp}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.old-{stamp}-{n}")
    return target


def claim_run_dir(out_dir: str | Path, *, resume: bool, force: bool) -> RunDir:
    """Make ``out_dir`` ready for a run (see the module docstring).

    Args:
        out_dir: ``run.out_dir``.
        resume: the run continues from a checkpoint: an existing run is what it expects.
        force: an existing run is moved aside to ``<out_dir>.old-<time>`` (logged).

    Raises:
        OutputError: ``out_dir`` holds a run and neither ``resume`` nor ``force`` is set (the
            message names both options); it is a file or not writable.
        InputError: ``resume`` and ``force`` together.
    """
    path = Path(out_dir)
    if resume and force:
        raise InputError("--resume continues the run in run.out_dir and --force moves it aside to start over; "
                         "give one of them")
    found = run_contents(path) if path.is_dir() else []
    moved = None
    if found and not resume:
        if not force:
            raise OutputError(f"{path}: holds a run ({', '.join(found)}); continue it with --resume, or start over "
                              f"with --force (moves it to {path}.old-<date-time>), or give another run.out_dir")
        moved = _aside(path)
        try:
            os.rename(path, moved)
        except OSError as e:
            raise OutputError(f"{path}: cannot move the old run to {moved} ({e.strerror or e}); move or delete it "
                              "yourself, or give another run.out_dir") from None
        log.warning("--force: moved the run that was in %s to %s", path, moved)
    created = _top_missing(path)
    check_writable_dir(path)
    before = frozenset(os.listdir(path)) if created is None else frozenset()
    return RunDir(path, created, before, moved)
