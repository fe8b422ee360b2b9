"""``tstam demo``: generate -> extract -> train RGB and flow -> test -> fuse 1:3 -> report.

Every stage logs what it does; a second run with the same ``out`` reuses the finished stages
(the benchmark, the extracted frames and flow, each trained stream whose recipe is unchanged)
and says so. Layout of ``out``::

    bench/            the synthetic benchmark (videos, UCF101 split files, annotations.json)
    frames/           the frame store (RGB and flow JPEGs)
    runs/<stream>/    checkpoints, metrics.csv, curves.png, done.json (the recipe that finished)
    scores/           per-video score files of rgb, flow and fused
    report/           report.md and its pictures
    (runs/<stream>_paper/, scores/*_paper.npz, report_paper/: the same with ``paper=True``)
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tstam.demo.config import DemoConfig, demo_threads, stream_config, synth_config
from tstam.errors import VideoError
from tstam.files import check_writable_dir

__all__ = ["DemoResult", "run_demo", "prepare_data", "train_stream", "evaluate_stream", "torch_threads"]

log = logging.getLogger(__name__)
STREAMS = ("rgb", "flow")


@dataclass
class DemoResult:
    """What the demo measured and where it wrote it."""

    report: Path                                     # report.md
    top1: dict[str, float]                           # rgb, flow, fused
    groups: dict[str, dict[str, float]]              # stream -> group -> top-1
    attention: dict[str, dict[str, float]]           # stream -> share_in_window / uniform_share
    seconds: dict[str, float] = field(default_factory=dict)  # per stage
    reused: list[str] = field(default_factory=list)  # stages skipped because they were finished
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # stream -> model options beyond the paper
    weights: tuple[float, float] = (1.0, 3.0)        # the fusion weights RGB:flow used


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def prepare_data(cfg: DemoConfig, reused: list[str]) -> Path:
    """Generate (or reuse) the benchmark and extract (or reuse) its frames and flow; returns ``bench``."""
    bench = _stage_bench(cfg, reused)
    _stage_frames(cfg, bench, reused)
    return bench


def _stage_bench(cfg: DemoConfig, reused: list[str]) -> Path:
    from tstam.synthetic import generate

    bench = cfg.root / "bench"
    if (bench / ".complete").exists():
        reused.append("benchmark")
    log.info("[1/6] benchmark: %s preset, seed %d -> %s", cfg.synth_preset, cfg.seed, bench)
    generate(bench, synth_config(cfg), seed=cfg.seed, progress=True)
    if "benchmark" in reused:
        log.info("[1/6] benchmark: reused the finished one in %s (delete it to regenerate)", bench)
    return bench


def _stage_frames(cfg: DemoConfig, bench: Path, reused: list[str]) -> Path:
    from tstam.extract import collect_sources, extract_many
    from tstam.flow import FlowConfig

    frames = cfg.root / "frames"
    sources = collect_sources(bench / "videos")
    log.info("[2/6] frames and %s optical flow of %d videos at %dx%d -> %s", cfg.flow, len(sources),
             cfg.frame_size, cfg.frame_size, frames)
    workers = cfg.extract_workers or (os.cpu_count() or 1)
    rep = extract_many(sources, frames, workers=workers, flow=FlowConfig(algorithm=cfg.flow, bound=cfg.flow_bound),
                       size=(cfg.frame_size, cfg.frame_size))
    if rep.failed:
        raise VideoError(f"extraction failed for {len(rep.failed)} video(s), e.g. {rep.failed[0][0]}: {rep.failed[0][1]}")
    if not rep.done:
        reused.append("frames")
        log.info("[2/6] frames: all %d videos were already extracted; reused", len(rep.skipped))
    else:
        log.info("[2/6] frames: %d videos extracted (%d reused) in %.1f s", len(rep.done), len(rep.skipped), rep.seconds)
    return frames


def _same_recipe(done: Any, want: dict[str, Any]) -> bool:
    """Whether a finished run's stored config is ``want``, also when an older tstam wrote it (read
    back through today's loader, which accepts and normalises older configs)."""
    from tstam.config import ConfigError
    from tstam.engine.config import load_train_config

    if done == want or not isinstance(done, dict):
        return done == want
    old = json.loads(json.dumps(done))
    if isinstance(old.get("data"), dict):  # tstam 0.1: VideoDataset's bound, unused with a frame store
        old["data"].pop("flow_bound", None)
    try:
        return json.loads(json.dumps(load_train_config(old).to_dict())) == want
    except (ConfigError, TypeError, ValueError):
        return False


def train_stream(tcfg: Any, label: str, reused: list[str]) -> Path:
    """Train one stream as ``tcfg`` says, unless ``run.out_dir/done.json`` holds the same recipe.

    Returns the checkpoint (``last.pt``: the end of the schedule)."""
    from tstam.engine.rundir import remove_run
    from tstam.engine.train import fit

    out = Path(tcfg.run.out_dir)
    done = out / "done.json"
    want = json.loads(json.dumps(tcfg.to_dict()))
    if done.is_file() and (out / "last.pt").is_file() and _same_recipe(json.loads(done.read_text()).get("config"), want):
        reused.append(f"train {label}")
        log.info("train %s: reused the finished run in %s (same recipe)", label, out)
        return out / "last.pt"
    m = tcfg.model
    log.info("train %s: %s head, width %.2f, input %d, %d segments, %d heads, %d epochs, batch %d, lr %g -> %s",
             label, m.head, m.width_mult, m.input_size, m.num_segments, m.num_heads, tcfg.optim.epochs,
             tcfg.data.batch_size, tcfg.optim.lr, out)
    done.unlink(missing_ok=True)
    remove_run(out)  # a run of another recipe, or one cut off: trained again from the start
    t = time.perf_counter()
    row = fit(tcfg)
    took = time.perf_counter() - t
    val = row.get("val_top1")
    log.info("train %s: done in %.0f s%s", label, took, "" if val is None else f", last validation top-1 {100 * val:.1f} %")
    done.write_text(json.dumps({"config": want, "seconds": took}, indent=1, sort_keys=True))
    return out / "last.pt"


def evaluate_stream(tcfg: Any, ckpt: Path, out: Path, workers: int = 0) -> Any:
    """The test protocol (``tcfg.data.test_frames`` x ``test_crops``) on the test list; saves ``out``."""
    from tstam.checkpoint import load_stream
    from tstam.engine.annotations import load_split
    from tstam.engine.scores import save_scores
    from tstam.engine.testing import score_stream

    _train, _val, test, classes = load_split(tcfg.annotations, tcfg.data)
    log.info("test %s: %d videos x %d frames x %d crop(s)", tcfg.model.modality, len(test), tcfg.data.test_frames,
             tcfg.data.test_crops)
    scores = score_stream(load_stream(ckpt), test, root=tcfg.data.root, data=tcfg.data, classes=classes,
                          workers=workers, meta={"split": 1, "subset": "test"})
    save_scores(out, scores)
    log.info("test %s: top-1 %.4f", tcfg.model.modality, scores.summary()["top1"])
    return scores


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run the whole demo as ``cfg`` says and write the report; see the module docstring."""
    from tstam.demo.analysis import analyse_stream, group_accuracy
    from tstam.demo.report import model_options, write_report
    from tstam.engine.fuse import fuse
    from tstam.engine.scores import save_scores
    from tstam.synthetic import load_annotations

    check_writable_dir(cfg.root)  # before any work
    seconds: dict[str, float] = {}
    reused: list[str] = []
    t = time.perf_counter()
    bench = _stage_bench(cfg, reused)
    seconds["benchmark"] = time.perf_counter() - t
    t = time.perf_counter()
    _stage_frames(cfg, bench, reused)
    seconds["frames"] = time.perf_counter() - t
    ckpts, scores = {}, {}
    tcfgs = {stream: stream_config(cfg, stream) for stream in STREAMS}
    with torch_threads(demo_threads(cfg)):
        log.info("torch threads: %d", torch.get_num_threads())
        for stream in STREAMS:
            t = time.perf_counter()
            log.info("[3/6] train %s", stream)
            ckpts[stream] = train_stream(tcfgs[stream], stream, reused)
            seconds[f"train {stream}"] = time.perf_counter() - t
        for stream in STREAMS:
            t = time.perf_counter()
            log.info("[4/6] test %s", stream)
            scores[stream] = evaluate_stream(tcfgs[stream], ckpts[stream],
                                         cfg.root / "scores" / f"{stream}{cfg.suffix}.npz", cfg.workers)
            seconds[f"test {stream}"] = time.perf_counter() - t
        t = time.perf_counter()
        log.info("[5/6] fuse RGB:flow = %g:%g and analyse attention", *cfg.fusion_weights)
        fused = fuse([scores["rgb"], scores["flow"]], list(cfg.fusion_weights), names=["rgb", "flow"])
        save_scores(cfg.root / "scores" / f"fused{cfg.suffix}.npz", fused)
        scores["fused"] = fused
        ann = load_annotations(bench)
        groups = {name: group_accuracy(s, ann) for name, s in scores.items()}
        attention = {}
        for stream in STREAMS:
            attention[stream] = analyse_stream(ckpts[stream], scores[stream].video_ids, ann, tcfgs[stream].data)
        seconds["fuse and attention"] = time.perf_counter() - t
        t = time.perf_counter()
        log.info("[6/6] report")
        top1 = {name: float(s.summary()["top1"]) for name, s in scores.items()}
        report = write_report(cfg, bench=bench, ckpts=ckpts, scores=scores, groups=groups, attention=attention,
                              annotations=ann, seconds=seconds, reused=reused)
        seconds["report"] = time.perf_counter() - t
    summary = {name: {k: v for k, v in a.items() if not isinstance(v, list)} for name, a in attention.items()}
    options = {s: model_options(t.model) for s, t in tcfgs.items()}
    return DemoResult(report, top1, groups, summary, seconds, reused, options, cfg.fusion_weights)
