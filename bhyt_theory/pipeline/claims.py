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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .evidence import (
    reach,
)
from .measures import (
    LADDER_STUDY,
    ladder_result,
    measure_c1,
    measure_c2,
    measure_c3,
    measure_c4,
    measure_c5,
    measure_c6,
    measure_c7,
    measure_c8,
    measure_c9,
    measure_v1,
    load_ladder,
)
from .rules import RULES, Rule, Verdict, judge_second
from .studies import STUDIES, ResultsStore, StudyResult

NOT_RUN = "not run"
"""The status of a claim whose study has no result here (not a verdict: no rule was applied)."""
PAPER = "Byun et al., arXiv 2601.09719"




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
          RULES["C1"], measure_c1,
          "At initialisation Pre-LN's position-averaged rms goes from {rms_first:.3g} after block 1 to {rms_last:.3g} "
          "after block {depth} (×{growth_factor:.2f}); the best of four two-parameter laws is {best_law}, and a power "
          "law gives exponent {exponent:.2f} (95 % CI {exponent_ci_low:.2f} to {exponent_ci_high:.2f}; √l would be "
          "0.5)."),
    Claim("C2", "DyT is faster than RMSNorm but fragile at depth.", f"{PAPER}, §1 and Table 1 (DyT worst loss at 374M: "
          "3.299 eval vs 3.216 RMSNorm)", "DyT faster; worse loss at depth (3.299 vs 3.216 at 374M)",
          ("efficiency", "training"),
          "experiments.efficiency.efficiency_study, experiments.training.analysis.training_summary",
          RULES["C2"], measure_c2,
          "DyT's training-step speed-up over RMSNorm is {dyt_speedup:+.1f} % (95 % CI {dyt_speedup_ci_low:+.1f} to "
          "{dyt_speedup_ci_high:+.1f}); in CPU pretraining at the largest rung run ({rung}; the paper's evidence is "
          "Table 1 at 374M) {dyt_fragility_text}. Across rungs: {dyt_loss_gap_trend}. Recipes and rates: "
          "{dyt_loss_gap_recipes}. Beside it, {dyt_minimal_change_text}.",
          {"dyt_eval_loss_374M": 3.299, "rmsnorm_eval_loss_374M": 3.216}),
    Claim("C3", "BHyT keeps tanh inputs in a non-saturating range by explicit, data-driven input bounding.",
          f"{PAPER}, §3 (method)", "tanh argument rms λ/κ whatever the input scale; no saturation",
          ("paper_init", "bounds"), "numerics.probes (saturated fractions), experiments.bounds.tightness_table",
          RULES["C3"], measure_c3,
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
          measure_c4,
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
          "theory.meanfield.predict_per_position (softmax attention)", RULES["C5"], measure_c5,
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
          "experiments.efficiency.efficiency_study", RULES["C6"], measure_c6,
          "Measured on {hardware} at width {width} over {rounds} interleaved rounds: one block's forward+backward is "
          "{training_speedup:+.1f} % faster with BHyT than with RMSNorm (95 % CI {training_speedup_ci_low:+.1f} to "
          "{training_speedup_ci_high:+.1f}), one decode step {decode_speedup:+.1f} % (CI {decode_speedup_ci_low:+.1f} "
          "to {decode_speedup_ci_high:+.1f}). The counted cost explains the size: the estimate removes one forward "
          "row reduction per block but neither pass over the activations nor the backward reduction.",
          {"v1": {"training_percent": 15.8, "decode_percent": 4.2}, "v3": {"training_percent": 1.6, "decode_percent": 1.77}}),
    Claim("C7", "Pretraining quality matches or beats RMSNorm.", f"{PAPER}, Table 1",
          "Llama-1B, 20B tokens: eval loss 2.802 BHyT vs 2.877 RMSNorm (2.884 Peri-LN, 2.848 LNS, 2.894 DyT); "
          "Llama-374M, 7.5B tokens: 3.207 vs 3.216", ("training",), "experiments.training.analysis.training_summary",
          RULES["C7"], measure_c7,
          "In CPU pretraining (byte-level models far below the paper's 374M/7.5B tokens), at the largest rung run "
          "({rung}), BHyT's eval loss minus RMSNorm's, paired over seeds, is {loss_gap_text}. Across rungs: "
          "{loss_gap_trend}. Recipes and rates: {loss_gap_recipes}.",
          {"1B": {"bhyt": 2.802, "rmsnorm": 2.877, "periln": 2.884, "lns": 2.848, "dyt": 2.894},
           "374M": {"bhyt": 3.207, "rmsnorm": 3.216}}),
    Claim("C8", "After training, last-layer activations are far smaller with BHyT: mean |h| ≈ 800 (RMSNorm) vs ≈ 140 "
          "(BHyT), variance ≈ 300 vs ≈ 10 (Llama-1B, 16 layers).", f"{PAPER}, Fig. 3 (read off the plot)",
          "mean |h| ratio ≈ 5.7, variance ratio ≈ 30", ("training",), "experiments.training.analysis.training_summary",
          RULES["C8"], measure_c8,
          "After CPU pretraining, at the largest rung run ({rung}), RMSNorm's last-layer mean |h| over BHyT's, paired "
          "over seeds, is {mean_abs_ratio_text} (paper ≈ 5.7). Across rungs: {mean_abs_ratio_trend}. Recipes and "
          "rates: {mean_abs_ratio_recipes}.",
          {"rmsnorm": {"mean_abs": 800, "variance": 300}, "bhyt": {"mean_abs": 140, "variance": 10},
           "periln": {"mean_abs": 330, "variance": 55}, "lns": {"mean_abs": 400, "variance": 90},
           "dyt": {"mean_abs": 350, "variance": 80}}),
    Claim("C9", "The decode-time precomputation of λ/κ and c_attn λ₁²/κ² is exact (greedy decoding identical).",
          f"{PAPER}, reference implementation README", "identical greedy decoding", ("decode",),
          "experiments.decode.decode_exactness", RULES["C9"], measure_c9,
          "Over {settings} dtype × order-of-operations settings of the fast path, {inexact_settings} have outputs that "
          "differ from the unfused computation (normaliser outputs up to {max_ulps} ulps); bit-exact: {exact_list}; "
          "greedy decoding changes in {greedy_changed_list} (worst: {greedy_identical_min:.0%} of prompts identical)."),
    Claim("V1", "The toolkit's variant bhytc (the correlation-aware M₂ and κ_l = κ·l², both chosen from the mean field) "
          "estimates M₂ within 5 % past position 8 (its estimator measured on bhyt's constant κ, where token "
          "correlations are strongest) and does not grow with depth at initialisation, as the mean field predicts.", "this toolkit (docs/schemes.md §7, docs/estimators.md §8)",
          "M₂/m(h′) within 5 % past position 8; growth exponent < 0.1", ("bhytc",),
          "pipeline.tables.bhytc_prediction, pipeline.tables.bhytc_measurement", RULES["V1"], measure_v1,
          "Past position 8 the worst layer-mean error of bhytc's M₂/m(h′) is {estimate_error:.1%} (layer {worst_layer}), "
          "against {reference_error:.1%} for the paper's estimate and {position_error:.1%} for the position-aware one; "
          "the largest gap between predicted and measured layer means is {prediction_gap:.1%}. bhytc's growth exponent "
          "is {exponent:.3f} (95 % CI {exponent_ci_low:.3f} to {exponent_ci_high:.3f}; predicted "
          "{predicted_exponent:.3f}) against bhyt's {bhyt_exponent:.3f}. Mean-field exponents at the paper's shapes: "
          "{paper_shape_exponents}. The trained regime is not assessed here."),
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
    names += ["ladder"] if ladder_result(results) is not None and "training" in claim.studies else []
    return "; ".join(command(name) for name in names)


def _missing(claim: Claim, results: Mapping[str, StudyResult]) -> list[str]:
    """Why a study ``claim`` needs has no result; the small training runs are not needed where ladder tables are."""
    needed = [name for name in claim.studies if not (name == "training" and ladder_result(results) is not None)]
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
    second = measured.pop("secondary", None)
    secondary = None
    if second:
        figures, second_evidence = second
        measured.update({f"w256_{key}": value for key, value in figures.items()})
        secondary = evidence["secondary"] = judge_second(claim.rule, figures, second_evidence)
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
                    "failed_list": ", ".join(failed["check"]) or "none",
                    "package": int((rows["kind"] == "package").sum()) if "kind" in rows else len(rows)}
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
    if ladder_result(results) is None:
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
