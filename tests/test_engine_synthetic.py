"""The shipped synthetic preset end to end on generated clips: ``tstam.synthetic`` writes encoded
videos with UCF101 split files, ``tstam.extract`` decodes them and computes flow (DIS, fast) into
a frame store, and the flow and RGB streams train a few steps and are tested from that store."""
from __future__ import annotations

import pytest

from tstam.checkpoint import load_checkpoint
from tstam.cli import main
from tstam.engine.scores import load_scores
from tstam.extract import collect_sources, extract_many
from tstam.flow import FlowConfig
from tstam.synthetic.config import make_config
from tstam.synthetic.generate import generate


@pytest.mark.slow
def test_synthetic_preset_on_generated_clips(tmp_path, capsys):
    bench = tmp_path / "bench"
    generate(bench, make_config("tiny"), seed=3)  # 4 classes x (3 + 2) clips of 16 frames, 64x64
    report = extract_many(collect_sources(bench / "videos"), tmp_path / "frames", flow=FlowConfig(algorithm="dis"))
    assert not getattr(report, "failed", None)
    tiny = ["model.width_mult=0.125", "model.input_size=64", "model.num_classes=4", "model.num_segments=2",
            "model.attention_hidden=16", "model.num_heads=2", "data.resize=[64,64]", "data.batch_size=4",
            "data.workers=0", "optim.epochs=1", "run.device=cpu", f"annotations.path={bench / 'splits'}",
            f"data.root={tmp_path / 'frames'}"]
    for mod in ("flow", "rgb"):
        out = tmp_path / f"run_{mod}"
        assert main(["train", "--config", f"synthetic_{mod}", *tiny, f"run.out_dir={out}"]) == 0
        ck = load_checkpoint(out / "last.pt")
        assert ck["step"] == 3 and len(ck["classes"]) == 4  # 12 training clips, batch 4
        if mod == "flow":
            assert ck["flow"]["algorithm"] == "dis"  # the store's flow settings travel with the weights
        assert main(["test", "--checkpoint", str(out / "last.pt"), "--crops", "1", "--frames", "5"]) == 0
        s = load_scores(out / f"scores_{mod}_split1_test_5x1.npz")
        assert len(s.video_ids) == 8 and s.probs.shape == (8, 4)
    capsys.readouterr()
