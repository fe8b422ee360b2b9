"""Export: ONNX with dynamic batch and segments matches PyTorch under onnxruntime (within the
relative tolerance ``--check`` states, also for logits near 800); one self-contained ``.onnx`` file;
outputs with the permissions of any new file; the README's onnxruntime example, run as written,
gives what ``tstam predict`` gives; safetensors + JSON load back without pickle and predict the same."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tstam.checkpoint import load_checkpoint, save_checkpoint
from tstam.cli import main
from tstam.export import CHECK_RTOL, OnnxCheck, check_onnx, export_onnx, export_safetensors, read_metadata
from tstam.inference import Recognizer, load_stream, prepare_clip

from helpers.models import CLASSES, CLIPS, make_checkpoint
from helpers.readme import python_block
from helpers.realdata import VIDEOS as REAL_VIDEOS

OFFSET = 800.0  # added to every logit: the softmax is unchanged, the logits' scale is that of a real run's


def _offset_checkpoint(path: Path, seed: int) -> Path:
    """A tiny flow stream whose logits lie near ``OFFSET`` (its classifier's bias shifted)."""
    make_checkpoint(path, "flow", seed=seed, sharpen=20.0)
    st = load_checkpoint(path)
    st["model"]["fc.bias"] += OFFSET
    return save_checkpoint(path, st)


@pytest.fixture(scope="module")
def flow_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "flow.pt", "flow", seed=5, sharpen=20.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``tstam export --onnx --check --safetensors`` of the offset stream into an empty folder,
    under umask 022; returns (checkpoint, output folder, exit status, what it printed followed by
    its INFO-and-up log lines prefixed "LOG ", the mode a file made with open() in that folder gets)."""
    d = tmp_path_factory.mktemp("export")
    ckpt = _offset_checkpoint(d / "flow.pt", seed=5)
    out = d / "out"
    out.mkdir()
    old = os.umask(0o022)
    try:
        with open(out / "by_open.txt", "w") as f:
            f.write("reference")
        ref_mode = stat.S_IMODE((out / "by_open.txt").stat().st_mode)
        (out / "by_open.txt").unlink()
        buf, logged, root = io.StringIO(), _Records(logging.INFO), logging.getLogger()
        level = root.level
        root.addHandler(logged)  # what the command's log shows a user on stderr: INFO and up
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(buf):
                rc = main(["export", str(ckpt), "--onnx", str(out / "flow.onnx"), "--check",
                           "--safetensors", str(out / "flow.safetensors")])
        finally:
            root.removeHandler(logged)
            root.setLevel(level)
    finally:
        os.umask(old)
    return ckpt, out, rc, buf.getvalue() + "".join(f"LOG {m}\n" for m in logged.messages), ref_mode


class _Records(logging.Handler):
    def __init__(self, level: int):
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.slow  # the dynamo ONNX exporter takes ~30-45 s on 2 busy cores
def test_onnx_cli_matches_pytorch(exported):
    ckpt, out, rc, printed, ref_mode = exported
    assert rc == 0, printed
    lines = printed.splitlines()
    assert lines.count(f"wrote {out / 'flow.onnx'}") == 1
    assert lines.count(f"wrote {out / 'flow.safetensors'} and {out / 'flow.json'}") == 1
    assert len([ln for ln in lines if "wrote " in ln]) == 2        # each said once: printed, not also logged
    check_line = next(ln for ln in lines if ln.startswith("onnxruntime vs PyTorch: max relative error"))
    assert f"passes at <= {CHECK_RTOL:g}" in check_line and "WARNING" not in printed
    # one self-contained file each: no external-data file, no temporary file left behind
    assert sorted(p.name for p in out.iterdir()) == ["flow.json", "flow.onnx", "flow.safetensors"]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == dict.fromkeys(
        ["flow.json", "flow.onnx", "flow.safetensors"], ref_mode)
    proto = onnx.load(str(out / "flow.onnx"), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["tstam"])
    assert meta["classes"] == CLASSES and meta["preprocess"]["mean"] == [128.0]
    assert read_metadata(out / "flow.onnx") == meta
    stream = load_stream(ckpt)
    session = ort.InferenceSession(str(out / "flow.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "temporal", "spatial"]
    gen = torch.Generator().manual_seed(1)
    for b, n in [(1, 3), (2, 6), (4, 25)]:  # batch and segment count are dynamic
        x = torch.randn(b, n, 10, 64, 64, generator=gen) * 60
        with torch.no_grad():
            ref = stream.model(x)
        logits, alpha, beta = session.run(None, {"input": x.numpy()})
        assert logits.shape == (b, 3) and alpha.shape == (b, n) and beta.shape == (b, 4, n, 2, 2)
        assert np.abs(logits).min() > OFFSET / 2                           # the scale the check must allow for
        np.testing.assert_allclose(logits, ref.logits.numpy(), rtol=1e-6, atol=1e-3)  # float32 at 800: ulp 6e-5
        np.testing.assert_allclose(alpha, ref.temporal.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(beta, ref.spatial.numpy(), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_check_refuses_the_export_of_another_model(exported, tmp_path):
    """The same graph with another model's weights (seed 6, same offset) differs by a part of the
    logits' spread, far beyond the tolerance; the file of the right model passes."""
    ckpt, out, *_ = exported
    other = _offset_checkpoint(tmp_path / "other.pt", seed=6)
    right, wrong = check_onnx(out / "flow.onnx", ckpt, shapes=((2, 5),)), check_onnx(out / "flow.onnx", other, shapes=((2, 5),))
    assert right.ok and right.max_ref["logits"] > OFFSET / 2
    assert not wrong.ok and wrong.relative["logits"] > 10 * CHECK_RTOL


def test_check_tolerance_is_relative_to_each_output():
    """``OnnxCheck``: 0.05 absolute on logits of 800 is within the tolerance (1e-4 * 800 + 1e-4),
    0.1 is not; on an attention map of scale 0.2, 1e-4 is and 5e-4 is not; the relative errors
    are the ratios."""
    c = OnnxCheck(max_abs={"logits": 0.05, "temporal": 1e-4}, max_ref={"logits": 800.0, "temporal": 0.2})
    assert c.ok and c.relative == pytest.approx({"logits": 6.25e-5, "temporal": 5e-4})
    assert not OnnxCheck(max_abs={"logits": 1e-4, "temporal": 5e-4}, max_ref={"logits": 800.0, "temporal": 0.2}).ok
    assert not OnnxCheck(max_abs={"logits": 0.1}, max_ref={"logits": 800.0}).ok


@pytest.mark.slow
def test_readme_onnxruntime_example_runs(exported, tmp_path):
    """The README's onnxruntime example, saved as a script and run by a fresh interpreter beside the
    exported ``flow.onnx`` and a real clip, prints the class and probability ``tstam predict`` gives
    (the PyTorch path, 1 crop)."""
    ckpt, out, *_ = exported
    shutil.copy(out / "flow.onnx", tmp_path / "flow.onnx")
    shutil.copy(REAL_VIDEOS / CLIPS[1], tmp_path / "video.avi")
    (tmp_path / "example.py").write_text(python_block("Using a trained model", "onnxruntime"))
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    label, prob = r.stdout.split()
    pred = Recognizer.from_paths(flow=ckpt).predict(REAL_VIDEOS / CLIPS[1], num_crops=1)
    assert label == pred.label and abs(float(prob) - pred.probabilities.max()) <= 1.5e-3


def test_prepare_clip_is_what_the_recognizer_feeds_the_model(flow_ckpt, tmp_path):
    """``prepare_clip`` from the export's JSON alone gives the input the recognizer's model sees:
    the same logits (1 and 10 crops), so a model run elsewhere predicts what ``predict`` does."""
    _st, js = export_safetensors(flow_ckpt, tmp_path / "flow.safetensors")
    meta = read_metadata(js)
    assert meta == read_metadata(flow_ckpt)
    video = REAL_VIDEOS / CLIPS[1]
    rec = Recognizer.from_paths(flow=flow_ckpt, fast=False)
    model = rec.streams["flow"].model
    for crops in (1, 10):
        x = prepare_clip(video, meta, num_crops=crops, num_snippets=5)
        assert x.dtype == np.float32 and x.shape == (crops, 5, 10, 64, 64)
        with torch.no_grad():
            probs = model(torch.from_numpy(x)).logits.softmax(-1).mean(0).numpy()
        np.testing.assert_allclose(probs, rec.predict(video, num_crops=crops, num_snippets=5).probabilities, atol=1e-6)


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
