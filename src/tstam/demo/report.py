"""The demo's report: ``tstam report``'s report of the demo's runs (``tstam.report.write_report``:
accuracy per stream and fused, per class, confusion matrices, training curves, attention pictures
of test clips) with the demo's own sections added: the benchmark and model, accuracy per class group
(motion-only / interaction / appearance-only), the other variant's numbers, what the temporal
attention does (``analysis.analyse_stream``: its share in the true action window against uniform
weights, top-1 when alpha is replaced, where the true-class evidence comes from), the alpha of both
streams over a few clips' frames against their action windows, and the time per stage. The text
states what was measured, nothing more.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tstam.demo.analysis import INTERVENTIONS
from tstam.demo.config import DemoConfig, stream_config
from tstam.report import Clip, ReportInputs, entries_from_scores
from tstam.report import write_report as write_general_report
from tstam.report.write import take_in_turn

__all__ = ["write_report", "plot_alpha_windows", "alpha_panel", "pick_clips"]

log = logging.getLogger(__name__)

STREAMS = ("rgb", "flow")
NAMES = ("rgb", "flow", "fused")
GROUP_TEXT = {"motion": "motion-only (same look, differ in motion)",
              "interaction": "interaction (two actors, time-reversed pairs)",
              "appearance": "appearance-only (same motion, differ in colour)"}
INTERVENTION_TEXT = {"own": "its own alpha", "uniform": "uniform weights", "window": "uniform on the window (oracle)",
                     "outside": "uniform outside the window", "reversed": "its own weights in reversed rank order"}


def pick_clips(per_clip: list[dict[str, Any]], k: int) -> list[str]:
    """``k`` test clip ids, cycling through the groups so that each group is shown."""
    by_group: dict[str, list[str]] = {}
    for c in per_clip:
        by_group.setdefault(c["group"], []).append(c["video_id"])
    return take_in_turn(by_group, k)


def alpha_panel(attention: Mapping[str, Mapping[str, Any]], video_id: str) -> dict[str, Any] | None:
    """What one panel of ``plot_alpha_windows`` draws for a clip: ``window``, ``num_frames``,
    ``snippets`` and per stream its ``centres`` and ``alpha``; None when no stream has the clip."""
    series = {}
    for stream in STREAMS:
        for c in attention.get(stream, {}).get("per_clip", []):
            if c["video_id"] == video_id:
                series[stream] = c
    if not series:
        return None
    first = next(iter(series.values()))
    return {"window": tuple(first["window"]), "num_frames": first["num_frames"], "snippets": len(first["alpha"]),
            "streams": {s: (c["centres"], c["alpha"]) for s, c in series.items()}}


def plot_alpha_windows(attention: Mapping[str, Mapping[str, Any]], video_ids: list[str], path: Path) -> Path:
    """One panel per clip: alpha of each stream at its snippets' centre frames, the window shaded."""
    from tstam.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(video_ids), 1, figsize=(8, 1.9 * len(video_ids)), squeeze=False)
    for ax, vid in zip(axes[:, 0], video_ids):
        ax.set_title(vid, fontsize=9)
        panel = alpha_panel(attention, vid)
        if panel is None:
            ax.text(0.5, 0.5, "no temporal attention for this clip", ha="center", va="center", fontsize=8)
            continue
        top = 0.0
        for stream, colour in (("rgb", "tab:red"), ("flow", "tab:blue")):
            if stream in panel["streams"]:
                centres, alpha = panel["streams"][stream]
                ax.plot(centres, alpha, marker="o", ms=3, color=colour, label=f"{stream} alpha")
                top = max(top, max(alpha))
        ax.axhline(1.0 / panel["snippets"], color="grey", lw=0.8, ls="--")
        ax.axvspan(*panel["window"], color="gold", alpha=0.3, label="true action window")
        ax.set_xlim(0, panel["num_frames"])
        ax.set_ylim(0, max(1.3 * top, 1.5 / panel["snippets"]))
        ax.set_ylabel("alpha", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("frame (dashed: uniform weight 1/N)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _header(cfg: DemoConfig, bench: Path, scores: Mapping[str, Any]) -> list[str]:
    info = json.loads((bench / "benchmark.json").read_text())
    tcfgs = {s: stream_config(cfg, s) for s in STREAMS}
    epochs = ", ".join(f"{s} {t.optim.epochs}" for s, t in tcfgs.items())
    options = [f"{s}: " + ", ".join(f"{k}={v}" for k, v in opts.items()) for s, opts in
               ((s, model_options(t.model)) for s, t in tcfgs.items()) if opts]
    n_test = len(scores["fused"].video_ids)
    lines = [f"Synthetic benchmark `{bench}` ({cfg.synth_preset} preset, generator version "
             f"{info.get('generator_version')}, seed {cfg.seed}; test clips come from their own seed), "
             f"{len(scores['fused'].classes)} classes, {n_test} test clips. Flow: {cfg.flow}. Model: T-STAM width "
             f"{cfg.width_mult}, input {cfg.input_size}, {cfg.num_segments} segments, trained from scratch (epochs: "
             f"{epochs}). Test: {cfg.test_frames} frames x {cfg.test_crops} crop(s). Fusion RGB:flow = "
             f"{cfg.fusion_weights[0]:g}:{cfg.fusion_weights[1]:g}.", ""]
    if options:
        lines += ["Model options beyond the paper (`tstam demo --paper` trains the paper's model instead): "
                  + "; ".join(options) + f"; fusion RGB:flow = {cfg.fusion_weights[0]:g}:{cfg.fusion_weights[1]:g} "
                  "(the paper's: 1:3).", ""]
    else:
        lines += ["Model: the paper's equations with mean frame pooling and the 2*sigmoid SE gate (no option beyond "
                  "the paper; docs/design.md, Readings).", ""]
    return lines


def model_options(model: Any) -> dict[str, Any]:
    """The model options beyond the paper that a ``ModelConfig`` turns on."""
    out: dict[str, Any] = {}
    if model.frame_pool == "alpha":
        out["frame_pool"] = "alpha"
    if model.temporal_aux_weight > 0:
        out["temporal_aux_weight"] = model.temporal_aux_weight
    return out


def _other_variant(cfg: DemoConfig) -> list[str]:
    """The other variant's numbers (default with options / the paper's model) when it ran in ``out``."""
    this, other = ("the paper's model", "the demo's options") if cfg.paper else ("the demo's options", "the paper's model")
    path = cfg.root / ("report" if cfg.paper else "report_paper") / "summary.json"
    if not path.is_file():
        flag = "" if cfg.paper else " --paper"
        return [f"This report: {this}. The other variant ({other}) has not run in this folder: "
                f"`tstam demo{flag} --out {cfg.out} --seed {cfg.seed}` adds it here.", ""]
    b = json.loads(path.read_text())
    text = (f"This report: {this}. The same benchmark and seed with {other} (`{path}`): top-1 RGB "
            f"{_pct(b['top1']['rgb'])}, flow {_pct(b['top1']['flow'])}, fused {_pct(b['top1']['fused'])}")
    fa = b.get("attention", {}).get("flow", {})
    if fa.get("share_in_window") is not None:
        text += (f"; its flow alpha puts {_pct(fa['share_in_window'])} of its weight in the action window "
                 f"(uniform {_pct(fa['uniform_share'])})")
    return [text + ".", ""]


def _accuracy(groups: Mapping[str, Mapping[str, float]]) -> list[str]:
    lines = ["## Accuracy per class group (top-1 on the test clips)", "", "| | RGB | flow | fused |", "|---|---|---|---|"]
    for g in ["all"] + [g for g in GROUP_TEXT if g in groups["rgb"]]:
        label = "all classes" if g == "all" else GROUP_TEXT[g]
        lines.append(f"| {label} | " + " | ".join(_pct(groups[n].get(g)) for n in NAMES) + " |")
    return lines + ["", "RGB cannot tell motion-only classes apart, flow cannot tell appearance-only classes apart; "
                    "the fusion should get both.", ""]


def _attention(attention: Mapping[str, Mapping[str, Any]], groups: list[str]) -> list[str]:
    lines = ["## What the temporal attention does", "",
             "Alpha in window: share of the temporal weights on the test snippets whose centre lies inside the "
             "clip's action window; uniform: the share uniform weights give (the window's share of the snippets).", "",
             "| stream | clips | alpha in window | uniform | " + " | ".join(f"{g} (uniform)" for g in groups) + " |",
             "|---|---|---|---|" + "---|" * len(groups)]
    for s, a in attention.items():
        if a.get("share_in_window") is None:
            continue
        per = " | ".join(f"{_pct(a.get(f'share_in_window/{g}'))} ({_pct(a.get(f'uniform_share/{g}'))})" for g in groups)
        lines.append(f"| {s} | {a['clips']} | {_pct(a['share_in_window'])} | {_pct(a['uniform_share'])} | {per} |")
    lines += ["", "Top-1 of each stream (25 snippets, centre crop) when alpha is replaced at test time:", "",
              "| stream | " + " | ".join(INTERVENTION_TEXT[k] for k in INTERVENTIONS) + " |",
              "|---|" + "---|" * len(INTERVENTIONS)]
    for s, a in attention.items():
        lines.append(f"| {s} | " + " | ".join(_pct(a.get(f"top1/{k}")) for k in INTERVENTIONS) + " |")
    lines += ["", "True-class logit (centred over classes) that the snippets inside / outside the window add "
              "through f_t and through the spatial features, summed per clip, mean over clips:", "",
              "| stream | f_t inside | f_t outside | spatial inside | spatial outside |", "|---|---|---|---|---|"]
    for s, a in attention.items():
        lines.append(f"| {s} | " + " | ".join("-" if a.get(k) is None else f"{a[k]:+.2f}" for k in
                                              ("temporal_in", "temporal_out", "spatial_in", "spatial_out")) + " |")
    lines.append("")
    for s, a in attention.items():
        lines += _attention_text(s, a)
    return lines


def _attention_text(stream: str, a: Mapping[str, Any]) -> list[str]:
    """What the measurements of one stream say, in words (no mechanism they do not measure)."""
    share, uni = a.get("share_in_window"), a.get("uniform_share")
    if share is None:
        return []
    side = "more" if share > uni else "less"
    own = a["top1/own"]
    change = ", ".join(f"by {INTERVENTION_TEXT[k]} {100 * (a[f'top1/{k}'] - own):+.1f}"
                       for k in ("uniform", "window", "outside"))
    return [f"The {stream} stream's alpha puts {side} weight in the action window than uniform weights "
            f"({_pct(share)} against {_pct(uni)}). Replacing it at test time changes top-1 (points) {change}. "
            f"Through f_t the window's snippets add {a['temporal_in']:+.2f} to the true class's logit and the "
            f"other snippets {a['temporal_out']:+.2f} (per clip, centred over classes).", ""]


def _alpha_windows(out: Path, attention: Mapping[str, Mapping[str, Any]], chosen: list[str]) -> list[str]:
    if not chosen:
        return []
    plot_alpha_windows(attention, chosen, out / "alpha_windows.png")
    return ["### Alpha against the action window", "", "Temporal weights of both streams over the frames of the clips "
            "drawn below; the shaded band is the true action window.", "",
            "![alpha against the action window](alpha_windows.png)", ""]


def write_report(cfg: DemoConfig, *, bench: Path, ckpts: Mapping[str, Path], scores: Mapping[str, Any],
                 groups: Mapping[str, Mapping[str, float]], attention: Mapping[str, Mapping[str, Any]],
                 annotations: Mapping[str, Any], seconds: Mapping[str, float], reused: list[str]) -> Path:
    """Write ``<out>/report/report.md``, its pictures and ``summary.json``; returns the Markdown file."""
    from tstam.inference import Recognizer

    out = cfg.root / f"report{cfg.suffix}"
    out.mkdir(parents=True, exist_ok=True)
    files = {n: cfg.root / "scores" / f"{n}{cfg.suffix}.npz" for n in NAMES}
    splits = entries_from_scores([(str(files[n]), scores[n]) for n in NAMES],
                                 run_folders=[Path(ckpts[n]).parent if n in ckpts else None for n in NAMES])
    w = ":".join(f"{x:g}" for x in cfg.fusion_weights)
    why = "the paper's" if cfg.paper and cfg.weights is None else "the demo's (docs/demo.md)" if cfg.weights is None else "given"
    inputs = ReportInputs(splits, {split: f"RGB:flow = {w}, {why}" for split in splits})
    group_names = [g for g in GROUP_TEXT if g in groups["rgb"]]
    per_clip = (attention.get("flow") or {}).get("per_clip") or (attention.get("rgb") or {}).get("per_clip", [])
    chosen = pick_clips(per_clip, cfg.attention_clips)
    clips = [Clip(vid, bench / "videos" / annotations[vid].path,
                  f"**{vid}** ({annotations[vid].class_name}, {annotations[vid].group}; action in frames "
                  f"{annotations[vid].window[0]}-{annotations[vid].window[1] - 1})") for vid in chosen]
    recognizer = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"], weights=list(cfg.fusion_weights))
    extra = _accuracy(groups) + _other_variant(cfg) + _attention(attention, group_names) + _alpha_windows(out, attention, chosen)
    closing = ["## Time", "", "| stage | seconds |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in seconds.items()]
    if reused:
        closing += ["", "Reused from an earlier run: " + ", ".join(reused) + "."]
    summary = {"groups": groups, "seconds": dict(seconds), "reused": reused,
               "attention": {s: {k: v for k, v in a.items() if k != "per_clip"} for s, a in attention.items()}}
    return write_general_report(inputs, out, title="T-STAM demo report", intro=_header(cfg, bench, scores), extra=extra,
                                closing=closing, clips=clips, recognizer=recognizer, summary_extra=summary)
