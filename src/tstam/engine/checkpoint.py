"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` only.

A checkpoint is a plain dict of tensors, lists, dicts, strings and numbers (nothing that needs
unpickling of arbitrary classes), so an untrusted file can be inspected safely. Keys:

``format``        ``"tstam-checkpoint"``
``version``       ``CHECKPOINT_VERSION`` (int)
``model``         the model's ``state_dict()`` (no ``module.`` prefix)
``model_config``  ``tstam.models.ModelConfig`` as a dict (includes its ``preprocess``)
``classes``       class names, index = label (list[str])
``flow``          the flow extraction settings of the frame store (dict) for flow models, else None
``epoch``         0-based index of the epoch in progress (= epochs completed when ``epoch_step`` is 0)
``epoch_step``    optimisation steps already done in that epoch
``step``          optimisation steps done in total
``config``        the whole ``TrainConfig`` as a dict (training files only)
``optimizer``, ``scheduler``  their ``state_dict()`` (training files only)
``rng``           ``capture_rng()``: Python, NumPy, torch (and CUDA) generator states
``sampler``       the training sampler's ``state_dict()`` (exact mid-epoch resume), or None
``best_top1``     best validation top-1 so far (float or None); ``metrics``: the last metrics dict

Readers that only need the model (prediction, export) use ``model``, ``model_config``,
``classes`` and ``flow``; :func:`load_checkpoint` checks ``format`` and ``version``.
"""
from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError",
    "save_checkpoint", "load_checkpoint", "capture_rng", "restore_rng", "check_compatible",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "tstam-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read, or does not fit the run; the message says why."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems / platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    If anything fails (disk full, an unserialisable value), the temp file is removed, the file
    already at ``path`` (the previous checkpoint) is left untouched, and CheckpointError is raised.

    Args:
        path: destination file (its folder is created).
        state: the checkpoint dict (see the module docstring); ``format`` and ``version`` are
            added when missing.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except Exception as e:
        raise CheckpointError(
            f"{path}: could not write checkpoint ({type(e).__name__}: {e}); "
            "the previous checkpoint at this path, if any, is intact"
        ) from e
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (never unpickles arbitrary objects).

    Raises:
        CheckpointError: the file is missing, not loadable safely, or not a tstam checkpoint of a
            supported version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot be read as a safe (weights_only) checkpoint: {type(e).__name__}: {e}"
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a tstam checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "to start from foreign weights use the model's pretrained loader"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state.get('version')!r} is not supported "
            f"(this tstam reads version {CHECKPOINT_VERSION})"
        )
    return state


def check_compatible(state: dict[str, Any], *, modality: str, num_classes: int, path: str | Path = "checkpoint") -> None:
    """Refuse a checkpoint whose stream or class count disagrees with the run's config."""
    mcfg = state.get("model_config") or {}
    if mcfg.get("modality") != modality:
        raise CheckpointError(
            f"{path}: checkpoint is a {mcfg.get('modality')!r} stream but the config asks for "
            f"model.modality={modality!r}; use a checkpoint of the same stream"
        )
    if mcfg.get("num_classes") != num_classes:
        raise CheckpointError(
            f"{path}: checkpoint has {mcfg.get('num_classes')} classes but the config/data have "
            f"{num_classes}; use a checkpoint trained on the same class list"
        )


# ---------------------------------------------------------------------------------- RNG states

def capture_rng() -> dict[str, Any]:
    """Every generator state as tensors, ints and lists (loadable with weights_only=True)."""
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            log.warning("checkpoint has CUDA RNG states for %d devices, this machine has %d; "
                        "CUDA RNG not restored", len(cuda), torch.cuda.device_count())
