"""Checkpoint I/O: atomic writes, safe reads, RNG round trips, refusal of mismatched files."""
from __future__ import annotations

import os
import random
import resource
import signal
import stat

import numpy as np
import pytest
import torch

from tstam.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tstam.engine.checkpoint import capture_rng, check_compatible, restore_rng


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((4, 4), value)}, "model_config": {"modality": "rgb", "num_classes": 3, "width_mult": 1.0},
            "classes": ["a", "b", "c"], "flow": None, "epoch": 1, "step": 7, "rng": capture_rng()}


def test_round_trip_with_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "ck" / "last.pt", _state(1.5))
    st = load_checkpoint(path)
    assert st["format"] == "tstam-checkpoint" and st["version"] == 1
    assert torch.equal(st["model"]["w"], torch.full((4, 4), 1.5))
    assert st["classes"] == ["a", "b", "c"] and st["step"] == 7
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["last.pt"]  # no temp file left


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_get_the_mode_of_any_new_file(tmp_path, umask):
    """Every atomically written output (checkpoint, JSON, text) gets the permissions that open()
    gives a new file under the same umask (0o644 under the usual 022), not mkstemp's private 0o600."""
    from tstam.files import write_json_atomic, write_text_atomic

    old = os.umask(umask)
    try:
        with open(tmp_path / "by_open", "w"):
            pass
        paths = [save_checkpoint(tmp_path / "last.pt", _state(1.0)), write_json_atomic(tmp_path / "a.json", {"a": 1}),
                 write_text_atomic(tmp_path / "r.md", "# r\n")]
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "by_open").stat().st_mode)
    assert want == 0o666 & ~umask
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths} == dict.fromkeys(["last.pt", "a.json", "r.md"], want)


def test_rng_states_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {"rng": capture_rng()})
    expect = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expect


def test_failed_write_unserialisable_value_keeps_previous(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))
    bad = _state(2.0)
    bad["hook"] = lambda: None  # pickling fails after the tensors were written to the temp file
    with pytest.raises(CheckpointError, match="previous checkpoint"):
        save_checkpoint(path, bad)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((4, 4), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_failed_write_disk_full_keeps_previous(tmp_path):
    """A real write failure: the file size limit (RLIMIT_FSIZE) stands in for a full disk."""
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))
    big = _state(2.0)
    big["model"]["w"] = torch.ones(1 << 18)  # 1 MiB, over the limit below
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(CheckpointError, match="could not write"):
            save_checkpoint(path, big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((4, 4), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


class Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_untrusted_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "tstam-checkpoint", "version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights-only .* could run code"):
        load_checkpoint(path)


def test_foreign_or_missing_file_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "tsn.pth")
    with pytest.raises(CheckpointError, match="not a tstam checkpoint"):
        load_checkpoint(tmp_path / "tsn.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_model_config_mismatch_refused_naming_each_key():
    st = _state(0.0)
    check_compatible(st, dict(st["model_config"]))
    with pytest.raises(CheckpointError, match="num_classes 3 vs 5"):
        check_compatible(st, {**st["model_config"], "num_classes": 5})
    with pytest.raises(CheckpointError, match="modality 'rgb' vs 'flow'.*width_mult 1.0 vs 0.5"):
        check_compatible(st, {**st["model_config"], "modality": "flow", "width_mult": 0.5})
