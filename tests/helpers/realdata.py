"""Paths of the real third-party files the tests read, vendored in ``tests/data`` (sources and
licences in ``tests/data/README.md``). A missing file fails the import, so a
test that needs it errors instead of skipping."""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
REALDATA = DATA / "realdata"
VIDEOS = REALDATA / "videos"                      # real UCF101 / MMAction2 clips
UCF101_SPLITS = REALDATA / "ucf101_splits"        # official UCF101 split files (CRLF)
HMDB51_SPLITS = REALDATA / "hmdb51_splits"        # official HMDB51 split files
MMA_FRAMES = VIDEOS / "rawframes_v_ApplyEyeMakeup_g01_c01_mmaction2"  # MMAction2's frame-folder fixture
REFERENCE = DATA / "reference"                    # BN-Inception parameter layouts

for _p in (VIDEOS, UCF101_SPLITS, HMDB51_SPLITS, MMA_FRAMES, REFERENCE):
    if not _p.is_dir():
        raise FileNotFoundError(f"test fixture folder {_p} is missing; it is part of the repository (tests/data)")
