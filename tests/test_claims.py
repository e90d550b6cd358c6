"""The claims registry: every verdict comes from its rule; each threshold of each rule is tested
exactly at, just below and just above its value; below a rule's minimum evidence (one seed among
them) no claim is confirmed or refuted; paired statistics agree with scipy; trained claims are
read from ladder tables."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bhyt_theory.cli.main import main
from bhyt_theory.pipeline import claims, evidence, measures, rules
from bhyt_theory.pipeline.claims import CLAIMS, LADDER_STUDY, NOT_RUN, assess, evaluate
from bhyt_theory.pipeline.studies import ResultMissing
from bhyt_theory.pipeline.rules import (
    ACTIVATION_RATIO_CONFIRM,
    BOUND_TOLERANCE,
    ESTIMATE_CONFIRM,
    ESTIMATE_REFUTE,
    GROWTH_EXPONENT,
    LOSS_MARGIN,
    RULES,
    SATURATION_CONFIRM,
    SATURATION_REFUTE,
    VERDICTS,
)
from bhyt_theory.pipeline.studies import NOT_AVAILABLE, STUDIES, ResultMissing, ResultsStore, StudyResult

# Measured figures on the confirming side of every rule (intervals present, well inside).
CONFIRMING = {
    "C1": {"exponent": 0.5, "exponent_ci_low": 0.3, "exponent_ci_high": 0.7},
    "C2": {"dyt_speedup": 5.0, "dyt_speedup_ci_low": 1.0, "dyt_speedup_ci_high": 9.0, "dyt_loss_gap": 0.2,
           "dyt_loss_gap_ci_low": 0.1, "dyt_loss_gap_ci_high": 0.3, "dyt_diverged": 0, "rmsnorm_diverged": 0},
    "C3": {"saturated_fraction": 0.001, "saturated_fraction_ci_low": 0.0, "saturated_fraction_ci_high": 0.002,
           "bound_max_ratio": 0.5},
    "C4": {"exponent": 0.0, "exponent_ci_low": -0.05, "exponent_ci_high": 0.05, "scale_vs_rmsnorm": 0.2},
    "C5": {"max_abs_error": 0.02, "max_abs_error_ci_low": 0.01, "max_abs_error_ci_high": 0.03, "worst_layer": 0,
           "worst_position": 0},
    "C6": {"training_speedup": 2.0, "training_speedup_ci_low": 0.5, "training_speedup_ci_high": 3.5,
           "decode_speedup": 2.0, "decode_speedup_ci_low": 0.1, "decode_speedup_ci_high": 3.9,
           "hardware": "GPU", "device": "cuda"},
    "C7": {"loss_gap": -0.01, "loss_gap_ci_low": -0.02, "loss_gap_ci_high": 0.0, "loss_gap_df": 2},
    "C8": {"mean_abs_ratio": 4.0, "mean_abs_ratio_ci_low": 3.0, "mean_abs_ratio_ci_high": 5.0},
    "C9": {"inexact_settings": 0, "settings": 6, "max_ulps": 0, "exact_list": "all", "greedy_changed_list": "none",
           "dtypes_without_exact_order": ""},
}

# (rule, base figures, key moved, threshold, verdict just below, exactly at, just above). Each
# threshold is a constant of the rule module, so "exactly at" compares the same double.
CONFIRMING["V1"] = {"estimate_error": 0.04, "prediction_gap": 0.01, "exponent": 0.01, "predicted_exponent": 0.01,
                    "exponent_ci_low": 0.0, "exponent_ci_high": 0.02, "paper_excess": 0.01,
                    "paper_cells": "llama-374m: worst 1.0 %"}

BOUNDARIES = [
    # V1 (bhytc): the estimate error at 5 % (confirm) and 20 % (refute); the prediction gap at 5 %; the
    # exponent interval's high end at 0.1 (confirm) and its low end at 0.1 (refute)
    ("V1", CONFIRMING["V1"], "estimate_error", 0.05, "confirmed", "confirmed", "qualified"),
    ("V1", CONFIRMING["V1"], "estimate_error", 0.20, "qualified", "qualified", "refuted"),
    ("V1", CONFIRMING["V1"], "prediction_gap", 0.05, "confirmed", "confirmed", "qualified"),
    # ... and the worst preset cell beyond its Monte Carlo allowance at 5 % (confirm) and 20 % (refute)
    ("V1", CONFIRMING["V1"], "paper_excess", 0.05, "confirmed", "confirmed", "qualified"),
    ("V1", CONFIRMING["V1"], "paper_excess", 0.20, "qualified", "qualified", "refuted"),
    ("V1", {**CONFIRMING["V1"], "exponent": 0.09, "predicted_exponent": 0.09, "exponent_ci_low": 0.08},
     "exponent_ci_high", GROWTH_EXPONENT, "confirmed", "qualified", "qualified"),
    ("V1", {**CONFIRMING["V1"], "exponent": 0.2, "predicted_exponent": 0.2, "exponent_ci_high": 0.3},
     "exponent_ci_low", GROWTH_EXPONENT, "qualified", "qualified", "refuted"),
    # C1: confirmed iff the interval's low end is above p = 0.1; refuted iff its high end is below
    ("C1", {"exponent": 0.3, "exponent_ci_high": 0.5}, "exponent_ci_low", GROWTH_EXPONENT,
     "qualified", "qualified", "confirmed"),
    ("C1", {"exponent": 0.0, "exponent_ci_low": -0.2}, "exponent_ci_high", GROWTH_EXPONENT,
     "refuted", "qualified", "qualified"),
    # C4: confirmed iff the high end is below 0.1; refuted iff low end above 0.1 and scale ≥ 1
    ("C4", {"exponent": 0.0, "exponent_ci_low": -0.1, "scale_vs_rmsnorm": 0.5}, "exponent_ci_high", GROWTH_EXPONENT,
     "confirmed", "qualified", "qualified"),
    ("C4", {"exponent": 0.5, "exponent_ci_high": 0.7, "scale_vs_rmsnorm": 1.5}, "exponent_ci_low", GROWTH_EXPONENT,
     "qualified", "qualified", "refuted"),
    ("C4", {"exponent": 0.5, "exponent_ci_low": 0.3, "exponent_ci_high": 0.7}, "scale_vs_rmsnorm", 1.0,
     "qualified", "refuted", "refuted"),
    # C3: the bound (1 + tolerance), the refuting 5 % on the low end, the confirming 1 % on the high end
    ("C3", CONFIRMING["C3"], "bound_max_ratio", 1 + BOUND_TOLERANCE, "confirmed", "confirmed", "refuted"),
    ("C3", {**CONFIRMING["C3"], "saturated_fraction": 0.08, "saturated_fraction_ci_high": 0.1},
     "saturated_fraction_ci_low", SATURATION_REFUTE, "qualified", "qualified", "refuted"),
    ("C3", CONFIRMING["C3"], "saturated_fraction_ci_high", SATURATION_CONFIRM, "confirmed", "confirmed", "qualified"),
    # C5: confirming 10 % on the high end of the worst cell, refuting 50 % on the low end
    ("C5", CONFIRMING["C5"], "max_abs_error_ci_high", ESTIMATE_CONFIRM, "confirmed", "confirmed", "qualified"),
    ("C5", {**CONFIRMING["C5"], "max_abs_error": 0.7, "max_abs_error_ci_high": 0.9}, "max_abs_error_ci_low",
     ESTIMATE_REFUTE, "qualified", "qualified", "refuted"),
    # C6: both low ends above 0 confirm; a high end below 0 refutes
    ("C6", CONFIRMING["C6"], "decode_speedup_ci_low", 0.0, "qualified", "qualified", "confirmed"),
    ("C6", CONFIRMING["C6"], "training_speedup_ci_low", 0.0, "qualified", "qualified", "confirmed"),
    ("C6", {**CONFIRMING["C6"], "training_speedup": -2.0, "training_speedup_ci_low": -3.0}, "training_speedup_ci_high",
     0.0, "refuted", "qualified", "qualified"),
    # C7: the margin on the high end confirms (at it: still "matches"), on the low end refutes
    ("C7", CONFIRMING["C7"], "loss_gap_ci_high", LOSS_MARGIN, "confirmed", "confirmed", "qualified"),
    ("C7", {**CONFIRMING["C7"], "loss_gap": 0.1, "loss_gap_ci_high": 0.2}, "loss_gap_ci_low", LOSS_MARGIN,
     "qualified", "qualified", "refuted"),
    # C8: ×2 on the low end confirms (at it: confirmed), ×1 on the high end refutes (at it: refuted)
    ("C8", CONFIRMING["C8"], "mean_abs_ratio_ci_low", ACTIVATION_RATIO_CONFIRM, "qualified", "confirmed", "confirmed"),
    ("C8", {**CONFIRMING["C8"], "mean_abs_ratio": 0.8, "mean_abs_ratio_ci_low": 0.5}, "mean_abs_ratio_ci_high", 1.0,
     "refuted", "refuted", "qualified"),
    # C2: speed interval against 0 (with "trains worse"), and the loss gap's ends against the margin
    ("C2", CONFIRMING["C2"], "dyt_speedup_ci_low", 0.0, "qualified", "qualified", "confirmed"),
    ("C2", CONFIRMING["C2"], "dyt_loss_gap_ci_low", LOSS_MARGIN, "qualified", "qualified", "confirmed"),
    ("C2", {**CONFIRMING["C2"], "dyt_speedup": -5.0, "dyt_speedup_ci_low": -9.0, "dyt_speedup_ci_high": -1.0,
            "dyt_loss_gap": 0.0, "dyt_loss_gap_ci_low": -0.01}, "dyt_loss_gap_ci_high", LOSS_MARGIN,
     "refuted", "refuted", "qualified"),
    ("C2", {**CONFIRMING["C2"], "dyt_speedup": -5.0, "dyt_loss_gap": 0.0, "dyt_loss_gap_ci_low": -0.01,
            "dyt_loss_gap_ci_high": 0.01, "dyt_speedup_ci_low": -9.0}, "dyt_speedup_ci_high", 0.0,
     "refuted", "qualified", "qualified"),
]
# Counts: (rule, base, key, value giving the first verdict, value giving the second, verdicts)
STEPS = [
    ("C2", {**CONFIRMING["C2"], "dyt_loss_gap_ci_low": -0.05, "dyt_loss_gap_ci_high": 0.0, "rmsnorm_diverged": 1},
     "dyt_diverged", 1, 2, "qualified", "confirmed"),  # more divergences than RMSNorm = trains worse
    ("C9", CONFIRMING["C9"], "inexact_settings", 0, 1, "confirmed", "qualified"),
    ("C9", {**CONFIRMING["C9"], "inexact_settings": 1}, "dtypes_without_exact_order", "", "bfloat16",
     "qualified", "refuted"),
    ("C6", CONFIRMING["C6"], "device", "cuda", "cpu", "confirmed", "not testable here"),
    ("C2", CONFIRMING["C2"], "device", "cuda", "cpu", "confirmed", "not testable here"),  # one device rule
    ("statement", {"checks": 3, "failed_list": "none"}, "failed", 0, 1, "confirmed", "refuted"),
    # every BHyT run diverged: refuted while an RMSNorm run finished, qualified when none did
    ("C7", {"loss_gap": math.nan, "bhyt_finished": 0}, "rmsnorm_finished", 1, 0, "refuted", "qualified"),
    ("C8", {}, "mean_abs_ratio", 4.0, math.nan, "confirmed", "qualified"),
    ("statement", {"failed": 0, "failed_list": "none"}, "checks", 1, 0, "confirmed", "not testable here"),
    # lemma checks alone never confirm a proof: one package check is the threshold
    ("statement", {"checks": 3, "failed": 0, "failed_list": "none"}, "package", 1, 0, "confirmed",
     "insufficient evidence"),
]


def _nudge(value: float) -> float:
    """A step well above rounding (relative 1e-9) and far below any gap between thresholds."""
    return max(abs(value), 1.0) * 1e-9


@pytest.mark.parametrize("rule, base, key, threshold, below, at, above", BOUNDARIES,
                         ids=[f"{b[0]}-{b[2]}" for b in BOUNDARIES])
def test_each_threshold_exactly_at_and_on_both_sides(rule, base, key, threshold, below, at, above):
    figures = {**CONFIRMING.get(rule, {}), **base}
    step = _nudge(threshold)
    assert RULES[rule].decide({**figures, key: threshold - step}).verdict == below
    assert RULES[rule].decide({**figures, key: threshold}).verdict == at
    assert RULES[rule].decide({**figures, key: threshold + step}).verdict == above


@pytest.mark.parametrize("rule, base, key, first, second, before, after", STEPS,
                         ids=[f"{s[0]}-{s[2]}" for s in STEPS])
def test_discrete_conditions_move_the_verdict(rule, base, key, first, second, before, after):
    figures = {**CONFIRMING.get(rule, {}), **base}
    assert RULES[rule].decide({**figures, key: first}).verdict == before
    assert RULES[rule].decide({**figures, key: second}).verdict == after


def test_every_rule_has_boundary_tests():
    assert {b[0] for b in BOUNDARIES} | {s[0] for s in STEPS} == set(RULES)


def test_confirming_figures_confirm():
    for rule, figures in CONFIRMING.items():
        assert RULES[rule].decide(figures).verdict == "confirmed", rule


STATISTICAL = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8")


@pytest.mark.parametrize("rule", STATISTICAL)
def test_one_seed_without_an_interval_neither_confirms_nor_refutes(rule):
    """With n = 1 the measures leave the interval ends NaN: a point value alone decides nothing."""
    figures = dict(CONFIRMING[rule])
    for key in list(figures):
        if key.endswith("_ci_low") or key.endswith("_ci_high"):
            figures[key] = math.nan
    for point in (-1e3, 0.0, 1e3):  # whatever the point estimate
        moved = {k: (point if k + "_ci_low" in figures else v) for k, v in figures.items()}
        assert RULES[rule].decide(moved).verdict not in ("confirmed", "refuted")


def _evidence_for(rule) -> dict:
    """Evidence that meets ``rule``'s minimum exactly."""
    minimum = rule.minimum
    return {"regime": minimum.regime, "level": minimum.level, "preset": minimum.preset, "seeds": minimum.seeds,
            "rungs": minimum.rungs, "depth": 4, "width": 8, "seq_len": 8}


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_below_the_minimum_evidence_no_verdict(claim):
    """At the minimum a verdict is given; one seed, one rung fewer, a lower level or another shape
    gives "insufficient evidence" with the figures still measured and shown."""
    enough = _evidence_for(claim.rule)
    figures = {**CONFIRMING[claim.id], "device": "cuda"} if claim.id == "C6" else CONFIRMING[claim.id]

    def judged(record):
        fake = dataclasses.replace(claim, studies=(), second_studies=(),
                                   measure=lambda results: {**figures, "evidence": record},
                                   explanation="figures shown.")
        return assess(fake, {})

    assert judged(enough).verdict == "confirmed"
    lacking = [{**enough, "seeds": 1}, {**enough, "seeds": enough["seeds"] - 1}, {**enough, "level": "smoke"}]
    if enough["rungs"]:
        lacking.append({**enough, "rungs": enough["rungs"] - 1})
    if enough["preset"]:
        lacking.append({**enough, "preset": ""})
    for record in lacking:
        result = judged(record)
        assert result.verdict == "insufficient evidence", record
        assert result.measured == figures and "figures shown." in result.explanation


def test_registry_covers_c1_to_c9_with_a_rule_and_a_minimum_each():
    assert [claim.id for claim in CLAIMS] == [*(f"C{i}" for i in range(1, 10)), "V1"]
    assert all(claim.rule is RULES[claim.id] and claim.rule.minimum is not None for claim in CLAIMS)
    assert all("Minimum evidence" in claim.rule.describe() for claim in CLAIMS)
    assert {c.id for c in CLAIMS if c.rule.minimum.preset == "llama-374m"} == {"C3", "C4", "C5"}


# ------------------------------------------------------------------ statistics against scipy

def test_t_interval_matches_scipy_and_shows_its_degrees_of_freedom():
    values = [0.3, -0.1, 0.25, 0.05]
    interval = evidence.t_interval(values)
    low, high = stats.t.interval(0.95, df=3, loc=np.mean(values), scale=stats.sem(values))
    assert (interval.low, interval.high, interval.df) == pytest.approx((low, high, 3), rel=1e-12)
    assert "3 df" in interval.text()
    single = evidence.t_interval([0.001])
    assert single.n == 1 and math.isnan(single.low) and math.isnan(single.high)


def test_paired_gap_matches_scipy_paired_t_test():
    """Paired over seeds: the interval of the per-seed differences (scipy.stats.ttest_rel), which is
    much narrower here than an unpaired comparison of the same numbers because the seed effect is shared."""
    seed_effect = np.array([0.0, 0.3, -0.2])
    bhyt, rmsnorm = 2.0 + seed_effect + np.array([0.01, -0.005, 0.0]), 2.0 + seed_effect
    runs = _ladder_runs({"r1": (1e5, 1e6)}, {"bhyt": bhyt, "rmsnorm": rmsnorm})
    table = measures.paired_rungs(runs, None, "bhyt")
    expected = stats.ttest_rel(bhyt, rmsnorm).confidence_interval(0.95)
    assert (table.loc[0, "ci_low"], table.loc[0, "ci_high"]) == pytest.approx((expected.low, expected.high), rel=1e-9)
    unpaired = stats.ttest_ind(bhyt, rmsnorm).confidence_interval(0.95)
    assert table.loc[0, "ci_high"] - table.loc[0, "ci_low"] < (unpaired.high - unpaired.low) / 10


def test_ratio_interval_is_positive_and_from_logarithms():
    ratios = [3.0, 3.3, 2.7]
    interval = evidence.ratio_interval(ratios)
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(np.log(ratios)), scale=stats.sem(np.log(ratios)))
    assert (interval.low, interval.high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-12)


# ------------------------------------------------------------------ trained claims from ladder tables

RATES = (1e-3, 3e-3, 1e-2, 3e-2)


def _ladder_runs(rungs: dict, best: dict, rates=RATES, best_rate=None, mean_abs=None) -> pd.DataFrame:
    """ladder.csv as the ladder writes it: for each rung and scheme a 1-seed sweep over ``rates`` (losses
    0.5 above the best) and the scheme's ``best`` per-seed eval losses at ``best_rate`` (default the
    second rate)."""
    best_rate = rates[1] if best_rate is None else best_rate
    rows = []
    for rung, (params, tokens) in rungs.items():
        for scheme, losses in best.items():
            for lr in rates:
                if lr != best_rate:
                    rows.append(dict(rung=rung, params=params, tokens=tokens, scheme=scheme, recipe="authors", lr=lr,
                                     seed=0, eval_loss=float(losses[0]) + 0.5, last_mean_abs=1.0))
            for seed, loss in enumerate(losses):
                magnitude = (mean_abs or {}).get(scheme, [1.0] * len(losses))[seed]
                rows.append(dict(rung=rung, params=params, tokens=tokens, scheme=scheme, recipe="authors",
                                 lr=best_rate, seed=seed, eval_loss=float(loss), last_mean_abs=magnitude))
    return pd.DataFrame(rows)


TWO_RUNGS = {"r1": (1e5, 1e6), "r2": (1e6, 1e7)}
GAP = {"bhyt": [2.99, 2.995, 2.985], "rmsnorm": [3.0, 3.0, 3.0], "dyt": [3.2, 3.25, 3.3]}
MAGNITUDES = {"bhyt": [1.0, 1.0, 1.0], "rmsnorm": [3.0, 3.3, 2.7], "dyt": [1.0, 1.0, 1.0]}


def _results(runs: pd.DataFrame, summary: pd.DataFrame | None = None, timings: bool = False) -> dict:
    tables = {"ladder": runs} | ({"ladder_summary": summary} if summary is not None else {})
    results = {"ladder": StudyResult(LADDER_STUDY, tables, {"command": "bhyt-theory train --ladder"})}
    if timings:
        results.update(_fake_efficiency(0.5, scheme="dyt"))
    return results


def _claim(identifier):
    return next(c for c in CLAIMS if c.id == identifier)


def test_c7_and_c8_from_a_ladder_at_the_largest_rung_with_the_trend():
    runs = _ladder_runs(TWO_RUNGS, GAP, mean_abs=MAGNITUDES)
    quality = assess(_claim("C7"), _results(runs))
    # differences −0.01, −0.005, −0.015: mean −0.01, t interval ends at −0.01 + 4.30·0.005/√3 ≈ +0.0024 ≤ margin
    assert quality.verdict == "confirmed", quality.reason
    assert quality.measured["loss_gap"] == pytest.approx(-0.01)
    assert quality.measured["loss_gap_df"] == 2
    assert quality.evidence["rungs"] == 2 and quality.evidence["seeds"] == 3 and quality.evidence["tokens"] == 1e7
    assert "rung r1" in quality.explanation and "rung r2" in quality.explanation
    assert "lr 0.003" in quality.explanation and "recipe authors" in quality.explanation
    activations = assess(_claim("C8"), _results(runs))
    # ratios 3, 3.3, 2.7: geometric mean ≈ 2.99, log-scale interval from ≈ 2.33 ≥ ×2
    assert activations.verdict == "confirmed", activations.reason
    assert activations.measured["mean_abs_ratio_ci_low"] == pytest.approx(2.33, abs=0.01)


def test_ladder_below_the_minimum_is_insufficient_evidence():
    one_rung = assess(_claim("C7"), _results(_ladder_runs({"r1": (1e5, 1e6)}, GAP)))
    assert one_rung.verdict == "insufficient evidence" and "tuned rates: 1 (needs 2)" in one_rung.reason
    untuned = assess(_claim("C7"), _results(_ladder_runs(TWO_RUNGS, GAP, rates=(3e-3, 1e-2), best_rate=3e-3)))
    assert untuned.verdict == "insufficient evidence" and "rates not tuned" in untuned.reason  # two rates: no sweep
    two_seeds = assess(_claim("C7"), _results(_ladder_runs(TWO_RUNGS, {k: v[:2] for k, v in GAP.items()})))
    assert two_seeds.verdict == "insufficient evidence"
    assert two_seeds.measured["loss_gap"] == pytest.approx(-0.0075)  # the figures are still measured


def test_tuned_rate_is_the_summarys_else_the_rate_with_most_seeds():
    runs = _ladder_runs(TWO_RUNGS, GAP)
    chosen = measures.tuned_runs(runs)
    assert chosen[("r2", "bhyt", "authors")].lr == RATES[1] and chosen[("r2", "bhyt", "authors")].tuned
    summary = pd.DataFrame({"rung": ["r2"], "scheme": ["bhyt"], "recipe": ["authors"], "best_lr": [RATES[0]]})
    assert measures.tuned_runs(runs, summary)[("r2", "bhyt", "authors")].lr == RATES[0]
    assert measures.tuned_runs(runs, summary)[("r1", "bhyt", "authors")].lr == RATES[1]  # no summary row: most seeds


def test_every_recipe_is_its_own_entry_and_the_specified_one_is_compared():
    """A better-scoring other recipe of the same scheme is never swapped in for the recipe as
    specified; several recipes without the specified one are an error, not a best-of choice."""
    runs = _ladder_runs(TWO_RUNGS, GAP).replace({"recipe": {"authors": "rmsnorm-llama"}})
    better = runs[runs["scheme"] == "rmsnorm"].assign(recipe="other", eval_loss=lambda t: t["eval_loss"] - 1)
    both = pd.concat([runs, better], ignore_index=True)
    chosen = measures.tuned_runs(both)
    assert chosen[("r2", "rmsnorm", "rmsnorm-llama")].runs["eval_loss"].min() == pytest.approx(3.0)
    assert chosen[("r2", "rmsnorm", "other")].runs["eval_loss"].min() == pytest.approx(2.0)
    assert measures.scheme_recipe(chosen, "r2", "rmsnorm") == "rmsnorm-llama"
    table = measures.paired_rungs(both, None, "bhyt")
    assert set(table["baseline_recipe"]) == {"rmsnorm-llama"}
    # bhyt − rmsnorm-llama = −0.01, −0.005, −0.015 (against "other" it would be ≈ +0.99)
    assert table["mean"].tolist() == pytest.approx([-0.01, -0.01], abs=1e-12)
    with pytest.raises(ResultMissing, match="recipe as specified"):
        measures.scheme_recipe(measures.tuned_runs(both.replace({"recipe": {"rmsnorm-llama": "third"}})), "r2",
                               "rmsnorm")


def test_c2_reports_the_dyt_recipe_as_specified_and_its_minimal_change_as_separate_numbers():
    """DyT as specified does not learn (gap ≈ 0.9); its minimal change does (gap ≈ 0.1): C2's gap is the
    recipe as specified, and the minimal change is a second number, named, in the explanation."""
    names = {"dyt": "dyt-llama", "rmsnorm": "rmsnorm-llama", "bhyt": "bhyt-ref"}
    losses = {"dyt": [3.9, 3.85, 3.95], "rmsnorm": [3.0, 3.0, 3.0], "bhyt": GAP["bhyt"]}
    runs = _ladder_runs(TWO_RUNGS, losses)
    runs["recipe"] = runs["scheme"].map(names)
    changed = runs[runs["scheme"] == "dyt"].assign(recipe="dyt-llama+rmsnorm-final",
                                                    eval_loss=lambda t: t["eval_loss"] - 0.8)
    assessed = assess(_claim("C2"), _results(pd.concat([runs, changed], ignore_index=True), timings=True))
    assert assessed.measured["dyt_loss_gap"] == pytest.approx(0.9, abs=1e-12)
    assert assessed.measured["dyt_minimal_loss_gap"] == pytest.approx(0.1, abs=1e-12)
    assert "dyt-llama+rmsnorm-final" in assessed.explanation and "recipe dyt-llama at" in assessed.explanation
    alone = assess(_claim("C2"), _results(runs, timings=True))
    assert alone.measured["dyt_loss_gap"] == pytest.approx(0.9, abs=1e-12)
    assert "was not run" in alone.explanation


def test_c2_from_the_ladder_counts_divergences_at_the_tuned_rate():
    runs = _ladder_runs(TWO_RUNGS, GAP)
    assessed = assess(_claim("C2"), _results(runs, timings=True))
    # DyT − RMSNorm differences 0.2, 0.25, 0.3: interval from ≈ 0.126 > margin, and DyT faster
    assert assessed.verdict == "confirmed", assessed.reason
    diverged = runs.copy()
    top_dyt = (diverged["rung"] == "r2") & (diverged["scheme"] == "dyt") & (diverged["lr"] == RATES[1])
    diverged.loc[top_dyt & (diverged["seed"] == 2), "eval_loss"] = np.inf
    figures = assess(_claim("C2"), _results(diverged, timings=True)).measured
    assert figures["dyt_diverged"] == 1 and figures["dyt_loss_gap_n"] == 2
    flagged = runs.assign(diverged=top_dyt & (runs["seed"] == 2))  # a finite loss of a run flagged diverged
    figures = assess(_claim("C2"), _results(flagged, timings=True)).measured
    assert figures["dyt_diverged"] == 1 and figures["dyt_loss_gap_n"] == 2


# ------------------------------------------------------------------ assessment from stored tables

def _fake_efficiency(speedup_low: float, scheme: str = "bhyt") -> dict:
    """A stored efficiency result as the study writes it (only what C2 and C6 read)."""
    timings = pd.DataFrame([
        {"measurement": m, "scheme": s, "speedup_percent": 1.0, "speedup_ci_low": speedup_low,
         "speedup_ci_high": 2.0, "rounds": 12, "hardware": "a GPU", "device": "cuda:0", "width": 64, "seq_len": 32}
        for m in ("block forward+backward", "decode step") for s in ("bhyt", scheme)])
    meta = {"command": "bhyt-theory reproduce --only efficiency", "sizes": "tiny", "quick": False}
    return {"efficiency": StudyResult(STUDIES["efficiency"], {"efficiency_timings": timings}, meta)}


def test_assess_applies_the_rule_to_the_measured_table():
    claim = _claim("C6")
    assert assess(claim, _fake_efficiency(0.5)).verdict == "confirmed"
    moved = assess(claim, _fake_efficiency(-0.5))
    assert moved.verdict == "qualified"
    assert moved.measured["decode_speedup_ci_low"] == -0.5
    assert "−0.5" in moved.explanation or "-0.5" in moved.explanation
    assert moved.evidence["regime"] == "cost" and moved.evidence["seeds"] == 12


def test_a_study_without_a_result_gives_not_run_with_the_reason():
    """No result is not a verdict: the claim is "not run", with the reason, and no rule is applied."""
    result = assess(_claim("C6"), {"efficiency": StudyResult(STUDIES["efficiency"], unavailable=NOT_AVAILABLE)})
    assert result.verdict == NOT_RUN and NOT_RUN not in VERDICTS
    assert NOT_AVAILABLE in result.reason and result.measured == {}


@pytest.mark.parametrize("drop, named", [("speedup_ci_low", "'speedup_ci_low'"), ("hardware", "'hardware'")])
def test_a_missing_column_is_an_error_naming_the_study_and_the_column(drop, named):
    """A renamed column must not turn into a verdict."""
    results = _fake_efficiency(0.5)
    timings = results["efficiency"].tables["efficiency_timings"].drop(columns=drop)
    results["efficiency"].tables["efficiency_timings"] = timings
    with pytest.raises(ResultMissing, match=f"study 'efficiency', table 'efficiency_timings' has no column {named}"):
        assess(_claim("C6"), results)


def test_a_missing_table_is_an_error_naming_the_study_and_the_table():
    results = _fake_efficiency(0.5)
    results["efficiency"].tables.clear()
    with pytest.raises(ResultMissing, match="study 'efficiency' has no table 'efficiency_timings'"):
        assess(_claim("C6"), results)


def test_a_ladder_without_a_needed_column_is_an_error():
    runs = _ladder_runs(TWO_RUNGS, GAP).drop(columns="tokens")
    with pytest.raises(ResultMissing, match="'tokens'"):
        assess(_claim("C7"), _results(runs))


def test_quick_paper_shape_is_smoke_evidence_and_no_verdict(tmp_path):
    """The paper-shape study at quick sizes: C5's evidence is "smoke", its figures shown, no verdict."""
    store = ResultsStore(tmp_path)
    results = {name: store.get(name, quick=True) for name in ("paper_init",)}
    result = assess(_claim("C5"), results)
    assert result.evidence["level"] == "smoke" and result.verdict == "insufficient evidence"
    assert result.measured["max_abs_error"] >= 0 and "Primary evidence: smoke" in result.explanation


def test_evaluate_json_fields_from_stored_results(tmp_path):
    """evaluate on a results folder: C1–C9 present with the JSON fields, evidence included."""
    store = ResultsStore(tmp_path)
    store.get("checks", quick=True)
    assessments = evaluate(store)
    records = json.loads(json.dumps([a.as_dict() for a in assessments]))
    assert [r["id"] for r in records[:9]] == [f"C{i}" for i in range(1, 10)]
    for record in records:
        assert {"id", "statement", "verdict", "measured", "expected", "rule", "command", "evidence"} <= set(record)
        assert record["verdict"] in VERDICTS + (NOT_RUN,)
        assert record["measured"] or record["verdict"] == NOT_RUN
    assert all(r["verdict"] == NOT_RUN and "reproduce --only" in r["reason"] for r in records[:9])
    statements = [r for r in records if r["id"].startswith("proofs/")]
    assert statements and all(r["verdict"] == "confirmed" for r in statements)


def test_ladder_tables_in_the_results_folder_serve_the_trained_claims(tmp_path):
    _ladder_runs(TWO_RUNGS, GAP, mean_abs=MAGNITUDES).to_csv(tmp_path / "ladder.csv", index=False)
    assessments = {a.id: a for a in evaluate(ResultsStore(tmp_path))}
    assert assessments["C7"].verdict == "confirmed" and assessments["C7"].evidence["source"] == "ladder"
    assert "bhyt-theory train --ladder" in assessments["C7"].command


def test_claims_on_a_folder_without_results_is_one_line_and_exit_2(tmp_path, capsys):
    """No results and no --compute: one line on stderr naming the command that computes them; nothing
    is computed, no folder is created."""
    folder = tmp_path / "absent"
    assert main(["claims", "--results", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"bhyt-theory reproduce --out {folder}" in lines[0]
    assert not folder.exists()


def test_claims_compute_says_what_and_how_long_before_computing(tmp_path, capsys, monkeypatch):
    """--compute announces the studies it will run, their sizes and the rough time, then runs them."""
    monkeypatch.setattr(claims, "CLAIM_STUDIES", ("decode",))
    assert main(["claims", "--results", str(tmp_path), "--compute"]) == 0
    captured = capsys.readouterr()
    announced = captured.err.splitlines()[0]
    assert announced.startswith(f"computing at quick sizes into {tmp_path}: decode ({STUDIES['decode'].sizes(True)})")
    assert f"about {STUDIES['decode'].seconds[0]:.0f} s" in announced
    assert (tmp_path / "decode.meta.json").exists()
    c9 = next(line for line in captured.out.splitlines() if line.strip().startswith("C9"))
    assert NOT_RUN not in c9
    # a second call finds the result current: nothing to announce, and no --compute is needed
    assert main(["claims", "--results", str(tmp_path)]) == 0
    assert "computing" not in capsys.readouterr().err


def test_second_shape_is_judged_without_the_preset_but_with_the_seeds():
    """C3–C5 at width 256: the rule applies there at level "small" with the rule's seeds; fewer seeds
    give "insufficient evidence" at that shape too."""
    second = {"regime": "init", "level": "small", "preset": "", "seeds": 3, "depth": 65, "width": 256, "seq_len": 128}
    assert rules.judge_second(RULES["C5"], CONFIRMING["C5"], second)["verdict"] == "confirmed"
    assert rules.judge_second(RULES["C5"], CONFIRMING["C5"], {**second, "seeds": 2})["verdict"] == (
        "insufficient evidence")


def test_a_missing_training_label_is_an_error_naming_the_study_and_the_label():
    """C7 reads the bhyt and rmsnorm rows of the training summary; a summary without bhyt is an error."""
    from bhyt_theory.pipeline.measures import RUN_COLUMNS, TRAINING_COLUMNS

    row = dict.fromkeys(TRAINING_COLUMNS, 1.0)
    summary = pd.DataFrame([{**row, "label": "rmsnorm"}, {**row, "label": "dyt"}])
    run = {**dict.fromkeys(RUN_COLUMNS, 1.0), "diverged": False, "seed": 0}
    runs = pd.DataFrame([{**run, "label": "rmsnorm"}, {**run, "label": "dyt"}])
    tables = {"training_summary": summary, "training_runs": runs}
    results = {"training": StudyResult(STUDIES["training"], tables, {"quick": True})}
    with pytest.raises(ResultMissing, match="study 'training', table 'training_summary' has no row for label 'bhyt'"):
        assess(next(c for c in CLAIMS if c.id == "C7"), results)


def test_v1_without_preset_cells_is_judged_on_the_study_shape_alone():
    # a quick run measures no preset: the paper-shape condition must neither block nor refute
    measured = {**CONFIRMING["V1"], "paper_excess": None, "paper_cells": "not measured (quick)"}
    assert RULES["V1"].decide(measured).verdict == "confirmed"


def test_v1_qualified_by_a_preset_cell_names_its_excess():
    # the study shape holds and only a preset cell misses: the reason must say which figure decided
    verdict = RULES["V1"].decide({**CONFIRMING["V1"], "paper_excess": 0.108, "paper_cells": "cells"})
    assert verdict.verdict == "qualified" and "10.8% beyond its Monte Carlo allowance" in verdict.reason


def test_v1_preset_cells_worst_cell_share_and_monte_carlo_allowance():
    # A constructed preset table: the worst correlation cell past position 8 is 0.90 (10 %) with se
    # 0.01 over 3 seeds, so its excess is 0.1 − t(0.975, 2 df)·0.01 (t from scipy); positions < 8 (ratio 0.5) and the study
    # shape (ratio 0.1) must be ignored; 3 of the 4 late correlation cells are within 5 %.
    rows = []
    for layer, position, ratio in [(0, 0, 0.5), (0, 8, 0.99), (0, 9, 1.02), (1, 8, 0.90), (1, 9, 1.04)]:
        rows.append(dict(quantity="ratio", shape="llama-374m", estimator="correlation", layer=layer,
                         position=position, measured=ratio, se=0.01, n_seeds=3))
        rows.append(dict(quantity="ratio", shape="llama-374m", estimator="reference", layer=layer,
                         position=position, measured=ratio - 0.3, se=0.01, n_seeds=3))
    rows.append(dict(quantity="ratio", shape="study", estimator="correlation", layer=0, position=20,
                     measured=0.1, se=0.0, n_seeds=3))
    cells = measures._paper_cells(pd.DataFrame(rows))
    assert cells["paper_excess"] == pytest.approx(0.1 - stats.t.ppf(0.975, 2) * 0.01, abs=1e-12)
    assert "worst 10.0% at layer 1, t 8" in cells["paper_cells"]
    assert "75% of cells within 5%" in cells["paper_cells"]
    assert "reference's worst 40.0%" in cells["paper_cells"]
    # one seed: no standard error, no allowance
    single = measures._paper_cells(pd.DataFrame(rows).assign(se=float("nan"), n_seeds=1))
    assert single["paper_excess"] == pytest.approx(0.1, abs=1e-12)
    assert measures._paper_cells(pd.DataFrame(rows[-1:]))["paper_excess"] is None
