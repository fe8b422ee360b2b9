"""FrameDataset on real JPEG stores (written here and the MMAction2 fixture), determinism, loader;
training clips cut from the stored frames' windows and finished per batch (``TrainCrops``) equal
the clips of the whole frames resized, cropped, resized and flipped clip by clip."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from tstam.config import ConfigError
from tstam.data.config import DataConfig
from tstam.data.datasets import FrameDataset
from tstam.data.frames import read_flow_frames, read_rgb_frames
from tstam.data.loader import ShardSampler, build_loader, finish_batch
from tstam.data.records import VideoRecord
from tstam.data.sampling import snippet_indices, train_indices, val_indices
from tstam.data.transforms import TrainCrops, TrainTransform, resize
from tstam.models import ModelConfig

from helpers.realdata import MMA_FRAMES as MMA

SMALL = DataConfig(resize=[40, 56])


def finished(ds, key):
    """One training item as the training loop gets it: batched, then finished (``finish_batch``)."""
    item, label = ds[key]
    return ds.batch_transform(default_collate([item]))[0], label


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
        clip, _ = finished(ds, (0, epoch))
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
    assert torch.equal(finished(a, (0, 1))[0], finished(b, (0, 1))[0])
    assert any(not torch.equal(finished(a, (0, 1))[0], finished(a, (0, e))[0]) for e in range(2, 6))
    c = FrameDataset(recs, root=root, mode="train", data=SMALL, model=clip_of(), seed=4)
    assert any(not torch.equal(finished(a, (0, e))[0], finished(c, (0, e))[0]) for e in range(4))


def test_store_problems_raise_before_training(tmp_path):
    recs = make_store(tmp_path, {"v_ok": 6, "v_gap": 6})
    (tmp_path / "v_gap" / "img_00003.jpg").unlink()
    missing = VideoRecord("v_none", "Cls/v_none.avi", 0)
    with pytest.raises(ValueError, match=r"(?s)2 problem\(s\).*v_gap: missing frame\(s\) img_00003\.jpg.*v_none: frame folder does not exist"):
        FrameDataset(recs + [missing], root=tmp_path, mode="train", data=SMALL, model=clip_of())


def test_mmaction_fixture_rgb_and_flow():
    rec = VideoRecord(MMA.name, MMA.name, 0)
    cfg = DataConfig(flow_x_tmpl="x_{:05d}.jpg", flow_y_tmpl="y_{:05d}.jpg")
    rgb, _ = finished(FrameDataset([rec], root=MMA.parent, mode="train", data=cfg, model=ModelConfig()), 0)
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
    return [(b[1].tolist(), [int(x) for x in finish_batch(loader, b[0]).long().sum(dim=(1, 2, 3, 4))]) for b in loader]


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


def textured_store(root: Path, size: tuple[int, int], frames: int = 14, seed: int = 0) -> list[VideoRecord]:
    """Two videos of random-textured frames (every crop, scale and flip shows), JPEG quality 95."""
    rng = np.random.default_rng(seed)
    recs = []
    for v in range(2):
        d = root / f"v_{v}"
        d.mkdir()
        for i in range(1, frames + 1):
            cv2.imwrite(str(d / f"img_{i:05d}.jpg"), rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            if i < frames:
                for c in "xy":
                    cv2.imwrite(str(d / f"flow_{c}_{i:05d}.jpg"), rng.integers(0, 256, size, dtype=np.uint8),
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
        recs.append(VideoRecord(d.name, f"C/{d.name}.avi", v))
    return recs


def whole_frames(d: Path, idx: np.ndarray, modality: str) -> torch.Tensor:
    """The snippets' frames decoded here with OpenCV: uint8 (S, L*C, H, W), RGB order, x/y interleaved."""
    if modality == "rgb":
        f = [cv2.imread(str(d / f"img_{i + 1:05d}.jpg"))[..., ::-1].transpose(2, 0, 1) for i in idx.ravel()]
    else:
        f = [np.stack([cv2.imread(str(d / f"flow_{c}_{i + 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE) for c in "xy"])
             for i in idx.ravel()]
    return torch.from_numpy(np.stack(f)).reshape(idx.shape[0], -1, *f[0].shape[-2:])


@pytest.mark.parametrize("where", ["device", "loader"])
@pytest.mark.parametrize("stored", [(40, 56), (48, 64)])  # as data.resize (windows decoded), larger (resized first)
@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_train_clips_equal_whole_frames_transformed(tmp_path, modality, stored, where):
    """Training clips, batched with mixed crop sizes and flips and finished as the loop does, are
    byte for byte the whole stored frames resized, cropped, resized and flipped clip by clip,
    with the parameters a (seed, epoch, index) generator draws: snippets first, then the crop."""
    recs = textured_store(tmp_path, stored)
    data = DataConfig(resize=[40, 56], crop_resize_on=where)
    model = clip_of(modality)
    ds = FrameDataset(recs, root=tmp_path, mode="train", data=data, model=model, seed=7)
    keys = [(i, e) for e in range(8) for i in range(2)]
    items = [ds[k][0] for k in keys]
    assert all(isinstance(x, TrainCrops) == (where == "device") for x in items)
    got = ds.batch_transform(default_collate(items))
    tf = TrainTransform(data, model)
    drawn = set()
    for (i, e), clip in zip(keys, got, strict=True):
        rng = np.random.default_rng([7, e, i])
        n = ds.records[i].num_frames - (modality == "flow")
        idx = snippet_indices(train_indices(n, 3, model.new_length, rng), model.new_length, n)
        params = tf.draw(rng)
        drawn.add(params[2:])
        want = tf.apply(whole_frames(tmp_path / recs[i].video_id, idx, modality), params)
        assert clip.shape == want.shape == (3, 3 * model.new_length if modality == "rgb" else 10, 32, 32)
        assert torch.equal(clip, want), (i, e, params)
    assert len({(h, w) for h, w, _ in drawn}) >= 3 and {f for _, _, f in drawn} == {False, True}  # variety seen
    if where == "device":  # the crop sits top-left in a buffer of the largest crop, zeros around it
        x = items[0]
        h, w, _ = x.params.tolist()
        assert x.pixels.shape[-2:] == (40, 40) and not x.pixels[..., h:, :].any() and not x.pixels[..., :, w:].any()


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_val_clip_is_the_centre_window_of_the_stored_frames(tmp_path, modality):
    recs = textured_store(tmp_path, (40, 56))
    ds = FrameDataset(recs, root=tmp_path, mode="val", data=SMALL, model=clip_of(modality))
    clip, _ = ds[1]
    n, L = ds.records[1].num_frames - (modality == "flow"), ds.snippet_length
    idx = snippet_indices(val_indices(n, 3, L), L, n)
    assert torch.equal(clip, whole_frames(tmp_path / "v_1", idx, modality)[..., 4:36, 12:44])  # (40-32)/2, (56-32)/2


def test_readers_keep_a_window_and_fill_a_given_array(tmp_path):
    recs = textured_store(tmp_path, (40, 56))
    d = tmp_path / recs[0].video_id
    full = read_flow_frames(d, [0, 3, 3, 5])
    assert full.shape == (4, 2, 40, 56)
    assert np.array_equal(full[1, 0], cv2.imread(str(d / "flow_x_00004.jpg"), cv2.IMREAD_GRAYSCALE))
    out = np.zeros((4, 2, 30, 40), np.uint8)
    assert read_flow_frames(d, [0, 3, 3, 5], window=(2, 5, 30, 40), out=out) is out
    assert np.array_equal(out, full[:, :, 2:32, 5:45])
    rgb = read_rgb_frames(d, [1, 1, 4], window=(10, 0, 30, 56))
    assert rgb.shape == (3, 30, 56, 3)
    assert np.array_equal(rgb[2], cv2.imread(str(d / "img_00005.jpg"))[10:40, :, ::-1])
    with pytest.raises(ValueError, match=r"crop \(y=20, x=0, h=30, w=40\) does not fit its 40x56 frames"):
        read_flow_frames(d, [0], window=(20, 0, 30, 40))
    cv2.imwrite(str(d / "flow_x_00007.jpg"), np.zeros((48, 64), np.uint8))
    cv2.imwrite(str(d / "flow_y_00007.jpg"), np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match=r"frames differ in size \[\(40, 56\), \(48, 64\)\]"):
        read_flow_frames(d, [0, 6])


def test_off_the_cpu_resize_is_within_one_grey_level():
    """Off the CPU ``resize`` computes in float32 and rounds (the stated difference): at most one
    grey level from the CPU's uint8 kernel, shrinking (antialiased) or enlarging."""
    from tstam.data.transforms import _resize_float

    clip = torch.randint(0, 256, (2, 10, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for size in ((32, 32), (48, 56), (32, 56)):
        diff = (resize(clip, size).int() - _resize_float(clip, size, size[0] < 40 or size[1] < 40).int()).abs()
        assert diff.max() <= 1 and 0 < diff.float().mean() < 0.5


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


@pytest.mark.parametrize("device", DEVICES)
def test_train_crops_finished_on_the_device(tmp_path, device):
    """A batch moved to the device (pinned as the loader does on a GPU machine) and finished there:
    the same clips as in the loader, within one grey level off the CPU."""
    recs = textured_store(tmp_path, (40, 56))
    on_device = FrameDataset(recs, root=tmp_path, mode="train", data=SMALL, model=clip_of("flow"), seed=2)
    in_loader = FrameDataset(recs, root=tmp_path, mode="train", model=clip_of("flow"), seed=2,
                             data=DataConfig(resize=[40, 56], crop_resize_on="loader"))
    loader = build_loader(on_device, batch_size=2, shuffle=True, workers=0, seed=1)
    want = build_loader(in_loader, batch_size=2, shuffle=True, workers=0, seed=1)
    for (x, _), (w, _) in zip(loader, want, strict=True):
        x = x.to(device)
        assert x.pixels.device.type == device and x.params.device.type == "cpu"  # read without a device sync
        got = finish_batch(loader, x)
        assert got.device.type == device and got.dtype == torch.uint8
        assert (got.cpu().int() - w.int()).abs().max() <= (0 if device == "cpu" else 1)


def test_crop_resize_on_must_be_known():
    with pytest.raises(ConfigError, match=r"data.crop_resize_on='gpu' is not valid; expected one of \['device', 'loader'\]"):
        DataConfig(crop_resize_on="gpu")
