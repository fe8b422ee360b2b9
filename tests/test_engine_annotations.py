"""The validation hold-out: whole UCF101 groups per class, on the real split files."""
from __future__ import annotations

import re

from tstam.data.splits import parse_ucf101
from tstam.engine.annotations import hold_out

from helpers.realdata import UCF101_SPLITS


def _groups(records):
    return {(r.label, re.search(r"_g(\d+)_", r.video_id).group(1)) for r in records}


def test_hold_out_whole_groups_on_real_ucf101():
    split = parse_ucf101(UCF101_SPLITS, 1)
    kept, held = hold_out(split.train, 0.2, seed=0)
    assert len(kept) + len(held) == 9537
    assert not _groups(kept) & _groups(held)                      # no group on both sides
    assert {r.label for r in held} == set(range(101))             # every class validated
    # UCF101 split 1 trains on groups 8-25 (18 per class): 0.2 x 18 -> 4 groups held out per class
    assert len(_groups(held)) == 4 * 101
    again, _ = hold_out(split.train, 0.2, seed=0)
    other, _ = hold_out(split.train, 0.2, seed=1)
    assert again == kept and other != kept
    assert hold_out(split.train, 0.0) == (list(split.train), [])
