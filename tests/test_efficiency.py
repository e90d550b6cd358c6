"""Claim C6: the counted cost of each normaliser, the decode step, and the timing summary.

Timings themselves are never asserted (a shared machine makes them noise); the
tests check the counts against hand counts, the decode step against the full
forward pass, the interval arithmetic against hand-computed values, and the
intervals' coverage on synthetic log-normal timings.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bhyt_theory.experiments.efficiency import (
    CONTENTION_LOG_SD,
    SCHEME_SITES,
    cost_model,
    decode_constants,
    decode_step,
    key_value_cache,
    site_cost,
    time_block,
    time_decode,
    timing_summary,
)
from bhyt_theory.numerics.model import SCHEMES, StackConfig, build_block

# Hand counts at width d = 4, float32 (4 bytes), per token, both sites of a block.
# forward site: read h (16 B) + write u (16 B) + a float32 statistic (4 B) where a
# mean square is used; bhyt's estimated site also reads m₁ (4 B).
# backward site: read ∂L/∂u, h, write ∂L/∂h (48 B) + statistic (4 B); both BHyT sites
# exchange ∂L/∂M₂ (4 B each, bhyt and bhytstar alike by the counting rule).
HAND_COUNTS = {
    # scheme, pass: (row reductions, tanh, scalar roots, bytes, launches, parameter reductions)
    ("rmsnorm", "forward"): (2, 0, 2, 72, 2, 0),
    ("rmsnorm", "backward"): (2, 0, 2, 104, 4, 2),
    ("dyt", "forward"): (0, 8, 0, 64, 2, 0),
    ("dyt", "backward"): (0, 8, 0, 96, 8, 6),
    ("bhytstar", "forward"): (2, 8, 2, 72, 2, 0),
    ("bhytstar", "backward"): (2, 8, 2, 112, 6, 4),
    ("bhyt", "forward"): (1, 8, 2, 76, 2, 0),
    ("bhyt", "backward"): (2, 8, 2, 112, 6, 4),
    ("bhyt", "decode"): (1, 8, 2, 76, 2, 0),
    # bhytc: bhyt's sites, the second also reads one per-position factor (4 B); the factor is a
    # buffer, so the backward is bhyt's.
    ("bhytc", "forward"): (1, 8, 2, 80, 2, 0),
    ("bhytc", "backward"): (2, 8, 2, 112, 6, 4),
    ("bhytc", "decode"): (1, 8, 2, 80, 2, 0),
}
COST_COLUMNS = ["row_reductions", "transcendental_elementwise", "scalar_roots", "activation_bytes",
                "kernel_launches", "parameter_reductions"]


@pytest.mark.parametrize("key", list(HAND_COUNTS), ids=lambda k: "-".join(k))
def test_cost_model_matches_hand_count_at_width_four(key):
    table = cost_model(4, tuple(SCHEME_SITES)).set_index(["scheme", "pass"])
    assert tuple(int(v) for v in table.loc[key, COST_COLUMNS]) == HAND_COUNTS[key]


def test_estimated_site_saves_one_forward_reduction_and_no_backward_reduction():
    """The paper's M₂ removes the second site's forward reduction only (module docstring)."""
    table = cost_model(256).set_index(["scheme", "pass"])
    assert table.loc[("bhytstar", "forward"), "row_reductions"] - table.loc[("bhyt", "forward"), "row_reductions"] == 1
    assert table.loc[("bhytstar", "backward"), "row_reductions"] == table.loc[("bhyt", "backward"), "row_reductions"]


def test_cost_model_scales_bytes_with_element_size():
    # bfloat16 halves the activation bytes; the 4-byte float32 statistics stay.
    half = site_cost("rmsnorm", 8, 2, "forward").activation_bytes
    assert half == 2 * 8 * 2 + 4


def test_cost_model_rejects_unknown_scheme_and_kind():
    with pytest.raises(ValueError, match="schemes"):
        cost_model(4, ("periln",))
    with pytest.raises(ValueError, match="kind"):
        site_cost("layernorm", 4, 4, "forward")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_decode_step_equals_last_position_of_full_forward(scheme):
    config = StackConfig(scheme=scheme, width=32, heads=4, kv_heads=2, seq_len=8, depth=1)
    block = build_block(config, 0, 3)
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = block(x)[:, -1:]
        keys, values = key_value_cache(block, x[:, :8])
        constants = decode_constants(block) if block.row.estimates_m2 else None
        step = decode_step(block, x[:, 8:], keys, values, constants)
    # float32: the two routes sum the same products in different orders; relative
    # rounding ~1e-7 per operation over O(width + T) terms.
    torch.testing.assert_close(step, full, rtol=1e-5, atol=1e-5)


def test_decode_step_without_constants_for_bhyt_is_an_error():
    block = build_block(StackConfig(scheme="bhyt", width=16, heads=2, seq_len=4, depth=1), 0, 0)
    keys, values = key_value_cache(block, torch.randn(1, 4, 16))
    with pytest.raises(ValueError, match="constants"):
        decode_step(block, torch.randn(1, 1, 16), keys, values)


def _raw(scheme_times: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([
        {"measurement": "m", "scheme": scheme, "round": r, "seconds": t}
        for scheme, times in scheme_times.items() for r, t in enumerate(times)
    ])


def test_timing_summary_interval_from_log_ratios_of_paired_rounds():
    raw = _raw({"rmsnorm": [1.0, 2.0, 1.0, 2.0], "bhyt": [1.05, 1.9, 1.0, 2.2]})
    row = timing_summary(raw).set_index("scheme").loc["bhyt"]
    # per-round ratios 1.05, 0.95, 1.0, 1.1; on the log scale mean ℓ̄ and sample sd s,
    # t_{0.975, 3} = 3.182446305 (Student-t table), interval exp(ℓ̄ ∓ t s/√4).
    logs = [math.log(r) for r in (1.05, 0.95, 1.0, 1.1)]
    mean = sum(logs) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / 3)
    half = 3.182446305 * sd / 2
    assert sd < CONTENTION_LOG_SD and not row["contended"]
    assert row["ratio"] == pytest.approx(math.exp(mean))
    assert row["ratio_ci_low"] == pytest.approx(math.exp(mean - half))
    assert row["ratio_ci_high"] == pytest.approx(math.exp(mean + half))
    # speed-up 100(1/r − 1) of the ratio; its interval maps the ratio's endpoints (decreasing map)
    assert row["speedup_percent"] == pytest.approx(100 * (math.exp(-mean) - 1))
    assert row["speedup_ci_low"] == pytest.approx(100 * (math.exp(-mean - half) - 1))
    assert row["speedup_ci_high"] == pytest.approx(100 * (math.exp(-mean + half) - 1))
    assert (row["rounds"], row["dof"]) == (4, 3)


def test_timing_summary_of_a_constant_ratio_has_a_zero_width_interval():
    row = timing_summary(_raw({"rmsnorm": [2.0, 3.0, 4.0], "dyt": [1.0, 1.5, 2.0]})).set_index("scheme").loc["dyt"]
    assert (row["ratio"], row["ratio_ci_low"], row["ratio_ci_high"]) == pytest.approx((0.5, 0.5, 0.5))
    assert row["speedup_percent"] == pytest.approx(100.0)


def test_noisy_rounds_give_a_positive_finite_interval_where_raw_ratios_went_negative():
    # ratios 0.1 and 1.9: a raw-scale t interval (mean 1, t_{0.975,1} = 12.706) reaches −11;
    # on the log scale the interval is exp(·) of a finite one, and the spread flags contention
    row = timing_summary(_raw({"rmsnorm": [1.0, 1.0], "bhyt": [0.1, 1.9]})).set_index("scheme").loc["bhyt"]
    assert 0 < row["ratio_ci_low"] <= 0.1 and 1.9 <= row["ratio_ci_high"] < math.inf
    assert row["contended"]
    assert math.isfinite(row["speedup_ci_low"]) and math.isfinite(row["speedup_ci_high"])
    assert row["speedup_ci_low"] > -100  # a finite positive ratio can never mean "100 % slower"


@st.composite
def round_timings(draw):
    """Positive timings of a baseline and one scheme over 2–12 interleaved rounds, from 0.1 µs to hours."""
    rounds = draw(st.integers(2, 12))
    seconds = st.floats(1e-7, 1e4, allow_nan=False, allow_infinity=False)
    return draw(st.lists(seconds, min_size=rounds, max_size=rounds)), draw(
        st.lists(seconds, min_size=rounds, max_size=rounds))


@given(round_timings())
@settings(max_examples=200, deadline=None)
def test_ratio_interval_is_positive_finite_and_contains_the_estimate(timings):
    baseline, scheme = timings
    row = timing_summary(_raw({"rmsnorm": baseline, "bhyt": scheme})).set_index("scheme").loc["bhyt"]
    values = row[["ratio", "ratio_ci_low", "ratio_ci_high", "speedup_percent", "speedup_ci_low", "speedup_ci_high"]]
    assert all(math.isfinite(v) for v in values)
    # exp of a finite interval is ≥ its centre's exp up to one rounding of exp (relative 1e-12)
    assert 0 < row["ratio_ci_low"] <= row["ratio"] * (1 + 1e-12)
    assert row["ratio"] <= row["ratio_ci_high"] * (1 + 1e-12)


def test_log_ratio_interval_covers_the_true_ratio_at_its_stated_rate():
    """Synthetic log-normal timings: each round has a shared slow-down (cancels in the
    ratio) and independent noise of sd 0.02 per measurement, below the contention
    threshold, so the Student-t interval of the log ratios has exact 95 % coverage;
    the misses over independent experiments are Binomial(n, 0.05)."""
    generator = np.random.default_rng(20260601)
    experiments, rounds, true_ratio = 400, 6, 1.037
    shared = generator.normal(0, 0.3, (experiments, rounds))
    baseline = np.exp(-3 + shared + generator.normal(0, 0.02, (experiments, rounds)))
    scheme = np.exp(-3 + math.log(true_ratio) + shared + generator.normal(0, 0.02, (experiments, rounds)))
    raw = pd.DataFrame([
        {"measurement": e, "scheme": name, "round": r, "seconds": times[e, r]}
        for name, times in (("rmsnorm", baseline), ("bhyt", scheme)) for e in range(experiments) for r in range(rounds)])
    summary = timing_summary(raw)
    summary = summary[summary["scheme"] == "bhyt"]
    assert not summary["contended"].any()
    misses = int(((summary["ratio_ci_low"] > true_ratio) | (summary["ratio_ci_high"] < true_ratio)).sum())
    # two-sided binomial acceptance region at 0.1 %: a correct interval fails this 1 time in 1000 seeds;
    # a normal (z) quantile in place of t_{0.975,5} would miss ≈ 9 % (expected 36 of 400), outside it.
    low, high = stats.binom.ppf(0.0005, experiments, 0.05), stats.binom.ppf(0.9995, experiments, 0.05)
    assert low <= misses <= high, f"{misses} misses of {experiments}, expected within [{low}, {high}]"


def test_contention_flag_triggers_on_a_planted_outlier_and_widens_to_the_rounds():
    clean_baseline = [1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.00, 1.01]
    clean_scheme = [1.05, 1.06, 1.04, 1.05, 1.07, 1.03, 1.05, 1.06]
    clean = timing_summary(_raw({"rmsnorm": clean_baseline, "bhyt": clean_scheme})).set_index("scheme").loc["bhyt"]
    assert not clean["contended"]
    planted = list(clean_scheme)
    planted[3] = 3.0  # another process took the core during the scheme's slot of round 3
    noisy = timing_summary(_raw({"rmsnorm": clean_baseline, "bhyt": planted})).set_index("scheme").loc["bhyt"]
    assert noisy["contended"] and noisy["log_ratio_sd"] > CONTENTION_LOG_SD
    ratios = [s / b for s, b in zip(planted, clean_baseline)]
    assert noisy["ratio_ci_low"] <= min(ratios) * (1 + 1e-12) and noisy["ratio_ci_high"] >= max(ratios) * (1 - 1e-12)


def test_a_round_of_whole_machine_slowdown_cancels_in_the_paired_ratio():
    baseline = [1.0, 1.0, 5.0, 1.0]  # round 2 slow for both schemes alike
    row = timing_summary(_raw({"rmsnorm": baseline, "dyt": [0.9 * t for t in baseline]})).set_index("scheme").loc["dyt"]
    assert not row["contended"] and row["ratio"] == pytest.approx(0.9)


def test_evidence_column_follows_the_device_kind():
    raw = _raw({"rmsnorm": [1.0, 1.0], "dyt": [0.9, 0.9]})
    cpu = timing_summary(raw.assign(device="cpu", hardware="x"))
    gpu = timing_summary(raw.assign(device="cuda:0", hardware="y"))
    assert set(cpu["evidence_for"]) == {"claims about CPUs"}
    assert set(gpu["evidence_for"]) == {"claims about GPUs"}


def test_timing_summary_needs_the_baseline():
    with pytest.raises(ValueError, match="baseline"):
        timing_summary(_raw({"dyt": [1.0, 1.0]}))


def test_timing_tables_have_one_row_per_scheme_and_round():
    config = StackConfig(width=16, heads=2, seq_len=4, depth=1)
    schemes = ("rmsnorm", "bhyt")
    for table in (time_block(config, schemes, batch=1, rounds=2, inner=1),
                  time_decode(config, schemes, batch=1, rounds=2, inner=1)):
        assert len(table) == 4
        assert set(table["scheme"]) == set(schemes) and set(table["round"]) == {0, 1}
        assert (table["seconds"] > 0).all()
        summary = timing_summary(table)
        assert list(summary["scheme"]) == list(schemes)
        assert summary.set_index("scheme").loc["rmsnorm", "ratio"] == 1.0
        assert set(summary["evidence_for"]) == {"claims about CPUs"}


@pytest.mark.parametrize("claim, measured", [
    ("C2", {"dyt_speedup": 30.0, "dyt_speedup_ci_low": 20.0, "dyt_speedup_ci_high": 40.0, "dyt_loss_gap": 0.2,
            "dyt_loss_gap_ci_low": 0.1, "dyt_loss_gap_ci_high": 0.3, "dyt_diverged": 0, "rmsnorm_diverged": 0}),
    ("C6", {"training_speedup": 30.0, "training_speedup_ci_low": 20.0, "training_speedup_ci_high": 40.0,
            "decode_speedup": 30.0, "decode_speedup_ci_low": 20.0, "decode_speedup_ci_high": 40.0, "hardware": "h"}),
])
def test_a_cpu_timing_decides_no_gpu_speed_claim(claim, measured):
    """The same device rule for every speed claim: a clear CPU speed-up is reported, not judged."""
    from bhyt_theory.pipeline.rules import RULES

    assert RULES[claim].decide({**measured, "device": "cpu"}).verdict == "not testable here"
    assert RULES[claim].decide({**measured, "device": "cuda"}).verdict == "confirmed"


def test_one_round_gives_no_interval_rather_than_a_null_one():
    with pytest.raises(ValueError, match="at least two"):
        timing_summary(_raw({"rmsnorm": [1.0], "bhyt": [1.1]}))
