"""BHyT's M₂ estimators (docs/estimators.md §6) against hand-derived values.

Every expected value below is written from the formulas in docs/estimators.md §3 and §6, not read
off the code: reference ``m₁ + c λ²/κ²``; position-aware ``m₁ + c (T/(t+1)) λ²/κ²``;
tanh-corrected ``m₁ + c E tanh²(λ/κ Z)``; γ-aware ``m₁ + c mean(γ²) λ²/κ²``.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import kappas

from bhyt_theory.numerics.estimators import ESTIMATOR_COSTS, ESTIMATORS, EstimateInputs
from bhyt_theory.numerics.gaussian import tanh_square_moment
from bhyt_theory.numerics.inputs import gaussian_inputs
from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import mean_square

U64 = 2.0**-53  # float64 unit roundoff


def inputs(m1, c_attn=0.3, lam=2.0, kappa=10.0, gamma=(1.0, 1.0), seq_len=8, length=None):
    m1 = torch.as_tensor(m1, dtype=torch.float64).reshape(1, -1, 1)
    length = m1.shape[1] if length is None else length
    return EstimateInputs(
        mean_square_in=m1,
        c_attn=torch.tensor(c_attn, dtype=torch.float64),
        lam_in=torch.tensor(lam, dtype=torch.float64, requires_grad=True),
        kappa=kappa,
        gamma_in=torch.tensor(gamma),
        state_after_attention=torch.zeros(1, length, len(gamma)),
        positions=torch.arange(length, dtype=torch.float64)[:, None],
        seq_len=seq_len,
    )


def estimates() -> st.SearchStrategy:
    """(m₁ per position, c_attn, λ, κ, T): positive statistics, lengths up to 3T."""
    return st.tuples(
        st.lists(st.floats(1e-6, 1e3), min_size=1, max_size=24),
        st.floats(1e-4, 10.0),
        st.floats(0.1, 5.0),
        kappas,
        st.integers(1, 8),
    )


def test_reference_estimate_is_m1_plus_c_lambda_squared_over_kappa_squared():
    got = ESTIMATORS["reference"](inputs([1.0, 2.0]))
    # 0.3 · (2/10)² = 0.012; two float64 operations → a few ulps.
    assert torch.allclose(got.flatten(), torch.tensor([1.012, 2.012], dtype=torch.float64), rtol=8 * U64, atol=0)


@settings(max_examples=300)
@given(estimates())
def test_position_estimate_scales_increment_by_seq_len_over_position(case):
    m1, c_attn, lam, kappa, seq_len = case
    got = ESTIMATORS["position"](inputs(m1, c_attn, lam, kappa, seq_len=seq_len)).flatten()
    for t, (value, m) in enumerate(zip(got.tolist(), m1)):
        expected = m + c_attn * seq_len / (t + 1) * (lam / kappa) ** 2
        # ~6 float64 operations on non-negative terms: relative error ≤ 6u, doubled.
        assert math.isclose(value, expected, rel_tol=12 * U64), (t, value, expected)


def test_position_estimate_at_first_token_is_seq_len_times_the_increment():
    seq_len = 128
    got = ESTIMATORS["position"](inputs([0.5], c_attn=0.01, seq_len=seq_len)).item()
    # t = 0: T·Σ_j P_0j² = T·1, so M₂ = m₁ + T c λ²/κ² = 0.5 + 128 · 0.01 · 0.04.
    assert math.isclose(got, 0.5 + 0.0512, rel_tol=12 * U64)


def test_tanh_estimate_uses_the_exact_gaussian_moment():
    # docs/estimators.md §3: at a = λ/κ = 0.5, E tanh²(aZ) = 0.1735 (to the 4 digits quoted), where
    # the linear assumption gives a² = 0.25. Tolerance: the quoted rounding, 5e-5.
    got = ESTIMATORS["tanh"](inputs([0.0], c_attn=1.0, lam=5.0, kappa=10.0)).item()
    assert abs(got - 0.1735) <= 5e-5


@settings(max_examples=100)
@given(estimates())
def test_tanh_estimate_replaces_lambda_ratio_squared_by_tanh_moment(case):
    m1, c_attn, lam, kappa, seq_len = case

    got = ESTIMATORS["tanh"](inputs(m1, c_attn, lam, kappa, seq_len=seq_len)).flatten()
    expected = torch.tensor(m1, dtype=torch.float64) + c_attn * tanh_square_moment(lam / kappa)
    # The moment is the package's quadrature (1e-12 absolute, so c·1e-12 on M₂); the estimator
    # forms it as (E tanh²/a²)·a², a few float64 roundings: 16u relative.
    assert torch.allclose(got, expected, rtol=16 * U64, atol=c_attn * 1e-12)


def test_tanh_estimate_keeps_the_gradient_of_lambda():
    case = inputs([1.0], c_attn=0.5, lam=3.0, kappa=10.0)
    ESTIMATORS["tanh"](case).sum().backward()
    a = 0.3
    # d/dλ [c · (E tanh²(aZ)/a²) · λ²/κ²] with the factor held fixed = 2 c λ factor / κ².
    expected = 2 * 0.5 * 3.0 * (tanh_square_moment(a) / a**2) / 100.0
    assert math.isclose(case.lam_in.grad.item(), expected, rel_tol=16 * U64)  # a few float64 operations


def test_gamma_estimate_multiplies_increment_by_mean_gamma_squared():
    # γ = (1, 3): mean γ² = 5, so M₂ = 1 + 0.3 · 5 · 0.04 = 1.06.
    got = ESTIMATORS["gamma"](inputs([1.0], gamma=(1.0, 3.0))).item()
    assert math.isclose(got, 1.06, rel_tol=12 * U64)


def test_position_tanh_gamma_estimate_multiplies_all_three_corrections():
    seq_len, lam, kappa = 16, 5.0, 10.0
    got = ESTIMATORS["position+tanh+gamma"](
        inputs([2.0, 2.0, 2.0], c_attn=1.0, lam=lam, kappa=kappa, gamma=(1.0, 3.0), seq_len=seq_len)
    ).flatten()
    # Increment at 0-based t: 1 · (16/(t+1)) · 0.1735 · 5 (docs/estimators.md §3's 4-digit moment: 5e-5 absolute).
    for t, value in enumerate(got.tolist()):
        assert abs(value - (2.0 + 16 / (t + 1) * 0.1735 * 5)) <= 16 / (t + 1) * 5 * 5e-5


def test_every_estimator_is_priced():
    for name in ESTIMATORS:
        assert all(part in ESTIMATOR_COSTS for part in name.split("+")), name


@pytest.mark.parametrize("estimator", ["position", "tanh"])
def test_stack_uses_the_configured_estimator_at_layer_zero(estimator):
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=2, seq_len=16, estimator=estimator, dtype="float64")
    stack = Stack(config, seed=3)
    x = gaussian_inputs(config.width, 3, 24, 0.02, seed=7)  # longer than seq_len on purpose
    trace = stack.trace(x)
    rows = trace[trace["sublayer"] == "attn"]
    m1 = mean_square(x.double()).reshape(3, 24).mean(0)
    c = stack.blocks[0].c_attn.item()
    positions = torch.arange(24, dtype=torch.float64)
    if estimator == "position":
        increment = c * 16 / (positions + 1) * (2.0 / 10.0) ** 2
    else:
        increment = c * tanh_square_moment(0.2) * torch.ones(24, dtype=torch.float64)
    expected = (m1 + increment).numpy()
    # float64 stack: m₁ is a 32-term reduction (≤ 32u relative) plus a few operations.
    assert rows["mean_square_estimate"].to_numpy() == pytest.approx(expected, rel=64 * U64)


def test_bhyt_with_exact_estimator_equals_bhytstar():
    config = StackConfig(scheme="bhyt", depth=3, width=32, heads=2, seq_len=8, estimator="exact", dtype="float64")
    x = gaussian_inputs(config.width, 2, 8, 0.02, seed=1)
    exact = Stack(config, seed=5)(x)
    star = Stack(config.replace(scheme="bhytstar"), seed=5)(x)
    # Same M₂ = m(h'), formed by two float64 code paths (estimate factor vs hypot): each
    # tanh argument differs by O(d u) ≈ 32 · 1.1e-16 relative per norm; with 6 norms and
    # blocks of Jacobian norm O(1) at init the outputs (|·| ≲ 3) agree to 1e-12 absolute.
    assert torch.allclose(exact, star, rtol=0, atol=1e-12)


def test_correlation_estimate_multiplies_increment_by_the_factor_at_each_position():
    # M₂ = m₁ + c f_t λ²/κ² (docs/estimators.md §8); positions past the factor's T read its last entry.
    factor = torch.tensor([5.0, 3.0, 2.0, 1.5], dtype=torch.float64)
    base = inputs([0.1] * 6, c_attn=0.3, lam=2.0, seq_len=4)
    estimate = ESTIMATORS["correlation"](dataclasses.replace(base, m2_factor=factor))
    expected = torch.tensor([0.1 + 0.3 * f * 0.04 for f in (5.0, 3.0, 2.0, 1.5, 1.5, 1.5)], dtype=torch.float64)
    # a handful of float64 operations per entry
    assert torch.allclose(estimate.detach().reshape(-1), expected, rtol=8 * U64, atol=0)
    with pytest.raises(ValueError, match="m2_factor"):
        ESTIMATORS["correlation"](base)


def test_block_factor_starts_from_the_uncorrelated_position_tanh_value():
    # Before calibration the factor is T/(t+1) · E tanh²(aZ)/a² (the "position+tanh" correction).
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=2, seq_len=8, estimator="correlation")
    factor = Stack(config, seed=0).blocks[0].m2_factor
    expected = [8 / (t + 1) * tanh_square_moment(0.2) / 0.04 for t in range(8)]
    assert factor.dtype == torch.float64
    assert factor.tolist() == pytest.approx(expected, rel=16 * U64)


def test_tracking_with_momentum_one_makes_the_estimate_exact_on_that_sequence():
    # One sequence (batch 1): the measured factor is (m(h'_t) − m₁_t)/(c λ²/κ²) per position, so after a
    # momentum-1 refresh on x the correlation estimate of every layer equals m(h') on x, up to rounding
    # (float64 stack: a few operations on O(1)-conditioned sums).
    config = StackConfig(scheme="bhyt", depth=3, width=32, heads=2, seq_len=8, estimator="correlation",
                         dtype="float64")
    stack = Stack(config, seed=2)
    x = gaussian_inputs(config.width, 1, 8, 0.02, seed=4)
    before = stack.trace(x)
    stack.track_m2_factors(x, momentum=1.0)
    after = stack.trace(x)
    ratio_before = before.loc[before["sublayer"] == "attn", "estimate_ratio"].to_numpy()
    ratio_after = after.loc[after["sublayer"] == "attn", "estimate_ratio"].to_numpy()
    assert abs(ratio_before - 1).max() > 1e-3  # the uncorrelated starting value is not exact
    assert ratio_after == pytest.approx(1.0, abs=1e-12)


def test_tracking_momentum_blends_old_and_measured_factors():
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=2, seq_len=8, estimator="correlation",
                         dtype="float64")
    x = gaussian_inputs(config.width, 2, 8, 0.02, seed=6)
    full, half = Stack(config, seed=1), Stack(config, seed=1)
    start = full.blocks[0].m2_factor.clone()
    full.track_m2_factors(x, momentum=1.0)
    half.track_m2_factors(x, momentum=0.5)
    expected = 0.5 * start + 0.5 * full.blocks[0].m2_factor
    assert torch.allclose(half.blocks[0].m2_factor, expected, rtol=8 * U64, atol=0)
    with pytest.raises(ValueError, match="momentum"):
        full.track_m2_factors(x, momentum=0.0)


def test_bhytc_row_fixes_its_estimator_and_kappa_schedule():
    config = StackConfig(scheme="bhytc", depth=3)
    assert (config.estimator, config.kappa_schedule) == ("correlation", "quadratic")
    assert [config.kappa_at(layer) for layer in range(3)] == [10.0, 40.0, 90.0]  # κ l², l 1-based
    with pytest.raises(ValueError, match="fixes estimator"):
        StackConfig(scheme="bhytc", estimator="position")


def test_correlation_estimate_uses_the_blocks_kappa_not_the_default():
    # κ = 4 (a κ schedule gives every layer its own κ): the increment is c f λ²/κ² = 0.3 · 2 · 4/16.
    factor = torch.tensor([2.0, 2.0], dtype=torch.float64)
    base = inputs([0.1] * 2, c_attn=0.3, lam=2.0, kappa=4.0, seq_len=2)
    estimate = ESTIMATORS["correlation"](dataclasses.replace(base, m2_factor=factor))
    expected = torch.full((2,), 0.1 + 0.3 * 2.0 * 0.25, dtype=torch.float64)
    # a handful of float64 operations per entry
    assert torch.allclose(estimate.detach().reshape(-1), expected, rtol=8 * U64, atol=0)
