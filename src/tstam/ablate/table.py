"""The grid's tables (``table.md``, ``table.csv``, ``claims.csv``) and pictures (``ablation.png``,
``alpha.png``), rebuilt from every finished run's row (and those rows as ``runs.csv``, ``rows.py``)."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tstam.demo import INTERVENTIONS
from tstam.files import write_text_atomic

from .claims import ClaimResult, check_claims
from .rows import EVIDENCE, RUNS_NAME, write_runs
from .stats import t_quantile

__all__ = ["summarize", "write_tables", "claims_markdown", "plot_table", "plot_alpha"]

FIELDS = ["group", "setting", "stream", "epochs", "seeds", "top1_mean", "top1_sd", "params", "train_s",
          "share_in_window", "uniform_share", *(f"top1/{n}" for n in INTERVENTIONS), *EVIDENCE]


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (group, setting) in first-seen order: means over seeds (top-1 with its sample
    sd), and the analysis means (alpha share, intervention top-1, evidence sums)."""
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["group"], r["setting"]), {}).setdefault(int(r["seed"]), r)
    out = []
    for (group, setting), seeds in by.items():
        rs = list(seeds.values())
        acc = np.array([r["top1"] for r in rs])
        line = {"group": group, "setting": setting, "stream": rs[0]["stream"], "epochs": rs[0].get("epochs"),
                "seeds": len(rs), "top1_mean": float(acc.mean()),
                "top1_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, "params": rs[0]["params"],
                "train_s": float(np.mean([r["train_s"] for r in rs]))}
        for key in FIELDS[9:]:
            line[key] = _mean(rs, key)
        out.append(line)
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f}"


def claims_markdown(results: Sequence[ClaimResult]) -> list[str]:
    """The claims table: both sides, the paired difference with its 95 % t interval, the verdict."""
    lines = ["| topic | claim | source | seeds | a | b | a - b (95 % CI) | verdict | goal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c, d = r.claim, r.diff
        ci = f"{d.mean:+.1f} [{d.lo:+.1f}, {d.hi:+.1f}]" if d.n > 1 else f"{d.mean:+.1f} (1 seed)"
        if c.goal is None:
            goal = "-"
        else:
            want = f">= {c.goal:g}x uniform" if c.metric == "alpha" else f">= +{c.goal:g} points"
            if c.metric == "alpha" and r.b_mean > 0:
                want += f" (is {r.a_mean / r.b_mean:.2f}x)"
            goal = f"{want}: {'met' if r.goal_met else 'not met'}"
        lines.append(f"| {c.topic} | {c.says} | {c.source} | {d.n} | {_pct(r.a_mean)} | {_pct(r.b_mean)} | {ci} | "
                     f"{r.verdict} | {goal} |")
    return lines


def write_tables(rows: Sequence[dict[str, Any]], out: Path, *, runs: bool = True) -> Path:
    """``table.csv``, ``claims.csv``, ``table.md`` and the pictures, and with ``runs`` the rows
    themselves as ``runs.csv``; returns ``table.md``."""
    if runs:
        write_runs(rows, out / RUNS_NAME)
    table = summarize(rows)
    results = check_claims(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(table)
    write_text_atomic(out / "table.csv", buf.getvalue())
    buf = io.StringIO()
    cw = csv.writer(buf)
    cw.writerow(["topic", "claim", "source", "seeds", "a", "b", "diff_points", "ci_lo", "ci_hi", "verdict", "goal_met"])
    for r in results:
        cw.writerow([r.claim.topic, r.claim.says, r.claim.source, r.diff.n, r.a_mean, r.b_mean, r.diff.mean,
                     r.diff.lo, r.diff.hi, r.verdict, r.goal_met])
    write_text_atomic(out / "claims.csv", buf.getvalue())
    # each claim's interval uses the t value of its own number of paired seeds; name every one in use
    t_values = ", ".join(f"{t_quantile(k - 1):.3f} at {k} seeds" for k in sorted({r.diff.n for r in results if r.diff.n > 1}))
    lines = ["# T-STAM ablations on the synthetic benchmark", "",
             "Top-1 on the test clips (25 snippets x 1 centre crop), mean +- sample sd over training seeds "
             "(same benchmark, benchmark seed 0). Flow stream unless noted; fusion rows from the saved scores of "
             "the reference RGB and flow runs. Epochs: per run (short groups rank variants, they are not converged). "
             "Train s: seconds per run on this machine (shared; compare within the table only).", "",
             "Alpha: share of the temporal weights on the test snippets inside the true action window, uniform "
             "share in brackets. d uniform / d window / d outside / d reversed: change of top-1 (points) when the "
             "model's alpha is replaced by uniform weights, by uniform weights on the window (oracle), on the rest "
             "of the clip, or by its own weights in reversed rank order (TSN and spatial-only: their frame "
             "weights).", "",
             "| group | setting | stream | epochs | seeds | top-1 | params | train s | alpha in window | d uniform | "
             "d window | d outside | d reversed |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        alpha = f"{_pct(r['share_in_window'])} ({_pct(r['uniform_share'])})" if r["share_in_window"] is not None else "-"
        own = r["top1/own"]
        deltas = " | ".join("-" if r[f"top1/{k}"] is None or own is None else f"{100 * (r[f'top1/{k}'] - own):+.1f}"
                            for k in INTERVENTIONS[1:])
        lines.append(f"| {r['group']} | {r['setting']} | {r['stream']} | {r['epochs']} | {r['seeds']} | "
                     f"{100 * r['top1_mean']:.1f} +- {100 * r['top1_sd']:.1f} | {r['params']:,} | {r['train_s']:.0f} | "
                     f"{alpha} | {deltas} |")
    lines += ["", "## Where the evidence comes from", "",
              "True-class logit (centred over classes) that the test snippets inside / outside the action window "
              "add through f_t (temporal) and through the f_sj (spatial), summed per clip, mean over clips and "
              "seeds; value: per-snippet mean of the temporal term with weight 1 (what the classifier reads in "
              "x_hat_i). TSN: its consensus terms (frames).", "",
              "| group | setting | temporal in | temporal out | value in | value out | spatial in | spatial out | "
              "frames in | frames out |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        if r["stream"] != "fused" and r["frames_in"] is not None:
            lines.append(f"| {r['group']} | {r['setting']} | " + " | ".join(_num(r[k]) for k in EVIDENCE) + " |")
    lines += ["", "## Claims", "",
              f"Paired per-seed difference a - b (points), 95 % Student-t interval (t_0.975 = {t_values or 'none'}); "
              "verdict from the interval: agrees (above 0), disagrees (below 0), inconclusive "
              "(holds 0). Alpha claims: a = share of alpha in the window, b = the uniform share.", ""]
    lines += claims_markdown(results)
    path = out / "table.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    plot_table(table, out / "ablation.png")
    plot_alpha(table, out / "alpha.png")
    return path


def plot_table(table: Sequence[dict[str, Any]], path: Path) -> Path:
    """One bar panel per group: mean top-1 with the sd as error bar."""
    from tstam.plotting import pyplot

    plt = pyplot()
    groups = list(dict.fromkeys(r["group"] for r in table)) or ["(none)"]
    fig, axes = plt.subplots(1, len(groups), figsize=(3.0 * len(groups), 3.8), squeeze=False)
    for ax, g in zip(axes[0], groups):
        rs = [r for r in table if r["group"] == g]
        ax.bar(range(len(rs)), [100 * r["top1_mean"] for r in rs], yerr=[100 * r["top1_sd"] for r in rs],
               color="tab:blue", capsize=3)
        ax.set_xticks(range(len(rs)), [r["setting"] for r in rs], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{g} ({rs[0]['epochs']} ep)" if rs else g, fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_ylabel("top-1 %", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_alpha(table: Sequence[dict[str, Any]], path: Path) -> Path:
    """Alpha's share in the action window against the uniform share, per setting with temporal attention."""
    from tstam.plotting import pyplot

    plt = pyplot()
    rs = [r for r in table if r.get("share_in_window") is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(rs) + 1.5), 3.8))
    x = np.arange(len(rs))
    ax.bar(x - 0.2, [100 * r["share_in_window"] for r in rs], 0.4, label="alpha in window", color="tab:blue")
    ax.bar(x + 0.2, [100 * r["uniform_share"] for r in rs], 0.4, label="uniform", color="tab:grey")
    ax.set_xticks(x, [f"{r['setting']} ({r['group']})" for r in rs], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("% of alpha in the action window", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
