"""The inference copy (BN folded, channels_last) computes what the original computes."""
import pytest
import torch

from tstam.models import ModelConfig, build_model, prepare_for_inference


@pytest.mark.parametrize("merge_1x1, channels_last", [(False, False), (True, False), (True, True)])
def test_folded_model_matches_original(merge_1x1, channels_last):
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=5, width_mult=0.25, input_size=64)).eval()
    for m in model.modules():  # non-trivial BN statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    fast = prepare_for_inference(model, merge_1x1=merge_1x1, channels_last=channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.backbone.modules())
    assert hasattr(fast.backbone, "inception_3a_1x1s") == merge_1x1
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), fast(x)
    for u, v in zip(a, b):
        torch.testing.assert_close(v, u, rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())  # original kept


@pytest.mark.parametrize("device, dtype", [("meta", torch.float32), ("cpu", torch.float64)])
def test_inference_copy_stays_on_the_models_device_and_dtype(device, dtype):
    """The GPU check found the merged 1x1 convs created as float32 on the CPU under a CUDA model
    (``tstam test --device cuda`` and ``Recognizer`` on a GPU stopped at the first conv). Without a
    GPU here: a model on the meta device, and a float64 model, must come back with every parameter
    and buffer where, and as what, they were."""
    model = build_model(ModelConfig(num_classes=5, width_mult=0.125, input_size=64)).eval().to(device, dtype)
    fast = prepare_for_inference(model)
    assert hasattr(fast.backbone, "inception_3a_1x1s")  # the merge ran
    tensors = list(fast.parameters()) + [b for b in fast.buffers() if b.is_floating_point()]
    assert {(t.device.type, t.dtype) for t in tensors} == {(device, dtype)}
    if device == "cpu":
        out = fast(torch.randn(1, 3, 3, 64, 64, dtype=dtype))
        assert out.logits.dtype == dtype
