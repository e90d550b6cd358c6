"""Unit values and tightness of ``bhyt_theory.bounds`` (docs/statements.md §2, §5; proofs/saturation_bound.md,
proofs/gaussian_typical_case.md, proofs/depth_bound.md).

Error models are stated next to each assert. u = 2⁻²⁴ is float32's unit roundoff;
REL = 32u is the relative error allowance of a computed BHyT argument z, derived
in tests/test_norms.py's module docstring (≤ 16u from the scaled reduction, ×2).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import kappas, lams

from bhyt_theory.experiments.bounds import (
    align_weights,
    depth_ratios,
    sign_direction,
)
from bhyt_theory.numerics import gaussian
from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import EPS, bhyt_argument
from bhyt_theory.numerics.probes import saturated_fraction
from bhyt_theory.theory import bounds
from bhyt_theory.theory.bounds import (
    attention_gain,
    depth_bound,
    gaussian_saturated_fraction,
    gaussian_saturated_fraction_finite_width,
    max_argument_bound,
    saturated_fraction_bound,
    swiglu_gain,
    swiglu_gains,
)

U32 = 2.0**-24
REL = 32 * U32


# --- unit values against hand-derived numbers ------------------------------------------------


def test_saturated_fraction_bound_is_lambda_over_kappa_t_squared():
    assert saturated_fraction_bound(2.0, 10.0, 1.0) == pytest.approx(0.04, rel=1e-15)  # (0.2/1)²
    assert saturated_fraction_bound(3.0, 10.0, 0.5) == pytest.approx(0.36, rel=1e-15)  # (0.3/0.5)²
    assert saturated_fraction_bound(3.0, 10.0, 0.5, mean_square_ratio=2.0) == pytest.approx(0.72, rel=1e-15)


def test_saturated_fraction_bound_is_capped_at_one_and_vectorised():
    values = saturated_fraction_bound(np.array([2.0, 10.0]), 10.0, np.array([[1.0], [0.5]]))
    # rows t = 1, 0.5; columns λ = 2, 10: (0.2/t)² and min(1, (1/t)²)
    assert values == pytest.approx(np.array([[0.04, 1.0], [0.16, 1.0]]), rel=1e-15)


def test_max_argument_bound_is_lambda_over_kappa_root_d():
    assert max_argument_bound(2.0, 10.0, 256) == pytest.approx(3.2, rel=1e-15)  # 0.2 · 16
    assert max_argument_bound(-2.0, 10.0, 256) == pytest.approx(3.2, rel=1e-15)  # tanh is odd: |λ|


def test_gaussian_saturated_fraction_at_one_standard_deviation():
    # t = λ/κ: P(|Z| ≥ 1) = 0.31731050786291410 (standard normal table, 17 digits)
    assert gaussian_saturated_fraction(2.0, 10.0, 0.2) == pytest.approx(0.3173105078629141, rel=1e-14)
    # t = 1.959963984540054 σ is the two-sided 5 % point
    assert gaussian_saturated_fraction(1.0, 1.0, 1.959963984540054) == pytest.approx(0.05, rel=1e-12)


def test_gaussian_moments_are_reexported_not_reimplemented():
    for name in ("tanh_square_moment", "tanh_prime_moment", "tanh_prime_square_moment", "erf_square_moment"):
        assert getattr(bounds, name) is getattr(gaussian, name)


@pytest.mark.parametrize("a", [0.05, 0.2, 0.5, 1.0, 3.0])
def test_tanh_square_moment_exact_to_1e_minus_10(a):
    # Reference: mpmath tanh-sinh quadrature at 30 significant digits, an independent
    # integrator; its own error is below 1e-25, so 1e-10 is all the allowance.
    mpmath.mp.dps = 30
    exact = mpmath.quad(lambda z: mpmath.tanh(a * z) ** 2 * mpmath.npdf(z), [-mpmath.inf, 0, mpmath.inf])
    assert abs(bounds.tanh_square_moment(a) - float(exact)) <= 1e-10


def _linear(weight: list[list[float]]) -> torch.Tensor:
    return torch.tensor(weight, dtype=torch.float64)


def test_attention_gain_of_scaled_identities_with_gqa():
    # heads 2, kv_heads 1, head_dim 2, d = 4: the one KV block is diag(3, 4) on the
    # first two features, so ‖W_V^k‖₂ = 4 for both query heads; W_O = I.
    # G_A = 1 · sqrt(4² + 4²) = 4√2.
    config = StackConfig(scheme="rmsnorm", depth=1, width=4, heads=2, kv_heads=1, dtype="float64")
    attn = Stack(config, 0).blocks[0].attn
    with torch.no_grad():
        attn.v_proj.weight.copy_(_linear([[3, 0, 0, 0], [0, 4, 0, 0]]))
        attn.o_proj.weight.copy_(torch.eye(4, dtype=torch.float64))
    assert attention_gain(attn) == pytest.approx(4 * math.sqrt(2), rel=1e-14)


def test_swiglu_gains_of_a_hand_made_mlp():
    # W_g = [[3, 4], [0, 1]]: ‖W_g‖₂² = 13 + 4√10 (eigenvalues of W_gᵀW_g = [[9,12],[12,17]]),
    # largest row norm 5. W_up = 2I (‖·‖₂ = row norm = 2), W_down = I.
    config = StackConfig(scheme="rmsnorm", depth=1, width=2, heads=1, mlp_width=2, dtype="float64")
    mlp = Stack(config, 0).blocks[0].mlp
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(_linear([[3, 4], [0, 1]]))
        mlp.up_proj.weight.copy_(2 * torch.eye(2, dtype=torch.float64))
        mlp.down_proj.weight.copy_(torch.eye(2, dtype=torch.float64))
    spectral_gate = math.sqrt(13 + 4 * math.sqrt(10))
    gains = swiglu_gains(mlp)
    assert gains["spectral"] == pytest.approx(2 * spectral_gate, rel=1e-14)
    assert gains["gate_rows"] == pytest.approx(10.0, rel=1e-14)
    assert gains["up_rows"] == pytest.approx(2 * spectral_gate, rel=1e-14)
    assert swiglu_gain(mlp) == pytest.approx(10.0, rel=1e-14)


def _hand_made_stack(scheme: str) -> Stack:
    """d = 4, one head, W_V = 2I, W_O = 3I (G_A = 6), W_g = 5I, W_up = 2I, W_down = I (G_F = 10), T = 4."""
    config = StackConfig(scheme=scheme, depth=1, width=4, heads=1, mlp_width=4, seq_len=4, dtype="float64")
    stack = Stack(config, 0)
    eye = torch.eye(4, dtype=torch.float64)
    block = stack.blocks[0]
    with torch.no_grad():
        for linear, scale in ((block.attn.v_proj, 2), (block.attn.o_proj, 3), (block.mlp.gate_proj, 5),
                              (block.mlp.up_proj, 2), (block.mlp.down_proj, 1)):
            linear.weight.copy_(scale * eye)
    stack.refresh_variance_constants()
    return stack


def _hand_input() -> torch.Tensor:
    return torch.full((1, 2, 4), 0.5, dtype=torch.float64)  # rms(h_0) = 0.5 for both tokens


# Hand derivation, d = 4, γ = 1: A = G_A · ū, F = G_F · √d · v̄² = 20 v̄².
HAND_BOUNDS = {
    # ū = v̄ = max|γ| = 1: 0.5 + 6 + 20
    "rmsnorm": (6.0, 20.0, 26.5),
    # LNS layer 1: 1/√1 = 1, same as Pre-LN
    "lns": (6.0, 20.0, 26.5),
    # DyT: rms(|γ| + |β|) = 1, the saturated bound
    "dyt": (6.0, 20.0, 26.5),
    # Peri-LN: max|γᵒ| · B/sqrt(B² + ε) at the Pre-LN bounds B = 6, 20
    "periln": (6 / math.sqrt(36 + EPS), 20 / math.sqrt(400 + EPS), 0.5 + 6 / math.sqrt(36 + EPS) + 20 / math.sqrt(400 + EPS)),
    # BHyT*: ū = λ₁/κ = 0.2, v̄ = λ₂/κ = 0.1: A = 1.2, F = 20 · 0.01 = 0.2
    "bhytstar": (1.2, 0.2, 1.9),
}


@pytest.mark.parametrize("scheme", sorted(HAND_BOUNDS))
def test_depth_bound_terms_match_hand_derivation(scheme):
    table = depth_bound(_hand_made_stack(scheme), _hand_input())
    attention, mlp, total = HAND_BOUNDS[scheme]
    assert table["attention_term"].to_numpy() == pytest.approx(attention, rel=1e-12)
    assert table["mlp_term"].to_numpy() == pytest.approx(mlp, rel=1e-12)
    assert table["bound"].to_numpy() == pytest.approx(total, rel=1e-12)


# The same stack at γ₁ = γ₂ = (2, 1, 1, 0): max|γ| = 2 and rms γ = sqrt(6/4) differ, so a bound that
# used one for the other fails. ū, v̄ per scheme (DyT: rms(|γ| + |β|) with β = 0):
#   rmsnorm, lns: max|γ| = 2 → A = 12, F = 20 · 4 = 80;  dyt: rms γ = sqrt(1.5) → A = 6 sqrt(1.5), F = 30;
#   bhytstar: ū = min(rms γ, max|γ| λ₁/κ) = min(1.2247, 0.4) = 0.4 → A = 2.4;
#             v̄ = min(1.2247, 2 · 0.1) = 0.2 → F = 20 · 0.04 = 0.8.
NON_UNIFORM_GAMMA = (2.0, 1.0, 1.0, 0.0)
HAND_BOUNDS_GAMMA = {
    "rmsnorm": (12.0, 80.0, 92.5),
    "lns": (12.0, 80.0, 92.5),
    "dyt": (6 * math.sqrt(1.5), 30.0, 0.5 + 6 * math.sqrt(1.5) + 30.0),
    "bhytstar": (2.4, 0.8, 3.7),
}


@pytest.mark.parametrize("scheme", sorted(HAND_BOUNDS_GAMMA))
def test_depth_bound_terms_match_hand_derivation_at_non_uniform_gamma(scheme):
    stack = _hand_made_stack(scheme)
    with torch.no_grad():
        for norm in (stack.blocks[0].norm_attn, stack.blocks[0].norm_mlp):
            norm.gamma.copy_(torch.tensor(NON_UNIFORM_GAMMA, dtype=torch.float64))
    table = depth_bound(stack, _hand_input())
    attention, mlp, total = HAND_BOUNDS_GAMMA[scheme]
    assert table["attention_term"].to_numpy() == pytest.approx(attention, rel=1e-12)
    assert table["mlp_term"].to_numpy() == pytest.approx(mlp, rel=1e-12)
    assert table["bound"].to_numpy() == pytest.approx(total, rel=1e-12)


def test_depth_bound_kinds_name_the_saturated_schemes():
    kinds = {s: set(depth_bound(_hand_made_stack(s), _hand_input())["attention_bound_kind"]) for s in ("dyt", "bhytstar", "rmsnorm")}
    assert kinds == {"dyt": {"saturated"}, "bhytstar": {"non-saturating"}, "rmsnorm": {"normalised"}}


def test_bhyt_reference_estimate_scale_free_bound_by_cauchy_schwarz():
    # c_attn = ‖W_V W_O‖_F²/(T d) = ‖6 I₄‖_F² / 16 = 144/16 = 9; b = 9 · 0.2² + ε = 0.36 + ε.
    # A = 1.2, so v̄ = (λ₂/κ) sqrt(1 + A²/b) = 0.1 sqrt(1 + 1.44/(0.36 + ε)) < 1 = rms(γ),
    # F = 20 v̄² = 0.2 (1 + 1.44/(0.36 + ε)).
    table = depth_bound(_hand_made_stack("bhyt"), _hand_input())
    scale_free = table[table["variant"] == "scale_free"]
    expected = 0.2 * (1 + 1.44 / (0.36 + EPS))
    assert scale_free["mlp_term"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert set(scale_free["mlp_bound_kind"]) == {"non-saturating"}
    assert set(table["variant"]) == {"scale_free", "data_dependent"}


# --- Gaussian typical case against Monte Carlo -------------------------------------------------


@pytest.mark.parametrize("lam,t", [(2.0, 0.2), (2.0, 0.4), (3.0, 0.5), (1.0, 0.25)])
def test_gaussian_saturated_fraction_matches_monte_carlo(lam, t):
    kappa, d, tokens = 10.0, 1024, 256
    generator = torch.Generator().manual_seed(1234)
    h = torch.randn(tokens, d, generator=generator, dtype=torch.float64)
    z = bhyt_argument(h, lam, kappa)  # exact M: each token standardised by its own rms
    fraction = (z.abs() >= t).double().mean().item()
    p = gaussian_saturated_fraction(lam, kappa, t)
    # Error model: (i) binomial, p(1−p)/(d·T) for d·T coordinates; (ii) the token's own
    # rms replaces σ: rms/σ − 1 ~ N(0, 1/(2d)), moving the fraction by
    # ∂p/∂log σ = 2 s φ(s) (s = tκ/λ) — variance (2sφ(s))²/(2d·T) across T tokens — and
    # biasing it by at most 2sφ(s)/d (second order in 1/√d). Allow 5 standard errors + bias.
    s = t * kappa / lam
    slope = 2 * s * math.exp(-s * s / 2) / math.sqrt(2 * math.pi)
    std_error = math.sqrt(p * (1 - p) / (d * tokens) + slope**2 / (2 * d * tokens))
    assert abs(fraction - p) <= 5 * std_error + slope / d


# --- tightness of the saturation bound on k equal spikes --------------------------------------


@settings(max_examples=80)
@given(d=st.integers(1, 96), data=st.data(), lam=lams, kappa=kappas, log_scale=st.floats(0.0, 10.0))
def test_saturated_fraction_bound_attained_by_equal_spikes(d, data, lam, kappa, log_scale):
    k = data.draw(st.integers(1, d), label="k")
    c = 10.0**log_scale
    h = torch.zeros(d)
    h[:k] = c
    z = bhyt_argument(h, lam, kappa)
    # Exact z on a spike: (λ/κ) √(d/k) / sqrt(1 + εd/(k c²)); the computed one is within
    # REL of it. At t just below that value every spike counts, so fraction = k/d,
    # while the bound is k/d · (1 + εd/(kc²)) / (1 − REL)² — attained up to ε and rounding.
    epsilon_factor = 1 + EPS * d / (k * c * c)
    t = lam / kappa * math.sqrt(d / k) / math.sqrt(epsilon_factor) * (1 - REL)
    fraction = (z.abs() >= t).double().mean().item()
    bound = saturated_fraction_bound(lam, kappa, t)
    assert fraction == k / d
    assert fraction <= bound
    assert fraction / bound >= (1 - REL) ** 2 / epsilon_factor * (1 - 1e-12)  # 1e-12: float64 in the bound
    # Just above the spike value no coordinate saturates: the threshold is sharp.
    above = lam / kappa * math.sqrt(d / k) * (1 + REL)
    assert (z.abs() >= above).sum().item() == 0


# --- tightness of the depth bound on aligned rank-1 stacks -------------------------------------


@pytest.mark.parametrize("scheme", ["rmsnorm", "lns", "dyt", "bhytstar", "bhyt"])
def test_depth_bound_attained_by_aligned_rank_one_stack(scheme):
    # align_weights makes every increment parallel to the sign direction p, and every token
    # is c·p, so rms adds exactly and the growth ratio (rms(h_L) − rms(h_0)) / Σ(A + F) is
    # a product of per-factor ratios, derived here:
    # - RMSNorm/LNS (input rms 1, growing): ‖u‖/bound = (1 + ε/m)^{-1/2} ≥ (1 + ε)^{-1/2};
    #   the MLP term is quadratic in it, so ≥ (1 + ε)^{-1};
    # - silu(x)/x = σ(x) at x = 10³ ‖v‖ with ‖v‖ ≥ √16 · tanh(0.005) > 0.019: σ(19) > 1 − 1e-8;
    # - BHyT (λ₁/κ = 0.01, λ₂/κ = 0.005, exact M on both sides): tanh(x)/x per attention
    #   term, (tanh(x₂)/x₂)² per MLP term, times the same (1 + ε)^{-1} and σ(19) as above;
    # - DyT at input rms 10³ (α = 0.5): tanh(500) = 1 in float64, so |tanh| ≤ 1 is attained.
    # Computed in float64 (the ratio's own rounding ≤ 1e-12).
    config = StackConfig(scheme=scheme, depth=3, width=16, heads=2, seq_len=4, lam_in=0.1, lam_post=0.05,
                         estimator="exact", dtype="float64")
    stack = Stack(config, 0)
    direction = sign_direction(config.width, torch.Generator().manual_seed(0))
    align_weights(stack, direction)
    input_rms = 1e3 if scheme == "dyt" else 1.0
    x = (input_rms * math.sqrt(config.width) * direction).expand(1, 4, -1).clone()
    ratio = depth_ratios(stack, x, "aligned")["ratio"].min()
    x1, x2 = 0.01, 0.005
    expected_floor = {
        "rmsnorm": 1 / (1 + EPS),
        "lns": 1 / (1 + EPS),
        "dyt": 1.0,
        "bhytstar": min(math.tanh(x1) / x1, (math.tanh(x2) / x2) ** 2) / (1 + EPS) * (1 - 1e-8),
        "bhyt": min(math.tanh(x1) / x1, (math.tanh(x2) / x2) ** 2) / (1 + EPS) * (1 - 1e-8),
    }[scheme]
    assert expected_floor * (1 - 1e-9) <= ratio <= 1 + 1e-12


@pytest.mark.parametrize("scheme", ["dyt", "derf"])
def test_saturated_norm_bound_is_rms_of_gamma_plus_beta_and_is_attained(scheme):
    # DyT/Derf: rms(u) ≤ rms(|γ| + |β|), written here from scratch with β ≠ 0 and signs of γ,
    # β mixed; attained when the input saturates every coordinate with the sign of γ_i β_i
    # (u_i = γ_i sign(γ_i β_i) + β_i = ±(|γ_i| + |β_i|)). α h_i = ±1e3 saturates tanh and erf to
    # 1 exactly in float64, so the attained ratio is 1 up to the float64 rms (8 d u).
    d = 8
    config = StackConfig(scheme=scheme, depth=1, width=d, heads=2, seq_len=2, dtype="float64")
    stack = Stack(config, seed=0)
    gamma = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.25, 2.0, -0.5], dtype=torch.float64)
    beta = torch.tensor([0.5, 1.0, -1.5, -0.25, 2.0, -1.0, 0.75, 0.0], dtype=torch.float64)
    norm = stack.blocks[0].norm_attn
    with torch.no_grad():
        norm.gamma.copy_(gamma)
        norm.beta.copy_(beta)
    x = (torch.sign(gamma * beta) + (beta == 0)).expand(1, 2, d) * 1e3 / float(norm.alpha.detach())
    bound = float(depth_bound(stack, x, data_dependent=False).attention_norm_bound.iloc[0])
    from_scratch = float((gamma.abs() + beta.abs()).square().mean().sqrt())
    assert bound == pytest.approx(from_scratch, rel=8 * d * 2.0**-53)
    with torch.no_grad():
        attained = float(norm(x).square().mean(-1).sqrt().max())
    assert attained == pytest.approx(bound, rel=8 * d * 2.0**-53)


def test_thresholds_at_their_boundaries():
    # The saturation bound min(1, (λ/(κt))²) reaches 1 exactly at t = λ/κ and is below 1 just above it.
    assert saturated_fraction_bound(2.0, 10.0, 0.2) == 1.0
    assert saturated_fraction_bound(2.0, 10.0, 0.2 * (1 + 1e-9)) == pytest.approx((1 / (1 + 1e-9)) ** 2, rel=1e-15)
    assert saturated_fraction_bound(2.0, 10.0, 0.4) == pytest.approx(0.25, rel=1e-15)
    # The finite-width law is 0 from t = (|λ|/κ)√d on (no coordinate can exceed it), positive below.
    edge = 0.2 * math.sqrt(16)
    assert gaussian_saturated_fraction_finite_width(2.0, 10.0, edge, 16) == 0.0
    assert gaussian_saturated_fraction_finite_width(-2.0, 10.0, edge * (1 - 1e-3), 16) > 0.0
    # A coordinate exactly at the threshold counts as saturated (|z_i| ≥ t).
    assert float(saturated_fraction(torch.tensor([[0.3, -0.3, 0.2999999]]), 0.3)) == pytest.approx(2 / 3)


def test_gaussian_expectation_is_vectorised_over_the_variance():
    # E X² = σ² and E X⁴ = 3σ⁴ for each variance separately (Gauss–Hermite is exact for polynomials).
    values = gaussian.gaussian_expectation(lambda x: x**2, [1.0, 4.0, 0.25])
    assert values.shape == (3,) and values == pytest.approx([1.0, 4.0, 0.25], rel=1e-13)
    fourth = gaussian.gaussian_expectation(lambda x: x**4, [[2.0]])
    assert fourth.shape == (1, 1) and float(fourth[0, 0]) == pytest.approx(12.0, rel=1e-13)


def test_finite_width_law_refuses_a_zero_threshold_and_a_width_below_two():
    with pytest.raises(ValueError, match="t must be > 0"):
        gaussian_saturated_fraction_finite_width(2.0, 10.0, 0.0, 16)
    with pytest.raises(ValueError, match="d must be ≥ 2"):
        gaussian_saturated_fraction_finite_width(2.0, 10.0, 0.5, 1)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_bivariate_expectation_at_perfect_correlation_rounded_past_one(sign):
    # ρ = cov/sqrt(vx vy) can round a hair past ±1 at perfect (anti-)correlation; the rule clips it, so
    # E X·Y = ±sqrt(vx vy) instead of NaN from sqrt(1 − ρ²) < 0. Hermite is exact for this polynomial.
    vx, vy = 2.0, 3.0
    covariance = sign * math.sqrt(vx * vy) * (1 + 4e-16)
    value = gaussian.bivariate_gaussian_expectation(lambda x: x, lambda y: y, vx, vy, covariance)
    assert float(value) == pytest.approx(sign * math.sqrt(vx * vy), rel=1e-12)


def test_erf_square_moment_returns_a_float_for_a_scalar_and_an_array_for_an_array():
    assert isinstance(gaussian.erf_square_moment(0.5), float)
    values = gaussian.erf_square_moment(np.array([0.5, 1.0]))
    assert values.shape == (2,) and values == pytest.approx(
        [2 / math.pi * math.asin(2 * a * a / (1 + 2 * a * a)) for a in (0.5, 1.0)], rel=1e-14)


def test_an_output_norm_without_a_bound_is_named_in_the_error():
    """Only RMSNorm has an output-norm term; a row with another post_norm must say which is missing."""
    from types import SimpleNamespace

    block = SimpleNamespace(row=SimpleNamespace(post_norm="layernorm"))
    with pytest.raises(ValueError, match=r"no bound for output norm 'layernorm'; available: \('rmsnorm',\)"):
        bounds._output_side(block, None, 1.0)
