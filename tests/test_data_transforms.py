"""Transforms: flow flip, crop geometry, one draw per clip, config validation."""
import numpy as np
import pytest
import torch

from tstam.config import ConfigError, from_dict
from tstam.data.config import DataConfig
from tstam.data.transforms import (
    EvalTransform,
    TrainTransform,
    eval_crops,
    fixed_offsets,
    hflip,
    multiscale_crop_params,
    resize,
    ten_crop,
)
from tstam.models import ModelConfig


def coord_clip(t=2, c=3, h=240, w=320):
    """uint8 clip whose value encodes the column (x channel) and the row (y channel)."""
    x = torch.arange(w).remainder(256).to(torch.uint8).expand(h, w)
    y = torch.arange(h).remainder(256).to(torch.uint8)[:, None].expand(h, w)
    planes = [x if i % 2 == 0 else y for i in range(c)]
    return torch.stack(planes).expand(t, c, h, w).contiguous()


def test_flip_inverts_flow_x_only():
    clip = torch.randint(0, 256, (2, 10, 8, 12), dtype=torch.uint8)
    f = hflip(clip, flow=True)
    assert torch.equal(f[:, 0::2], 255 - clip[:, 0::2].flip(-1))
    assert torch.equal(f[:, 1::2], clip[:, 1::2].flip(-1))
    assert torch.equal(hflip(clip, flow=False), clip.flip(-1))
    assert torch.equal(hflip(f, flow=True), clip)


def test_ten_crop_geometry():
    clip = coord_clip(c=2, h=240, w=320)
    crops = ten_crop(clip, 224, flow=False)
    assert crops.shape == (10, 2, 2, 224, 224)
    # (y, x) of the top-left pixel of each of the 5 crops: corners and centre, TSN steps of (H-224)//4
    expected = [(0, 0), (0, 96), (16, 0), (16, 96), (8, 48)]
    assert [(int(c[0, 1, 0, 0]), int(c[0, 0, 0, 0])) for c in crops[:5]] == expected
    for i in range(5):  # second five are the mirrors
        assert torch.equal(crops[5 + i], crops[i].flip(-1))
    flow = ten_crop(clip, 224, flow=True)
    assert torch.equal(flow[5, :, 0], 255 - flow[0, :, 0].flip(-1))


def test_three_and_one_crop():
    clip = coord_clip(c=2, h=240, w=320)
    three = eval_crops(clip, size=224, num_crops=3, flow=False)
    assert three.shape == (3, 2, 2, 224, 224)
    one = eval_crops(clip, size=224, num_crops=1, flow=False)
    assert one.shape == (1, 2, 2, 224, 224) and int(one[0, 0, 0, 0, 0]) == 48 and int(one[0, 0, 1, 0, 0]) == 8
    with pytest.raises(ValueError, match=r"num_crops=5 .*\[1, 3, 10\]"):
        eval_crops(clip, size=224, num_crops=5, flow=False)


@pytest.mark.parametrize("scales", [[1, .875, .75, .66], [1, .875, .75]])
def test_multiscale_crop_sizes_and_positions(scales):
    rng = np.random.default_rng(0)
    sizes = {224 if abs(int(240 * s) - 224) < 3 else int(240 * s) for s in scales}
    seen = set()
    for _ in range(400):
        y, x, h, w = multiscale_crop_params(240, 320, input_size=224, scales=scales, max_distort=1,
                                            more_fix_crop=True, rng=rng)
        assert h in sizes and w in sizes and y + h <= 240 and x + w <= 320
        assert (y, x) in fixed_offsets(240, 320, h, w, more_fix_crop=True)
        seen.add((h, w))
    order = sorted(sizes, reverse=True)
    assert all(abs(order.index(h) - order.index(w)) <= 1 for h, w in seen) and len(seen) > len(sizes)


def test_train_transform_one_draw_per_clip():
    frame = torch.randint(0, 256, (1, 3, 240, 320), dtype=torch.uint8)
    clip = frame.expand(6, 3, 240, 320).contiguous()
    t = TrainTransform(DataConfig(), ModelConfig())
    for seed in range(5):
        out = t(clip, np.random.default_rng(seed))
        assert out.shape == (6, 3, 224, 224) and out.dtype == torch.uint8
        assert all(torch.equal(out[0], out[i]) for i in range(6))
    a = t(clip, np.random.default_rng(3))
    assert torch.equal(a, t(clip, np.random.default_rng(3)))


def test_eval_transform_shape_and_resize():
    clip = torch.randint(0, 256, (4, 10, 256, 340), dtype=torch.uint8)
    out = EvalTransform(DataConfig(), ModelConfig(modality="flow"), 10)(clip)
    assert out.shape == (10, 4, 10, 224, 224)
    small = resize(torch.full((1, 3, 120, 160), 77, dtype=torch.uint8), (240, 320))
    assert small.shape == (1, 3, 240, 320) and int(small.min()) == int(small.max()) == 77


def test_data_config_defaults_and_errors():
    flow = ModelConfig(modality="flow")
    assert (flow.new_length, DataConfig().crop_scales("flow"), flow.in_chans) == (5, [1.0, 0.875, 0.75], 10)
    assert ModelConfig().new_length == 1 and DataConfig().crop_scales("rgb")[-1] == 0.66
    with pytest.raises(ConfigError, match=r"test_crops=5"):
        DataConfig(test_crops=5)
    with pytest.raises(ConfigError, match=r"resize=\[200, 300\] is smaller than the crop model.input_size=224"):
        DataConfig(resize=[200, 300]).check_crop(224)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) modality"):
        from_dict(DataConfig, {"modality": "depth"})
