"""Export: ONNX with dynamic batch and segments matches PyTorch under onnxruntime (<= 1e-4);
safetensors + JSON load back without pickle and predict the same."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tstam.cli import main
from tstam.export import check_onnx, export_onnx, export_safetensors
from tstam.inference import Recognizer, load_stream

from helpers.models import CLASSES, CLIPS, make_checkpoint
from helpers.realdata import VIDEOS as REAL_VIDEOS


@pytest.fixture(scope="module")
def flow_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "flow.pt", "flow", seed=5, sharpen=20.0)


@pytest.mark.slow  # the dynamo ONNX exporter takes ~30-45 s on 2 busy cores
def test_onnx_cli_matches_pytorch(tmp_path, flow_ckpt, capsys):
    out = tmp_path / "onnx" / "flow.onnx"
    assert main(["export", str(flow_ckpt), "--onnx", str(out), "--check"]) == 0
    assert "onnxruntime vs PyTorch" in capsys.readouterr().out
    proto = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["tstam"])
    assert meta["classes"] == CLASSES and meta["preprocess"]["mean"] == [128.0]
    stream = load_stream(flow_ckpt)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "temporal", "spatial"]
    gen = torch.Generator().manual_seed(1)
    for b, n in [(1, 3), (2, 6), (4, 25)]:  # batch and segment count are dynamic
        x = torch.randn(b, n, 10, 64, 64, generator=gen) * 60
        with torch.no_grad():
            ref = stream.model(x)
        logits, alpha, beta = session.run(None, {"input": x.numpy()})
        assert logits.shape == (b, 3) and alpha.shape == (b, n) and beta.shape == (b, 4, n, 2, 2)
        assert np.abs(logits - ref.logits.numpy()).max() <= 1e-4
        assert np.abs(alpha - ref.temporal.numpy()).max() <= 1e-4
        assert np.abs(beta - ref.spatial.numpy()).max() <= 1e-4
    assert max(check_onnx(out, stream, shapes=((3, 7),)).values()) <= 1e-4


@pytest.mark.slow
def test_onnx_export_leaves_the_stream_as_it_was(tmp_path, flow_ckpt):
    """Export works on a copy: a stream still training, in bf16 (or on a GPU), stays as it was, so
    a recognizer built from the same stream still runs (the export converts to float32, eval, CPU)."""
    stream = load_stream(flow_ckpt)
    stream.model.to(torch.bfloat16).train()
    before = {k: (p, p.detach().clone()) for k, p in stream.model.named_parameters()}
    export_onnx(stream, tmp_path / "flow.onnx", segments=3)
    assert stream.model.training
    for k, p in stream.model.named_parameters():
        assert p is before[k][0] and p.dtype == torch.bfloat16 and torch.equal(p, before[k][1]), k
    session = ort.InferenceSession(str(tmp_path / "flow.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 10, 64, 64) * 60
    rounded = load_stream(flow_ckpt).model.to(torch.bfloat16).float().eval()  # what was exported: the bf16 weights
    with torch.no_grad():
        ref = rounded(x).logits
    assert np.abs(session.run(["logits"], {"input": x.numpy()})[0] - ref.numpy()).max() <= 1e-4


def test_safetensors_roundtrip(tmp_path, flow_ckpt):
    st, js = export_safetensors(flow_ckpt, tmp_path / "flow.safetensors")
    meta = json.loads(js.read_text())
    assert meta["classes"] == CLASSES and meta["flow"]["algorithm"] == "farneback"
    assert meta["model_config"]["modality"] == "flow" and meta["data"]["resize"] == [64, 80]
    assert st.read_bytes()[:8] != b"\x80\x02\x8a\x0al\xfc\x9cF"  # not a torch pickle
    video = REAL_VIDEOS / CLIPS[1]
    a = Recognizer.from_paths(flow=flow_ckpt).predict(video)
    b = Recognizer.from_paths(flow=st).predict(video)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    np.testing.assert_allclose(a.streams["flow"].spatial, b.streams["flow"].spatial, atol=1e-6)
    js.unlink()  # the metadata inside the file is enough
    assert load_stream(st).classes == CLASSES
    with pytest.raises(ValueError, match="'flow' stream checkpoint but it was given as the 'rgb'"):
        Recognizer.from_paths(rgb=st)


def test_export_cli_needs_an_output(flow_ckpt, capsys):
    assert main(["export", str(flow_ckpt)]) == 2
    assert "give --onnx OUT and/or --safetensors OUT" in capsys.readouterr().err
