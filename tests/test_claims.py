"""The claims registry: every verdict comes from its rule, and moving a measured
figure across the rule's threshold moves the verdict."""

import json

import pandas as pd
import pytest

from bhyt_theory.cli.main import main
from bhyt_theory.pipeline import claims as claims_module
from bhyt_theory.pipeline.claims import CLAIMS, NOT_RUN, RULES, VERDICTS, assess, evaluate
from bhyt_theory.pipeline.studies import NOT_AVAILABLE, STUDIES, ResultMissing, ResultsStore, StudyResult

# (rule, measured on one side, the change that crosses a threshold, verdict before, verdict after)
CROSSINGS = [
    ("C1", {"exponent": 0.5, "exponent_ci_low": 0.3, "exponent_ci_high": 0.7},
     {"exponent": 0.05, "exponent_ci_low": 0.02, "exponent_ci_high": 0.08}, "confirmed", "refuted"),
    ("C1", {"exponent": 0.5, "exponent_ci_low": 0.3, "exponent_ci_high": 0.7},
     {"exponent_ci_low": 0.05}, "confirmed", "qualified"),
    ("C4", {"exponent": 0.05, "exponent_ci_low": 0.0, "exponent_ci_high": 0.09, "scale_vs_rmsnorm": 0.2},
     {"exponent_ci_high": 0.11}, "confirmed", "qualified"),
    ("C4", {"exponent": 0.5, "exponent_ci_low": 0.3, "exponent_ci_high": 0.7, "scale_vs_rmsnorm": 0.99},
     {"scale_vs_rmsnorm": 1.01}, "qualified", "refuted"),
    ("C3", {"saturated_fraction": 0.009, "bound_max_ratio": 0.99}, {"saturated_fraction": 0.011},
     "confirmed", "qualified"),
    ("C3", {"saturated_fraction": 0.049, "bound_max_ratio": 0.99}, {"saturated_fraction": 0.051},
     "qualified", "refuted"),
    ("C3", {"saturated_fraction": 0.0, "bound_max_ratio": 1.0}, {"bound_max_ratio": 1.001}, "confirmed", "refuted"),
    ("C5", {"max_abs_error": 0.099}, {"max_abs_error": 0.101}, "confirmed", "qualified"),
    ("C5", {"max_abs_error": 0.499}, {"max_abs_error": 0.501}, "qualified", "refuted"),
    ("C6", {"training_speedup": 2.0, "training_speedup_ci_low": 0.5, "training_speedup_ci_high": 3.5,
            "decode_speedup": 2.0, "decode_speedup_ci_low": 0.1, "decode_speedup_ci_high": 3.9,
            "hardware": "GPU", "device": "cuda"},
     {"decode_speedup_ci_low": -0.1}, "confirmed", "qualified"),
    ("C6", {"training_speedup": -2.0, "training_speedup_ci_low": -3.0, "training_speedup_ci_high": 0.1,
            "decode_speedup": 2.0, "decode_speedup_ci_low": 0.1, "decode_speedup_ci_high": 3.9,
            "hardware": "GPU", "device": "cuda"},
     {"training_speedup_ci_high": -0.1}, "qualified", "refuted"),
    ("C6", {"training_speedup": 2.0, "training_speedup_ci_low": 0.5, "training_speedup_ci_high": 3.5,
            "decode_speedup": 2.0, "decode_speedup_ci_low": 0.1, "decode_speedup_ci_high": 3.9,
            "hardware": "GPU", "device": "cuda"},
     {"device": "cpu"}, "confirmed", "not testable here"),
    ("C2", {"dyt_speedup": 5.0, "dyt_speedup_ci_low": 1.0, "dyt_speedup_ci_high": 9.0, "dyt_fragility": 1.0},
     {"dyt_fragility": 0.0}, "confirmed", "qualified"),
    ("C2", {"dyt_speedup": -5.0, "dyt_speedup_ci_low": -9.0, "dyt_speedup_ci_high": -1.0, "dyt_fragility": 1.0},
     {"dyt_fragility": 0.0}, "qualified", "refuted"),
    ("C7", {"loss_gap": 0.009, "loss_gap_se": 0.01}, {"loss_gap": 0.011}, "confirmed", "qualified"),
    ("C7", {"loss_gap": 0.019, "loss_gap_se": 0.01}, {"loss_gap": 0.021}, "qualified", "refuted"),
    ("C7", {"loss_gap": 0.0, "loss_gap_se": 0.01, "bhyt_finished": 3, "rmsnorm_finished": 3},
     {"loss_gap": float("nan"), "loss_gap_se": float("nan"), "bhyt_finished": 0}, "confirmed", "refuted"),
    ("C7", {"loss_gap": float("nan"), "loss_gap_se": float("nan"), "bhyt_finished": 0, "rmsnorm_finished": 1},
     {"rmsnorm_finished": 0}, "refuted", "qualified"),
    ("C8", {"mean_abs_ratio": 2.01}, {"mean_abs_ratio": 1.99}, "confirmed", "qualified"),
    ("C8", {"mean_abs_ratio": 1.01}, {"mean_abs_ratio": 0.99}, "qualified", "refuted"),
    ("C8", {"mean_abs_ratio": 0.99}, {"mean_abs_ratio": float("nan")}, "refuted", "qualified"),
    ("C9", {"inexact_settings": 0, "settings": 6, "max_ulps": 0, "exact_list": "all", "greedy_changed_list": "none",
            "dtypes_without_exact_order": ""},
     {"inexact_settings": 1, "max_ulps": 2, "greedy_changed_list": "bfloat16/fused_scale"}, "confirmed", "qualified"),
    ("C9", {"inexact_settings": 1, "settings": 6, "max_ulps": 2, "exact_list": "float32/matched",
            "greedy_changed_list": "bfloat16/x", "dtypes_without_exact_order": ""},
     {"dtypes_without_exact_order": "bfloat16"}, "qualified", "refuted"),
    ("statement", {"checks": 3, "failed": 0, "failed_list": "none"}, {"failed": 1, "failed_list": "a.b"},
     "confirmed", "refuted"),
    ("statement", {"checks": 3, "failed": 0, "failed_list": "none"}, {"checks": 0}, "confirmed", "not testable here"),
    # Lemma checks alone never confirm a proof: one package check is the threshold.
    ("statement", {"checks": 3, "failed": 0, "failed_list": "none", "package": 1}, {"package": 0},
     "confirmed", "not testable here"),
]


@pytest.mark.parametrize("rule, measured, change, before, after", CROSSINGS,
                         ids=[f"{c[0]}-{c[3]}-to-{c[4]}" for c in CROSSINGS])
def test_crossing_a_threshold_changes_the_verdict(rule, measured, change, before, after):
    assert RULES[rule].decide(measured).verdict == before
    assert RULES[rule].decide({**measured, **change}).verdict == after


def test_every_rule_is_exercised_by_a_crossing():
    assert {c[0] for c in CROSSINGS} == set(RULES)


def test_registry_covers_c1_to_c9_with_a_rule_each():
    assert [claim.id for claim in CLAIMS] == [f"C{i}" for i in range(1, 10)]
    assert all(claim.rule is RULES[claim.id] for claim in CLAIMS)


def _fake_results(speedup_low: float) -> dict:
    """A stored efficiency result as the study writes it (only what C6 reads)."""
    timings = pd.DataFrame([
        {"measurement": m, "scheme": "bhyt", "speedup_percent": 1.0, "speedup_ci_low": speedup_low,
         "speedup_ci_high": 2.0, "rounds": 5, "hardware": "a GPU", "device": "cuda:0", "width": 64}
        for m in ("block forward+backward", "decode step")])
    meta = {"command": "bhyt-theory reproduce --only efficiency", "sizes": "tiny", "quick": False}
    return {"efficiency": StudyResult(STUDIES["efficiency"], {"efficiency_timings": timings}, meta)}


def test_assess_applies_the_rule_to_the_measured_table():
    claim = next(c for c in CLAIMS if c.id == "C6")
    assert assess(claim, _fake_results(0.5)).verdict == "confirmed"
    moved = assess(claim, _fake_results(-0.5))
    assert moved.verdict == "qualified"
    assert moved.measured["decode_speedup_ci_low"] == -0.5
    assert "−0.5" in moved.explanation or "-0.5" in moved.explanation


def test_a_study_without_a_result_gives_not_run_with_the_reason():
    """No result is not a verdict: the claim is "not run", with the reason, and no rule is applied."""
    claim = next(c for c in CLAIMS if c.id == "C6")
    result = assess(claim, {"efficiency": StudyResult(STUDIES["efficiency"], unavailable=NOT_AVAILABLE)})
    assert result.verdict == NOT_RUN and NOT_RUN not in VERDICTS
    assert NOT_AVAILABLE in result.reason and result.measured == {}


@pytest.mark.parametrize("drop, named", [("speedup_ci_low", "'speedup_ci_low'"), ("hardware", "'hardware'")])
def test_a_missing_column_is_an_error_naming_the_study_and_the_column(drop, named):
    """A renamed column must not turn into a verdict (it used to read "not testable here")."""
    results = _fake_results(0.5)
    timings = results["efficiency"].tables["efficiency_timings"].drop(columns=drop)
    results["efficiency"].tables["efficiency_timings"] = timings
    claim = next(c for c in CLAIMS if c.id == "C6")
    with pytest.raises(ResultMissing, match=f"study 'efficiency', table 'efficiency_timings' has no column {named}"):
        assess(claim, results)


def test_a_missing_table_is_an_error_naming_the_study_and_the_table():
    results = _fake_results(0.5)
    results["efficiency"].tables.clear()
    with pytest.raises(ResultMissing, match="study 'efficiency' has no table 'efficiency_timings'"):
        assess(next(c for c in CLAIMS if c.id == "C6"), results)


def test_evaluate_json_fields_from_stored_results(tmp_path, monkeypatch):
    """evaluate on a results folder: C1–C9 present with the JSON fields; measured filled where a result is."""
    # Only the checks study is computed here; the others are "not run" (evaluate computes nothing by default).
    store = ResultsStore(tmp_path)
    store.get("checks", quick=True)
    assessments = evaluate(store)
    records = json.loads(json.dumps([a.as_dict() for a in assessments]))
    assert [r["id"] for r in records[:9]] == [f"C{i}" for i in range(1, 10)]
    for record in records:
        assert {"id", "statement", "verdict", "measured", "expected", "rule", "command"} <= set(record)
        assert record["verdict"] in VERDICTS + (NOT_RUN,)
        assert record["measured"] or record["verdict"] == NOT_RUN
    assert all(r["verdict"] == NOT_RUN and "reproduce --only" in r["reason"] for r in records[:9])
    statements = [r for r in records if r["id"].startswith("proofs/")]
    assert statements and all(r["verdict"] == "confirmed" for r in statements)


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
    monkeypatch.setattr(claims_module, "CLAIM_STUDIES", ("decode",))
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
