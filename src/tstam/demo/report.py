"""The demo's report: ``report/report.md`` with its PNGs (curves, confusion matrices, attention).

Contents: the three accuracies, accuracy per class group (motion-only / interaction /
appearance-only), what the temporal attention does (``analysis.analyse_stream``: its share in the
true action window against uniform weights, top-1 when alpha is replaced, where the true-class
evidence comes from), the training curves and confusion matrices of each stream and of the fusion,
and for a few test clips the alpha of both streams over the clip's frames against its action
window, plus the per-head spatial maps (``tstam.visualize.attention_figure``). The text states
what was measured, nothing more.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tstam.demo.analysis import INTERVENTIONS
from tstam.demo.config import DemoConfig, stream_config
from tstam.engine.metrics import confusion_matrix
from tstam.engine.reports import save_confusion

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
    out: list[str] = []
    while len(out) < k and any(by_group.values()):
        for g in sorted(by_group):
            if by_group[g] and len(out) < k:
                out.append(by_group[g].pop(0))
    return out


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
    lines = ["# T-STAM demo report", "",
             f"Synthetic benchmark `{bench}` ({cfg.synth_preset} preset, generator version "
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
    lines = ["## Accuracy (top-1 on the test clips)", "", "| | RGB | flow | fused |", "|---|---|---|---|"]
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


def _figures(cfg: DemoConfig, out: Path, ckpts: Mapping[str, Path], scores: Mapping[str, Any]) -> list[str]:
    lines = ["## Training curves", ""]
    for s, ck in ckpts.items():
        src = Path(ck).parent / "curves.png"
        if src.is_file():
            shutil.copy(src, out / f"curves_{s}.png")
            lines += [f"**{s}**", "", f"![{s} curves](curves_{s}.png)", ""]
    lines += ["## Confusion matrices", ""]
    for n in NAMES:
        s = scores[n]
        save_confusion(confusion_matrix(s.probs, s.labels), s.classes, out / f"confusion_{n}")
        lines += [f"**{n}**", "", f"![{n} confusion](confusion_{n}.png)", ""]
    return lines


def _clips(cfg: DemoConfig, out: Path, bench: Path, ckpts: Mapping[str, Path],
           attention: Mapping[str, Mapping[str, Any]], annotations: Mapping[str, Any]) -> list[str]:
    from tstam.inference import Recognizer
    from tstam.visualize import attention_figure

    per_clip = (attention.get("flow") or {}).get("per_clip") or (attention.get("rgb") or {}).get("per_clip", [])
    chosen = pick_clips(per_clip, cfg.attention_clips)
    if not chosen:
        return []
    plot_alpha_windows(attention, chosen, out / "alpha_windows.png")
    lines = ["## Attention on test clips", "", "Temporal weights of both streams over each clip's frames; the shaded "
             "band is the true action window.", "", "![alpha against the action window](alpha_windows.png)", ""]
    rec = Recognizer.from_paths(rgb=ckpts["rgb"], flow=ckpts["flow"], weights=list(cfg.fusion_weights))
    for vid in chosen:
        ann = annotations[vid]
        pred = rec.predict(bench / "videos" / ann.path, num_snippets=cfg.test_frames)
        png = attention_figure(pred, out / f"attention_{vid}.png")
        lines += [f"**{vid}** ({ann.class_name}, {ann.group}; action in frames {ann.window[0]}-{ann.window[1] - 1}"
                  f"): predicted {pred.label}", "", f"![attention {vid}]({png.name})", ""]
    return lines


def write_report(cfg: DemoConfig, *, bench: Path, ckpts: Mapping[str, Path], scores: Mapping[str, Any],
                 groups: Mapping[str, Mapping[str, float]], attention: Mapping[str, Mapping[str, Any]],
                 annotations: Mapping[str, Any], seconds: Mapping[str, float], reused: list[str]) -> Path:
    """Write ``<out>/report/report.md``, its pictures and ``summary.json``; returns the Markdown file."""
    out = cfg.root / f"report{cfg.suffix}"
    out.mkdir(parents=True, exist_ok=True)
    group_names = [g for g in GROUP_TEXT if g in groups["rgb"]]
    lines = _header(cfg, bench, scores) + _accuracy(groups) + _other_variant(cfg) + _attention(attention, group_names)
    lines += _figures(cfg, out, ckpts, scores) + _clips(cfg, out, bench, ckpts, attention, annotations)
    lines += ["## Time", "", "| stage | seconds |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in seconds.items()]
    if reused:
        lines += ["", "Reused from an earlier run: " + ", ".join(reused) + "."]
    summary = {"top1": {n: float(scores[n].summary()["top1"]) for n in NAMES}, "groups": groups,
               "attention": {s: {k: v for k, v in a.items() if k != "per_clip"} for s, a in attention.items()},
               "seconds": dict(seconds), "reused": reused}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    log.info("report written to %s", path)
    return path
