"""The mean-field Gram recursion (``bhyt_theory.meanfield``) against hand derivations,
independent quadrature and Monte Carlo stacks (docs/statements.md §8, token correlations)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from bhyt_theory.numerics.gaussian import (
    bivariate_gaussian_expectation,
    erf_square_moment,
    gaussian_expectation,
    tanh_square_moment,
)
from bhyt_theory.numerics.inputs import InputSpec
from bhyt_theory.numerics.model import SCHEMES, StackConfig
from bhyt_theory.numerics.norms import EPS, attention_variance_constant
from bhyt_theory.theory.meanfield import (
    KERNEL_TOLERANCE,
    attention_matrix,
    attention_variance_constant_moments,
    compare_with_monte_carlo,
    erf_kernel,
    gaussian_kernel,
    predict,
    predict_per_position,
)

ROUNDING = 1e-14  # float64 sums of O(100) terms of size ≤ 1


def silu(x: np.ndarray) -> np.ndarray:
    return x * special.expit(x)


def moderate_scales():
    """Standard deviations of a tanh/SiLU argument from near-linear to mildly saturated."""
    return st.floats(0.05, 1.5)


def correlations():
    return st.floats(-0.99, 0.99)


def _quadrature_with_error(f, s1: float, s2: float, rho: float) -> tuple[float, float]:
    """``E f(s1 X) f(s2 Y)`` by tensor Gauss–Hermite with 256 nodes, and its error
    estimated as the change from 128 nodes (geometric convergence: the finer rule's
    error is far below that change)."""
    args = (s1**2, s2**2, rho * s1 * s2)
    fine = float(bivariate_gaussian_expectation(f, f, *args, nodes=256))
    coarse = float(bivariate_gaussian_expectation(f, f, *args, nodes=128))
    return fine, abs(fine - coarse)


@settings(max_examples=25)
@given(s1=moderate_scales(), s2=moderate_scales(), rho=correlations(), name=st.sampled_from(["tanh", "silu"]))
def test_mehler_kernel_matches_bivariate_quadrature(s1, s2, rho, name):
    f = {"tanh": np.tanh, "silu": silu}[name]
    kernel = gaussian_kernel(f, np.array([s1, s2]), np.array([[1.0, rho], [rho, 1.0]]))
    exact, quadrature_error = _quadrature_with_error(f, s1, s2, rho)
    largest_second_moment = max(kernel[0, 0], kernel[1, 1])
    # Truncation ≤ KERNEL_TOLERANCE · max E f² (documented bound) plus skipped orders
    # (≤ 1e-3 of it each, at most 40 of them), plus quadrature error and rounding.
    bound = 1.05 * KERNEL_TOLERANCE * largest_second_moment + quadrature_error + ROUNDING
    assert abs(kernel[0, 1] - exact) <= bound
    assert kernel[0, 1] == kernel[1, 0]


@settings(max_examples=20)
@given(scale=moderate_scales())
def test_kernel_diagonal_is_the_exact_tanh_second_moment(scale):
    kernel = gaussian_kernel(np.tanh, np.array([scale]), np.ones((1, 1)))
    # tanh_square_moment: adaptive scipy quadrature, ~1e-12 absolute. The kernel's
    # Gauss–Hermite tier is chosen by the error *estimate* exp(−(π/s)√(2n)) ≤ 1e-3 ·
    # KERNEL_TOLERANCE, which is not a bound (at s = 1.25 the true error is 2.5e-12
    # against an estimate of 1e-13, by 30-digit mpmath); the documented guarantee is
    # KERNEL_TOLERANCE relative to E tanh², which is what is asserted.
    exact = tanh_square_moment(scale)
    assert abs(kernel[0, 0] - exact) <= 1e-12 + KERNEL_TOLERANCE * exact


def test_saturated_tanh_kernel_stays_within_its_documented_tail_bound():
    """Arguments of rms 2.5–3.5 (deep DyT) use the large quadrature tiers."""
    scales, rho = np.array([2.5, 3.5]), 0.95
    kernel = gaussian_kernel(np.tanh, scales, np.array([[1.0, rho], [rho, 1.0]]))
    args = (scales[0] ** 2, scales[1] ** 2, rho * scales.prod())
    fine = float(bivariate_gaussian_expectation(np.tanh, np.tanh, *args, nodes=360))
    coarse = float(bivariate_gaussian_expectation(np.tanh, np.tanh, *args, nodes=180))
    # At rms ≤ 4 the 260-order Mehler tail is ≤ 3e-6 of E f² (|ρ|^N sqrt(R_t R_s), R the
    # unexplained second moment); 1e-3 of E f² leaves room for the 360-node coefficient
    # quadrature, plus the reference quadrature's own error (change from 180 nodes).
    assert abs(kernel[0, 1] - fine) <= 1e-3 * kernel.max() + abs(fine - coarse)


@settings(max_examples=30)
@given(
    alpha_x=st.floats(0.05, 2.0), alpha_y=st.floats(0.05, 2.0),
    variance_x=st.floats(0.05, 2.0), variance_y=st.floats(0.05, 2.0), rho=correlations(),
)
def test_erf_closed_form_matches_bivariate_quadrature(alpha_x, alpha_y, variance_x, variance_y, rho):
    covariance = rho * math.sqrt(variance_x * variance_y)
    closed = float(erf_kernel(alpha_x, alpha_y, variance_x, variance_y, covariance))
    args = (alpha_x**2 * variance_x, alpha_y**2 * variance_y, alpha_x * alpha_y * covariance)
    fine = float(bivariate_gaussian_expectation(special.erf, special.erf, *args, nodes=256))
    coarse = float(bivariate_gaussian_expectation(special.erf, special.erf, *args, nodes=128))
    assert abs(closed - fine) <= abs(fine - coarse) + ROUNDING  # quadrature error estimate + rounding


@given(alpha=st.floats(0.01, 10.0))
def test_erf_square_moment_matches_adaptive_quadrature(alpha):
    # erf_square_moment is erf_kernel's diagonal; the independent route is adaptive
    # quadrature of E erf²(αZ) (requested to 1e-13 absolute), plus float64 rounding.
    value, _ = integrate.quad(lambda z: special.erf(alpha * z) ** 2 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
                              -math.inf, math.inf, epsabs=1e-13, epsrel=1e-13, limit=200)
    assert abs(erf_square_moment(alpha) - value) <= 1e-12


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_attention_variance_constant_moments_match_sampled_weights(heads, kv_heads):
    config = StackConfig(width=64, heads=heads, kv_heads=kv_heads, seq_len=32, init_std=0.02)
    mean, variance = attention_variance_constant_moments(config)
    generator = torch.Generator().manual_seed(1234)
    hd, d, n = config.head_dim, config.width, 600
    samples = np.array([
        float(attention_variance_constant(
            torch.randn(kv_heads * hd, d, generator=generator, dtype=torch.float64) * config.init_std,
            torch.randn(d, heads * hd, generator=generator, dtype=torch.float64) * config.init_std,
            config.seq_len, heads, kv_heads,
        ))
        for _ in range(n)
    ])
    # Mean: standard error from the derived variance; 4 SE (two-sided p ≈ 6e-5).
    assert abs(samples.mean() - mean) <= 4 * math.sqrt(variance / n)
    # Variance: standard error of a sample variance, sqrt((μ₄ − σ⁴)/n), μ₄ from the sample.
    centred = samples - samples.mean()
    sample_variance = centred.var(ddof=1)
    standard_error = math.sqrt(((centred**4).mean() - sample_variance**2) / n)
    assert abs(sample_variance - variance) <= 4 * standard_error


def test_attention_variance_constant_relative_spread_grows_with_grouping():
    """GQA does not move E c_attn but widens its spread: Var/E² = 2(2d + d_kv + 1)/(d² d_kv)."""
    configs = [StackConfig(width=256, heads=8, kv_heads=k, seq_len=64) for k in (8, 2, 1)]
    means, variances = zip(*(attention_variance_constant_moments(c) for c in configs))
    assert means[0] == means[1] == means[2]
    relative = [v / m**2 for m, v in zip(means, variances)]
    assert relative[0] < relative[1] < relative[2]


def test_uniform_causal_attention_rows():
    p = attention_matrix(5)
    assert np.allclose(p.sum(1), 1.0, atol=1e-15)
    assert np.allclose((p**2).sum(1), 1.0 / np.arange(1, 6), atol=1e-15)  # Σ_j P_tj² = 1/(t+1)
    assert np.all(np.triu(p, 1) == 0)
    with pytest.raises(ValueError):
        attention_matrix(3, np.ones((3, 3)))


def _single_token_by_hand(config: StackConfig, v: float) -> tuple[float, float, float | None]:
    """Depth 1, T = 1: attention is the identity on the single token, so
    K' = v + dσ²·d_full σ²·m(u) and K'' = K' + mlp_width σ² · g · E silu²(√g Z), g = dσ² m(v_in).
    Returns (K', K'', M₂ or None), written with univariate moments only."""
    d, sigma2, lam_in, lam_post, kappa = config.width, config.init_std**2, config.lam_in, config.lam_post, config.kappa
    d_full = config.heads * config.head_dim

    def normalised_mean_square(k: float, lam: float, estimate: float | None = None) -> float:
        if config.scheme in ("rmsnorm", "periln", "lns"):
            return k / (k + EPS)  # LNS scales by 1/√1 at layer 0
        if config.scheme == "dyt":
            return tanh_square_moment(config.dyt_alpha * math.sqrt(k))
        if config.scheme == "derf":
            return erf_square_moment(config.derf_alpha * math.sqrt(k))
        return tanh_square_moment(lam / kappa * math.sqrt(k / ((k if estimate is None else estimate) + EPS)))

    attention = d * sigma2 * d_full * sigma2 * normalised_mean_square(v, lam_in)
    if config.scheme == "periln":
        attention = attention / (attention + EPS)
    after_attention = v + attention
    estimate = None
    if config.scheme in ("bhyt", "bhytline"):
        estimate = v + d * d * d_full * sigma2**2 / (config.seq_len * d) * (lam_in / kappa) ** 2
    g = d * sigma2 * normalised_mean_square(after_attention, lam_post, estimate)
    mlp = config.mlp_width * sigma2 * g * float(gaussian_expectation(lambda x: silu(x) ** 2, g, nodes=128))
    if config.scheme == "periln":
        mlp = mlp / (mlp + EPS)
    return after_attention, after_attention + mlp, estimate


@pytest.mark.parametrize("scheme", SCHEMES)
def test_depth_one_single_token_matches_hand_derivation(scheme):
    config = StackConfig(scheme=scheme, depth=1, width=128, heads=2, seq_len=16)
    v = 0.3**2
    after_attention, after_mlp, estimate = _single_token_by_hand(config, v)
    table = predict_per_position(config, input_variance=v, length=1)
    attn, mlp = table.iloc[0], table.iloc[1]
    # Both sides are quadrature of smooth integrands converged to ~1e-12 relative.
    assert attn["mean_square"] == pytest.approx(after_attention, rel=1e-10)
    assert mlp["mean_square"] == pytest.approx(after_mlp, rel=1e-10)
    if estimate is not None:
        assert attn["estimate_ratio"] == pytest.approx(estimate / after_attention, rel=1e-10)


def test_position_average_follows_the_monte_carlo_convention():
    # As for Stack.trace tables: mean square and fractions are plain position means;
    # rms and arg_rms are roots of the position-mean of their squares.
    config = StackConfig(scheme="bhyt", depth=3, width=64, heads=2, seq_len=8)
    per_position = predict_per_position(config)
    grouped = per_position.groupby(["layer", "sublayer"], sort=False)
    averaged = predict(config)
    for column in ("mean_square", "estimate_ratio", "saturated_fraction_1"):
        assert np.allclose(averaged[column], grouped[column].mean(), rtol=1e-13, equal_nan=True)
    assert np.allclose(averaged["arg_rms"], np.sqrt(grouped["arg_rms"].apply(lambda v: (v**2).mean())), rtol=1e-13)
    assert np.allclose(averaged["rms"], np.sqrt(averaged["mean_square"]), rtol=1e-13)


# Monte Carlo: width 256, T 16, depth 8, batch 2, 8 seeds (paper-like init: σ = 0.02,
# inputs N(0, 0.02²)); DyT and Derf barely move there (tanh/erf linear, increments
# ~1e-3 of the input), so they are also run at input std 1, σ = 0.04.
MONTE_CARLO = {"depth": 8, "width": 256, "heads": 4, "seq_len": 16}
SEEDS = range(8)
NONLINEAR_REGIME = {"init_std": 0.04, "input_std": 1.0}


STATISTICS = ("mean_square", "arg_rms", "estimate_ratio")


@lru_cache(maxsize=None)
def _monte_carlo(scheme: str, init_std: float = 0.02, input_std: float = 0.02):
    config = StackConfig(scheme=scheme, init_std=init_std, **MONTE_CARLO)
    return config, compare_with_monte_carlo(config, SEEDS, InputSpec(batch=2, std=input_std), statistics=STATISTICS)


def _comparison(scheme: str, init_std: float = 0.02, input_std: float = 0.02, statistic: str = "mean_square"):
    config, table = _monte_carlo(scheme, init_std, input_std)
    return config, table[table["statistic"] == statistic].reset_index(drop=True)


def _allowed_relative_error(config: StackConfig, table, input_std: float) -> np.ndarray:
    """4 standard errors across seeds plus the finite-width bias the mean field ignores:
    each norm divides by the realised rms (E[1/m̂] = (1 + 2/d)/m for Gaussian coordinates,
    two norms per layer feeding ≤ the whole increment: ≤ 4/d), and attention logits of
    variance (dσ² m_u)² ≠ 0 raise Σ_j P_tj² by a factor ≈ e^{var} on the uncorrelated part;
    m_u ≤ min(1, max arg_rms²) (|tanh z|, |erf z| ≤ min(1, |z|·1.13)) or 1 for RMSNorm."""
    arg_rms = predict(config, input_std**2)["arg_rms"].max()
    m_u = 1.0 if np.isnan(arg_rms) else min(1.0, 1.3 * arg_rms**2)
    logit_variance = (config.width * config.init_std**2 * m_u) ** 2
    bias = 4 / config.width + math.expm1(logit_variance)
    return 4 * table["relative_standard_error"].to_numpy() + bias


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mean_field_matches_monte_carlo_per_layer(scheme):
    config, table = _comparison(scheme)
    allowed = _allowed_relative_error(config, table, 0.02)
    assert np.all(np.abs(table["relative_error"].to_numpy()) <= allowed), table.to_string()


@pytest.mark.parametrize("scheme", ["dyt", "derf"])
def test_mean_field_matches_monte_carlo_in_the_nonlinear_regime(scheme):
    config, table = _comparison(scheme, **NONLINEAR_REGIME)
    # Non-vacuous: the stack grows by > 5 %, ≫ the ~0.6 % relative standard error.
    assert table["monte_carlo"].iloc[-1] > 1.05 * NONLINEAR_REGIME["input_std"] ** 2
    allowed = _allowed_relative_error(config, table, NONLINEAR_REGIME["input_std"])
    assert np.all(np.abs(table["relative_error"].to_numpy()) <= allowed), table.to_string()


@pytest.mark.parametrize("scheme", ["rmsnorm", "bhyt"])
def test_uncorrelated_recursion_is_rejected_by_the_same_comparison(scheme):
    """docs/statements.md §8: treating tokens as uncorrelated underestimates the growth; the same
    error model that accepts the Gram recursion must reject it (the test has power)."""
    config, table = _comparison(scheme)
    uncorrelated = predict(config, 0.02**2, token_correlations=False)["mean_square"].to_numpy()
    relative = uncorrelated / table["monte_carlo"].to_numpy() - 1
    allowed = _allowed_relative_error(config, table, 0.02)
    assert relative[-1] < 0 and abs(relative[-1]) > allowed[-1]


@pytest.mark.parametrize(
    "scheme, regime, statistic",
    [
        ("bhyt", {}, "arg_rms"),
        ("bhyt", {}, "estimate_ratio"),
        ("bhytstar", {}, "arg_rms"),
        ("dyt", NONLINEAR_REGIME, "arg_rms"),
        ("derf", NONLINEAR_REGIME, "arg_rms"),
    ],
)
def test_mean_field_argument_and_estimate_statistics_match_monte_carlo(scheme, regime, statistic):
    """The tanh-argument rms of each norm and BHyT's M₂/m(h'), same error model: the
    Monte Carlo averages ratios and square roots per token, the mean field takes them
    of expectations, an O(1/d) difference inside the 4/d allowance."""
    config, table = _comparison(scheme, **regime, statistic=statistic)
    table = table.dropna(subset=["mean_field"])
    assert len(table) > 0
    input_std = regime.get("input_std", 0.02)
    allowed = _allowed_relative_error(config, table, input_std)
    assert np.all(np.abs(table["relative_error"].to_numpy()) <= allowed), table.to_string()
