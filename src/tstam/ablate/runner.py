"""Training, testing and analysing the grid's runs; each finished run is reused.

Every run writes ``runs/<stream>_<variant>_e<epochs>[<overrides>]_s<seed>/`` (checkpoint, ``done.json``,
``scores.npz``) and, last, ``row.json``: its top-1, size, training time and the analysis of
``tstam.demo.analyse_stream`` (where alpha looks, interventions, per-frame evidence). The tables
are rebuilt from every ``row.json`` on disk, so a grid can be stopped and continued, run in parts
(``--only``, ``--seeds``) or by two processes at once, and the tables always show all of it. Every
row is also written to ``runs.csv`` (``rows.py``), from which the tables can be rebuilt where the run
folders are not (``tables_from_csv``, or ``--tables-only`` in a folder holding only the tables).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tstam.files import check_writable_dir

from .rows import RUNS_NAME, read_runs, runs_path
from .settings import FUSION_WEIGHTS, GROUPS, REFERENCE, AblateConfig, Setting, demo_config, grid, train_config

__all__ = ["ANALYSIS_VERSION", "run_one", "fusion_rows", "collect_rows", "tables_from_csv", "run_ablation"]

log = logging.getLogger(__name__)

ANALYSIS_VERSION = 1  # bump when analyse_stream changes what it measures: cached rows are redone
RGB_REFERENCE = Setting("reference rgb", (), "rgb")
FUSED_WITH = ("baselines", "options")


def run_one(cfg: AblateConfig, setting: Setting, seed: int, *, short: bool = False) -> dict[str, Any]:
    """Train (or reuse), test and analyse one setting for one seed; returns its ``row.json``."""
    from tstam.checkpoint import load_stream
    from tstam.demo import analyse_stream, evaluate_stream, train_stream
    from tstam.engine.scores import load_scores
    from tstam.synthetic import load_annotations

    tcfg = train_config(cfg, setting, seed, short=short)
    out = Path(tcfg.run.out_dir)
    row_path = out / "row.json"
    reused: list[str] = []
    t = time.perf_counter()
    ckpt = train_stream(tcfg, f"{setting.name} seed {seed}", reused)
    if not reused:  # a new checkpoint: what was measured on the old one no longer holds
        row_path.unlink(missing_ok=True)
    if row_path.is_file():
        row = json.loads(row_path.read_text())
        if row.get("analysis_version") == ANALYSIS_VERSION:
            return row
    score_path = out / "scores.npz"
    scores = load_scores(score_path) if reused and score_path.is_file() else evaluate_stream(tcfg, ckpt, score_path)
    done = json.loads((out / "done.json").read_text())
    model = load_stream(ckpt).model
    analysis = analyse_stream(ckpt, scores.video_ids, load_annotations(Path(cfg.out) / "bench"), tcfg.data)
    analysis.pop("per_clip")
    row = {"setting": setting.name, "stream": setting.stream, "seed": seed, "epochs": tcfg.optim.epochs,
           "top1": float(scores.summary()["top1"]), "params": int(sum(p.numel() for p in model.parameters())),
           "train_s": float(done.get("seconds", 0.0)), "scores": str(score_path), "run": out.name,
           "analysis_version": ANALYSIS_VERSION, **analysis, "elapsed_s": time.perf_counter() - t}
    row_path.write_text(json.dumps(row, indent=1, sort_keys=True))
    return row


def _fused(rgb: dict[str, Any], flow: dict[str, Any], weights: tuple[int, int], group: str, setting: str) -> dict[str, Any]:
    from tstam.engine.fuse import fuse
    from tstam.engine.scores import load_scores

    fused = fuse([load_scores(rgb["scores"]), load_scores(flow["scores"])], list(map(float, weights)),
                 names=["rgb", "flow"])
    return {"group": group, "setting": setting, "stream": "fused", "seed": rgb["seed"], "epochs": flow["epochs"],
            "top1": float(fused.summary()["top1"]), "params": rgb["params"] + flow["params"], "train_s": 0.0}


def fusion_rows(rgb: dict[str, Any], flow: dict[str, Any]) -> list[dict[str, Any]]:
    """The fusion weights on the saved test scores of one seed's reference RGB and flow runs."""
    out = [_fused(rgb, flow, w, "fusion", f"RGB:flow {w[0]}:{w[1]}") for w in FUSION_WEIGHTS]
    for s, r in (("rgb", rgb), ("flow", flow)):
        out.append({**{k: r[k] for k in ("stream", "seed", "epochs", "top1", "params", "train_s")},
                    "group": "fusion", "setting": f"{s} alone"})
    return out


def _finished(cfg: AblateConfig, setting: Setting, short: bool) -> Iterator[dict[str, Any]]:
    """The ``row.json`` of every seed of one setting found on disk."""
    prefix = Path(train_config(cfg, setting, 0, short=short).run.out_dir).name[: -len("_s0")]
    for path in sorted((Path(cfg.out) / "runs").glob(f"{prefix}_s*/row.json")):
        row = json.loads(path.read_text())
        if row.get("analysis_version") == ANALYSIS_VERSION:
            yield row


def collect_rows(cfg: AblateConfig) -> list[dict[str, Any]]:
    """Every finished run of every group (not only ``cfg.only``), in grid order, with its group."""
    rows: list[dict[str, Any]] = []
    for group, grp in GROUPS.items():
        for setting in grp.settings:
            rows += [{**r, "group": group, "setting": setting.name} for r in _finished(cfg, setting, grp.short)]
    flows = {r["seed"]: r for r in _finished(cfg, REFERENCE, False)}
    rgbs = {r["seed"]: r for r in _finished(cfg, RGB_REFERENCE, False)}
    for seed, r in rgbs.items():
        if seed in flows:
            rows += fusion_rows(r, flows[seed])
    for group in FUSED_WITH:  # each full-budget flow variant fused 1:3 with the same seed's RGB reference
        rows += [_fused(rgbs[f["seed"]], f, (1, 3), "fused", f["setting"]) for f in rows
                 if f["group"] == group and f["seed"] in rgbs]
    return rows


def tables_from_csv(source: str | Path, out: str | Path) -> Path:
    """Rebuild the tables and pictures of a grid in ``out`` from a ``runs.csv`` alone (``source``: the
    file or a folder holding it; no run folder is needed); returns ``table.md``."""
    from .table import write_tables

    path = runs_path(source)
    target = check_writable_dir(out)  # before any work
    return write_tables(read_runs(path), target, runs=False)


def run_ablation(cfg: AblateConfig, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Run the grid seed by seed (so that a partial grid covers every row), rewriting the tables
    after each run; returns ``table.md``."""
    from tstam.demo import demo_threads, prepare_data, torch_threads

    from .table import write_tables

    out = check_writable_dir(cfg.out)  # before any work
    if not cfg.train:
        rows = collect_rows(cfg)
        if not rows and (out / RUNS_NAME).is_file():  # the run folders are not here: their rows are
            return write_tables(read_runs(out / RUNS_NAME), out, runs=False)
        return write_tables(rows, out)
    dcfg = demo_config(cfg)
    prepare_data(dcfg, [])
    jobs = [(group, s, GROUPS[group].short) for group, s in grid(cfg)]
    if "fusion" in cfg.only:
        jobs += [("fusion", REFERENCE, False), ("fusion", RGB_REFERENCE, False)]
    with torch_threads(demo_threads(dcfg)):
        for seed in cfg.seeds:
            for group, setting, short in jobs:
                row = {**run_one(cfg, setting, seed, short=short), "group": group, "setting": setting.name}
                if on_row:
                    on_row(row)
                write_tables(collect_rows(cfg), out)
    write_tables(collect_rows(cfg), out)
    return out / "table.md"
