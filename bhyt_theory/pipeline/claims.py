"""The claims registry: what BHyT's paper claims, what this toolkit proves, and the verdict of each.

Each ``Claim`` holds its statement, its source in the paper (arXiv 2601.09719;
the version where a figure changed), the experiment that tests it (a study of
``bhyt_theory.pipeline.studies``), the paper's figures, a ``Rule`` — thresholds,
reasons and the minimum evidence for a verdict, written here before any number is
seen — and a template that turns the measured figures into a one-paragraph
explanation. ``evaluate`` reads the latest results, applies each rule and returns
one ``Assessment`` per claim; no verdict is written by hand. The paper's claims
are C1–C9 (docs/claims.md); the toolkit's own statements are the written proofs
(proofs/, docs/statements.md), each confirmed when every check citing it passes.

Every assessment carries its ``evidence``: the regime (``init``: random weights;
``trained``; ``cost``: timings), the level (``smoke``: quick sizes; ``small``:
full sizes below the paper's; ``paper``: the paper's model shape), the largest
shape (block parameters, depth, width, T), tokens seen, seeds (or timing rounds),
steps and the preset if any. Below the rule's ``Minimum`` the verdict is
``insufficient evidence`` and the measured figures are still shown.

Statistics: 95 % Student-t intervals with their degrees of freedom
(``t_interval``); paired differences where runs are paired (same seed → same
initial weights and batches across schemes); verdicts come from where the
interval lies against the rule's effect-size threshold, so one seed (no
interval) never confirms or refutes.

Verdicts: ``confirmed`` (the rule's confirming condition holds), ``refuted``
(its refuting condition holds), ``qualified`` (neither: the claim holds in part or
only within stated limits), ``insufficient evidence`` (below the rule's minimum
evidence), ``not testable here`` (the rule itself says the experiment cannot
address the claim on this hardware: C6 timed on a CPU). A claim whose study has no
result is ``not run`` (no rule applied; the reason names the command that computes
it); a stored result that lacks a table or a column the rule reads raises
``ResultMissing`` naming the study and the column, never a verdict.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .studies import (
    PAPER_PRESET,
    STUDIES,
    ResultMissing,
    ResultsStore,
    Study,
    StudyResult,
    block_parameters,
)

VERDICTS = ("confirmed", "refuted", "qualified", "insufficient evidence", "not testable here")
NOT_RUN = "not run"
"""The status of a claim whose study has no result here (not a verdict: no rule was applied)."""
LEVELS = ("smoke", "small", "paper")
PAPER = "Byun et al., arXiv 2601.09719"
CONFIDENCE = 0.95

# Thresholds of the rules, fixed before measuring (each with its reason).
GROWTH_EXPONENT = 0.1  # rms ∝ l^p: p = 0.1 is a factor 1.74 over 256 layers; below it "no material growth"
SATURATION_CONFIRM = 0.01  # fraction of tanh inputs with |z| ≥ 1: ≤ 1 % is non-saturating
SATURATION_REFUTE = 0.05  # above 5 % (more than the λ=2 distribution-free bound of 4 %) saturation is real
BOUND_TOLERANCE = 1e-6  # measured/bound above 1 + this (float rounding) is a violation
ESTIMATE_CONFIRM = 0.10  # |M₂/m − 1| ≤ 10 %: the second tanh argument off by ≤ 5 % in rms
ESTIMATE_REFUTE = 0.50  # an error above 50 % somewhere is not "accurate enough"
ACTIVATION_RATIO_CONFIRM = 2.0  # RMSNorm's last-layer mean |h| at least twice BHyT's (paper ≈ 5.7)
LOSS_MARGIN = 0.02
"""Eval-loss difference (nats per byte/token) that still "matches": more than twice the paper's own
BHyT − RMSNorm difference at 374M (−0.009, which it reports as matching) and under a quarter of DyT's
deficit there (+0.083, which it reports as worse), so a gap inside ±0.02 would not change Table 1's
reading; it is also above the seed-to-seed sd of the toolkit's CPU runs at their tuned rates (≈ 0.01)."""
TUNING_RATES = 4  # a "tuned" rate: chosen from a sweep of at least this many rates …
TUNING_SPAN = 10.0  # … spanning at least this factor (issue of the trained regime: ≥ 4 rates over ≥ 10×)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


# ------------------------------------------------------------ statistics for few seeds

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


def _interval(measured: Mapping, key: str) -> tuple[float, float]:
    """``(low, high)`` of ``key``'s interval; ``(−inf, inf)`` where none exists (one seed), so no
    threshold can be decided from a point value alone."""
    low, high = measured.get(f"{key}_ci_low"), measured.get(f"{key}_ci_high")
    low = -math.inf if low is None or not math.isfinite(float(low)) else float(low)
    high = math.inf if high is None or not math.isfinite(float(high)) else float(high)
    return low, high


def _span(low: float, high: float, digits: int = 2, percent: bool = False) -> str:
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
    return ", ".join(p for p in parts if p) or "unknown"


def reach(evidence: Mapping) -> str:
    """One cell of the claims table: level, preset or shape, seeds, tokens."""
    if not evidence:
        return ""
    preset = evidence.get("preset")
    parts = [evidence.get("level", "?"), f"{preset}, T {evidence['seq_len']}" if preset and evidence.get("seq_len")
             else preset or _shape_text(evidence)]
    if evidence.get("parameters"):
        parts.append(f"{_count(evidence['parameters'])} {'block ' if evidence.get('regime') == 'init' else ''}params")
    if evidence.get("tokens"):
        parts.append(f"{_count(evidence['tokens'])} tokens")
    if evidence.get("rungs"):
        parts.append(f"{evidence['rungs']} rungs")
    seeds = int(evidence.get("seeds") or 0)
    parts.append(f"{seeds} {'round' if evidence.get('regime') == 'cost' else 'seed'}{'' if seeds == 1 else 's'}")
    return ", ".join(str(p) for p in parts)


def _count(value: float) -> str:
    value = float(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


@dataclass(frozen=True)
class Rule:
    """A verdict rule: ``text`` states it in words, ``decide(measured)`` applies it, ``minimum`` is
    the evidence it needs (None: a proof check, no sampling)."""

    text: str
    decide: Callable[[Mapping[str, object]], Verdict]
    minimum: Minimum | None = None

    def describe(self) -> str:
        return self.text + (f". Minimum evidence for a verdict: {self.minimum.text()}" if self.minimum else "")


def _pre_ln_grows(m: Mapping) -> Verdict:
    low, high = _interval(m, "exponent")
    if low > GROWTH_EXPONENT:
        return Verdict("confirmed", f"Pre-LN's power-law exponent is above {GROWTH_EXPONENT} (95 % CI from {low:.2f})")
    if high < GROWTH_EXPONENT:
        return Verdict("refuted", f"Pre-LN's power-law exponent is below {GROWTH_EXPONENT} (95 % CI up to {high:.2f})")
    return Verdict("qualified", f"the exponent's interval {_span(low, high)} straddles {GROWTH_EXPONENT}")


def _bhyt_prevents_growth(m: Mapping) -> Verdict:
    low, high = _interval(m, "exponent")
    if high < GROWTH_EXPONENT:
        return Verdict("confirmed", f"BHyT's power-law exponent stays below {GROWTH_EXPONENT} (95 % CI up to {high:.2f})")
    if low > GROWTH_EXPONENT and m["scale_vs_rmsnorm"] >= 1:
        return Verdict("refuted", f"BHyT's rms grows (exponent CI from {low:.2f}) and ends no smaller than Pre-LN's "
                       f"(×{m['scale_vs_rmsnorm']:.2f})")
    if low > GROWTH_EXPONENT:
        return Verdict("qualified", f"BHyT's rms still grows with depth (exponent {m['exponent']:.2f}, CI from "
                       f"{low:.2f}) but ends at ×{m['scale_vs_rmsnorm']:.2f} of Pre-LN's")
    return Verdict("qualified", f"BHyT's exponent interval {_span(low, high)} straddles {GROWTH_EXPONENT}; its "
                   f"last-layer rms is ×{m['scale_vs_rmsnorm']:.2f} of Pre-LN's")


def _non_saturating(m: Mapping) -> Verdict:
    low, high = _interval(m, "saturated_fraction")
    if m["bound_max_ratio"] > 1 + BOUND_TOLERANCE:
        return Verdict("refuted", f"the saturation bound is exceeded (measured/bound {m['bound_max_ratio']:.6f})")
    if low > SATURATION_REFUTE:
        return Verdict("refuted", f"at some layer the 95 % CI of BHyT's fraction of tanh inputs with |z| ≥ 1 lies "
                       f"above {SATURATION_REFUTE:.0%} (from {low:.2%})")
    if high <= SATURATION_CONFIRM:
        return Verdict("confirmed", f"at every layer the 95 % CI of BHyT's fraction of tanh inputs with |z| ≥ 1 ends "
                       f"at or below {SATURATION_CONFIRM:.0%} (up to {high:.3%}) and no input beat the "
                       "distribution-free bound")
    return Verdict("qualified", f"BHyT's largest fraction of tanh inputs with |z| ≥ 1 is {m['saturated_fraction']:.2%} "
                   f"(95 % CI {_span(low, high, 3, percent=True)}), not within {SATURATION_CONFIRM:.0%} nor above "
                   f"{SATURATION_REFUTE:.0%}")


def _estimate_accurate(m: Mapping) -> Verdict:
    low, high = _interval(m, "max_abs_error")
    if high <= ESTIMATE_CONFIRM:
        return Verdict("confirmed", f"|M₂/m − 1| is within {ESTIMATE_CONFIRM:.0%} at every layer × position (95 % CI "
                       f"up to {high:.1%})")
    if low > ESTIMATE_REFUTE:
        return Verdict("refuted", f"|M₂/m − 1| exceeds {ESTIMATE_REFUTE:.0%} at layer {m['worst_layer']}, position "
                       f"{m['worst_position']} (95 % CI from {low:.1%}; point {m['max_abs_error']:.1%})")
    return Verdict("qualified", f"the worst |M₂/m − 1| is {m['max_abs_error']:.1%} (95 % CI "
                   f"{_span(low, high, 1, percent=True)}): not within {ESTIMATE_CONFIRM:.0%} everywhere nor surely "
                   f"above {ESTIMATE_REFUTE:.0%} anywhere")


def _faster(m: Mapping) -> Verdict:
    training, decode = _interval(m, "training_speedup"), _interval(m, "decode_speedup")
    figures = (f"training {m['training_speedup']:+.1f} % [{training[0]:+.1f}, {training[1]:+.1f}], decode "
               f"{m['decode_speedup']:+.1f} % [{decode[0]:+.1f}, {decode[1]:+.1f}]")
    if m["device"] != "cuda":
        return Verdict("not testable here", f"the paper's figures are GPU throughput; this run timed {m['device']} "
                       f"({figures}); run `make efficiency-gpu` on a GPU")
    where = f"on {m['hardware']}"
    if training[0] > 0 and decode[0] > 0:
        return Verdict("confirmed", f"BHyT is faster than RMSNorm in training and decode {where} ({figures})")
    if training[1] < 0 or decode[1] < 0:
        return Verdict("refuted", f"BHyT is slower than RMSNorm {where} in "
                       + " and ".join(n for n, i in (("training", training), ("decode", decode)) if i[1] < 0)
                       + f" ({figures})")
    return Verdict("qualified", f"no speed-up distinguishable from 0 {where} in "
                   + " and ".join(n for n, i in (("training", training), ("decode", decode)) if i[0] <= 0)
                   + f" ({figures})")


def worse_in_training(m: Mapping, key: str, diverged: str, baseline_diverged: str) -> str:
    """"worse", "not worse" or "undetermined": the paired eval-loss gap ``key`` (scheme − baseline)
    against ``LOSS_MARGIN``, and the divergence counts."""
    low, high = _interval(m, key)
    if m[diverged] > m[baseline_diverged] or low > LOSS_MARGIN:
        return "worse"
    if high <= LOSS_MARGIN:
        return "not worse"
    return "undetermined"


def _dyt_fast_but_fragile(m: Mapping) -> Verdict:
    speed = _interval(m, "dyt_speedup")
    fragile = worse_in_training(m, "dyt_loss_gap", "dyt_diverged", "rmsnorm_diverged")
    trains = {"worse": "trains worse", "not worse": "does not train worse",
              "undetermined": "is not distinguishable from RMSNorm in training"}[fragile]
    if speed[0] > 0 and fragile == "worse":
        return Verdict("confirmed", f"DyT is faster than RMSNorm and trains worse (more divergences, or the paired "
                       f"gap's CI above +{LOSS_MARGIN})")
    if speed[1] < 0 and fragile == "not worse":
        return Verdict("refuted", "DyT is neither faster than RMSNorm nor worse in training")
    return Verdict("qualified", ("DyT is faster" if speed[0] > 0 else "DyT is not measurably faster") + f" and {trains}")


def _quality_matches(m: Mapping) -> Verdict:
    if not math.isfinite(m["loss_gap"]):
        if m["bhyt_finished"] == 0 and m["rmsnorm_finished"] > 0:
            return Verdict("refuted", f"every BHyT run diverged while {m['rmsnorm_finished']} RMSNorm runs finished")
        return Verdict("qualified", "no pair of finished BHyT and RMSNorm runs to compare")
    low, high = _interval(m, "loss_gap")
    gap = f"paired gap {m['loss_gap']:+.4f}, 95 % CI {_span(low, high, 4)}, {m.get('loss_gap_df', 0)} df"
    if high <= LOSS_MARGIN:
        return Verdict("confirmed", f"BHyT's eval loss is at most {LOSS_MARGIN} above RMSNorm's or below ({gap})")
    if low > LOSS_MARGIN:
        return Verdict("refuted", f"BHyT's eval loss is worse than RMSNorm's by more than {LOSS_MARGIN} ({gap})")
    return Verdict("qualified", f"the interval of BHyT − RMSNorm straddles +{LOSS_MARGIN} ({gap})")


def _smaller_trained_activations(m: Mapping) -> Verdict:
    if not math.isfinite(m["mean_abs_ratio"]):
        return Verdict("qualified", "no finished pair of BHyT and RMSNorm runs to compare last-layer magnitudes")
    low, high = _interval(m, "mean_abs_ratio")
    ratio = f"ratio ×{m['mean_abs_ratio']:.2f}, 95 % CI {_span(low, high)}"
    if low >= ACTIVATION_RATIO_CONFIRM:
        return Verdict("confirmed", f"RMSNorm's last-layer mean |h| is at least ×{ACTIVATION_RATIO_CONFIRM} BHyT's ({ratio})")
    if high <= 1:
        return Verdict("refuted", f"BHyT's last-layer mean |h| is not smaller than RMSNorm's ({ratio})")
    return Verdict("qualified", f"BHyT's last-layer mean |h| is not surely ×{ACTIVATION_RATIO_CONFIRM} smaller nor "
                   f"surely not smaller ({ratio})")


def _decode_exact(m: Mapping) -> Verdict:
    if m["dtypes_without_exact_order"]:
        return Verdict("refuted", f"no order of operations tested keeps greedy decoding identical in "
                       f"{m['dtypes_without_exact_order']}")
    if m["inexact_settings"] == 0:
        return Verdict("confirmed", "bit-identical outputs and greedy tokens in every dtype × order tested")
    return Verdict("qualified", f"exact in some orders of operations only ({m['exact_list']}); "
                   f"{m['inexact_settings']} of {m['settings']} dtype × order settings differ (up to {m['max_ulps']} ulps "
                   f"in the normaliser output), and greedy decoding changes in {m['greedy_changed_list']}")


def _statement_holds(m: Mapping) -> Verdict:
    if m["checks"] == 0:
        return Verdict("not testable here", "no registered check cites this proof")
    if m["failed"]:
        return Verdict("refuted", f"{m['failed']} of {m['checks']} checks fail: {m['failed_list']}")
    return Verdict("confirmed", f"all {m['checks']} checks pass")


TRAINED_MINIMUM = Minimum("trained", level="small", seeds=3, rungs=2)
"""C2, C7, C8: three paired seeds give a t interval with 2 df; two rungs give a trend across scale."""

RULES = {
    "C1": Rule(f"confirmed if the 95 % t interval across seeds of Pre-LN's power-law exponent p (rms ≈ A·l^p) lies "
               f"above {GROWTH_EXPONENT} (a factor 1.74 over 256 layers); refuted if below; qualified if it straddles",
               _pre_ln_grows, Minimum("init", level="small", seeds=3)),
    "C2": Rule(f"confirmed if DyT's training speed-up over RMSNorm has a 95 % CI above 0 and DyT trains worse than "
               f"RMSNorm at the largest ladder rung (more divergences, or the 95 % t interval of the paired eval-loss "
               f"gap above +{LOSS_MARGIN}); refuted if the speed-up's CI lies below 0 and DyT does not train worse "
               f"(no more divergences and the gap's interval at or below +{LOSS_MARGIN}); qualified otherwise",
               _dyt_fast_but_fragile, TRAINED_MINIMUM),
    "C3": Rule(f"refuted if any input beats the distribution-free saturation bound (measured/bound > 1 + "
               f"{BOUND_TOLERANCE:g}) or, at some layer, the 95 % t interval across seeds of BHyT's fraction of tanh "
               f"inputs with |z| ≥ 1 lies above {SATURATION_REFUTE:.0%} (more than the λ = 2 distribution-free bound "
               f"of 4 %); confirmed if at every layer it ends at or below {SATURATION_CONFIRM:.0%}; qualified otherwise",
               _non_saturating, Minimum("init", level="paper", seeds=3, preset=PAPER_PRESET)),
    "C4": Rule(f"confirmed if the 95 % t interval across seeds of BHyT's power-law exponent lies below "
               f"{GROWTH_EXPONENT}; refuted if it lies above and BHyT's last-layer rms is no smaller than Pre-LN's; "
               f"qualified otherwise", _bhyt_prevents_growth, Minimum("init", level="paper", seeds=3, preset=PAPER_PRESET)),
    "C5": Rule(f"per layer × position, the 95 % t interval across seeds of |M₂/m(h′) − 1|: confirmed if every "
               f"interval ends at or below {ESTIMATE_CONFIRM:.0%} (the second tanh argument off by ≤ 5 % in rms); "
               f"refuted if some interval lies above {ESTIMATE_REFUTE:.0%}; qualified otherwise",
               _estimate_accurate, Minimum("init", level="paper", seeds=3, preset=PAPER_PRESET)),
    "C6": Rule("on a GPU (the paper's setting): confirmed if BHyT's speed-up over RMSNorm has a 95 % CI above 0 for "
               "both the block training step and the decode step; refuted if either CI lies below 0; qualified "
               "otherwise. Timed on a CPU: not testable here (figures reported)", _faster,
               Minimum("cost", level="small", seeds=5)),
    "C7": Rule(f"at the largest ladder rung, each scheme at its tuned rate, the paired differences BHyT − RMSNorm of "
               f"eval loss over seeds: confirmed if their 95 % t interval ends at or below +{LOSS_MARGIN} (matches or "
               f"beats); refuted if it lies above +{LOSS_MARGIN}, or if every BHyT run diverged while an RMSNorm run "
               f"finished; qualified if it straddles +{LOSS_MARGIN} (or with no finished pair)",
               _quality_matches, TRAINED_MINIMUM),
    "C8": Rule(f"at the largest ladder rung, each scheme at its tuned rate, the paired ratios RMSNorm / BHyT of the "
               f"last-layer mean |h| over seeds (t interval of their logarithms): confirmed if the interval lies at or "
               f"above ×{ACTIVATION_RATIO_CONFIRM}; refuted if it lies at or below ×1 (BHyT's not smaller); qualified "
               "otherwise (or with no finished pair)", _smaller_trained_activations, TRAINED_MINIMUM),
    "C9": Rule("confirmed if every dtype × order of operations tested gives bit-identical outputs and greedy "
               "tokens; refuted if, in some dtype, no order tested keeps greedy decoding identical; qualified "
               "otherwise (exact only in some orders of operations)", _decode_exact,
               Minimum("init", level="small", seeds=2)),
    "statement": Rule("confirmed if every check citing the proof passes; refuted if any fails", _statement_holds),
}


# ------------------------------------------------------------ measured figures and evidence from the studies' tables

PAPER_SHAPES = ("llama-374m", "llama-1b", "llama-3b")
FIT_COLUMNS = ("source", "scheme", "form", "best", "law", "slope", "slope_ci_low", "slope_ci_high", "rms_first",
               "rms_last", "n_seeds", "n_layers")
SHAPE_COLUMNS = ("preset", "depth", "width", "seq_len", "parameters")
LADDER_COLUMNS = ("rung", "params", "tokens", "scheme", "lr", "seed", "eval_loss")
"""The columns of ``ladder.csv`` the trained claims read (``recipe`` and ``steps`` where present)."""
RUN_COLUMNS = ("label", "seed", "final_eval_loss", "diverged", "tokens_seen", "steps_done")
TRAINING_COLUMNS = ("label", "n_runs", "n_diverged", "eval_loss_mean", "eval_loss_sd", "mean_abs_baseline_ratio",
                    "variance_baseline_ratio", "last_mean_abs", "growth_mean_abs")
"""The columns of the training tables the claims read."""


def _level(results: Mapping[str, StudyResult], names: Sequence[str], preset: str = "") -> str:
    """``smoke`` if any of ``names`` ran at quick sizes, ``paper`` at a paper preset, else ``small``."""
    if any(results[name].quick for name in names if name in results):
        return "smoke"
    return "paper" if preset in PAPER_SHAPES else "small"


def _shape(depth, width, seq_len, heads: int = 4, **extra) -> dict:
    from ..numerics.model import StackConfig

    config = StackConfig(depth=int(depth), width=int(width), heads=heads, seq_len=int(seq_len))
    return {"depth": int(depth), "width": int(width), "seq_len": int(seq_len), "parameters": block_parameters(config),
            **extra}


def _init_evidence(level: str, seeds: int, **shape) -> dict:
    return {"regime": "init", "level": level, "preset": shape.pop("preset", "") or "", **shape, "tokens": None,
            "seeds": int(seeds), "steps": None}


def _paper_shape(table: pd.DataFrame) -> dict:
    row = table.iloc[0]
    preset = row["preset"] if isinstance(row["preset"], str) else ""
    return {"preset": preset, "depth": int(row["depth"]), "width": int(row["width"]), "seq_len": int(row["seq_len"]),
            "parameters": int(row["parameters"])}


def _secondary(rule: str, measured: dict, evidence: dict, prefix: str = "w256_") -> dict:
    """The rule applied at a second shape: its figures under ``prefix`` and its evidence with the verdict.

    The second shape is below the paper's by design, so its minimum is the rule's without the preset
    (level ``small``, the same seeds)."""
    verdict = RULES[rule].decide(measured)
    minimum = dataclasses.replace(RULES[rule].minimum, preset="", level="small")
    shortfall = minimum.shortfall(evidence)
    if shortfall:
        verdict = Verdict("insufficient evidence", f"below the minimum evidence: {shortfall}")
    return {**{prefix + key: value for key, value in measured.items()},
            "secondary": {**evidence, "verdict": verdict.verdict, "reason": verdict.reason}}


def _growth_row(fits: pd.DataFrame, scheme: str, source: str = "monte carlo", form: str = "power") -> tuple[pd.Series, pd.Series]:
    """The fit of ``form`` for ``scheme`` from ``source`` and its best-fitting form."""
    fits = fits[(fits["source"] == source) & (fits["scheme"] == scheme)]
    return fits[fits["form"] == form].iloc[0], fits[fits["best"].astype(bool)].iloc[0]


def _exponent(power: pd.Series) -> dict:
    n = int(power["n_seeds"])
    return {"exponent": power["slope"], "exponent_ci_low": power["slope_ci_low"], "exponent_ci_high": power["slope_ci_high"],
            "exponent_n": n, "exponent_df": max(n - 1, 0)}


def _measure_c1(results: Mapping[str, StudyResult]) -> dict:
    growth = results["growth"]
    power, best = _growth_row(growth.table("growth_fits", *FIT_COLUMNS), "rmsnorm")
    rms = growth.table("growth_rms", "depth", "width", "seq_len")
    depth = int(rms["depth"].iloc[0])
    return {**_exponent(power), "rms_first": power["rms_first"], "rms_last": power["rms_last"],
            "growth_factor": power["rms_last"] / power["rms_first"], "best_law": best["law"], "depth": depth,
            "evidence": _init_evidence(_level(results, ["growth"]), power["n_seeds"],
                                       **_shape(depth, rms["width"].iloc[0], rms["seq_len"].iloc[0]))}


def _growth_figures(fits: pd.DataFrame) -> dict:
    power, best = _growth_row(fits, "bhyt")
    reference, _ = _growth_row(fits, "rmsnorm")
    return {**_exponent(power), "rms_first": power["rms_first"], "rms_last": power["rms_last"],
            "growth_factor": power["rms_last"] / power["rms_first"], "best_law": best["law"],
            "scale_vs_rmsnorm": power["rms_last"] / reference["rms_last"], "rmsnorm_exponent": reference["slope"],
            "depth": int(power["n_layers"])}


def _measure_c4(results: Mapping[str, StudyResult]) -> dict:
    fits = results["paper_init"].table("paper_growth_fits", *FIT_COLUMNS, *SHAPE_COLUMNS)
    measured = _growth_figures(fits)
    field_power, _ = _growth_row(fits, "bhyt", source="mean field")
    measured["meanfield_exponent"] = field_power["slope"]
    measured["evidence"] = _init_evidence(_level(results, ["paper_init"], _paper_shape(fits)["preset"]),
                                          measured["exponent_n"], **_paper_shape(fits))
    growth = results.get("growth")
    if growth is not None and not growth.unavailable:
        second = _growth_figures(growth.table("growth_fits", *FIT_COLUMNS))
        rms = growth.table("growth_rms", "depth", "width", "seq_len")
        measured.update(_secondary("C4", second, _init_evidence(
            _level(results, ["growth"]), second["exponent_n"],
            **_shape(rms["depth"].iloc[0], rms["width"].iloc[0], rms["seq_len"].iloc[0]))))
    return measured


def _saturation_figures(layers: pd.DataFrame, schemes: Sequence[str] = ("bhyt", "bhytstar")) -> dict:
    """Largest per-layer saturated fraction (|z| ≥ 1) and the largest ends of the per-layer intervals."""
    rows = layers[(layers["statistic"] == "saturated_fraction_1") & layers["scheme"].isin(schemes)]
    arg = layers[(layers["statistic"] == "arg_rms") & layers["scheme"].isin(schemes)]
    n = int(rows["n_seeds"].min())
    worst = rows.loc[rows["mean"].idxmax()]
    return {"saturated_fraction": float(rows["mean"].max()),
            "saturated_fraction_ci_low": float(rows["ci_low"].max()) if n > 1 else math.nan,
            "saturated_fraction_ci_high": float(rows["ci_high"].max()) if n > 1 else math.nan,
            "saturated_fraction_n": n, "saturated_fraction_df": max(n - 1, 0),
            "saturated_layer": int(worst["layer"]), "saturated_sublayer": str(worst["sublayer"]),
            "arg_rms_max": float(arg["mean"].max())}


def _measure_c3(results: Mapping[str, StudyResult]) -> dict:
    bounds = results["bounds"].table("bounds_tightness", "bound", "ratio", "construction")
    saturation_bounds = bounds[bounds["bound"].astype(str).str.startswith("saturation")]
    bound = {"bound_max_ratio": float(saturation_bounds["ratio"].max()),
             "bound_max_construction": str(saturation_bounds.loc[saturation_bounds["ratio"].idxmax(), "construction"])}
    layers = results["paper_init"].table("paper_layers", "scheme", "layer", "sublayer", "statistic", "mean", "n_seeds",
                                         "ci_low", "ci_high", "meanfield", *SHAPE_COLUMNS)
    shape = _paper_shape(layers)
    measured = {**_saturation_figures(layers, ("bhyt",)), **bound}
    field_rows = layers[(layers["statistic"] == "saturated_fraction_1") & (layers["scheme"] == "bhyt")]
    measured["meanfield_saturated_fraction"] = float(field_rows["meanfield"].max())
    measured["evidence"] = _init_evidence(_level(results, ["paper_init", "bounds"], shape["preset"]),
                                          measured["saturated_fraction_n"], **shape)
    trace = results.get("trace")
    if trace is not None and not trace.unavailable:
        table = trace.table("trace", "scheme", "layer", "sublayer", "statistic", "mean", "n_seeds", "ci_low", "ci_high",
                            "depth", "width", "seq_len")
        second = {**_saturation_figures(table), **bound}
        measured.update(_secondary("C3", second, _init_evidence(
            _level(results, ["trace", "bounds"]), second["saturated_fraction_n"],
            **_shape(table["depth"].iloc[0], table["width"].iloc[0], table["seq_len"].iloc[0]))))
    return measured


def _estimate_figures(cells: pd.DataFrame) -> dict:
    """Worst |M₂/m − 1| over layer × position cells (``ratio``, ``ratio_sd``, ``n_seeds``) and the largest
    lower and upper ends of the cells' 95 % t intervals of |ratio − 1|."""
    n = cells["n_seeds"].to_numpy(float)
    quantile = np.where(n > 1, stats.t.ppf((1 + CONFIDENCE) / 2, np.maximum(n - 1, 1)), np.nan)
    half = quantile * cells["ratio_sd"].to_numpy(float) / np.sqrt(n)
    low, high = cells["ratio"].to_numpy(float) - half, cells["ratio"].to_numpy(float) + half
    error_low = np.where((low <= 1) & (high >= 1), 0.0, np.minimum(np.abs(low - 1), np.abs(high - 1)))
    error_high = np.maximum(np.abs(low - 1), np.abs(high - 1))
    error = (cells["ratio"] - 1).abs()
    worst = cells.loc[error.idxmax()]
    seeds = int(n.min())
    return {"max_abs_error": float(error.max()),
            "max_abs_error_ci_low": float(np.max(error_low)) if seeds > 1 else math.nan,
            "max_abs_error_ci_high": float(np.max(error_high)) if seeds > 1 else math.nan,
            "max_abs_error_n": seeds, "max_abs_error_df": max(seeds - 1, 0),
            "mean_abs_error": float(error.mean()), "median_ratio": float(cells["ratio"].median()),
            "min_ratio": float(cells["ratio"].min()), "worst_layer": int(worst["layer"]),
            "worst_position": int(worst["position"]), "worst_ratio": float(worst["ratio"]),
            "first_ratio": float(cells[(cells["layer"] == cells["layer"].min()) & (cells["position"] == 0)]["ratio"].iloc[0])}


def _measure_c5(results: Mapping[str, StudyResult]) -> dict:
    cells = results["paper_init"].table("paper_estimate", "layer", "position", "ratio", "ratio_sd", "n_seeds",
                                        "meanfield_ratio", *SHAPE_COLUMNS)
    shape = _paper_shape(cells)
    measured = _estimate_figures(cells)
    agreement = (cells["meanfield_ratio"] / cells["ratio"] - 1).abs()
    measured.update({"meanfield_first_ratio": float(cells[(cells["layer"] == 0) & (cells["position"] == 0)]
                                                    ["meanfield_ratio"].iloc[0]),
                     "meanfield_median_ratio": float(cells["meanfield_ratio"].median()),
                     "meanfield_max_abs_error": float((cells["meanfield_ratio"] - 1).abs().max()),
                     "meanfield_agreement_median": float(agreement.median()),
                     "meanfield_agreement_p90": float(agreement.quantile(0.9)),
                     "evidence": _init_evidence(_level(results, ["paper_init"], shape["preset"]),
                                                int(cells["n_seeds"].min()), **shape)})
    variance = results.get("variance")
    if variance is not None and not variance.unavailable:
        table = variance.table("variance_estimators", "estimator", "layer", "position", "ratio", "ratio_se", "seeds",
                               "depth", "width", "seq_len")
        reference = table[table["estimator"] == "reference"]
        second = _estimate_figures(reference.assign(n_seeds=reference["seeds"],
                                                    ratio_sd=reference["ratio_se"] * np.sqrt(reference["seeds"])))
        best_other = (table[table["estimator"] != "reference"].assign(error=lambda t: (t["ratio"] - 1).abs())
                      .groupby("estimator")["error"].mean())
        second.update({"best_estimator": str(best_other.idxmin()) if len(best_other) else "none",
                       "best_estimator_mean_abs_error": float(best_other.min()) if len(best_other) else math.nan})
        measured.update(_secondary("C5", second, _init_evidence(
            _level(results, ["variance"]), second["max_abs_error_n"],
            **_shape(table["depth"].iloc[0], table["width"].iloc[0], table["seq_len"].iloc[0]))))
    return measured


def _timing(results: Mapping[str, StudyResult], scheme: str, measurement: str) -> pd.Series:
    table = results["efficiency"].table("efficiency_timings", "scheme", "measurement", "speedup_percent",
                                        "speedup_ci_low", "speedup_ci_high", "hardware", "device", "rounds", "width")
    return table[(table["scheme"] == scheme) & (table["measurement"] == measurement)].iloc[0]


def _cost_evidence(results: Mapping[str, StudyResult], row: pd.Series) -> dict:
    return {"regime": "cost", "level": _level(results, ["efficiency"]), "preset": "", "width": int(row["width"]),
            "seq_len": int(row["seq_len"]) if "seq_len" in row and pd.notna(row["seq_len"]) else None,
            "parameters": None, "tokens": None, "seeds": int(row["rounds"]), "steps": None,
            "device": str(row["device"]), "hardware": str(row["hardware"])}


def _measure_c6(results: Mapping[str, StudyResult]) -> dict:
    training, decode = _timing(results, "bhyt", "block forward+backward"), _timing(results, "bhyt", "decode step")
    return {"training_speedup": training["speedup_percent"], "training_speedup_ci_low": training["speedup_ci_low"],
            "training_speedup_ci_high": training["speedup_ci_high"], "decode_speedup": decode["speedup_percent"],
            "decode_speedup_ci_low": decode["speedup_ci_low"], "decode_speedup_ci_high": decode["speedup_ci_high"],
            "hardware": training["hardware"], "device": str(training["device"]).split(":")[0],
            "rounds": int(training["rounds"]), "width": int(training["width"]),
            "evidence": _cost_evidence(results, training)}


def _measure_c9(results: Mapping[str, StudyResult]) -> dict:
    import inspect

    from ..experiments.decode import decode_exactness

    table = results["decode"].table("decode_exactness", "dtype", "order", "norm_fraction_differing",
                                    "block_fraction_differing", "greedy_identical_fraction", "norm_max_ulps",
                                    "greedy_sequences")
    exact = (table["norm_fraction_differing"] == 0) & (table["block_fraction_differing"] == 0) & (
        table["greedy_identical_fraction"] == 1)
    greedy_changed = table[table["greedy_identical_fraction"] < 1]
    no_exact = [dtype for dtype, rows in table.groupby("dtype", sort=False)
                if not (rows["greedy_identical_fraction"] == 1).any()]
    batch = inspect.signature(decode_exactness).parameters["batch"].default
    return {"greedy_identical_min": float(table["greedy_identical_fraction"].min()),
            "inexact_settings": int((~exact).sum()), "settings": int(len(table)),
            "max_ulps": int(table["norm_max_ulps"].max()),
            "exact_list": ", ".join(f"{r.dtype}/{r.order}" for r in table[exact].itertuples()) or "none",
            "greedy_changed_list": ", ".join(f"{r.dtype}/{r.order}" for r in greedy_changed.itertuples()) or "none",
            "dtypes_without_exact_order": ", ".join(no_exact),
            "evidence": {"regime": "init", "level": _level(results, ["decode"]), "preset": "", "parameters": None,
                         "tokens": None, "seeds": int(table["greedy_sequences"].iloc[0]) // batch, "steps": None}}


# ------------------------------------------------------------ the trained regime: ladder tables, else the small runs

LADDER_FILES = {"ladder": "ladder.csv", "ladder_summary": "ladder_summary.csv"}
LADDER_STUDY = Study("ladder", "The trained regime across scale (ladder)", ("C2", "C7", "C8"),
                     produce=lambda sizes, log=None: {}, quick={}, full={}, seconds=(0, 0),
                     subcommand="bhyt-theory train --ladder", forward_only=False)
"""Where the ladder's tables come from when no study of that name is registered: ``ladder.csv`` (one row
per run: ``rung, params, tokens, scheme, recipe, lr, seed, eval_loss, last_mean_abs``, …) and
``ladder_summary.csv`` (one row per rung × scheme at its best rate) in the results folder, as
``bhyt-theory train --ladder --out FOLDER`` writes them."""


def load_ladder(folder: str | Path) -> StudyResult | None:
    """The ladder tables in ``folder`` (``LADDER_FILES``), or None when ``ladder.csv`` is absent."""
    import json

    folder = Path(folder)
    if not (folder / LADDER_FILES["ladder"]).exists():
        return None
    tables = {name: pd.read_csv(folder / file) for name, file in LADDER_FILES.items() if (folder / file).exists()}
    meta_path = folder / "ladder.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("command", f"bhyt-theory train --ladder --out {folder}")
    runs = tables["ladder"]
    if "rung" in runs and "sizes" not in meta:
        meta["sizes"] = f"{runs['rung'].nunique()} rungs, {len(runs)} runs ({folder / LADDER_FILES['ladder']})"
    return StudyResult(STUDIES.get("ladder", LADDER_STUDY), tables, meta)


def _ladder(results: Mapping[str, StudyResult]) -> StudyResult | None:
    ladder = results.get("ladder")
    return ladder if ladder is not None and not ladder.unavailable and "ladder" in ladder.tables else None


@dataclass(frozen=True)
class TunedRuns:
    """One scheme at one rung: its best recipe, the rate it was tuned to and its runs at that rate."""

    recipe: str
    lr: float
    tuned: bool
    runs: pd.DataFrame


def tuned_runs(runs: pd.DataFrame, summary: pd.DataFrame | None = None) -> dict[tuple, TunedRuns]:
    """Per (rung, scheme) the runs at its tuned rate, for its best recipe (lowest mean eval loss there).

    The tuned rate is ``ladder_summary``'s ``best_lr`` (or ``lr``) for that rung × scheme (× recipe)
    when the summary gives one, else the rate run with the most seeds (the sweep's winner, rerun
    with more seeds), ties broken by the lower mean eval loss. ``tuned``: the recipe was swept over
    ≥ ``TUNING_RATES`` rates spanning ≥ ``TUNING_SPAN``×. Runs marked ``diverged`` or with a
    non-finite eval loss are divergences.
    """
    runs = _mark_divergences(runs)
    runs = runs.assign(recipe=runs["recipe"].fillna("") if "recipe" in runs else "")
    rate = next((name for name in ("best_lr", "lr") if summary is not None and name in summary.columns), None)
    chosen = {}
    for (rung, scheme), group in runs.groupby(["rung", "scheme"], sort=False):
        candidates = []
        for recipe, rows in group.groupby("recipe", sort=False):
            rates = np.sort(rows["lr"].unique())
            lr = None
            if rate is not None and {"rung", "scheme"} <= set(summary.columns):
                match = summary[(summary["rung"] == rung) & (summary["scheme"] == scheme)]
                if "recipe" in match:
                    match = match[match["recipe"].fillna("") == recipe]
                if len(match):
                    lr = float(match[rate].iloc[0])
            if lr is None:
                per_rate = rows.assign(finite=np.isfinite(rows["eval_loss"].astype(float))).groupby("lr").agg(
                    seeds=("seed", "nunique"), loss=("eval_loss", lambda v: v[np.isfinite(v)].mean()))
                per_rate = per_rate[per_rate["seeds"] == per_rate["seeds"].max()].sort_values("loss", na_position="last")
                lr = float(per_rate.index[0])
            at = rows[np.isclose(rows["lr"], lr)]
            tuned = len(rates) >= TUNING_RATES and rates[-1] >= TUNING_SPAN * rates[0]
            loss = at["eval_loss"].astype(float)
            candidates.append((loss[np.isfinite(loss)].mean() if np.isfinite(loss).any() else math.inf,
                               TunedRuns(str(recipe), lr, bool(tuned), at)))
        chosen[(rung, scheme)] = min(candidates, key=lambda c: c[0])[1]
    return chosen


def _mark_divergences(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the eval loss of every run marked ``diverged`` set to NaN (a divergence, not a loss)."""
    if "diverged" not in runs:
        return runs
    return runs.assign(eval_loss=runs["eval_loss"].astype(float).where(~runs["diverged"].astype(bool)))


def _diverged(chosen: TunedRuns) -> int:
    return int((~np.isfinite(chosen.runs["eval_loss"].astype(float))).sum())


def paired_rungs(runs: pd.DataFrame, summary: pd.DataFrame | None, scheme: str, baseline: str = "rmsnorm",
                 value: str = "eval_loss", ratio: bool = False) -> pd.DataFrame:
    """Per rung (by parameters), ``scheme`` against ``baseline`` at their tuned rates over shared seeds:
    the paired differences ``scheme − baseline`` of ``value`` (or, ``ratio=True``, the ratios
    ``baseline / scheme`` with a log-scale interval), their t interval, the rates, recipes and divergences."""
    runs = _mark_divergences(runs)
    chosen = tuned_runs(runs, summary)
    rows = []
    for rung, group in runs.groupby("rung", sort=False):
        if (rung, scheme) not in chosen or (rung, baseline) not in chosen:
            continue
        a, b = chosen[(rung, scheme)], chosen[(rung, baseline)]
        columns = list(dict.fromkeys(["seed", "eval_loss", value]))
        pairs = a.runs[columns].merge(b.runs[columns], on="seed", suffixes=("", "_baseline"))
        finished = [c for c in pairs.columns if c != "seed"]
        pairs = pairs[np.isfinite(pairs[finished].astype(float)).all(axis=1)]
        interval = (ratio_interval((pairs[f"{value}_baseline"] / pairs[value]).tolist()) if ratio
                    else t_interval((pairs[value] - pairs[f"{value}_baseline"]).tolist()))
        rows.append({"rung": rung, "params": float(group["params"].max()), "tokens": float(group["tokens"].max()),
                     "steps": float(group["steps"].max()) if "steps" in group else math.nan,
                     "seeds": interval.n, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                     "df": interval.df, "lr": a.lr, "baseline_lr": b.lr, "recipe": a.recipe, "baseline_recipe": b.recipe,
                     "tuned": a.tuned and b.tuned, "diverged": _diverged(a), "baseline_diverged": _diverged(b),
                     "runs": len(a.runs), "baseline_runs": len(b.runs)})
    return pd.DataFrame(rows).sort_values("params", ignore_index=True) if rows else pd.DataFrame()


def _ladder_figures(results: Mapping[str, StudyResult], prefix: str, scheme: str, ratio: bool = False) -> dict:
    """Figures of ``scheme`` against RMSNorm at the largest rung run, the trend across rungs and the evidence."""
    ladder = _ladder(results)
    runs = ladder.table("ladder", *LADDER_COLUMNS, *(("last_mean_abs",) if ratio else ()))
    summary = ladder.tables.get("ladder_summary")  # optional: names the tuned rates where present
    value = "last_mean_abs" if ratio else "eval_loss"
    table = paired_rungs(runs, summary, scheme, value=value, ratio=ratio)
    if table.empty:
        raise ResultMissing(f"study 'ladder', table 'ladder' has no rung with both {scheme!r} and 'rmsnorm'")
    top = table.iloc[-1]
    interval = Interval(top["mean"], math.nan, int(top["seeds"]), top["ci_low"], top["ci_high"])
    unit = "×{:.2f}" if ratio else "{:+.4f}"
    trend = "; ".join(f"rung {r.rung} ({_count(r.params)} params, {_count(r.tokens)} tokens): "
                      + unit.format(r.mean) + f" {_span(r.ci_low, r.ci_high, 2 if ratio else 4)}, {r.seeds} seeds"
                      for r in table.itertuples())
    recipes = (f"{scheme}: recipe {top['recipe'] or 'default'} at lr {top['lr']:g}; rmsnorm: recipe "
               f"{top['baseline_recipe'] or 'default'} at lr {top['baseline_lr']:g}")
    sufficient = table[(table["seeds"] >= TRAINED_MINIMUM.seeds) & table["tuned"]]
    level = "smoke" if ladder.quick else ("paper" if top["params"] >= 3.7e8 and top["tokens"] >= 7.5e9 else "small")
    shape = runs[runs["rung"] == top["rung"]].iloc[0]
    evidence = {"regime": "trained", "level": level, "preset": "",
                **{key: int(shape[key]) for key in ("depth", "width", "seq_len") if key in shape and pd.notna(shape[key])},
                "parameters": float(top["params"]), "tokens": float(top["tokens"]), "seeds": int(top["seeds"]),
                "tuned": bool(top["tuned"]), "steps": None if pd.isna(top["steps"]) else int(top["steps"]),
                "rungs": len(sufficient), "rung": top["rung"], "source": "ladder"}
    return {**interval_fields(prefix, interval), f"{prefix}_trend": trend, f"{prefix}_recipes": recipes,
            f"{scheme}_diverged": int(top["diverged"]), "rmsnorm_diverged": int(top["baseline_diverged"]),
            f"{scheme}_finished": int(top["runs"] - top["diverged"]),
            "rmsnorm_finished": int(top["baseline_runs"] - top["baseline_diverged"]),
            "rung": str(top["rung"]), "evidence": evidence}


def _training_evidence(results: Mapping[str, StudyResult], seeds: int) -> dict:
    """Evidence of the small CPU training comparison (``training`` study): one shape, one shared rate."""
    from ..experiments.training.study import preset_config

    runs = results["training"].table("training_runs", *RUN_COLUMNS)
    stack = preset_config("quick" if results["training"].quick else "default").stack
    return {"regime": "trained", "level": _level(results, ["training"]), "preset": "", "depth": stack.depth,
            "width": stack.width, "seq_len": stack.seq_len, "parameters": block_parameters(stack),
            "tokens": float(runs["tokens_seen"].max()), "seeds": int(seeds), "steps": int(runs["steps_done"].max()),
            "rungs": 0, "source": "training (one shape, one shared learning rate)"}


def _training_rows(results: Mapping[str, StudyResult]) -> pd.DataFrame:
    """The training summary by label, checked to hold the rows of BHyT, RMSNorm and DyT."""
    summary = results["training"].table("training_summary", *TRAINING_COLUMNS).set_index("label")
    absent = [label for label in ("bhyt", "rmsnorm", "dyt") if label not in summary.index]
    if absent:
        raise ResultMissing(f"study 'training', table 'training_summary' has no row for label {absent[0]!r}")
    return summary


def _small_run_gap(results: Mapping[str, StudyResult], label: str, prefix: str) -> dict:
    """The paired eval-loss gap ``label − rmsnorm`` of the small CPU runs (no ladder): same seeds."""
    runs = results["training"].table("training_runs", *RUN_COLUMNS)
    finished = runs[~runs["diverged"].astype(bool)]
    a = finished[finished["label"] == label][["seed", "final_eval_loss"]]
    b = finished[finished["label"] == "rmsnorm"][["seed", "final_eval_loss"]]
    pairs = a.merge(b, on="seed", suffixes=("", "_baseline"))
    interval = t_interval((pairs["final_eval_loss"] - pairs["final_eval_loss_baseline"]).tolist())
    counts = runs.groupby("label")["diverged"].sum()
    return {**interval_fields(prefix, interval), f"{prefix}_trend": "one shape only (no ladder results)",
            f"{prefix}_recipes": "every scheme at one shared learning rate (no tuning)",
            f"{label}_diverged": int(counts.get(label, 0)), "rmsnorm_diverged": int(counts.get("rmsnorm", 0)),
            f"{label}_finished": len(a), "rmsnorm_finished": len(b), "rung": "none", "evidence": _training_evidence(results, interval.n)}


def _trained_gap(results: Mapping[str, StudyResult], label: str, prefix: str) -> dict:
    return (_ladder_figures(results, prefix, label) if _ladder(results) is not None
            else _small_run_gap(results, label, prefix))


def _measure_c2(results: Mapping[str, StudyResult]) -> dict:
    timing = _timing(results, "dyt", "block forward+backward")
    measured = _trained_gap(results, "dyt", "dyt_loss_gap")
    evidence = measured.pop("evidence")
    cost = _cost_evidence(results, timing)
    evidence = {**evidence, "regime": "trained, cost", "rounds": cost["seeds"],
                "level": LEVELS[min(LEVELS.index(evidence["level"]), LEVELS.index(cost["level"]))]}
    text = (f"{measured['dyt_diverged']} DyT runs diverged against {measured['rmsnorm_diverged']} RMSNorm runs, and "
            f"DyT's eval loss minus RMSNorm's (paired over seeds) is "
            + Interval(measured["dyt_loss_gap"], math.nan, measured["dyt_loss_gap_n"], measured["dyt_loss_gap_ci_low"],
                       measured["dyt_loss_gap_ci_high"]).text())
    return {"dyt_speedup": timing["speedup_percent"], "dyt_speedup_ci_low": timing["speedup_ci_low"],
            "dyt_speedup_ci_high": timing["speedup_ci_high"], **measured, "dyt_fragility_text": text,
            "evidence": evidence}


def _measure_c7(results: Mapping[str, StudyResult]) -> dict:
    measured = _trained_gap(results, "bhyt", "loss_gap")
    measured["loss_gap_text"] = Interval(measured["loss_gap"], math.nan, measured["loss_gap_n"],
                                         measured["loss_gap_ci_low"], measured["loss_gap_ci_high"]).text()
    if _ladder(results) is None:
        summary = _training_rows(results)
        measured.update({"bhyt_eval_loss": summary.loc["bhyt", "eval_loss_mean"],
                         "rmsnorm_eval_loss": summary.loc["rmsnorm", "eval_loss_mean"]})
    return measured


def _measure_c8(results: Mapping[str, StudyResult]) -> dict:
    if _ladder(results) is not None:
        measured = _ladder_figures(results, "mean_abs_ratio", "bhyt", ratio=True)
    else:
        summary = _training_rows(results)
        runs = results["training"].table("training_runs", *RUN_COLUMNS)
        seeds = int(runs[(runs["label"] == "bhyt") & ~runs["diverged"].astype(bool)]["seed"].nunique())
        measured = {"mean_abs_ratio": summary.loc["bhyt", "mean_abs_baseline_ratio"],
                    "mean_abs_ratio_ci_low": math.nan, "mean_abs_ratio_ci_high": math.nan,
                    "mean_abs_ratio_trend": f"one shape only (no ladder results); variance ratio "
                    f"×{summary.loc['bhyt', 'variance_baseline_ratio']:.2f}, growth across depth RMSNorm "
                    f"×{summary.loc['rmsnorm', 'growth_mean_abs']:.2f}, BHyT ×{summary.loc['bhyt', 'growth_mean_abs']:.2f}",
                    "mean_abs_ratio_recipes": "every scheme at one shared learning rate (no tuning)",
                    "rung": "none", "evidence": _training_evidence(results, seeds)}
    measured["mean_abs_ratio_text"] = (f"×{measured['mean_abs_ratio']:.2f} "
                                       f"{_span(*_interval(measured, 'mean_abs_ratio'))}")
    return measured


@dataclass(frozen=True)
class Claim:
    """One claim: statement, source, the paper's figures, the study that tests it, its rule and explanation."""

    id: str
    statement: str
    source: str
    expected: str
    studies: tuple[str, ...]
    experiment: str
    rule: Rule
    measure: Callable[[Mapping[str, StudyResult]], dict]
    explanation: str
    expected_figures: dict = field(default_factory=dict)
    secondary: str = ""
    """Figures at the second shape (keys ``w256_…``), shown when that study has run."""
    second_studies: tuple[str, ...] = ()
    """Studies of the second shape: used where present, not needed for a verdict."""


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "Pre-LN's hidden-state magnitude and variance grow with depth (the curse of depth; Sun et al. bound "
          "Pre-LN's variance between Θ(L) and Θ(exp L)).", f"{PAPER}, §1 and Fig. 3; Sun et al., arXiv 2502.05795",
          "growth with depth, Θ(L) … Θ(exp L) in variance", ("growth",), "experiments.growth.fit_growth",
          RULES["C1"], _measure_c1,
          "At initialisation Pre-LN's position-averaged rms goes from {rms_first:.3g} after block 1 to {rms_last:.3g} "
          "after block {depth} (×{growth_factor:.2f}); the best of four two-parameter laws is {best_law}, and a power "
          "law gives exponent {exponent:.2f} (95 % CI {exponent_ci_low:.2f} to {exponent_ci_high:.2f}; √l would be "
          "0.5)."),
    Claim("C2", "DyT is faster than RMSNorm but fragile at depth.", f"{PAPER}, §1 and Table 1 (DyT worst loss at 374M: "
          "3.299 eval vs 3.216 RMSNorm)", "DyT faster; worse loss at depth (3.299 vs 3.216 at 374M)",
          ("efficiency", "training"),
          "experiments.efficiency.efficiency_study, experiments.training.analysis.training_summary",
          RULES["C2"], _measure_c2,
          "DyT's training-step speed-up over RMSNorm is {dyt_speedup:+.1f} % (95 % CI {dyt_speedup_ci_low:+.1f} to "
          "{dyt_speedup_ci_high:+.1f}); in CPU pretraining at the largest rung run ({rung}; the paper's evidence is "
          "Table 1 at 374M) {dyt_fragility_text}. Across rungs: {dyt_loss_gap_trend}. Recipes and rates: "
          "{dyt_loss_gap_recipes}.",
          {"dyt_eval_loss_374M": 3.299, "rmsnorm_eval_loss_374M": 3.216}),
    Claim("C3", "BHyT keeps tanh inputs in a non-saturating range by explicit, data-driven input bounding.",
          f"{PAPER}, §3 (method)", "tanh argument rms λ/κ whatever the input scale; no saturation",
          ("paper_init", "bounds"), "numerics.probes (saturated fractions), experiments.bounds.tightness_table",
          RULES["C3"], _measure_c3,
          "Across every layer of the initialised BHyT stack the largest fraction of tanh inputs with |z| ≥ 1 is "
          "{saturated_fraction:.3%} (layer {saturated_layer}, before {saturated_sublayer}; 95 % t interval up to "
          "{saturated_fraction_ci_high:.3%}, {saturated_fraction_df} df; the softmax-attention mean field predicts at "
          "most {meanfield_saturated_fraction:.3%}) and the largest argument rms {arg_rms_max:.3f} (λ/κ = 0.2 before "
          "attention, 0.1 before the MLP); the adversarial search's tightest measured/bound ratio for the "
          "distribution-free saturation bound is {bound_max_ratio:.6f} ({bound_max_construction}).",
          secondary="At the second shape (bhyt and bhytstar) the largest saturated fraction is "
          "{w256_saturated_fraction:.3%} and the largest argument rms {w256_arg_rms_max:.3f}.",
          second_studies=("trace",)),
    Claim("C4", "BHyT prevents depth-wise growth of activation magnitude and variance (a theoretical stability "
          "guarantee).", f"{PAPER}, §3 (theorem) and Fig. 3", "no growth of magnitude and variance with depth",
          ("paper_init", "bounds"), "experiments.growth.fit_growth, theory.bounds.depth_bound", RULES["C4"],
          _measure_c4,
          "At initialisation BHyT's rms goes from {rms_first:.3g} to {rms_last:.3g} over {depth} blocks "
          "(×{growth_factor:.2f}; best law {best_law}); its power-law exponent is {exponent:.2f} (95 % t interval "
          "{exponent_ci_low:.2f} to {exponent_ci_high:.2f}, {exponent_df} df; softmax-attention mean field "
          "{meanfield_exponent:.2f}) against Pre-LN's {rmsnorm_exponent:.2f}, and its last-layer rms is "
          "×{scale_vs_rmsnorm:.2f} Pre-LN's.",
          secondary="At the second shape BHyT's exponent is {w256_exponent:.2f} (95 % t interval "
          "{w256_exponent_ci_low:.2f} to {w256_exponent_ci_high:.2f}) over {w256_depth} blocks against Pre-LN's "
          "{w256_rmsnorm_exponent:.2f}, its last-layer rms ×{w256_scale_vs_rmsnorm:.2f} Pre-LN's.",
          second_studies=("growth",)),
    Claim("C5", "Exact statistics once per block suffice: the second normalisation's reduction is replaced by the "
          "estimate M₂ = m₁ + c_attn λ₁²/κ², which is accurate enough.", f"{PAPER}, §3 (method)",
          "M₂ ≈ m(h′)", ("paper_init",), "experiments.variance.estimator_comparison, "
          "theory.meanfield.predict_per_position (softmax attention)", RULES["C5"], _measure_c5,
          "Over every layer × position of the initialised BHyT stack the paper's M₂/m(h′) (Monte Carlo, mean over "
          "seeds) is {first_ratio:.3f} at layer 0, position 0 and {median_ratio:.3f} in median (down to {min_ratio:.3f}); "
          "the softmax-attention mean field gives {meanfield_first_ratio:.3f} and {meanfield_median_ratio:.3f} (its "
          "distance to the Monte Carlo: median {meanfield_agreement_median:.1%}, 90th percentile "
          "{meanfield_agreement_p90:.1%}). The worst error |M₂/m − 1| = {max_abs_error:.1%} is at layer {worst_layer}, "
          "position {worst_position} (largest 95 % t interval end {max_abs_error_ci_high:.1%}, {max_abs_error_df} df); "
          "the mean error is {mean_abs_error:.1%}.",
          secondary="At the second shape M₂/m(h′) is {w256_first_ratio:.3f} at layer 0, position 0 and "
          "{w256_median_ratio:.3f} in median; the worst error is {w256_max_abs_error:.1%} (layer {w256_worst_layer}, "
          "position {w256_worst_position}); the best alternative estimator ({w256_best_estimator}) has mean error "
          "{w256_best_estimator_mean_abs_error:.1%}.", second_studies=("variance",)),
    Claim("C6", "BHyT is faster than RMSNorm: +1.6 % training speed and +1.77 % token-generation throughput (v3; v1 "
          "said +15.8 % and +4.2 %).", f"{PAPER} v3 (v1 for the earlier figures), §5, GPU measurements",
          "v3: +1.6 % training, +1.77 % decode; v1: +15.8 %, +4.2 %", ("efficiency",),
          "experiments.efficiency.efficiency_study", RULES["C6"], _measure_c6,
          "Measured on {hardware} at width {width} over {rounds} interleaved rounds: one block's forward+backward is "
          "{training_speedup:+.1f} % faster with BHyT than with RMSNorm (95 % CI {training_speedup_ci_low:+.1f} to "
          "{training_speedup_ci_high:+.1f}), one decode step {decode_speedup:+.1f} % (CI {decode_speedup_ci_low:+.1f} "
          "to {decode_speedup_ci_high:+.1f}). The counted cost explains the size: the estimate removes one forward "
          "row reduction per block but neither pass over the activations nor the backward reduction.",
          {"v1": {"training_percent": 15.8, "decode_percent": 4.2}, "v3": {"training_percent": 1.6, "decode_percent": 1.77}}),
    Claim("C7", "Pretraining quality matches or beats RMSNorm.", f"{PAPER}, Table 1",
          "Llama-1B, 20B tokens: eval loss 2.802 BHyT vs 2.877 RMSNorm (2.884 Peri-LN, 2.848 LNS, 2.894 DyT); "
          "Llama-374M, 7.5B tokens: 3.207 vs 3.216", ("training",), "experiments.training.analysis.training_summary",
          RULES["C7"], _measure_c7,
          "In CPU pretraining (byte-level models far below the paper's 374M/7.5B tokens), at the largest rung run "
          "({rung}), BHyT's eval loss minus RMSNorm's, paired over seeds, is {loss_gap_text}. Across rungs: "
          "{loss_gap_trend}. Recipes and rates: {loss_gap_recipes}.",
          {"1B": {"bhyt": 2.802, "rmsnorm": 2.877, "periln": 2.884, "lns": 2.848, "dyt": 2.894},
           "374M": {"bhyt": 3.207, "rmsnorm": 3.216}}),
    Claim("C8", "After training, last-layer activations are far smaller with BHyT: mean |h| ≈ 800 (RMSNorm) vs ≈ 140 "
          "(BHyT), variance ≈ 300 vs ≈ 10 (Llama-1B, 16 layers).", f"{PAPER}, Fig. 3 (read off the plot)",
          "mean |h| ratio ≈ 5.7, variance ratio ≈ 30", ("training",), "experiments.training.analysis.training_summary",
          RULES["C8"], _measure_c8,
          "After CPU pretraining, at the largest rung run ({rung}), RMSNorm's last-layer mean |h| over BHyT's, paired "
          "over seeds, is {mean_abs_ratio_text} (paper ≈ 5.7). Across rungs: {mean_abs_ratio_trend}. Recipes and "
          "rates: {mean_abs_ratio_recipes}.",
          {"rmsnorm": {"mean_abs": 800, "variance": 300}, "bhyt": {"mean_abs": 140, "variance": 10},
           "periln": {"mean_abs": 330, "variance": 55}, "lns": {"mean_abs": 400, "variance": 90},
           "dyt": {"mean_abs": 350, "variance": 80}}),
    Claim("C9", "The decode-time precomputation of λ/κ and c_attn λ₁²/κ² is exact (greedy decoding identical).",
          f"{PAPER}, reference implementation README", "identical greedy decoding", ("decode",),
          "experiments.decode.decode_exactness", RULES["C9"], _measure_c9,
          "Over {settings} dtype × order-of-operations settings of the fast path, {inexact_settings} have outputs that "
          "differ from the unfused computation (normaliser outputs up to {max_ulps} ulps); bit-exact: {exact_list}; "
          "greedy decoding changes in {greedy_changed_list} (worst: {greedy_identical_min:.0%} of prompts identical)."),
)


@dataclass
class Assessment:
    """A claim (or statement) with its measured figures, its evidence and the verdict its rule gave."""

    id: str
    statement: str
    source: str
    expected: str
    rule: str
    verdict: str
    reason: str
    measured: dict
    explanation: str
    command: str
    experiment: str
    sizes: str = ""
    paper_figures: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    @property
    def reach(self) -> str:
        return reach(self.evidence)

    def as_dict(self) -> dict:
        return {k: _plain(v) for k, v in self.__dict__.items()}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _commands(claim: Claim, results: Mapping[str, StudyResult]) -> str:
    def command(name: str) -> str:
        if name in results and results[name].meta.get("command"):
            return results[name].meta["command"]
        return STUDIES[name].command(False) if name in STUDIES else LADDER_STUDY.subcommand

    names = [*claim.studies, *(name for name in claim.second_studies if name in results and not results[name].unavailable)]
    names += ["ladder"] if _ladder(results) is not None and "training" in claim.studies else []
    return "; ".join(command(name) for name in names)


def _missing(claim: Claim, results: Mapping[str, StudyResult]) -> list[str]:
    """Why a study ``claim`` needs has no result; the small training runs are not needed where ladder tables are."""
    needed = [name for name in claim.studies if not (name == "training" and _ladder(results) is not None)]
    missing = [results[name].unavailable for name in needed if name in results and results[name].unavailable]
    return missing + [f"no result of study {name!r} was given" for name in needed if name not in results]


def assess(claim: Claim, results: Mapping[str, StudyResult]) -> Assessment:
    """Apply ``claim``'s rule to the figures measured in ``results`` (study name → result).

    Below the rule's minimum evidence the verdict is "insufficient evidence" (a rule that finds the
    claim not testable on this hardware keeps that verdict); the figures are measured and shown either way.
    """
    base = dict(id=claim.id, statement=claim.statement, source=claim.source, expected=claim.expected,
                rule=claim.rule.describe(), command=_commands(claim, results), experiment=claim.experiment,
                paper_figures=claim.expected_figures)
    missing = _missing(claim, results)
    if missing:
        reason = missing[0]
        return Assessment(**base, verdict=NOT_RUN, reason=reason, measured={}, explanation=f"Not run: {reason}.")
    measured = dict(claim.measure(results))  # a missing table or column raises ResultMissing: never a verdict
    evidence = dict(measured.pop("evidence", {}))
    secondary = measured.pop("secondary", None)
    if secondary:
        evidence["secondary"] = secondary
    verdict = claim.rule.decide(measured)
    shortfall = claim.rule.minimum.shortfall(evidence) if claim.rule.minimum else None
    if shortfall and verdict.verdict != "not testable here":
        verdict = Verdict("insufficient evidence", f"below the rule's minimum evidence: {shortfall} (the measured "
                          "figures are shown, not judged)")
    used = [name for name in (*claim.studies, *claim.second_studies, "ladder") if name in results
            and not results[name].unavailable and (name != "ladder" or "training" in claim.studies)]
    sizes = "; ".join(f"{name}: {results[name].meta.get('sizes', '')}" + (" (quick)" if results[name].quick else "")
                      for name in used)
    explanation = f"Primary evidence: {reach(evidence)}. " + claim.explanation.format(**measured)
    if secondary and claim.secondary:
        explanation += (f" {claim.secondary.format(**measured)} There ({reach(secondary)}) the rule gives "
                        f"{secondary['verdict']}: {secondary['reason']}.")
    explanation += f" Verdict: {verdict.verdict} — {verdict.reason}. Sizes: {sizes}."
    return Assessment(**base, verdict=verdict.verdict, reason=verdict.reason, measured=measured,
                      explanation=explanation, sizes=sizes, evidence=evidence)


def assess_statements(results: Mapping[str, StudyResult]) -> list[Assessment]:
    """One assessment per written proof: confirmed when every check citing it passes."""
    checks = results.get("checks")
    if checks is None or checks.unavailable:
        return []
    table, proofs = checks.table("checks", "check", "proofs", "passed"), checks.table("proofs", "proof", "title")
    cited = table.assign(proofs=table["proofs"].fillna("").astype(str))
    out = []
    for proof in proofs.itertuples():
        rows = cited[cited["proofs"].str.split(", ").apply(lambda names, name=proof.proof: name in names)]
        failed = rows[~rows["passed"].astype(bool)]
        measured = {"checks": len(rows), "passed": int(rows["passed"].astype(bool).sum()), "failed": len(failed),
                    "failed_list": ", ".join(failed["check"]) or "none"}
        verdict = RULES["statement"].decide(measured)
        out.append(Assessment(
            id=f"proofs/{proof.proof}", statement=proof.title, source="this toolkit (docs/statements.md)",
            expected="every step checked", rule=RULES["statement"].describe(), verdict=verdict.verdict,
            reason=verdict.reason, measured=measured, explanation=f"{measured['passed']}/{measured['checks']} checks "
            f"citing proofs/{proof.proof} pass. Verdict: {verdict.verdict} — {verdict.reason}.",
            command=checks.meta.get("command", "bhyt-theory checks"), experiment="theory.checks.run_checks",
            evidence={"regime": "proof", "level": "proof", "checks": len(rows)}))
    return out


CLAIM_STUDIES = tuple(dict.fromkeys(name for claim in CLAIMS for name in (*claim.studies, *claim.second_studies)
                                    if name in STUDIES)) + ("checks",)


def with_ladder(results: dict[str, StudyResult], folder: str | Path) -> dict[str, StudyResult]:
    """``results`` with the ladder tables of ``folder`` added when no ladder result is there yet."""
    if _ladder(results) is None:
        ladder = load_ladder(folder)
        if ladder is not None:
            results = {**results, "ladder": ladder}
    return results


def evaluate(store: ResultsStore, quick: bool = True, compute_missing: bool = False) -> list[Assessment]:
    """Every claim C1–C9 and every proof statement, from ``store``'s latest results.

    A claim whose study has no current result is ``not run``; with ``compute_missing``
    such studies are computed first, at quick sizes when ``quick`` (full-size results
    already stored are used as they are). Ladder tables in the store's folder serve the
    trained claims.
    """
    results = with_ladder(store.collect(CLAIM_STUDIES, quick=quick, compute_missing=compute_missing), store.folder)
    return [assess(claim, results) for claim in CLAIMS] + assess_statements(results)


def compute_plan(store: ResultsStore, quick: bool = True) -> tuple[list[str], float]:
    """What ``evaluate(store, quick, compute_missing=True)`` would compute: the studies with no current
    result and their rough wall time in seconds (``Study.seconds``)."""
    pending = store.pending(CLAIM_STUDIES)
    return pending, float(sum(STUDIES[name].seconds[0 if quick else 1] for name in pending))


def all_insufficient(assessments: Sequence[Assessment]) -> bool:
    """True when no claim C1–C9 has a verdict: each is "insufficient evidence", "not testable here" or "not run"."""
    return all(a.verdict in ("insufficient evidence", "not testable here", NOT_RUN)
               for a in assessments if a.id.startswith("C"))


def claims_table(assessments: list[Assessment]) -> pd.DataFrame:
    """The assessments as a table for printing: id, verdict, reach, reason, expected, command."""
    return pd.DataFrame([{"id": a.id, "verdict": a.verdict, "reach": a.reach, "reason": a.reason, "paper": a.expected,
                          "command": a.command} for a in assessments])
