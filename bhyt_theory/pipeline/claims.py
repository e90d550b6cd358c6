"""The claims registry: what BHyT's paper claims, what this toolkit proves, and the verdict of each.

Each ``Claim`` holds its statement, its source in the paper (arXiv 2601.09719;
the version where a figure changed), the experiment that tests it (a study of
``bhyt_theory.pipeline.studies``), the paper's figures, a ``Rule`` — thresholds and
reasons, written here before any number is seen — and a template that turns the
measured figures into a one-paragraph explanation. ``evaluate`` reads the latest
results, applies each rule and returns one ``Assessment`` per claim; no verdict
is written by hand. The paper's claims are C1–C9 (docs/claims.md); the
toolkit's own statements are the written proofs (proofs/, docs/statements.md),
each confirmed when every check citing it passes.

Verdicts: ``confirmed`` (the rule's confirming condition holds), ``refuted``
(its refuting condition holds), ``qualified`` (neither: the claim holds in part or
only within stated limits), ``not testable here`` (the rule itself says the
experiment cannot address the claim on this hardware: C6 timed on a CPU). A claim
whose study has no result is ``not run`` (no rule applied; the reason names the
command that computes it); a stored result that lacks a table or a column the rule
reads raises ``ResultMissing`` naming the study and the column, never a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from .studies import STUDIES, ResultMissing, ResultsStore, StudyResult

VERDICTS = ("confirmed", "refuted", "qualified", "not testable here")
NOT_RUN = "not run"
"""The status of a claim whose study has no result here (not a verdict: no rule was applied)."""
PAPER = "Byun et al., arXiv 2601.09719"

# Thresholds of the rules, fixed before measuring (each with its reason).
GROWTH_EXPONENT = 0.1  # rms ∝ l^p: p = 0.1 is a factor 1.74 over 256 layers; below it "no material growth"
SATURATION_CONFIRM = 0.01  # fraction of tanh inputs with |z| ≥ 1: ≤ 1 % is non-saturating
SATURATION_REFUTE = 0.05  # above 5 % (more than the λ=2 distribution-free bound of 4 %) saturation is real
BOUND_TOLERANCE = 1e-6  # measured/bound above 1 + this (float rounding) is a violation
ESTIMATE_CONFIRM = 0.10  # |M₂/m − 1| ≤ 10 %: the second tanh argument off by ≤ 5 % in rms
ESTIMATE_REFUTE = 0.50  # an error above 50 % somewhere is not "accurate enough"
ACTIVATION_RATIO_CONFIRM = 2.0  # RMSNorm's last-layer mean |h| at least twice BHyT's (paper ≈ 5.7)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Rule:
    """A verdict rule: ``text`` states it in words, ``decide(measured)`` applies it."""

    text: str
    decide: Callable[[Mapping[str, object]], Verdict]


def _interval(measured: Mapping, key: str) -> tuple[float, float]:
    """``(low, high)`` of ``key``'s interval; the point value where no interval exists (one seed)."""
    value = float(measured[key])
    low, high = measured.get(f"{key}_ci_low", value), measured.get(f"{key}_ci_high", value)
    low = value if low is None or not math.isfinite(float(low)) else float(low)
    high = value if high is None or not math.isfinite(float(high)) else float(high)
    return low, high


def _pre_ln_grows(m: Mapping) -> Verdict:
    low, high = _interval(m, "exponent")
    if low > GROWTH_EXPONENT:
        return Verdict("confirmed", f"Pre-LN's power-law exponent is above {GROWTH_EXPONENT} (95 % CI from {low:.2f})")
    if high < GROWTH_EXPONENT:
        return Verdict("refuted", f"Pre-LN's power-law exponent is below {GROWTH_EXPONENT} (95 % CI up to {high:.2f})")
    return Verdict("qualified", f"the exponent's interval [{low:.2f}, {high:.2f}] straddles {GROWTH_EXPONENT}")


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
    return Verdict("qualified", f"BHyT's exponent interval [{low:.2f}, {high:.2f}] straddles {GROWTH_EXPONENT}; its "
                   f"last-layer rms is ×{m['scale_vs_rmsnorm']:.2f} of Pre-LN's")


def _non_saturating(m: Mapping) -> Verdict:
    if m["bound_max_ratio"] > 1 + BOUND_TOLERANCE:
        return Verdict("refuted", f"the saturation bound is exceeded (measured/bound {m['bound_max_ratio']:.6f})")
    if m["saturated_fraction"] > SATURATION_REFUTE:
        return Verdict("refuted", f"{m['saturated_fraction']:.1%} of BHyT's tanh inputs have |z| ≥ 1 (> {SATURATION_REFUTE:.0%})")
    if m["saturated_fraction"] <= SATURATION_CONFIRM:
        return Verdict("confirmed", f"at most {m['saturated_fraction']:.3%} of BHyT's tanh inputs have |z| ≥ 1 "
                       f"(≤ {SATURATION_CONFIRM:.0%}) and no input beat the distribution-free bound")
    return Verdict("qualified", f"{m['saturated_fraction']:.1%} of tanh inputs have |z| ≥ 1, between "
                   f"{SATURATION_CONFIRM:.0%} and {SATURATION_REFUTE:.0%}")


def _estimate_accurate(m: Mapping) -> Verdict:
    worst = m["max_abs_error"]
    if worst <= ESTIMATE_CONFIRM:
        return Verdict("confirmed", f"|M₂/m − 1| ≤ {worst:.1%} everywhere (≤ {ESTIMATE_CONFIRM:.0%})")
    if worst > ESTIMATE_REFUTE:
        return Verdict("refuted", f"|M₂/m − 1| reaches {worst:.1%} (> {ESTIMATE_REFUTE:.0%})")
    return Verdict("qualified", f"|M₂/m − 1| reaches {worst:.1%}: beyond {ESTIMATE_CONFIRM:.0%} but within "
                   f"{ESTIMATE_REFUTE:.0%}")


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


def _dyt_fast_but_fragile(m: Mapping) -> Verdict:
    speed = _interval(m, "dyt_speedup")
    fragile = m["dyt_fragility"] > 0
    if speed[0] > 0 and fragile:
        return Verdict("confirmed", "DyT is faster than RMSNorm and trains worse in the comparison")
    if speed[1] < 0 and not fragile:
        return Verdict("refuted", "DyT is neither faster than RMSNorm nor worse in training")
    return Verdict("qualified", ("DyT is faster" if speed[0] > 0 else "DyT is not measurably faster")
                   + (" and trains worse" if fragile else " and does not train worse"))


def _quality_matches(m: Mapping) -> Verdict:
    gap, se = m["loss_gap"], m["loss_gap_se"]
    if not math.isfinite(gap):
        if m["bhyt_finished"] == 0 and m["rmsnorm_finished"] > 0:
            return Verdict("refuted", f"every BHyT run diverged while {m['rmsnorm_finished']} RMSNorm runs finished")
        return Verdict("qualified", "no RMSNorm run finished, so there is no loss to compare with")
    if gap <= se:
        return Verdict("confirmed", f"BHyT's eval loss is within one standard error of RMSNorm's or below (gap {gap:+.4f} ± {se:.4f})")
    if gap > 2 * se:
        return Verdict("refuted", f"BHyT's eval loss is worse by more than two standard errors (gap {gap:+.4f} ± {se:.4f})")
    return Verdict("qualified", f"BHyT's eval loss is worse by 1–2 standard errors (gap {gap:+.4f} ± {se:.4f})")


def _smaller_trained_activations(m: Mapping) -> Verdict:
    ratio = m["mean_abs_ratio"]
    if not math.isfinite(ratio):
        return Verdict("qualified", "no finished pair of BHyT and RMSNorm runs to compare last-layer magnitudes")
    if ratio >= ACTIVATION_RATIO_CONFIRM:
        return Verdict("confirmed", f"RMSNorm's last-layer mean |h| is ×{ratio:.2f} BHyT's (≥ {ACTIVATION_RATIO_CONFIRM})")
    if ratio <= 1:
        return Verdict("refuted", f"BHyT's last-layer mean |h| is not smaller than RMSNorm's (ratio {ratio:.2f})")
    return Verdict("qualified", f"BHyT's last-layer mean |h| is smaller, by ×{ratio:.2f} only (< {ACTIVATION_RATIO_CONFIRM})")


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
        return Verdict("not testable here", f"only lemma checks cite this proof ({m['checks']}, all pass)")
    return Verdict("confirmed", f"all {m['checks']} checks pass ({m.get('package', m['checks'])} of them package checks)")


RULES = {
    "C1": Rule(f"confirmed if the 95 % CI of Pre-LN's power-law exponent p (rms ≈ A·l^p, across seeds) lies above "
               f"{GROWTH_EXPONENT}; refuted if below; qualified if it straddles", _pre_ln_grows),
    "C2": Rule("confirmed if DyT's training speed-up over RMSNorm has a 95 % CI above 0 and DyT's trained runs do "
               "worse than RMSNorm's in the training comparison (more divergences, or eval loss > 2 SE worse); "
               "refuted if neither; qualified otherwise", _dyt_fast_but_fragile),
    "C3": Rule(f"refuted if any input beats the distribution-free saturation bound (measured/bound > 1 + "
               f"{BOUND_TOLERANCE:g}) or more than {SATURATION_REFUTE:.0%} of BHyT's tanh inputs have |z| ≥ 1 at any "
               f"layer; confirmed if at most {SATURATION_CONFIRM:.0%}; qualified between", _non_saturating),
    "C4": Rule(f"confirmed if the 95 % CI of BHyT's power-law exponent lies below {GROWTH_EXPONENT}; refuted if it "
               f"lies above and BHyT's last-layer rms is no smaller than Pre-LN's; qualified otherwise",
               _bhyt_prevents_growth),
    "C5": Rule(f"confirmed if |M₂/m(h′) − 1| ≤ {ESTIMATE_CONFIRM:.0%} at every layer × position measured; refuted if "
               f"it exceeds {ESTIMATE_REFUTE:.0%} anywhere; qualified between", _estimate_accurate),
    "C6": Rule("on a GPU (the paper's setting): confirmed if BHyT's speed-up over RMSNorm has a 95 % CI above 0 for "
               "both the block training step and the decode step; refuted if either CI lies below 0; qualified "
               "otherwise. Timed on a CPU: not testable here (figures reported)", _faster),
    "C7": Rule("confirmed if BHyT's mean eval loss exceeds RMSNorm's by at most one standard error of the "
               "difference (or is lower); refuted if by more than two, or if every BHyT run diverged while an "
               "RMSNorm run finished; qualified between (or with no finished RMSNorm run)", _quality_matches),
    "C8": Rule(f"confirmed if RMSNorm's last-layer mean |h| after training is at least ×{ACTIVATION_RATIO_CONFIRM} "
               "BHyT's; refuted if BHyT's is not smaller; qualified between (or with no finished pair to compare)",
               _smaller_trained_activations),
    "C9": Rule("confirmed if every dtype × order of operations tested gives bit-identical outputs and greedy "
               "tokens; refuted if, in some dtype, no order tested keeps greedy decoding identical; qualified "
               "otherwise (exact only in some orders of operations)", _decode_exact),
    "statement": Rule("confirmed if every check citing the proof passes and at least one of them is a package check "
                      "(the package's code against an independent route); refuted if any fails", _statement_holds),
}


# ------------------------------------------------------------ measured figures from the studies' tables

def _growth_row(result: StudyResult, scheme: str, form: str = "power") -> tuple[pd.Series, pd.Series]:
    """The Monte Carlo fit of ``form`` for ``scheme`` and its best-fitting form."""
    fits = result.table("growth_fits", "source", "scheme", "form", "best", "law", "slope", "slope_ci_low",
                        "slope_ci_high", "rms_first", "rms_last")
    fits = fits[(fits["source"] == "monte carlo") & (fits["scheme"] == scheme)]
    return fits[fits["form"] == form].iloc[0], fits[fits["best"].astype(bool)].iloc[0]


def _measure_c1(results: Mapping[str, StudyResult]) -> dict:
    growth = results["growth"]
    power, best = _growth_row(growth, "rmsnorm")
    depth = int(growth.table("growth_rms", "depth")["depth"].iloc[0])
    return {"exponent": power["slope"], "exponent_ci_low": power["slope_ci_low"], "exponent_ci_high": power["slope_ci_high"],
            "rms_first": power["rms_first"], "rms_last": power["rms_last"],
            "growth_factor": power["rms_last"] / power["rms_first"], "best_law": best["law"], "depth": depth}


def _measure_c4(results: Mapping[str, StudyResult]) -> dict:
    measured = _measure_c1(results)
    power, best = _growth_row(results["growth"], "bhyt")
    reference = measured["rms_last"]
    return {"exponent": power["slope"], "exponent_ci_low": power["slope_ci_low"], "exponent_ci_high": power["slope_ci_high"],
            "rms_first": power["rms_first"], "rms_last": power["rms_last"],
            "growth_factor": power["rms_last"] / power["rms_first"], "best_law": best["law"],
            "scale_vs_rmsnorm": power["rms_last"] / reference, "rmsnorm_exponent": measured["exponent"],
            "depth": measured["depth"]}


def _measure_c3(results: Mapping[str, StudyResult]) -> dict:
    trace = results["trace"].table("trace", "statistic", "scheme", "mean")
    saturation = trace[(trace["statistic"] == "saturated_fraction_1") & trace["scheme"].isin(["bhyt", "bhytstar"])]
    arg = trace[(trace["statistic"] == "arg_rms") & trace["scheme"].isin(["bhyt", "bhytstar"])]
    bounds = results["bounds"].table("bounds_tightness", "bound", "ratio", "construction")
    saturation_bounds = bounds[bounds["bound"].astype(str).str.startswith("saturation")]
    return {"saturated_fraction": float(saturation["mean"].max()), "arg_rms_max": float(arg["mean"].max()),
            "bound_max_ratio": float(saturation_bounds["ratio"].max()),
            "bound_max_construction": str(saturation_bounds.loc[saturation_bounds["ratio"].idxmax(), "construction"])}


def _measure_c5(results: Mapping[str, StudyResult]) -> dict:
    table = results["variance"].table("variance_estimators", "estimator", "ratio", "ratio_se", "layer", "position")
    reference = table[table["estimator"] == "reference"]
    error = (reference["ratio"] - 1).abs()
    worst = reference.loc[error.idxmax()]
    best_other = (table[table["estimator"] != "reference"].assign(error=lambda t: (t["ratio"] - 1).abs())
                  .groupby("estimator")["error"].mean())
    return {"max_abs_error": float(error.max()), "mean_abs_error": float(error.mean()),
            "min_ratio": float(reference["ratio"].min()), "worst_layer": int(worst["layer"]),
            "worst_position": int(worst["position"]), "worst_se": float(worst["ratio_se"]) if pd.notna(worst["ratio_se"]) else float("nan"),
            "best_estimator": str(best_other.idxmin()) if len(best_other) else "none",
            "best_estimator_mean_abs_error": float(best_other.min()) if len(best_other) else float("nan")}


def _timing(results: Mapping[str, StudyResult], scheme: str, measurement: str) -> pd.Series:
    table = results["efficiency"].table("efficiency_timings", "scheme", "measurement", "speedup_percent",
                                        "speedup_ci_low", "speedup_ci_high", "hardware", "device", "rounds", "width")
    return table[(table["scheme"] == scheme) & (table["measurement"] == measurement)].iloc[0]


def _measure_c6(results: Mapping[str, StudyResult]) -> dict:
    training, decode = _timing(results, "bhyt", "block forward+backward"), _timing(results, "bhyt", "decode step")
    return {"training_speedup": training["speedup_percent"], "training_speedup_ci_low": training["speedup_ci_low"],
            "training_speedup_ci_high": training["speedup_ci_high"], "decode_speedup": decode["speedup_percent"],
            "decode_speedup_ci_low": decode["speedup_ci_low"], "decode_speedup_ci_high": decode["speedup_ci_high"],
            "hardware": training["hardware"], "device": str(training["device"]).split(":")[0],
            "rounds": int(training["rounds"]),
            "width": int(training["width"])}


def _measure_c9(results: Mapping[str, StudyResult]) -> dict:
    table = results["decode"].table("decode_exactness", "dtype", "order", "norm_fraction_differing",
                                    "block_fraction_differing", "greedy_identical_fraction", "norm_max_ulps")
    exact = (table["norm_fraction_differing"] == 0) & (table["block_fraction_differing"] == 0) & (
        table["greedy_identical_fraction"] == 1)
    greedy_changed = table[table["greedy_identical_fraction"] < 1]
    no_exact = [dtype for dtype, rows in table.groupby("dtype", sort=False)
                if not (rows["greedy_identical_fraction"] == 1).any()]
    return {"greedy_identical_min": float(table["greedy_identical_fraction"].min()),
            "inexact_settings": int((~exact).sum()), "settings": int(len(table)),
            "max_ulps": int(table["norm_max_ulps"].max()),
            "exact_list": ", ".join(f"{r.dtype}/{r.order}" for r in table[exact].itertuples()) or "none",
            "greedy_changed_list": ", ".join(f"{r.dtype}/{r.order}" for r in greedy_changed.itertuples()) or "none",
            "dtypes_without_exact_order": ", ".join(no_exact)}


TRAINING_COLUMNS = ("label", "n_runs", "n_diverged", "eval_loss_mean", "eval_loss_sd", "mean_abs_baseline_ratio",
                    "variance_baseline_ratio", "last_mean_abs", "growth_mean_abs")
"""The columns of the training summary the claims read."""


def _training_rows(results: Mapping[str, StudyResult], labels: tuple[str, ...] = ("bhyt", "rmsnorm", "dyt")) -> pd.DataFrame:
    """The training summary by label, checked to hold the rows ``labels``."""
    summary = results["training"].table("training_summary", *TRAINING_COLUMNS).set_index("label")
    absent = [label for label in labels if label not in summary.index]
    if absent:
        raise ResultMissing(f"study 'training', table 'training_summary' has no row for label {absent[0]!r}")
    return summary


def _loss_gap(summary: pd.DataFrame, label: str, baseline: str = "rmsnorm") -> tuple[float, float, int, int]:
    """Mean eval-loss difference ``label − baseline``, its standard error (finished seeds) and the
    number of finished runs of each; the difference is NaN where either has no finished run."""
    rows = summary.loc[[label, baseline]]
    finished = (rows["n_runs"] - rows["n_diverged"]).astype(int)
    counts = int(finished[label]), int(finished[baseline])
    if (finished < 1).any() or rows["eval_loss_mean"].isna().any():
        return math.nan, math.nan, *counts
    variance = (rows["eval_loss_sd"].fillna(0) ** 2 / finished).sum()
    return float(rows.loc[label, "eval_loss_mean"] - rows.loc[baseline, "eval_loss_mean"]), math.sqrt(variance), *counts


def _measure_c2(results: Mapping[str, StudyResult]) -> dict:
    timing = _timing(results, "dyt", "block forward+backward")
    summary = _training_rows(results)
    diverged = summary["n_diverged"] / summary["n_runs"]
    gap, se, _, _ = _loss_gap(summary, "dyt")
    fragile = bool(diverged["dyt"] > diverged["rmsnorm"] or (math.isfinite(gap) and gap > 2 * se))
    text = (f"{int(summary.loc['dyt', 'n_diverged'])}/{int(summary.loc['dyt', 'n_runs'])} DyT runs diverged against "
            f"{int(summary.loc['rmsnorm', 'n_diverged'])}/{int(summary.loc['rmsnorm', 'n_runs'])} RMSNorm runs, and "
            f"DyT's eval loss minus RMSNorm's is {gap:+.4f} ± {se:.4f}")
    return {"dyt_speedup": timing["speedup_percent"], "dyt_speedup_ci_low": timing["speedup_ci_low"],
            "dyt_speedup_ci_high": timing["speedup_ci_high"], "dyt_fragility": float(fragile),
            "dyt_loss_gap": gap, "dyt_loss_gap_se": se, "dyt_fragility_text": text}


def _measure_c7(results: Mapping[str, StudyResult]) -> dict:
    summary = _training_rows(results)
    gap, se, finished, baseline_finished = _loss_gap(summary, "bhyt")
    return {"loss_gap": gap, "loss_gap_se": se, "bhyt_eval_loss": summary.loc["bhyt", "eval_loss_mean"],
            "rmsnorm_eval_loss": summary.loc["rmsnorm", "eval_loss_mean"], "bhyt_finished": finished,
            "rmsnorm_finished": baseline_finished}


def _measure_c8(results: Mapping[str, StudyResult]) -> dict:
    summary = _training_rows(results)
    return {"mean_abs_ratio": summary.loc["bhyt", "mean_abs_baseline_ratio"],
            "variance_ratio": summary.loc["bhyt", "variance_baseline_ratio"],
            "rmsnorm_mean_abs": summary.loc["rmsnorm", "last_mean_abs"],
            "bhyt_mean_abs": summary.loc["bhyt", "last_mean_abs"],
            "rmsnorm_growth": summary.loc["rmsnorm", "growth_mean_abs"],
            "bhyt_growth": summary.loc["bhyt", "growth_mean_abs"]}


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
          "{dyt_speedup_ci_high:+.1f}); in the CPU training comparison (one depth; the paper's evidence is Table 1 at "
          "374M) {dyt_fragility_text}.",
          {"dyt_eval_loss_374M": 3.299, "rmsnorm_eval_loss_374M": 3.216}),
    Claim("C3", "BHyT keeps tanh inputs in a non-saturating range by explicit, data-driven input bounding.",
          f"{PAPER}, §3 (method)", "tanh argument rms λ/κ whatever the input scale; no saturation",
          ("trace", "bounds"), "numerics.probes (saturated fractions), experiments.bounds.tightness_table",
          RULES["C3"], _measure_c3,
          "Across every layer of the initialised bhyt and bhytstar stacks the largest fraction of tanh inputs with "
          "|z| ≥ 1 is {saturated_fraction:.3%} and the largest argument rms {arg_rms_max:.3f} (λ/κ = 0.2 before "
          "attention, 0.1 before the MLP); the adversarial search's tightest measured/bound ratio for the "
          "distribution-free saturation bound is {bound_max_ratio:.6f} ({bound_max_construction})."),
    Claim("C4", "BHyT prevents depth-wise growth of activation magnitude and variance (a theoretical stability "
          "guarantee).", f"{PAPER}, §3 (theorem) and Fig. 3", "no growth of magnitude and variance with depth",
          ("growth", "bounds"), "experiments.growth.fit_growth, theory.bounds.depth_bound", RULES["C4"], _measure_c4,
          "At initialisation BHyT's rms goes from {rms_first:.3g} to {rms_last:.3g} over {depth} blocks "
          "(×{growth_factor:.2f}; best law {best_law}); its power-law exponent is {exponent:.2f} (95 % CI "
          "{exponent_ci_low:.2f} to {exponent_ci_high:.2f}) against Pre-LN's {rmsnorm_exponent:.2f}, and its last-layer "
          "rms is ×{scale_vs_rmsnorm:.2f} Pre-LN's."),
    Claim("C5", "Exact statistics once per block suffice: the second normalisation's reduction is replaced by the "
          "estimate M₂ = m₁ + c_attn λ₁²/κ², which is accurate enough.", f"{PAPER}, §3 (method)",
          "M₂ ≈ m(h′)", ("variance",), "experiments.variance.estimator_comparison", RULES["C5"], _measure_c5,
          "Over the layers × positions measured at initialisation the paper's M₂/m(h′) ranges down to {min_ratio:.3f}; "
          "the worst error |M₂/m − 1| = {max_abs_error:.1%} is at layer {worst_layer}, position {worst_position} "
          "(standard error over seeds {worst_se:.2g}); the mean error is {mean_abs_error:.1%}. The best alternative "
          "estimator ({best_estimator}) has mean error {best_estimator_mean_abs_error:.1%}."),
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
          "In the CPU pretraining runs (a small byte-level model, far from the paper's 1B/20B tokens) BHyT's mean eval "
          "loss is {bhyt_eval_loss:.4f} against RMSNorm's {rmsnorm_eval_loss:.4f}: a difference of {loss_gap:+.4f} ± "
          "{loss_gap_se:.4f} (standard error over seeds).",
          {"1B": {"bhyt": 2.802, "rmsnorm": 2.877, "periln": 2.884, "lns": 2.848, "dyt": 2.894},
           "374M": {"bhyt": 3.207, "rmsnorm": 3.216}}),
    Claim("C8", "After training, last-layer activations are far smaller with BHyT: mean |h| ≈ 800 (RMSNorm) vs ≈ 140 "
          "(BHyT), variance ≈ 300 vs ≈ 10 (Llama-1B, 16 layers).", f"{PAPER}, Fig. 3 (read off the plot)",
          "mean |h| ratio ≈ 5.7, variance ratio ≈ 30", ("training",), "experiments.training.analysis.training_summary",
          RULES["C8"], _measure_c8,
          "After CPU pretraining RMSNorm's last-layer mean |h| is {rmsnorm_mean_abs:.3g} and BHyT's {bhyt_mean_abs:.3g} "
          "(ratio ×{mean_abs_ratio:.2f}; variance ratio ×{variance_ratio:.2f}; paper ≈ 5.7 and ≈ 30). Growth across "
          "depth (last / first layer): RMSNorm ×{rmsnorm_growth:.2f}, BHyT ×{bhyt_growth:.2f}.",
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
    """A claim (or statement) with its measured figures and the verdict its rule gave."""

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
    return "; ".join(results[name].meta.get("command", STUDIES[name].command(False)) if name in results and name in STUDIES
                     else "bhyt-theory train" for name in claim.studies)


def assess(claim: Claim, results: Mapping[str, StudyResult]) -> Assessment:
    """Apply ``claim``'s rule to the figures measured in ``results`` (study name → result)."""
    base = dict(id=claim.id, statement=claim.statement, source=claim.source, expected=claim.expected,
                rule=claim.rule.text, command=_commands(claim, results), experiment=claim.experiment,
                paper_figures=claim.expected_figures)
    missing = [results[name].unavailable for name in claim.studies if name in results and results[name].unavailable]
    missing += [f"no result of study {name!r} was given" for name in claim.studies if name not in results]
    if missing:
        reason = missing[0]
        return Assessment(**base, verdict=NOT_RUN, reason=reason, measured={}, explanation=f"Not run: {reason}.")
    measured = dict(claim.measure(results))  # a missing table or column raises ResultMissing: never a verdict
    verdict = claim.rule.decide(measured)
    sizes = "; ".join(f"{name}: {results[name].meta.get('sizes', '')}" + (" (quick)" if results[name].quick else "")
                      for name in claim.studies)
    explanation = (claim.explanation.format(**measured) + f" Verdict: {verdict.verdict} — {verdict.reason}. "
                   f"Sizes: {sizes}.")
    return Assessment(**base, verdict=verdict.verdict, reason=verdict.reason, measured=measured,
                      explanation=explanation, sizes=sizes)


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
                    "failed_list": ", ".join(failed["check"]) or "none",
                    "package": int((rows["kind"] == "package").sum()) if "kind" in rows else len(rows)}
        verdict = RULES["statement"].decide(measured)
        out.append(Assessment(
            id=f"proofs/{proof.proof}", statement=proof.title, source="this toolkit (docs/statements.md)",
            expected="every step checked", rule=RULES["statement"].text, verdict=verdict.verdict, reason=verdict.reason,
            measured=measured, explanation=f"{measured['passed']}/{measured['checks']} checks citing proofs/{proof.proof} "
            f"pass. Verdict: {verdict.verdict} — {verdict.reason}.", command=checks.meta.get("command", "bhyt-theory checks"),
            experiment="theory.checks.run_checks"))
    return out


CLAIM_STUDIES = tuple(dict.fromkeys(name for claim in CLAIMS for name in claim.studies if name in STUDIES)) + ("checks",)


def evaluate(store: ResultsStore, quick: bool = True, compute_missing: bool = False) -> list[Assessment]:
    """Every claim C1–C9 and every proof statement, from ``store``'s latest results.

    A claim whose study has no current result is ``not run``; with ``compute_missing``
    such studies are computed first, at quick sizes when ``quick`` (full-size results
    already stored are used as they are).
    """
    results = store.collect(CLAIM_STUDIES, quick=quick, compute_missing=compute_missing)
    return [assess(claim, results) for claim in CLAIMS] + assess_statements(results)


def compute_plan(store: ResultsStore, quick: bool = True) -> tuple[list[str], float]:
    """What ``evaluate(store, quick, compute_missing=True)`` would compute: the studies with no current
    result and their rough wall time in seconds (``Study.seconds``)."""
    pending = store.pending(CLAIM_STUDIES)
    return pending, float(sum(STUDIES[name].seconds[0 if quick else 1] for name in pending))


def claims_table(assessments: list[Assessment]) -> pd.DataFrame:
    """The assessments as a table for printing: id, verdict, reason, expected, command."""
    return pd.DataFrame([{"id": a.id, "verdict": a.verdict, "reason": a.reason, "paper": a.expected,
                          "command": a.command} for a in assessments])

