"""The claims the grid tests, as data: the paper's (docs/design.md, The paper's claims) and ours beyond it.

Each claim says that setting ``a`` scores higher than setting ``b`` (top-1, or for ``metric="alpha"``
that a setting's temporal weights put more mass in the action window than uniform weights). It is
tested on the paired per-seed difference (``stats.paired``) and its verdict follows the interval.
A claim with a ``goal`` also asks for a mean difference of at least that many points (for alpha: a
share at least ``goal`` times the uniform share) with the interval above 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .settings import FUSION_WEIGHTS, REFERENCE
from .stats import Paired, paired

__all__ = ["Claim", "CLAIMS", "ClaimResult", "by_seed", "check_claims"]

REF = REFERENCE.name
SHORT_REF = ("design", REF)


@dataclass(frozen=True)
class Claim:
    """``a`` beats ``b``: each a (group, setting) of the table; ``b`` None for an alpha claim."""

    topic: str
    says: str
    a: tuple[str, str]
    b: tuple[str, str] | None
    source: str = "paper"           # "paper", or "ours" (our design choices and the options beyond the paper)
    metric: str = "top1"            # "top1", or "alpha": share of alpha in the window minus the uniform share
    goal: float | None = None    # top1: points; alpha: share / uniform share


def _alpha(group: str, setting: str, source: str, goal: float | None = None) -> Claim:
    return Claim("Temporal attention (3)", f"{setting}: alpha puts more weight in the action window than uniform",
                 (group, setting), None, source, "alpha", goal)


CLAIMS: tuple[Claim, ...] = (
    Claim("Segments (4.3.1)", "6 segments beat 3", ("segments", "segments=6"), ("segments", "segments=3")),
    Claim("Segments (4.3.1)", "4 segments beat 3", ("segments", "segments=4"), ("segments", "segments=3")),
    Claim("Heads (4.3.2)", "4 heads beat 1", ("heads", "heads=4"), ("heads", "heads=1")),
    Claim("Heads (4.3.2)", "4 heads beat 5", ("heads", "heads=4"), ("heads", "heads=5")),
    *(Claim("Fusion (4.3.3)", f"RGB:flow 1:3 beats {a}:{b}", ("fusion", "RGB:flow 1:3"), ("fusion", f"RGB:flow {a}:{b}"))
      for a, b in FUSION_WEIGHTS if (a, b) != (1, 3)),
    Claim("Fusion (4.3.3)", "flow alone beats RGB alone", ("fusion", "flow alone"), ("fusion", "rgb alone")),
    Claim("Fusion (4.3.3)", "fusion 1:3 beats flow alone", ("fusion", "RGB:flow 1:3"), ("fusion", "flow alone")),
    Claim("SE (4.3.4)", "SE on beats SE off", ("se", "SE on"), ("se", "SE off")),
    Claim("Baselines (4.3.5)", "T-STAM beats TSN average consensus", ("baselines", REF),
          ("baselines", "TSN average consensus"), goal=5.0),
    Claim("Baselines (4.3.5)", "T-STAM beats temporal attention only", ("baselines", REF),
          ("baselines", "temporal attention only")),
    Claim("Baselines (4.3.5)", "T-STAM beats spatial attention only", ("baselines", REF),
          ("baselines", "spatial attention only")),
    Claim("Baselines (ours)", "temporal attention only beats TSN average consensus",
          ("baselines", "temporal attention only"), ("baselines", "TSN average consensus"), "ours", goal=5.0),
    Claim("Baselines (4.3.5)", "two-stream T-STAM beats two-stream TSN (both fused 1:3)", ("fused", REF),
          ("fused", "TSN average consensus")),
    Claim("Design (4.3.5)", "the CNN temporal attention beats the LSTM one", SHORT_REF, ("design", "LSTM temporal attention")),
    Claim("Design (ours)", "mean frame pooling beats the paper's sum", SHORT_REF, ("design", "sum frame pooling"), "ours"),
    _alpha("baselines", REF, "paper"),
    _alpha("baselines", "temporal attention only", "ours"),
    *(c for opt in ("alpha frame pooling", "auxiliary temporal loss", "alpha pooling + aux loss") for c in (
        Claim("Options (ours)", f"{opt} beats the paper's T-STAM", ("options", opt), ("baselines", REF), "ours"),
        Claim("Options (ours)", f"{opt} beats TSN average consensus", ("options", opt),
              ("baselines", "TSN average consensus"), "ours", goal=5.0),
        Claim("Options (ours)", f"fused 1:3 with {opt} beats fused with the paper's T-STAM", ("fused", opt),
              ("fused", REF), "ours"),
        _alpha("options", opt, "ours", goal=1.5))),
)


@dataclass
class ClaimResult:
    claim: Claim
    a_mean: float                   # mean over the paired seeds (alpha: the share)
    b_mean: float                   # (alpha: the uniform share)
    diff: Paired                    # a - b per seed, in points (x100)

    @property
    def verdict(self) -> str:
        return self.diff.verdict

    @property
    def goal_met(self) -> bool | None:
        g = self.claim.goal
        if g is None or self.diff.n < 2:
            return None if g is None else False
        if self.claim.metric == "alpha":
            return self.diff.lo > 0 and self.a_mean >= g * self.b_mean
        return self.diff.lo > 0 and self.diff.mean >= g


def by_seed(rows: Sequence[dict[str, Any]], key: tuple[str, str], field: str) -> dict[int, float]:
    """seed -> ``field`` of the rows of one (group, setting) that have it."""
    return {int(r["seed"]): float(r[field]) for r in rows
            if (r["group"], r["setting"]) == key and r.get(field) is not None}


def check_claims(rows: Sequence[dict[str, Any]], claims: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    """Every claim whose two sides have at least one common seed in ``rows``."""
    out = []
    for c in claims:
        if c.metric == "alpha":
            a, b = by_seed(rows, c.a, "share_in_window"), by_seed(rows, c.a, "uniform_share")
        else:
            a, b = by_seed(rows, c.a, "top1"), by_seed(rows, c.b, "top1")
        d = paired({s: 100 * v for s, v in a.items()}, {s: 100 * v for s, v in b.items()})
        if d.n:
            out.append(ClaimResult(c, sum(a[s] for s in d.seeds) / d.n, sum(b[s] for s in d.seeds) / d.n, d))
    return out


