"""Loader workers (started by a fork server) exit when the training process is SIGKILLed."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def process_tree(root: int) -> set[int]:
    """Pids of every living descendant of ``root`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - tree
        tree |= frontier
    return tree


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()
            and (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")}


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
    proc = subprocess.Popen([sys.executable, str(tmp_path / "main.py")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        spawned = process_tree(proc.pid)
        assert len(spawned) >= 3  # the fork server and two workers (and its resource tracker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(spawned):
        time.sleep(0.2)
    left = alive(spawned)
    for pid in left:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"loader processes {sorted(left)} outlived the killed training process"
