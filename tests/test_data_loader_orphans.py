"""Loader workers (started by a fork server) exit when the training process is SIGKILLed."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers.processes import OutputLines, assert_all_exit, process_tree

pytestmark = pytest.mark.slow  # a killed process tree


def test_workers_do_not_outlive_a_killed_main_process(tmp_path):
    (tmp_path / "ds.py").write_text(textwrap.dedent("""
        import torch
        class DS(torch.utils.data.Dataset):
            def __len__(self):
                return 64
            def __getitem__(self, key):
                i = key[0] if isinstance(key, tuple) else key
                return torch.full((3,), float(i)), i
    """))
    (tmp_path / "main.py").write_text(textwrap.dedent("""
        import sys, time
        from tstam.data.loader import build_loader
        from ds import DS
        if __name__ == "__main__":
            loader = build_loader(DS(), batch_size=4, shuffle=True, workers=2, seed=0, distributed=False)
            next(iter(loader))
            print("ready", flush=True)
            time.sleep(120)
    """))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "main.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        OutputLines(proc).wait_for("^ready$", 120, "the loader's first batch")
        spawned = process_tree(proc.pid)
        assert len(spawned) >= 3  # the fork server and two workers (and its resource tracker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert_all_exit(spawned, "loader processes")
