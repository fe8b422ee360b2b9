"""TSN sampling: table-driven edge cases; pure functions of their inputs and the rng."""
import numpy as np
import pytest

from tstam.data.sampling import protocol_indices, snippet_indices, train_indices, val_indices


@pytest.mark.parametrize("num_frames, n, length, expected", [
    (60, 6, 1, [5, 15, 25, 35, 45, 55]),        # segment centres
    (12, 6, 1, [1, 3, 5, 7, 9, 11]),
    (6, 6, 1, [0, 1, 2, 3, 4, 5]),
    (3, 6, 1, [0, 0, 1, 1, 2, 2]),              # shorter than N: repeat evenly
    (1, 6, 1, [0, 0, 0, 0, 0, 0]),              # single frame
    (20, 6, 5, [1, 4, 6, 9, 12, 14]),           # flow: 16 valid starts, tick 8/3
    (4, 3, 5, [0, 0, 0]),                       # shorter than one snippet
])
def test_val_indices_table(num_frames, n, length, expected):
    assert val_indices(num_frames, n, length).tolist() == expected


@pytest.mark.parametrize("num_frames, n, length", [
    (164, 6, 1), (163, 6, 5), (7, 6, 1), (5, 6, 1), (2, 6, 5), (1, 3, 1), (100, 1, 5), (9, 6, 5),
])
def test_train_indices_properties(num_frames, n, length):
    rng = np.random.default_rng(0)
    avail = max(num_frames - length + 1, 1)
    bounds = np.floor(np.arange(n + 1) * avail / n).astype(int)
    for _ in range(50):
        idx = train_indices(num_frames, n, length, rng)
        assert idx.shape == (n,) and idx.dtype == np.int64
        assert (idx >= 0).all() and (idx <= avail - 1).all()
        assert (np.diff(idx) >= 0).all()
        for i, s in enumerate(idx):  # one frame inside each segment (or its start if empty)
            assert bounds[i] <= s <= max(bounds[i + 1] - 1, bounds[i])


def test_train_indices_cover_every_start_and_are_seeded():
    seen = set()
    rng = np.random.default_rng(1)
    for _ in range(300):
        seen.update(train_indices(13, 6, 1, rng).tolist())
    assert seen == set(range(13))  # the tail is sampled too
    a = train_indices(500, 6, 5, np.random.default_rng([7, 0, 3]))
    b = train_indices(500, 6, 5, np.random.default_rng([7, 0, 3]))
    c = train_indices(500, 6, 5, np.random.default_rng([7, 1, 3]))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


@pytest.mark.parametrize("num_frames, k, length, expected_first, expected_last", [
    (250, 25, 1, 5, 245), (164, 25, 1, 3, 160), (10, 25, 1, 0, 9), (163, 25, 5, 3, 155),
])
def test_protocol_indices_even(num_frames, k, length, expected_first, expected_last):
    idx = protocol_indices(num_frames, k, length)
    assert len(idx) == k and idx[0] == expected_first and idx[-1] == expected_last
    assert (np.diff(idx) >= 0).all()


@pytest.mark.parametrize("starts, length, num_frames, expected", [
    ([0, 5], 5, 10, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]),
    ([0], 5, 3, [[0, 1, 2, 2, 2]]),          # snippet past the end: clamp to the last field
    ([2], 1, 3, [[2]]),
])
def test_snippet_indices(starts, length, num_frames, expected):
    assert snippet_indices(np.array(starts), length, num_frames).tolist() == expected


@pytest.mark.parametrize("args, match", [((0, 6, 1), "num_frames=0"), ((10, 0, 1), "num_segments=0"),
                                         ((10, 6, 0), "new_length=0")])
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        val_indices(*args)
    with pytest.raises(ValueError, match=match):
        train_indices(*args, rng=np.random.default_rng(0))
