"""FrameDataset on real JPEG stores (written here and the MMAction2 fixture), determinism, loader."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tstam.data.config import DataConfig
from tstam.data.datasets import FrameDataset
from tstam.data.loader import ShardSampler, build_loader
from tstam.data.records import VideoRecord
from tstam.models import ModelConfig

from helpers.realdata import MMA_FRAMES as MMA

SMALL = DataConfig(resize=[40, 56])


def clip_of(modality="rgb", **kw):
    """The model config that says what a clip is: 3 segments of 32x32 crops."""
    return ModelConfig(modality=modality, num_classes=5, num_segments=3, input_size=32, **kw)


def make_store(root: Path, videos: dict[str, int], size=(40, 56)) -> list[VideoRecord]:
    """Frame folders whose RGB frame i has value i (all channels), flow x = 100 + i, flow y = 50."""
    h, w = size
    recs = []
    for k, (vid, n) in enumerate(videos.items()):
        d = root / vid
        d.mkdir(parents=True)
        for i in range(1, n + 1):
            cv2.imwrite(str(d / f"img_{i:05d}.jpg"), np.full((h, w, 3), i, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
            if i < n:
                cv2.imwrite(str(d / f"flow_x_{i:05d}.jpg"), np.full((h, w), 100 + i, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
                cv2.imwrite(str(d / f"flow_y_{i:05d}.jpg"), np.full((h, w), 50, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
        recs.append(VideoRecord(video_id=vid, path=f"Cls/{vid}.avi", label=k))
    return recs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    return root, make_store(root, {"v_a": 30, "v_b": 4, "v_c": 12, "v_d": 20, "v_e": 9})


def test_rgb_items_and_sampled_frames(store):
    root, recs = store
    ds = FrameDataset(recs, root=root, mode="val", data=SMALL, model=clip_of("rgb"))
    assert [r.num_frames for r in ds.records] == [30, 4, 12, 20, 9]
    clip, label = ds[0]
    assert clip.shape == (3, 3, 32, 32) and clip.dtype == torch.uint8 and label == 0
    # segment centres of 30 frames, 3 segments: 0-based 5, 15, 25 -> pixel values 6, 16, 26
    assert torch.allclose(clip.float().mean(dim=(1, 2, 3)), torch.tensor([6.0, 16.0, 26.0]), atol=0.6)
    short, _ = ds[1]  # 4 frames, 3 segments
    assert short.shape == (3, 3, 32, 32)


def test_flow_items_stack_five_fields(store):
    root, recs = store
    ds = FrameDataset(recs, root=root, mode="val", data=SMALL, model=clip_of("flow"))
    clip, _ = ds[0]
    assert clip.shape == (3, 10, 32, 32) and clip.dtype == torch.uint8
    # 29 fields, snippets of 5: 25 starts, centres 4, 12, 20 -> x channels 100 + start + 1 + k; y 50
    xs = clip[:, 0::2].float().mean(dim=(2, 3))
    expected = torch.tensor([[101.0 + s + k for k in range(5)] for s in (4, 12, 20)])
    assert torch.allclose(xs, expected, atol=0.6)
    assert torch.allclose(clip[:, 1::2].float(), torch.full_like(clip[:, 1::2], 50.0, dtype=torch.float32), atol=0.6)
    tiny, _ = ds[1]  # 3 flow fields, snippets past the end are clamped
    assert tiny.shape == (3, 10, 32, 32)


def test_train_flip_inverts_flow_x(store):
    root, recs = store
    ds = FrameDataset(recs[:1], root=root, mode="train", data=SMALL, model=clip_of("flow"))
    xs = set()
    for epoch in range(12):
        clip, _ = ds[(0, epoch)]
        xs.add(round(float(clip[0, 0].float().mean())))
    assert any(v > 128 for v in xs) and any(v < 128 for v in xs)  # 100+i unflipped, 155-i flipped


def test_test_mode_crops(store):
    root, recs = store
    cfg = DataConfig(test_frames=5, test_crops=10, resize=[40, 56])
    clip, label = FrameDataset(recs, root=root, mode="test", data=cfg, model=clip_of())[2]
    assert clip.shape == (10, 5, 3, 32, 32) and label == 2
    cfg3 = DataConfig(test_frames=4, test_crops=3, resize=[40, 56])
    assert FrameDataset(recs, root=root, mode="test", data=cfg3, model=clip_of("flow"))[0][0].shape == (3, 4, 10, 32, 32)


def test_deterministic_by_seed_epoch_index(store):
    root, recs = store
    a = FrameDataset(recs, root=root, mode="train", data=SMALL, model=clip_of(), seed=3)
    b = FrameDataset(recs, root=root, mode="train", data=SMALL, model=clip_of(), seed=3)
    assert torch.equal(a[(0, 1)][0], b[(0, 1)][0])
    assert any(not torch.equal(a[(0, 1)][0], a[(0, e)][0]) for e in range(2, 6))
    c = FrameDataset(recs, root=root, mode="train", data=SMALL, model=clip_of(), seed=4)
    assert any(not torch.equal(a[(0, e)][0], c[(0, e)][0]) for e in range(4))


def test_store_problems_raise_before_training(tmp_path):
    recs = make_store(tmp_path, {"v_ok": 6, "v_gap": 6})
    (tmp_path / "v_gap" / "img_00003.jpg").unlink()
    missing = VideoRecord("v_none", "Cls/v_none.avi", 0)
    with pytest.raises(ValueError, match=r"(?s)2 problem\(s\).*v_gap: missing frame\(s\) img_00003\.jpg.*v_none: frame folder does not exist"):
        FrameDataset(recs + [missing], root=tmp_path, mode="train", data=SMALL, model=clip_of())


def test_mmaction_fixture_rgb_and_flow():
    rec = VideoRecord(MMA.name, MMA.name, 0)
    cfg = DataConfig(flow_x_tmpl="x_{:05d}.jpg", flow_y_tmpl="y_{:05d}.jpg")
    rgb, _ = FrameDataset([rec], root=MMA.parent, mode="train", data=cfg, model=ModelConfig())[0]
    assert rgb.shape == (6, 3, 224, 224)
    flow_ds = FrameDataset([rec], root=MMA.parent, mode="val", data=cfg, model=ModelConfig(modality="flow"))
    assert flow_ds.records[0].num_frames == 6  # 5 flow fields
    flow, _ = flow_ds[0]
    # the fixture's grey flow JPEGs, as stored: frame 2-6 means of x and y lie near the neutral 128
    assert flow.shape == (6, 10, 224, 224) and flow.dtype == torch.uint8 and 100 < flow.float().mean() < 156


def test_ddp_shards_disjoint_and_cover():
    n, w = 10, 3
    for shuffle in (False, True):
        shards = [ShardSampler(n, shuffle=shuffle, seed=5, rank=r, world_size=w, pad=False).shard().tolist()
                  for r in range(w)]
        flat = sum(shards, [])
        assert sorted(flat) == list(range(n)) and len(flat) == n
    padded = [ShardSampler(n, shuffle=True, seed=5, rank=r, world_size=w).shard() for r in range(w)]
    assert {len(s) for s in padded} == {4} and set(np.concatenate(padded)) == set(range(n))
    dropped = [ShardSampler(n, shuffle=True, seed=5, rank=r, world_size=w, drop_last=True).shard() for r in range(w)]
    flat = np.concatenate(dropped)
    assert {len(s) for s in dropped} == {3} and len(set(flat)) == 9
    s = ShardSampler(n, shuffle=True, seed=5)
    e0 = s.shard().tolist()
    s.set_epoch(1)
    assert s.shard().tolist() != e0 and sorted(s.shard().tolist()) == list(range(n))
    with pytest.raises(ValueError, match="rank=3, world_size=3"):
        ShardSampler(n, shuffle=True, rank=3, world_size=3)


def _labels_and_sums(loader):
    return [(b[1].tolist(), [int(x) for x in b[0].long().sum(dim=(1, 2, 3, 4))]) for b in loader]


@pytest.mark.slow
def test_loader_same_batches_for_any_worker_count_and_resume(store):
    root, recs = store
    ds = FrameDataset(recs, root=root, mode="train", data=SMALL, model=clip_of(), seed=1)
    l0 = build_loader(ds, batch_size=2, shuffle=True, workers=0, seed=9)
    l2 = build_loader(ds, batch_size=2, shuffle=True, workers=2, seed=9)
    l0.set_epoch(1)
    l2.set_epoch(1)
    full = _labels_and_sums(l0)
    assert full == _labels_and_sums(l2)
    assert sorted(sum((b[0] for b in full), [])) == [0, 1, 2, 3, 4]
    # stop after one batch, "checkpoint", resume in a new loader
    it = iter(l0)
    first = next(it)
    state = l0.state_dict()
    assert state["position"] == 2 and state["epoch"] == 1
    resumed = build_loader(ds, batch_size=2, shuffle=True, workers=0, seed=9)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # the training loop's call keeps the resume point
    rest = _labels_and_sums(resumed)
    assert [first[1].tolist()] + [r[0] for r in rest] == [f[0] for f in full]
    assert rest == full[1:]
    with pytest.raises(ValueError, match="seed=9 but this run has 8"):
        build_loader(ds, batch_size=2, shuffle=True, workers=0, seed=8).load_state_dict(state)


@pytest.mark.parametrize("before,after", [(2, 1), (1, 2), (3, 2), (2, 3), (4, 4)])
def test_resume_on_another_number_of_processes_takes_exactly_the_rest(before, after):
    """Stopped mid-epoch on ``before`` ranks, resumed on ``after``: the new shards are disjoint and
    together are the positions not yet done, in the epoch's order, trimmed to split evenly."""
    n, seed, epoch, taken = 23, 3, 2, 3
    old = [ShardSampler(n, shuffle=True, seed=seed, rank=r, world_size=before, drop_last=True) for r in range(before)]
    for s in old:
        s.set_epoch(epoch)
        s.consumed = taken                                   # what ClipLoader records after 3 items per rank
    seen = np.concatenate([s.shard()[:taken] for s in old])
    state = old[0].state_dict()
    new = [ShardSampler(n, shuffle=True, seed=seed, rank=r, world_size=after, drop_last=True) for r in range(after)]
    for s in new:
        s.load_state_dict(state)
        s.set_epoch(epoch)
    rest = np.concatenate([s.shard() for s in new])
    order = np.random.default_rng([seed, epoch]).permutation(n)  # the epoch's order, independently
    done = taken * before
    assert sorted(seen.tolist()) == sorted(order[:done].tolist())
    assert len(set(rest.tolist())) == len(rest) and not set(rest.tolist()) & set(seen.tolist())
    expect = order[done:][: (n - done) // after * after]  # what splits evenly over the new ranks
    assert sorted(rest.tolist()) == sorted(expect.tolist())
    assert {len(s.shard()) for s in new} == {(n - done) // after}
