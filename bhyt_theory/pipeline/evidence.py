"""How far a verdict reaches: the statistics and the evidence record of the claims.

``t_interval`` and ``ratio_interval`` give 95 % Student-t intervals with their degrees of
freedom (``Interval``); ``interval_ends`` reads an interval out of a rule's measured figures,
as (−inf, inf) where there is none, so a point value alone never decides a threshold.
``Minimum`` is the least evidence a rule needs for a verdict, and ``reach`` writes an
evidence record (regime, level, shape, seeds, tokens) as one cell of the claims table
(docs/claims.md §10).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVELS = ("smoke", "small", "paper")
"""Evidence levels, lowest first: quick sizes; full sizes below the paper's; the paper's model shape."""
PAPER_SHAPES = ("llama-374m", "llama-1b", "llama-3b")
"""Presets (``numerics.model.PRESETS``) at the paper's scale: evidence there is level ``paper``."""
CONFIDENCE = 0.95
TUNING_RATES = 4  # a "tuned" rate: chosen from a sweep of at least this many rates …
TUNING_SPAN = 10.0  # … spanning at least this factor (the trained-regime ladder: ≥ 4 rates over ≥ 10×)
PAIRED_SEEDS = 3
"""Paired seeds a trained comparison needs at a rung: a t interval with 2 degrees of freedom."""


@dataclass(frozen=True)
class Interval:
    """A sample mean with its Student-t interval: ``low``/``high`` NaN when ``n < 2`` (df = n − 1)."""

    mean: float
    sd: float
    n: int
    low: float
    high: float
    level: float = CONFIDENCE

    @property
    def df(self) -> int:
        return max(self.n - 1, 0)

    def text(self, digits: int = 4) -> str:
        f = f"{{:+.{digits}f}}"
        if self.n < 2:
            return f"{f.format(self.mean)} (n = {self.n}: no interval)"
        return (f"{f.format(self.mean)} [{f.format(self.low)}, {f.format(self.high)}] "
                f"({self.level:.0%} t, {self.df} df)")


def t_interval(values: Sequence[float], level: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` with its two-sided Student-t interval ``mean ∓ t_{(1+level)/2, n−1} · sd/√n``
    (scipy.stats.t); exact coverage for independent normal samples."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    n = len(data)
    if n == 0:
        return Interval(math.nan, math.nan, 0, math.nan, math.nan, level)
    mean = float(data.mean())
    if n < 2:
        return Interval(mean, math.nan, n, math.nan, math.nan, level)
    sd = float(data.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, sd, n, mean - half, mean + half, level)


def ratio_interval(ratios: Sequence[float], level: float = CONFIDENCE) -> Interval:
    """Geometric mean of positive ``ratios`` with the t interval of their logarithms, mapped back
    (always positive and finite where the interval exists)."""
    logs = t_interval([math.log(r) for r in ratios if r is not None and math.isfinite(r) and r > 0], level)
    return Interval(math.exp(logs.mean) if logs.n else math.nan, logs.sd, logs.n,
                    math.exp(logs.low) if logs.n > 1 else math.nan, math.exp(logs.high) if logs.n > 1 else math.nan,
                    level)


def interval_fields(key: str, interval: Interval) -> dict:
    """``key``, ``key_ci_low``, ``key_ci_high``, ``key_n`` and ``key_df`` of a measured-figures dict."""
    return {key: interval.mean, f"{key}_ci_low": interval.low, f"{key}_ci_high": interval.high,
            f"{key}_n": interval.n, f"{key}_df": interval.df}


def interval_ends(measured: Mapping, key: str) -> tuple[float, float]:
    """``(low, high)`` of ``key``'s interval; ``(−inf, inf)`` where none exists (one seed), so no
    threshold can be decided from a point value alone."""
    low, high = measured.get(f"{key}_ci_low"), measured.get(f"{key}_ci_high")
    low = -math.inf if low is None or not math.isfinite(float(low)) else float(low)
    high = math.inf if high is None or not math.isfinite(float(high)) else float(high)
    return low, high


def span(low: float, high: float, digits: int = 2, percent: bool = False) -> str:
    """``[low, high]`` (as percentages with ``percent``), or "no interval" where an end is missing."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if percent:
        return f"[{low:.{digits}%}, {high:.{digits}%}]"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


# ------------------------------------------------------------ evidence and its minimum

@dataclass(frozen=True)
class Minimum:
    """The least evidence a rule needs for a verdict.

    ``level``: the lowest evidence level (``LEVELS``); ``seeds``: independent replicates
    (paired seeds for trained comparisons, interleaved rounds for timings) at the
    deciding shape; ``rungs``: ladder rungs with that many paired seeds at tuned rates
    (trained claims); ``preset``: the paper shape the verdict must be computed at.
    """

    regime: str
    level: str = "small"
    seeds: int = 3
    rungs: int = 0
    preset: str = ""

    def text(self) -> str:
        parts = [f"{self.regime} regime at level ≥ {self.level}"]
        if self.preset:
            parts.append(f"at the {self.preset} preset")
        if self.rungs:
            parts.append(f"≥ {self.seeds} paired seeds at tuned rates (≥ {TUNING_RATES} rates over ≥ "
                         f"{TUNING_SPAN:g}×) on ≥ {self.rungs} ladder rungs")
        else:
            parts.append(f"≥ {self.seeds} {'rounds' if self.regime == 'cost' else 'seeds'}")
        return ", ".join(parts)

    def shortfall(self, evidence: Mapping) -> str | None:
        """What ``evidence`` lacks for a verdict, in words; None when it meets the minimum."""
        lacking = []
        level = evidence.get("level", "smoke")
        if LEVELS.index(level) < LEVELS.index(self.level):
            lacking.append(f"level {level} (needs {self.level})")
        if self.preset and evidence.get("preset") != self.preset:
            lacking.append(f"shape {evidence.get('preset') or _shape_text(evidence)} (needs the {self.preset} preset)")
        if int(evidence.get("seeds") or 0) < self.seeds:
            have = int(evidence.get("seeds") or 0)
            unit = "round" if self.regime == "cost" else "seed"
            lacking.append(f"{have} {unit}{'' if have == 1 else 's'} (needs {self.seeds})")
        if self.rungs and evidence.get("tuned") is False:
            lacking.append(f"rates not tuned at the largest rung (needs ≥ {TUNING_RATES} rates over ≥ {TUNING_SPAN:g}×)")
        if self.rungs and int(evidence.get("rungs") or 0) < self.rungs:
            lacking.append(f"ladder rungs with {self.seeds} paired seeds at tuned rates: {evidence.get('rungs') or 0} "
                           f"(needs {self.rungs})")
        return "; ".join(lacking) or None


def _shape_text(evidence: Mapping) -> str:
    parts = [f"{name} {evidence[key]:,}" if isinstance(evidence.get(key), (int, np.integer)) else ""
             for key, name in (("depth", "depth"), ("width", "width"), ("seq_len", "T"))]
    return ", ".join(p for p in parts if p)


def reach(evidence: Mapping) -> str:
    """One cell of the claims table: level, preset or shape, seeds, tokens."""
    if not evidence:
        return ""
    preset = evidence.get("preset")
    parts = [evidence.get("level", "?"), f"{preset}, T {evidence['seq_len']}" if preset and evidence.get("seq_len")
             else preset or _shape_text(evidence)]
    if evidence.get("parameters"):
        parts.append(f"{count_text(evidence['parameters'])} {'block ' if evidence.get('regime') == 'init' else ''}params")
    if evidence.get("tokens"):
        parts.append(f"{count_text(evidence['tokens'])} tokens")
    if evidence.get("rungs"):
        parts.append(f"{evidence['rungs']} rungs")
    seeds = int(evidence.get("seeds") or 0)
    if seeds:  # a proof's checks and a shape-free study have no seeds to count
        parts.append(f"{seeds} {'round' if evidence.get('regime') == 'cost' else 'seed'}{'' if seeds == 1 else 's'}")
    return ", ".join(str(p) for p in parts if p)


def count_text(value: float) -> str:
    value = float(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"
