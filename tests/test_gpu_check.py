"""The prepared GPU check runs on a CPU in its tiny mode, so that it keeps working between the
runs on a GPU: every section produces its rows, and no row with a goal misses it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(660)  # the check's own limit is 600 s: its output says where it got to
def test_gpu_check_tiny_on_cpu(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu",
                           "--json", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = json.loads(out.read_text())
    sections = Counter(r["section"].split()[0] for r in rows)
    # 6 head variants x 3 precisions x 2 layouts; the others as the check's docstring lists them
    assert sections == {"0": 2, "1": 36, "2": 2, "3": 4, "3b": 2, "4": 1, "5": 2, "6": 7, "7": 2, "8": 3, "9": 1}
    (prof,) = [r for r in rows if "torch.profiler" in r["case"]]
    assert prof["value"].count(" %") >= 3  # operators with their shares of the step
    assert all(r["ok"] is not False for r in rows)
    assert "| 5 DDP | SyncBN + partial BN" in proc.stdout  # the table itself is printed
    syncs = [r for r in rows if r["section"] == "2 host syncs"]
    assert syncs[0]["value"] == "0" and int(syncs[1]["value"]) >= 1


def test_resnet_peer_is_resnet50():
    """The check's peer is the standard ResNet-50: torchvision's resnet50 has 25,557,032 parameters
    at 1000 classes (He et al. 2016, "v1.5"), and TSN's segment consensus averages the frames' scores."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from resnet_peer import ResNet50

    model = ResNet50(1000)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    small = ResNet50(7, width=0.125, dropout=0.0).eval()
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        per_frame = torch.stack([small(x[:, i:i + 1]) for i in range(3)], 1)  # each segment alone
        torch.testing.assert_close(small(x), per_frame.mean(1))
