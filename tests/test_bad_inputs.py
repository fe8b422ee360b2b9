"""Bad input through the real ``tstam`` command, one row per case of docs/bad_inputs.md.

Each row of ``ROWS`` runs ``tstam.cli.main(argv)`` and checks the exit status, the parts of the
message that name the value or file and what would be valid, that no traceback is printed, and
that a refused command (status 2) leaves the folder exactly as it was (outputs are checked before
any work). Real files: tiny checkpoints (tests/helpers/models.py), score files written by
``save_scores`` and then damaged, the real clips of tests/data.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tstam.checkpoint import load_checkpoint, save_checkpoint
from tstam.cli import main
from tstam.engine.scores import ScoreSet, save_scores

from helpers.hostile import alias_bomb_value, malformed_checkpoint, safetensors_with_meta, write_config_files
from helpers.models import CLIPS, make_checkpoint
from helpers.realdata import VIDEOS as REAL_VIDEOS

CLIP = str(REAL_VIDEOS / CLIPS[0])
CLASSES = ["a", "b", "c"]


def _scores(path: Path, stream: str, *, probs=None, labels=None, ids=None, raw: bool = False, meta=None) -> Path:
    """A score file of 6 videos; ``raw`` writes the arrays as given (np.savez), bypassing ScoreSet."""
    p = np.random.default_rng(0 if stream == "rgb" else 1).dirichlet(np.ones(3), 6).astype(np.float32)
    probs = p if probs is None else probs
    labels = np.arange(6) % 3 if labels is None else labels
    ids = [f"v{i}" for i in range(6)] if ids is None else ids
    if raw:
        np.savez(path, video_ids=np.array(ids), labels=labels, probs=probs, logits=np.log(p[:len(ids)]),
                 classes=np.array(CLASSES), meta=np.array(meta or f'{{"stream": "{stream}", "split": 1}}'))
        return path
    return save_scores(path, ScoreSet(ids, labels, probs, np.log(p), CLASSES, {"stream": stream, "split": 1}))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    make_checkpoint(d / "rgb.pt", "rgb")
    make_checkpoint(d / "flow.pt", "flow")
    st = load_checkpoint(d / "rgb.pt")
    name = next(k for k, v in st["model"].items() if v.is_floating_point())
    st["model"][name].view(-1)[0] = float("nan")
    save_checkpoint(d / "nan_weights.pt", st)
    st = load_checkpoint(d / "flow.pt")
    st["flow"] = {"algorithm": "raft", "bound": 20.0, "params": {}}
    save_checkpoint(d / "raft_flow.pt", st)
    (d / "truncated.pt").write_bytes((d / "rgb.pt").read_bytes()[:3000])
    (d / "empty.pt").write_bytes(b"")
    other = np.random.default_rng(2).dirichlet(np.ones(3), 6).astype(np.float32)
    save_scores(d / "other_classes.npz", ScoreSet([f"v{i}" for i in range(6)], np.arange(6) % 3, other, np.log(other),
                                                  ["x", "y", "z"], {"stream": "flow", "split": 1}))
    (d / "run_no_scores").mkdir()
    shutil.copy(d / "rgb.pt", d / "run_no_scores" / "last.pt")
    (d / "badfusion").mkdir()
    for m in ("rgb", "flow"):
        shutil.copy(d / f"{m}.pt", d / "badfusion" / f"{m}.pt")
    (d / "badfusion" / "fusion.json").write_text(
        '{"format": "tstam-fusion", "version": 1, "weights": {"rgb": 1, "flow": NaN}, "checkpoints": {}}\n')
    _scores(d / "rgb.npz", "rgb")
    _scores(d / "flow.npz", "flow")
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("video,label\nv0,1\n")
    good = np.random.default_rng(1).dirichlet(np.ones(3), 6).astype(np.float32)
    nan, neg = good.copy(), good.copy()
    nan[2, 1] = np.nan
    neg[3] = [-0.5, 1.0, 0.5]
    _scores(d / "nan.npz", "flow", probs=nan, raw=True)
    _scores(d / "negative.npz", "flow", probs=neg, raw=True)
    _scores(d / "shape.npz", "flow", probs=good[:, :2], raw=True)
    _scores(d / "label.npz", "flow", labels=np.array([0, 1, 2, 0, 7, 2]), raw=True)
    _scores(d / "dup_ids.npz", "flow", ids=["v0", "v1", "v2", "v1", "v4", "v5"], raw=True)
    (d / "a_file").write_text("a regular file where a folder is expected\n")
    (d / "oldrun").mkdir()
    shutil.copyfile(d / "rgb.pt", d / "oldrun" / "last.pt")  # a folder holding a run
    # hostile files: configs, score files and checkpoints that load but hold what tstam never writes
    write_config_files(d)
    os.mkfifo(d / "fifo.yaml")
    _scores(d / "no_videos.npz", "flow", probs=good[:0], labels=np.zeros(0, np.int64), ids=[], raw=True)
    _scores(d / "meta_list.npz", "flow", raw=True, meta="[1, 2]")
    _scores(d / "float_labels.npz", "flow", labels=np.array([0.0, 1.5, 2.0, 0.0, 1.0, 2.0]), raw=True)
    _scores(d / "bad_mode.npz", "fused", raw=True, meta='{"stream": "fused", "split": 1, "mode": "bogus"}')
    malformed_checkpoint(d / "rgb.pt", d / "resize64.pt", data={"resize": [64]})
    malformed_checkpoint(d / "rgb.pt", d / "frames_huge.pt", data={"test_frames": 10**7})
    malformed_checkpoint(d / "rgb.pt", d / "classes_str.pt", classes="abc")
    malformed_checkpoint(d / "rgb.pt", d / "mc_list.pt", model_config=[1, 2])
    malformed_checkpoint(d / "rgb.pt", d / "bad_recipe.pt", config={"data": {"resize": [64, 80]}, "optim": {"lr": -1.0}})
    safetensors_with_meta(d / "meta_list.safetensors", "[1]")
    return d


def _cuda_row() -> tuple[str, list[str]]:
    """--device for CUDA that this machine does not have, and the reason torch itself gives."""
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.device_count()}", [f"only {torch.cuda.device_count()} CUDA device(s) visible"]
    reason = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
    return "cuda", ["--device 'cuda'", reason, "use --device cpu"]


CUDA_DEV, CUDA_MSG = _cuda_row()
BLOCKED = "{d}/a_file"  # a path whose parent is a regular file
READ_ONLY = "/proc/tstam-out"  # a folder no one (root included) can create files in

# (id, argv with {d} = the files folder and {clip} = a real video, exit status, message parts)
ROWS = [
    # fuse / report: score files and outputs
    ("fuse-zero-byte-npz", ["fuse", "{d}/empty.npz", "{d}/flow.npz"], 2,
     ["empty.npz: an empty file (0 bytes); expected a score file written by tstam test"]),
    ("fuse-text-file-named-npz", ["fuse", "{d}/text.npz", "{d}/flow.npz"], 2,
     ["text.npz: not a .npz (zip) file; expected a score file"]),
    ("fuse-nan-probabilities", ["fuse", "{d}/rgb.npz", "{d}/nan.npz"], 2,
     ["nan.npz: probs of 1 video(s) hold NaN or infinite values, e.g. v2"]),
    ("fuse-negative-probabilities", ["fuse", "{d}/rgb.npz", "{d}/negative.npz"], 2,
     ["negative.npz: probs of 1 video(s) are not probabilities (each in [0, 1], summing to 1), e.g. v3"]),
    ("fuse-wrong-shape", ["fuse", "{d}/rgb.npz", "{d}/shape.npz"], 2,
     ["shape.npz: cannot read score file", "probs (6, 2)"]),
    ("fuse-label-outside-classes", ["fuse", "{d}/rgb.npz", "{d}/label.npz"], 2,
     ["label.npz: label 7 of v4 is not valid; expected 0-2 (3 classes)"]),
    ("fuse-repeated-video-id", ["fuse", "{d}/rgb.npz", "{d}/dup_ids.npz"], 2,
     ["dup_ids.npz: video id 'v1' appears more than once"]),
    ("fuse-missing-file", ["fuse", "{d}/rgb.npz", "{d}/nothing.npz"], 2, ["nothing.npz: score file not found"]),
    ("fuse-weights-nan", ["fuse", "{d}/rgb.npz", "{d}/flow.npz", "--weights", "nan", "1"], 2,
     ["argument --weights: 'nan' is not valid; expected a finite number"]),
    ("fuse-weights-negative", ["fuse", "{d}/rgb.npz", "{d}/flow.npz", "--weights", "-1", "3"], 2,
     ["argument --weights: '-1' is not valid; expected a finite number >= 0"]),
    ("fuse-weights-all-zero", ["fuse", "{d}/rgb.npz", "{d}/flow.npz", "--weights", "0", "0"], 2,
     ["fusion weights [0.0, 0.0] are not valid; expected finite numbers >= 0, not all 0"]),
    ("fuse-out-parent-is-a-file", ["fuse", "{d}/rgb.npz", "{d}/flow.npz", "-o", BLOCKED + "/f.npz"], 2,
     ["a_file: output folder is an existing file"]),
    ("fuse-out-read-only", ["fuse", "{d}/rgb.npz", "{d}/flow.npz", "-o", READ_ONLY + "/f.npz"], 2,
     [f"{READ_ONLY}: output folder is not writable"]),
    ("fuse-out-not-npz", ["fuse", "{d}/rgb.npz", "{d}/flow.npz", "-o", "{d}/fused.txt"], 2,
     ["fused.txt: expected a .npz file name"]),
    ("report-zero-byte-npz", ["report", "{d}/rgb.npz", "{d}/empty.npz"], 2, ["empty.npz: an empty file (0 bytes)"]),
    ("report-nan-probabilities", ["report", "{d}/rgb.npz", "{d}/nan.npz"], 2, ["nan.npz: probs of 1 video(s) hold NaN"]),
    ("report-weights-inf", ["report", "{d}/rgb.npz", "{d}/flow.npz", "--weights", "inf", "1"], 2,
     ["argument --weights: 'inf' is not valid; expected a finite number"]),
    ("report-out-parent-is-a-file", ["report", "{d}/rgb.npz", "{d}/flow.npz", "-o", BLOCKED + "/rep"], 2,
     ["a_file/rep: output folder is not writable (Not a directory)"]),
    ("report-out-is-a-markdown-file", ["report", "{d}/rgb.npz", "{d}/flow.npz", "-o", "{d}/report.md"], 2,
     ["report.md: -o takes a folder (the report writes report.md and its pictures into it), e.g. -o report"]),
    ("report-no-such-input", ["report", "{d}/rgb.npz", "{d}/runs/flow"], 2,
     ["runs/flow: no such run folder or score file; give run folders (run.out_dir of tstam train, after tstam test) "
      "or score files (.npz)"]),
    ("report-run-folder-without-scores", ["report", "{d}/run_no_scores"], 2,
     ["run_no_scores: run folder holds no test score file; run `tstam test --checkpoint {d}/run_no_scores/best.pt` "
      "first"]),
    ("report-same-stream-twice", ["report", "{d}/rgb.npz", "{d}/rgb.npz"], 2,
     ["rgb.npz: a second 'rgb' score file for split 1 (the first: {d}/rgb.npz)"]),
    ("report-class-lists-differ", ["report", "{d}/rgb.npz", "{d}/other_classes.npz"], 2,
     ["other_classes.npz and {d}/rgb.npz have different class lists (3 vs 3 classes, or another order)"]),
    # predict / visualize: checkpoints, options, outputs
    ("predict-weights-inf", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "--flow", "{d}/flow.pt", "--weights", "inf", "1"],
     2, ["argument --weights: 'inf' is not valid; expected a finite number"]),
    ("predict-device-bogus", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "--device", "bogus"], 2,
     ["--device 'bogus' is not valid; expected auto, cpu, cuda or cuda:N"]),
    ("predict-device-cuda-absent", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "--device", CUDA_DEV], 2, CUDA_MSG),
    ("predict-top-k-0", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "-k", "0"], 2,
     ["argument -k/--top-k: '0' is not valid; expected an integer >= 1"]),
    ("predict-crops-5", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "--crops", "5"], 2,
     ["argument --crops: invalid choice: 5 (choose from 1, 3, 10)"]),
    ("predict-json-parent-is-a-file", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "--json", BLOCKED + "/p.json"], 2,
     ["a_file: output folder is an existing file"]),
    ("predict-visualize-read-only", ["predict", "{clip}", "--rgb", "{d}/rgb.pt", "--visualize", READ_ONLY], 2,
     [f"{READ_ONLY}: output folder is not writable"]),
    ("predict-nan-weights-checkpoint", ["predict", "{clip}", "--rgb", "{d}/nan_weights.pt"], 2,
     ["nan_weights.pt: non-finite weights (NaN or inf) in backbone.", "use an earlier checkpoint"]),
    ("predict-truncated-checkpoint", ["predict", "{clip}", "--rgb", "{d}/truncated.pt"], 2,
     ["truncated.pt: not a readable weights-only PyTorch file: truncated, damaged or not a PyTorch file"]),
    ("predict-zero-byte-checkpoint", ["predict", "{clip}", "--rgb", "{d}/empty.pt"], 2,
     ["empty.pt: not a readable weights-only PyTorch file"]),
    ("predict-bad-fusion-file", ["predict", "{clip}", "--rgb", "{d}/badfusion/rgb.pt", "--flow", "{d}/badfusion/flow.pt"],
     2, ["badfusion/fusion.json: not a valid fusion file (ValueError: weights", "delete it, or rerun tstam fuse --search"]),
    ("predict-unreproducible-flow", ["predict", "{clip}", "--flow", "{d}/raft_flow.pt"], 2,
     ["raft_flow.pt: flow settings", "cannot be reproduced", "expected an algorithm of ['tvl1', 'dis', 'farneback'"]),
    ("visualize-out-read-only", ["visualize", "{clip}", "--rgb", "{d}/rgb.pt", "-o", READ_ONLY], 2,
     [f"{READ_ONLY}: output folder is not writable"]),
    ("visualize-out-parent-is-a-file", ["visualize", "{clip}", "--rgb", "{d}/rgb.pt", "-o", BLOCKED + "/pics"], 2,
     ["a_file/pics: output folder is not writable (Not a directory)"]),
    ("visualize-device-bogus", ["visualize", "{clip}", "--rgb", "{d}/rgb.pt", "-o", "{d}/pics", "--device", "gpu"], 2,
     ["--device 'gpu' is not valid; expected auto, cpu, cuda or cuda:N"]),
    # test: parse-time numbers and the device
    ("test-frames-0", ["test", "--checkpoint", "{d}/rgb.pt", "--frames", "0"], 2,
     ["argument --frames: '0' is not valid; expected an integer from 1 to 250"]),
    ("test-chunk-frames-0", ["test", "--checkpoint", "{d}/rgb.pt", "--chunk-frames", "0"], 2,
     ["argument --chunk-frames: '0' is not valid; expected an integer >= 1"]),
    ("test-max-memory-mb-0", ["test", "--checkpoint", "{d}/rgb.pt", "--max-memory-mb", "0"], 2,
     ["argument --max-memory-mb: '0' is not valid; expected a finite number > 0"]),
    ("test-max-memory-mb-negative", ["test", "--checkpoint", "{d}/rgb.pt", "--max-memory-mb", "-5"], 2,
     ["argument --max-memory-mb: '-5' is not valid; expected a finite number > 0"]),
    ("test-device-bogus", ["test", "--checkpoint", "{d}/rgb.pt", "--device", "bogus"], 2,
     ["--device 'bogus' is not valid; expected auto, cpu, cuda or cuda:N"]),
    ("test-device-cuda-absent", ["test", "--checkpoint", "{d}/rgb.pt", "--device", CUDA_DEV], 2, CUDA_MSG),
    # export
    ("export-segments-0", ["export", "{d}/rgb.pt", "--onnx", "{d}/m.onnx", "--segments", "0"], 2,
     ["argument --segments: '0' is not valid; expected an integer from 1 to 1024"]),
    ("export-segments-5000", ["export", "{d}/rgb.pt", "--onnx", "{d}/m.onnx", "--segments", "5000"], 2,
     ["argument --segments: '5000' is not valid; expected an integer from 1 to 1024"]),
    ("export-onnx-read-only", ["export", "{d}/rgb.pt", "--safetensors", "{d}/m.safetensors", "--onnx", READ_ONLY + "/m.onnx"],
     2, [f"{READ_ONLY}: output folder is not writable"]),
    ("export-wrong-suffix", ["export", "{d}/rgb.pt", "--onnx", "{d}/m.pt"], 2, ["m.pt: expected a .onnx file name"]),
    ("export-check-without-onnx", ["export", "{d}/rgb.pt", "--safetensors", "{d}/m.safetensors", "--check"], 2,
     ["--check compares an ONNX export with PyTorch; give --onnx OUT with it"]),
    ("export-truncated-checkpoint", ["export", "{d}/truncated.pt", "--onnx", "{d}/m.onnx"], 2,
     ["truncated.pt: not a readable weights-only PyTorch file"]),
    # train: overrides, YAML, run settings (the store-backed cases are in test_train_* below)
    ("train-override-unbalanced-list", ["train", "--config", "synthetic_rgb", "data.resize=[40,40"], 2,
     ["override 'data.resize=[40,40': the value '[40,40' is not valid YAML",
      "write a list without spaces, data.resize=[a,b], or quote the whole override, 'data.resize=[a, b]'"]),
    ("train-override-list-split-by-shell", ["train", "--config", "synthetic_rgb", "data.resize=[40,", "40]"], 2,
     ["override 'data.resize=[40,': the value '[40,' is not valid YAML"]),
    ("train-override-nan", ["train", "--config", "synthetic_rgb", "optim.lr=nan"], 2,
     ["optim.lr=nan is not valid; expected a finite number"]),
    ("train-override-inf", ["train", "--config", "synthetic_rgb", "optim.momentum=.inf"], 2,
     ["optim.momentum=inf is not valid; expected a finite number"]),
    ("train-override-not-a-number", ["train", "--config", "synthetic_rgb", "optim.lr=fast"], 2,
     ["optim.lr: expected a number (e.g. 0.001 or 1e-3), got 'fast'"]),
    ("train-override-unknown-key", ["train", "--config", "synthetic_rgb", "optim.lrr=0.1"], 2,
     ["unknown key(s) optim.lrr in optim; valid keys:", "lr,"]),
    ("train-override-without-equals", ["train", "--config", "synthetic_rgb", "optim.lr"], 2,
     ["override 'optim.lr' is not of the form key=value"]),
    ("train-config-missing", ["train", "--config", "{d}/nothing.yaml"], 2, ["nothing.yaml: config file not found"]),
    ("train-device-bogus", ["train", "--config", "synthetic_rgb", "run.device=tpu"], 2,
     ["run.device 'tpu' is not valid; expected auto, cpu, cuda or cuda:N"]),
    ("train-out-dir-is-a-file", ["train", "--config", "synthetic_rgb", "run.out_dir=" + BLOCKED], 2,
     ["a_file: output folder is an existing file"]),
    ("train-out-dir-read-only", ["train", "--config", "synthetic_rgb", "run.out_dir=" + READ_ONLY + "/run"], 2,
     [f"{READ_ONLY}/run: output folder is not writable"]),
    ("train-into-an-existing-run", ["train", "--config", "synthetic_rgb", "run.out_dir={d}/oldrun"], 2,
     ["{d}/oldrun: holds a run (last.pt); continue it with --resume, or start over with --force (moves it to "
      "{d}/oldrun.old-<date-time>)"]),
    ("train-resume-and-force", ["train", "--config", "synthetic_rgb", "run.out_dir={d}/oldrun", "--resume", "--force"],
     2, ["--resume continues the run in run.out_dir and --force moves it aside to start over; give one of them"]),
    # synth / demo / ablate
    ("synth-out-parent-is-a-file", ["synth", "--out", BLOCKED + "/bench", "--preset", "tiny"], 2,
     ["a_file/bench: output folder is not writable (Not a directory)"]),
    ("synth-out-read-only", ["synth", "--out", READ_ONLY, "--preset", "tiny"], 2,
     [f"{READ_ONLY}: output folder is not writable"]),
    ("synth-override-unbalanced-list", ["synth", "--out", "{d}/bench", "classes=[MoveUp,"], 2,
     ["override 'classes=[MoveUp,': the value '[MoveUp,' is not valid YAML"]),
    ("synth-override-nan", ["synth", "--out", "{d}/bench", "noise_std=.nan"], 2,
     ["noise_std=nan is not valid; expected a finite number"]),
    ("synth-seed-negative", ["synth", "--out", "{d}/bench", "--seed", "-1"], 2,
     ["argument --seed: '-1' is not valid; expected an integer >= 0"]),
    ("demo-out-parent-is-a-file", ["demo", "--out", BLOCKED + "/demo", "--quick"], 2,
     ["a_file/demo: output folder is not writable (Not a directory)"]),
    ("demo-epochs-0", ["demo", "--out", "{d}/demo", "--epochs", "0"], 2,
     ["argument --epochs: '0' is not valid; expected an integer >= 1"]),
    ("demo-workers-negative", ["demo", "--out", "{d}/demo", "--workers", "-1"], 2,
     ["argument --workers: '-1' is not valid; expected an integer >= 0"]),
    ("ablate-out-read-only", ["ablate", "--out", READ_ONLY, "--quick"], 2, [f"{READ_ONLY}: output folder is not writable"]),
    ("ablate-seeds-not-integers", ["ablate", "--out", "{d}/abl", "--seeds", "0,x"], 2,
     ["argument --seeds: '0,x' is not valid; expected integers >= 0 separated by commas, e.g. 0,1,2"]),
    ("ablate-epochs-0", ["ablate", "--out", "{d}/abl", "--epochs", "0"], 2,
     ["argument --epochs: '0' is not valid; expected an integer >= 1"]),
    ("ablate-unknown-group", ["ablate", "--out", "{d}/abl", "--only", "heads,colours"], 2,
     ["ablation group(s) or setting(s) ['colours'] do not exist"]),
    # hostile configs: bounded reading, every number in its range (tests/test_config_ranges.py walks them all)
    ("train-config-alias-bomb", ["train", "--config", "{d}/bomb.yaml"], 2,
     ["bomb.yaml: not accepted as a config: its aliases (*name) expand it beyond 2,097,152 values and characters"]),
    ("train-config-self-reference", ["train", "--config", "{d}/self.yaml"], 2,
     ["self.yaml: not accepted as a config: an alias (*name) refers to the mapping or list that holds it"]),
    ("train-config-deep-nesting", ["train", "--config", "{d}/deep.yaml"], 2,
     ["deep.yaml: not accepted as a config: it nests more than 32 levels deep"]),
    ("train-config-not-utf8", ["train", "--config", "{d}/latin1.yaml"], 2,
     ["latin1.yaml: not a UTF-8 text file (byte 0xe9 at offset 19); save the config as UTF-8"]),
    ("train-config-dev-zero", ["train", "--config", "/dev/zero"], 2,
     ["/dev/zero: not a regular file (a FIFO, socket or device); expected a YAML config file"]),
    ("train-config-fifo", ["train", "--config", "{d}/fifo.yaml"], 2,
     ["fifo.yaml: not a regular file (a FIFO, socket or device)"]),
    ("train-config-folder", ["train", "--config", "{d}"], 2, ["is a folder; expected a YAML config file"]),
    ("train-config-too-large", ["train", "--config", "{d}/big.yaml"], 2,
     ["big.yaml: 1,048,577 bytes is more than a config file may hold (1,048,576 bytes)"]),
    ("train-override-alias-bomb", ["train", "--config", "synthetic_rgb", "model.se_blocks=" + alias_bomb_value()], 2,
     ["override 'model.se_blocks': not accepted as a config: its aliases (*name) expand it beyond"]),
    ("train-override-huge-integer", ["train", "--config", "synthetic_rgb", "run.seed=1" + "0" * 5000], 2,
     ["override 'run.seed': a value cannot be read: Exceeds the limit (4300 digits)"]),
    ("train-dropout-1-5", ["train", "--config", "synthetic_rgb", "model.dropout=1.5"], 2,
     ["model.dropout=1.5 is not valid; expected 0 <= dropout < 1"]),
    ("train-se-reduction-0", ["train", "--config", "synthetic_rgb", "model.se_reduction=0"], 2,
     ["model.se_reduction=0 is not valid; expected 1 <= se_reduction <= 1024"]),
    ("train-seed-negative", ["train", "--config", "synthetic_rgb", "run.seed=-1"], 2,
     ["run.seed=-1 is not valid; expected 0 <= seed < 4294967296"]),
    ("train-max-distort-negative", ["train", "--config", "synthetic_rgb", "data.max_distort=-1"], 2,
     ["data.max_distort=-1 is not valid; expected max_distort >= 0"]),
    ("train-num-segments-100000", ["train", "--config", "synthetic_rgb", "model.num_segments=100000"], 2,
     ["model.num_segments=100000 is not valid; expected 1 <= num_segments <= 64"]),
    ("train-width-mult-0", ["train", "--config", "synthetic_rgb", "model.width_mult=0"], 2,
     ["model.width_mult=0.0 is not valid; expected 0 < width_mult <= 4"]),
    ("train-median-filtering-7", ["train", "--config", "synthetic_flow", "data.flow.tvl1.median_filtering=7"], 2,
     ["data.flow.tvl1.median_filtering=7 is not valid; expected one of [0, 1, 3, 5]"]),
    ("train-frame-template-outside", ["train", "--config", "synthetic_rgb", "data.rgb_tmpl=../x_{{:05d}}.jpg"], 2,
     ["data.rgb_tmpl='../x_{{:05d}}.jpg' is not valid: '../x_00001.jpg' is not a plain file name"]),
    ("synth-fps-huge", ["synth", "--out", "{d}/bench", "fps=1e308"], 2,
     ["fps=1e+308 is not valid; expected 1 <= fps <= 1000"]),
    ("synth-background-pan-huge", ["synth", "--out", "{d}/bench", "background_pan=1e308"], 2,
     ["background_pan=1e+308 is not valid; expected 0 <= background_pan <= 3.5"]),
    ("synth-width-million", ["synth", "--out", "{d}/bench", "width=1000000"], 2,
     ["width=1000000 is not valid; expected an even number from 32 to 2048"]),
    ("synth-clip-too-large", ["synth", "--out", "{d}/bench", "width=2048", "height=2048"], 2,
     ["2048 x 2048 x 32 = 134,217,728 pixels is more than a clip may have (16,777,216"]),
    # hostile score files and checkpoints: load with allow_pickle=False / weights_only, hold what tstam never writes
    ("fuse-no-videos", ["fuse", "{d}/rgb.npz", "{d}/no_videos.npz"], 2,
     ["no_videos.npz: holds no videos; a score file holds the scores of one or more videos"]),
    ("fuse-same-file-twice", ["fuse", "{d}/rgb.npz", "{d}/rgb.npz"], 2,
     ["{d}/rgb.npz and {d}/rgb.npz hold the same scores: fusing a stream with itself gives that stream's result"]),
    ("fuse-meta-not-an-object", ["fuse", "{d}/rgb.npz", "{d}/meta_list.npz"], 2,
     ["meta_list.npz: meta is a JSON list; expected a JSON object"]),
    ("fuse-float-labels", ["fuse", "{d}/rgb.npz", "{d}/float_labels.npz"], 2,
     ["float_labels.npz: labels are float64; expected integers (class indices)"]),
    ("report-mode-not-valid", ["report", "{d}/rgb.npz", "{d}/bad_mode.npz"], 2,
     ["bad_mode.npz: meta mode='bogus' is not valid; expected 'softmax' or 'raw'"]),
    ("predict-checkpoint-resize-64", ["predict", "{clip}", "--rgb", "{d}/resize64.pt"], 2,
     ["resize64.pt: data.resize=[64] is not valid; expected [H, W]"]),
    ("predict-checkpoint-test-frames-huge", ["predict", "{clip}", "--rgb", "{d}/frames_huge.pt"], 2,
     ["frames_huge.pt: data.test_frames=10000000 is not valid; expected 1 <= test_frames <= 250"]),
    ("predict-checkpoint-classes-not-names", ["predict", "{clip}", "--rgb", "{d}/classes_str.pt"], 2,
     ["classes_str.pt: classes is 'abc'; expected a list of class names (strings)"]),
    ("predict-checkpoint-model-config-not-mapping", ["predict", "{clip}", "--rgb", "{d}/mc_list.pt"], 2,
     ["mc_list.pt: model_config is [1, 2]; expected a mapping of its settings"]),
    ("predict-checkpoint-bad-training-config", ["predict", "{clip}", "--rgb", "{d}/bad_recipe.pt"], 2,
     ["bad_recipe.pt: the stored training config is not valid: optim.lr=-1.0 is not valid; expected lr > 0"]),
    ("predict-safetensors-meta-not-an-object", ["predict", "{clip}", "--rgb", "{d}/meta_list.safetensors"], 2,
     ["meta_list.safetensors: tstam metadata is a JSON list; expected a JSON object"]),
    # extract: parse-time numbers
    ("extract-max-frames-0", ["extract", "{clip}", "--out", "{d}/frames", "--max-frames", "0"], 2,
     ["argument --max-frames: '0' is not valid; expected an integer >= 1"]),
    ("extract-short-side-0", ["extract", "{clip}", "--out", "{d}/frames", "--short-side", "0"], 2,
     ["argument --short-side: '0' is not valid; expected an integer >= 1"]),
    ("extract-jpeg-quality-200", ["extract", "{clip}", "--out", "{d}/frames", "--jpeg-quality", "200"], 2,
     ["argument --jpeg-quality: '200' is not valid; expected an integer from 1 to 100"]),
    ("extract-bound-inf", ["extract", "{clip}", "--out", "{d}/frames", "--bound", "inf"], 2,
     ["argument --bound: 'inf' is not valid; expected a finite number"]),
    ("extract-bound-nan", ["extract", "{clip}", "--out", "{d}/frames", "--bound", "nan"], 2,
     ["argument --bound: 'nan' is not valid; expected a finite number"]),
    ("extract-bound-0", ["extract", "{clip}", "--out", "{d}/frames", "--bound", "0"], 2,
     ["argument --bound: '0' is not valid; expected a finite number > 0"]),
    ("extract-workers-0", ["extract", "{clip}", "--out", "{d}/frames", "--workers", "0"], 2,
     ["argument --workers: '0' is not valid; expected an integer >= 1"]),
    ("extract-size-0x5", ["extract", "{clip}", "--out", "{d}/frames", "--size", "0x5"], 2,
     ["argument --size: size '0x5' is not valid; expected WIDTHxHEIGHT, e.g. 340x256"]),
    ("extract-shard-5-of-4", ["extract", "{clip}", "--out", "{d}/frames", "--shard", "5/4"], 2,
     ["argument --shard: shard '5/4' is not valid; expected i/n with 0 <= i < n, e.g. 0/4"]),
    # usage
    ("no-subcommand", [], 2, ["the following arguments are required: COMMAND"]),
    ("unknown-option", ["fuse", "{d}/rgb.npz", "--wieghts", "1"], 2, ["unrecognized arguments: --wieghts"]),
]


def _tree(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")}


@pytest.mark.parametrize("argv,status,parts", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_refused(files, argv, status, parts, capsys, monkeypatch):
    monkeypatch.chdir(files)  # a stray relative output would show in the tree
    before = _tree(files)
    rc = main([a.format(d=files, clip=CLIP) for a in argv])
    err = capsys.readouterr().err
    assert rc == status, err
    for part in parts:
        assert part.format(d=files) in err, err
    assert "Traceback" not in err
    assert _tree(files) == before  # checked before any work: nothing written, nothing changed


def test_docs_table_matches_the_tests():
    """docs/bad_inputs.md lists every row of ROWS once, and every test it names exists."""
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "bad_inputs.md").read_text()
    ids = re.findall(r"`test_refused\[([\w-]+)\]`", text)
    assert sorted(ids) == sorted(r[0] for r in ROWS) and len(set(ids)) == len(ROWS)
    named = re.findall(r"`(tests/\w+\.py)::(\w+)`", text)
    assert len(named) > 20
    for file, name in named:
        assert re.search(rf"^def {name}\(", (root / file).read_text(), re.M), f"{file}::{name} does not exist"


@pytest.mark.slow
def test_dis_on_frames_too_small_fails_with_our_message(tmp_path):
    """OpenCV's DIS crashes the whole process (segfault) on 100x12 frames: run in a subprocess, so
    that a regression fails this test instead of killing the suite."""
    from helpers.cli import run_tstam

    res = run_tstam(["extract", CLIP, "--out", str(tmp_path / "frames"), "--size", "100x12", "--flow", "dis",
                     "--max-frames", "3", "--no-progress"])
    assert res.returncode == 1, res.stderr
    assert (f"FAILED {CLIP}: 100x12 frames are too small for dis optical flow (preset medium), which needs at least "
            "16x16 px") in res.stderr
    assert "Traceback" not in res.stderr


def test_config_numbers_in_scientific_notation_are_accepted(tmp_path, capsys):
    """YAML 1.1 reads 1e-3 (no dot) as a string; overrides and YAML files take it as a number."""
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    assert main(["train", "--config", str(cfg), "optim.lr=2.5e-2", "optim.momentum=9e-1", "--print-config"]) == 0
    optim = yaml.safe_load(capsys.readouterr().out)["optim"]
    assert (optim["lr"], optim["weight_decay"], optim["momentum"]) == (0.025, 0.0005, 0.9)
    assert main(["train", "--config", str(cfg), "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["optim"]["lr"] == 0.001
    cfg.write_text("optim:\n  lr: .nan\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "optim.lr=nan is not valid; expected a finite number" in capsys.readouterr().err


@pytest.mark.slow
def test_test_output_checked_before_scoring(tmp_path, capsys):
    """``tstam test -o`` into a blocked path fails before any video is scored (no confusion matrix,
    no score file), with a real trained checkpoint."""
    _, cfg = _train_config(tmp_path)
    assert main(["train", "--config", str(cfg), "run.max_steps=1"]) == 0
    (tmp_path / "a_file").write_text("x")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert main(["test", "--checkpoint", str(tmp_path / "run" / "last.pt"), "-o", str(tmp_path / "a_file" / "s.npz"),
                 "--frames", "2", "--crops", "1"]) == 2
    assert f"{tmp_path / 'a_file'}: output folder is an existing file" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    # a run trained at another width cannot be resumed: the message names the key and both values
    assert main(["train", "--config", str(cfg), "model.width_mult=0.25", "--resume"]) == 2
    assert "width_mult 0.125 vs 0.25" in capsys.readouterr().err


@pytest.mark.slow
def test_same_file_name_in_two_folders_gets_two_pictures(files, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(CLIP, tmp_path / folder / "clip.avi")
    videos = [str(tmp_path / "a" / "clip.avi"), str(tmp_path / "b" / "clip.avi")]
    assert main(["visualize", *videos, "--rgb", str(files / "rgb.pt"), "-o", str(tmp_path / "v"),
                 "--animation", "none"]) == 0
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["a_clip_attention.png", "b_clip_attention.png"]
    assert main(["predict", *videos, "--rgb", str(files / "rgb.pt"), "--visualize", str(tmp_path / "p"),
                 "--animation", "none"]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["a_clip_attention.png", "b_clip_attention.png"]
    out = capsys.readouterr().out
    assert f"{tmp_path / 'v' / 'a_clip_attention.png'}" in out and f"{tmp_path / 'v' / 'b_clip_attention.png'}" in out


def _train_config(tmp_path: Path, **sections) -> tuple[dict, Path]:
    """A tiny run on a real frame store (tests/helpers/engine_store.py), written as YAML."""
    import yaml

    from helpers.engine_store import make_store, tiny_config

    store = make_store(tmp_path / "store", n_train=4, n_test=4)
    cfg = tiny_config(store, tmp_path / "run", **{"optim": {"epochs": 1}, "run": {"eval_every": 0}, **sections})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return store, path


def test_test_clips_inside_the_train_list_are_refused(tmp_path, capsys):
    store, cfg = _train_config(tmp_path)
    test_lines = store["test"].read_text().splitlines()[1:3]
    with open(store["train"], "a") as f:
        f.write("\n".join(test_lines) + "\n")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    ids = sorted(line.split(",")[0] for line in test_lines)
    assert (f"2 video(s) are in both the training list {store['train']} and the test list {store['test']}, "
            f"e.g. {', '.join(ids)}; a model must not train on its test videos") in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_repeated_train_lines_warn_naming_them(tmp_path, caplog):
    store, cfg = _train_config(tmp_path)
    lines = store["train"].read_text().splitlines()
    store["train"].write_text("\n".join([*lines, lines[2]]) + "\n")  # line 6 repeats line 3
    assert main(["train", "--config", str(cfg), "run.max_steps=1"]) == 0
    vid = lines[2].split(",")[0]
    assert (f"{store['train']}: 1 repeated line(s) ignored, each video is used once: {store['train']}:6 repeats "
            f"{store['train']}:3 ({vid})") in caplog.text


# A folder of class folders (annotations.format=folder, tstam split): real clips, 2 classes x 3.
def _folder(root: Path, classes=("Jump Rope", "wave"), per_class: int = 3) -> Path:
    from helpers.clips import drifting_clip

    for k, c in enumerate(classes):
        for i in range(per_class):
            drifting_clip(root / c / f"IMG_{i}.{'mp4' if i % 2 else 'avi'}", 4, 3 * k + i, h=32, w=32)
    return root


def _train_folder(tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--config", "scratch_rgb", "--no-progress", f"annotations.path={tmp_path / 'mydata'}",
            f"data.root={tmp_path / 'frames'}", f"run.out_dir={tmp_path / 'run'}", "model.input_size=32",
            "model.width_mult=0.125", "run.device=cpu", "data.batch_size=2", "data.workers=0", *extra]


def test_folder_with_one_class_is_refused(tmp_path, capsys):
    _folder(tmp_path / "mydata", classes=("only",))
    assert main(["split", str(tmp_path / "mydata"), "--out", str(tmp_path / "splits")]) == 2
    assert main(_train_folder(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count(f"{tmp_path / 'mydata'}: 1 class folder(s) ('only'); a dataset folder needs one sub-folder per "
                     "class and at least 2 classes") == 2 and "Traceback" not in err
    assert not (tmp_path / "splits").exists() and not (tmp_path / "run").exists()


def test_empty_class_folder_is_refused(tmp_path, capsys):
    _folder(tmp_path / "mydata")
    (tmp_path / "mydata" / "Empty one" / "sub").mkdir(parents=True)
    (tmp_path / "mydata" / "Empty one" / "notes.txt").write_text("not a video\n")
    assert main(["split", str(tmp_path / "mydata"), "--out", str(tmp_path / "splits")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'mydata' / 'Empty one'}: class folder holds no video (looked for .3gp, .avi" in err
    assert "add its videos or remove the folder" in err and not (tmp_path / "splits").exists()


def test_unreadable_clip_inside_a_class_folder(tmp_path, capsys):
    _folder(tmp_path / "mydata")
    bad = tmp_path / "mydata" / "wave" / "IMG_9.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    code = main(["extract", str(tmp_path / "mydata"), "--out", str(tmp_path / "frames"), "--flow", "none",
                 "--size", "32x32", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"FAILED {bad}:" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "frames").iterdir() if (p / "meta.json").exists()) == \
        ["Jump Rope__IMG_0", "Jump Rope__IMG_1", "Jump Rope__IMG_2", "wave__IMG_0", "wave__IMG_1",
         "wave__IMG_2"]  # the readable ones, named by folder (IMG_0.. repeat)
    # training on the folder then names the clip the store lacks (in the training part: the split is
    # written and the clip's row moved there, so that the test does not rest on the seed)
    assert main(["split", str(tmp_path / "mydata"), "--out", str(tmp_path / "splits"), "--val", "0"]) == 0
    rows = {n: (tmp_path / "splits" / n).read_text().splitlines() for n in ("train.csv", "test.csv")}
    row = next(r for r in rows["train.csv"] + rows["test.csv"] if r.startswith("wave/IMG_9.mp4,"))
    rows = {n: [r for r in lines if r != row] + ([row] if n == "train.csv" else []) for n, lines in rows.items()}
    for n, lines in rows.items():
        (tmp_path / "splits" / n).write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(_train_folder(tmp_path, f"annotations.split_dir={tmp_path / 'splits'}")) == 2
    err = capsys.readouterr().err
    assert "1 problem(s) in the frame store" in err and \
        f"{tmp_path / 'frames' / 'IMG_9'}: frame folder does not exist (not extracted? wrong root?)" in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_split_whose_classes_differ_from_the_folder_is_refused(tmp_path, capsys):
    _folder(tmp_path / "mydata")
    assert main(["split", str(tmp_path / "mydata"), "--out", str(tmp_path / "splits"), "--val", "0"]) == 0
    train = tmp_path / "splits" / "train.csv"
    train.write_text(train.read_text().replace(",wave,", ",Wave Hello,"))
    assert main(_train_folder(tmp_path, f"annotations.split_dir={tmp_path / 'splits'}")) == 2
    err = capsys.readouterr().err
    assert (f"{train}: its classes differ from the dataset folder's (not class folders of {tmp_path / 'mydata'}: "
            "['Wave Hello']; class folders it lacks: ['wave'])") in err
    assert f"tstam split {tmp_path / 'mydata'} --out {tmp_path / 'splits'}" in err and "Traceback" not in err


def test_store_whose_meta_disagrees_with_the_config_is_refused(tmp_path, capsys):
    _folder(tmp_path / "mydata")
    assert main(["extract", str(tmp_path / "mydata"), "--out", str(tmp_path / "frames"), "--size", "32x32",
                 "--no-progress"]) == 0  # TV-L1, bound 20
    assert main(_train_folder(tmp_path, "data.resize=[48,64]", "annotations.val_fraction=0")) == 2
    err = capsys.readouterr().err
    assert ("data.resize=[48, 64] (H, W) differs from the frame store's frames of [32, 32] (32x32, "
            f"{tmp_path / 'frames'}/") in err and "extract again with --size 64x48" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    flow = _train_folder(tmp_path, "model.modality=flow", "model.preprocess=null", "data.flow.algorithm=farneback",
                         "annotations.val_fraction=0")
    assert main(flow) == 2
    err = capsys.readouterr().err
    assert "data.flow {'algorithm': 'farneback'" in err and "differs from the frame store's {'algorithm': 'tvl1'" in err
    assert "remove data.flow or re-extract the store" in err and not (tmp_path / "run").exists()
