"""Paired per-seed differences with a 95 % Student-t interval, and the verdict they allow.

Two settings trained with the same seeds (same benchmark, same initialisation seed, same data
order) are compared seed by seed: d_s = a_s - b_s. The interval is mean(d) +- t_{0.975, n-1} sd(d) /
sqrt(n), which assumes the d_s are independent draws from a normal distribution (with 5 seeds a
bootstrap interval would be too narrow: it cannot reach beyond the 5 values seen). The verdict
follows the interval, never the means: "agrees" when it lies above 0 (a beats b), "disagrees" when
below, "inconclusive" when it holds 0 or fewer than two seeds are paired.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["T975", "t_quantile", "Paired", "paired", "verdict"]

# Student t, 0.975 quantile, by degrees of freedom (standard tables).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
_Z975 = 1.960


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` >= 1 degrees of freedom (table, linear in 1/df
    between entries, the normal's 1.96 beyond 120)."""
    if df < 1:
        raise ValueError(f"df={df} is not valid; expected >= 1")
    if df in T975:
        return T975[df]
    keys = sorted(T975)
    if df > keys[-1]:
        lo_df, lo_t, hi_inv, hi_t = keys[-1], T975[keys[-1]], 0.0, _Z975
    else:
        lo_df = max(k for k in keys if k < df)
        hi_df = min(k for k in keys if k > df)
        lo_t, hi_inv, hi_t = T975[lo_df], 1.0 / hi_df, T975[hi_df]
    w = (1.0 / lo_df - 1.0 / df) / (1.0 / lo_df - hi_inv)
    return lo_t + w * (hi_t - lo_t)


@dataclass(frozen=True)
class Paired:
    """The paired difference a - b over the seeds both have."""

    n: int                      # seeds paired
    mean: float                 # mean difference
    sd: float                   # sample standard deviation of the differences (0 for n = 1)
    lo: float                   # 95 % interval (equal to the mean for n = 1)
    hi: float
    seeds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        return verdict(self)


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """The paired difference ``a[s] - b[s]`` over the seeds ``s`` in both, with its t interval."""
    seeds = tuple(sorted(set(a) & set(b)))
    d = [float(a[s]) - float(b[s]) for s in seeds]
    for s, v in zip(seeds, d):
        if not math.isfinite(v):
            raise ValueError(f"seed {s}: the difference {v} is not finite")
    n = len(d)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, seeds)
    mean = sum(d) / n
    if n == 1:
        return Paired(1, mean, 0.0, mean, mean, seeds)
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Paired(n, mean, sd, mean - half, mean + half, seeds)


def verdict(p: Paired) -> str:
    """"agrees" (interval above 0), "disagrees" (below 0) or "inconclusive" (holds 0, or n < 2)."""
    if p.n < 2:
        return "inconclusive"
    if p.lo > 0:
        return "agrees"
    if p.hi < 0:
        return "disagrees"
    return "inconclusive"
