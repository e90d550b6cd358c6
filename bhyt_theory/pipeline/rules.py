"""The verdict rules of the claims registry: each threshold fixed before measuring (with its
reason), each rule a function of the measured figures (``decide``) with the minimum evidence it
needs. ``claims`` attaches them to the claims; ``measures`` computes what they read."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .evidence import PAIRED_SEEDS, Minimum, interval_ends, span
from .tables import PAPER_PRESET

VERDICTS = ("confirmed", "refuted", "qualified", "insufficient evidence", "not testable here")

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


# V1, the toolkit's variant bhytc (docs/schemes.md §7): a mean-field prediction against its measurement
VARIANT_ESTIMATE_CONFIRM = 0.05  # the target: M₂/m(h′) within 5 % past position 8
VARIANT_ESTIMATE_REFUTE = 0.20  # worse than 20 % somewhere: no better than the reference at the paper's shape
VARIANT_AGREEMENT = 0.05  # prediction vs measurement: the mean field's stated accuracy for BHyT (docs/statements.md §8)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


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
    low, high = interval_ends(m, "exponent")
    if low > GROWTH_EXPONENT:
        return Verdict("confirmed", f"Pre-LN's power-law exponent is above {GROWTH_EXPONENT} (95 % CI from {low:.2f})")
    if high < GROWTH_EXPONENT:
        return Verdict("refuted", f"Pre-LN's power-law exponent is below {GROWTH_EXPONENT} (95 % CI up to {high:.2f})")
    return Verdict("qualified", f"the exponent's interval {span(low, high)} straddles {GROWTH_EXPONENT}")


def _bhyt_prevents_growth(m: Mapping) -> Verdict:
    low, high = interval_ends(m, "exponent")
    if high < GROWTH_EXPONENT:
        return Verdict("confirmed", f"BHyT's power-law exponent stays below {GROWTH_EXPONENT} (95 % CI up to {high:.2f})")
    if low > GROWTH_EXPONENT and m["scale_vs_rmsnorm"] >= 1:
        return Verdict("refuted", f"BHyT's rms grows (exponent CI from {low:.2f}) and ends no smaller than Pre-LN's "
                       f"(×{m['scale_vs_rmsnorm']:.2f})")
    if low > GROWTH_EXPONENT:
        return Verdict("qualified", f"BHyT's rms still grows with depth (exponent {m['exponent']:.2f}, CI from "
                       f"{low:.2f}) but ends at ×{m['scale_vs_rmsnorm']:.2f} of Pre-LN's")
    return Verdict("qualified", f"BHyT's exponent interval {span(low, high)} straddles {GROWTH_EXPONENT}; its "
                   f"last-layer rms is ×{m['scale_vs_rmsnorm']:.2f} of Pre-LN's")


def _non_saturating(m: Mapping) -> Verdict:
    low, high = interval_ends(m, "saturated_fraction")
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
                   f"(95 % CI {span(low, high, 3, percent=True)}), not within {SATURATION_CONFIRM:.0%} nor above "
                   f"{SATURATION_REFUTE:.0%}")


def _estimate_accurate(m: Mapping) -> Verdict:
    low, high = interval_ends(m, "max_abs_error")
    if high <= ESTIMATE_CONFIRM:
        return Verdict("confirmed", f"|M₂/m − 1| is within {ESTIMATE_CONFIRM:.0%} at every layer × position (95 % CI "
                       f"up to {high:.1%})")
    if low > ESTIMATE_REFUTE:
        return Verdict("refuted", f"|M₂/m − 1| exceeds {ESTIMATE_REFUTE:.0%} at layer {m['worst_layer']}, position "
                       f"{m['worst_position']} (95 % CI from {low:.1%}; point {m['max_abs_error']:.1%})")
    return Verdict("qualified", f"the worst |M₂/m − 1| is {m['max_abs_error']:.1%} (95 % CI "
                   f"{span(low, high, 1, percent=True)}): not within {ESTIMATE_CONFIRM:.0%} everywhere nor surely "
                   f"above {ESTIMATE_REFUTE:.0%} anywhere")


def _faster(m: Mapping) -> Verdict:
    training, decode = interval_ends(m, "training_speedup"), interval_ends(m, "decode_speedup")
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
    low, high = interval_ends(m, key)
    if m[diverged] > m[baseline_diverged] or low > LOSS_MARGIN:
        return "worse"
    if high <= LOSS_MARGIN:
        return "not worse"
    return "undetermined"


def _dyt_fast_but_fragile(m: Mapping) -> Verdict:
    speed = interval_ends(m, "dyt_speedup")
    fragile = worse_in_training(m, "dyt_loss_gap", "dyt_diverged", "rmsnorm_diverged")
    trains = {"worse": "trains worse", "not worse": "does not train worse",
              "undetermined": "is not distinguishable from RMSNorm in training"}[fragile]
    if m.get("device", "cuda") != "cuda":
        return Verdict("not testable here", f"DyT's speed is a GPU claim and this run timed {m['device']} (speed-up "
                       f"{m['dyt_speedup']:+.1f} % [{speed[0]:+.1f}, {speed[1]:+.1f}], reported only); in training "
                       f"DyT {trains}")
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
    low, high = interval_ends(m, "loss_gap")
    gap = f"paired gap {m['loss_gap']:+.4f}, 95 % CI {span(low, high, 4)}, {m.get('loss_gap_df', 0)} df"
    if high <= LOSS_MARGIN:
        return Verdict("confirmed", f"BHyT's eval loss is at most {LOSS_MARGIN} above RMSNorm's or below ({gap})")
    if low > LOSS_MARGIN:
        return Verdict("refuted", f"BHyT's eval loss is worse than RMSNorm's by more than {LOSS_MARGIN} ({gap})")
    return Verdict("qualified", f"the interval of BHyT − RMSNorm straddles +{LOSS_MARGIN} ({gap})")


def _smaller_trained_activations(m: Mapping) -> Verdict:
    if not math.isfinite(m["mean_abs_ratio"]):
        return Verdict("qualified", "no finished pair of BHyT and RMSNorm runs to compare last-layer magnitudes")
    low, high = interval_ends(m, "mean_abs_ratio")
    ratio = f"ratio ×{m['mean_abs_ratio']:.2f}, 95 % CI {span(low, high)}"
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
    if m.get("package", m["checks"]) == 0:  # lemma checks verify the mathematics, not the package
        return Verdict("insufficient evidence", f"only lemma checks cite this proof ({m['checks']}, all pass): "
                       "they verify the mathematics, not the package")
    return Verdict("confirmed", f"all {m['checks']} checks pass ({m.get('package', m['checks'])} of them package checks)")


def _variant_works(m: Mapping) -> Verdict:
    low, high = interval_ends(m, "exponent")
    paper = m.get("paper_excess")  # None: the presets were not measured (quick runs)
    if m["estimate_error"] > VARIANT_ESTIMATE_REFUTE or low > GROWTH_EXPONENT or (
            paper is not None and paper > VARIANT_ESTIMATE_REFUTE):
        return Verdict("refuted", f"bhytc's worst layer-mean |M₂/m − 1| past position 8 is {m['estimate_error']:.1%} "
                                  f"and its growth exponent's CI starts at {low:.3f}; at the presets: {m['paper_cells']}")
    agreed = m["prediction_gap"] <= VARIANT_AGREEMENT and abs(m["exponent"] - m["predicted_exponent"]) <= max(
        VARIANT_AGREEMENT, (high - low) / 2)
    study_holds = m["estimate_error"] <= VARIANT_ESTIMATE_CONFIRM and high < GROWTH_EXPONENT and agreed
    if study_holds and (paper is None or paper <= VARIANT_ESTIMATE_CONFIRM):
        return Verdict("confirmed", f"M₂/m(h′) within {m['estimate_error']:.1%} of 1 past position 8, growth exponent "
                                    f"CI below {GROWTH_EXPONENT}, both as the mean field predicted; at the presets: "
                                    f"{m['paper_cells']}")
    beyond = ("" if paper is None else f"; worst preset cell {paper:.1%} beyond its Monte Carlo allowance "
                                          f"(confirmed needs ≤ {VARIANT_ESTIMATE_CONFIRM:.0%})")
    return Verdict("qualified", f"estimate error {m['estimate_error']:.1%}, exponent CI [{low:.3f}, {high:.3f}], "
                                f"prediction gap {m['prediction_gap']:.1%}{beyond}; at the presets, cell by cell: "
                                f"{m['paper_cells']}")


TRAINED_MINIMUM = Minimum("trained", level="small", seeds=PAIRED_SEEDS, rungs=2)
"""C2, C7, C8: three paired seeds give a t interval with 2 df; two rungs give a trend across scale."""

RULES = {
    "C1": Rule(f"confirmed if the 95 % t interval across seeds of Pre-LN's power-law exponent p (rms ≈ A·l^p) lies "
               f"above {GROWTH_EXPONENT} (a factor 1.74 over 256 layers); refuted if below; qualified if it straddles",
               _pre_ln_grows, Minimum("init", level="small", seeds=3)),
    "C2": Rule(f"confirmed if DyT's training speed-up over RMSNorm has a 95 % CI above 0 and DyT trains worse than "
               f"RMSNorm at the largest ladder rung (more divergences, or the 95 % t interval of the paired eval-loss "
               f"gap above +{LOSS_MARGIN}); refuted if the speed-up's CI lies below 0 and DyT does not train worse "
               f"(no more divergences and the gap's interval at or below +{LOSS_MARGIN}); qualified otherwise. The "
               f"speed half is a GPU claim: timed on a CPU, not testable here (figures reported)",
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
    "V1": Rule(
        f"confirmed if bhytc's M₂/m(h′) (mean over positions ≥ 8, per layer) is within {VARIANT_ESTIMATE_CONFIRM:.0%} of 1 "
        f"at every layer, the 95 % CI of its power-law growth exponent lies below {GROWTH_EXPONENT}, both agree with "
        f"the mean field's prediction (ratios within {VARIANT_AGREEMENT:.0%}, exponent within "
        f"max({VARIANT_AGREEMENT}, the CI half-width)), and at the paper presets (full runs) every cell layer × position "
        f"≥ 8 is within {VARIANT_ESTIMATE_CONFIRM:.0%} of 1 beyond its Monte Carlo allowance (95 % t quantile × standard "
        f"error over seeds); refuted if the "
        f"estimate is off by more than {VARIANT_ESTIMATE_REFUTE:.0%} at some layer (or, beyond that allowance, at some "
        f"preset cell) or the exponent's CI lies above {GROWTH_EXPONENT}; qualified otherwise",
        _variant_works, Minimum("init", level="small", seeds=3)),
    "statement": Rule("confirmed if every check citing the proof passes and at least one of them is a package check "
                      "(the package's code against an independent route); refuted if any fails", _statement_holds),
}


def judge_second(rule: Rule, measured: Mapping, evidence: dict) -> dict:
    """``rule`` applied at a second shape, below the paper's by design: its minimum without the preset
    (level ``small``, the same seeds). Returns the evidence with the verdict and its reason."""
    verdict = rule.decide(measured)
    shortfall = dataclasses.replace(rule.minimum, preset="", level="small").shortfall(evidence)
    if shortfall:
        verdict = Verdict("insufficient evidence", f"below the minimum evidence: {shortfall}")
    return {**evidence, "verdict": verdict.verdict, "reason": verdict.reason}
