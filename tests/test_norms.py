"""Properties of the normalisers (docs/normalisers.md, docs/statements.md; proofs/bounded_argument.md,
proofs/saturation_bound.md, proofs/scale_invariance.md, proofs/output_bound.md).

Float32 error model used below (u = 2⁻²⁴, unit roundoff). Every statistic is
computed in float32 on the scaled input x = h / max|h|: one rounding for x, one
per square, at most ⌈log₂ d⌉ + 1 ≤ 8 for the (pairwise) sum of d ≤ 96 squares,
one each for the mean, the square root, the hypot, the division and the
multiplication by λ/κ. So the computed argument is z̃ = z (1 + δ) with
|δ| ≤ 16u; we allow 32u, twice that. torch's float32 tanh is accurate to a few
ulp, so |fl(tanh z̃) − tanh z| ≤ 32u |z| + 4u.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import DTYPES, hidden_states, kappas, lams, thresholds

from bhyt_theory.numerics.norms import (
    EPS,
    BHyT,
    Derf,
    DyT,
    LayerNorm,
    RMSNorm,
    attention_variance_constant,
    bhyt,
    bhyt_argument,
    derf,
    dyt,
    estimate_post_attention_mean_square,
    layer_norm,
    mean_square,
    rms_norm,
)
from bhyt_theory.theory.bounds import max_argument_bound, saturated_fraction_bound

U32 = 2.0**-24
REL = 32 * U32  # relative error allowance of the computed argument z (module docstring)


# --- unit values against hand-derived numbers --------------------------------------------


def test_rms_norm_of_three_four_is_h_over_root_twelve_and_a_half():
    expected = [3 / math.sqrt(12.5 + EPS), 4 / math.sqrt(12.5 + EPS)]
    assert rms_norm(torch.tensor([3.0, 4.0], dtype=torch.float64)).tolist() == pytest.approx(expected, rel=1e-15)


def test_layer_norm_module_applies_its_gamma_and_beta_and_refuses_negative_eps():
    module = LayerNorm(3).double()
    with torch.no_grad():
        module.gamma.copy_(torch.tensor([1.0, -2.0, 3.0]))
        module.beta.copy_(torch.tensor([0.5, 0.0, -0.5]))
    h = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert torch.equal(module(h), layer_norm(h, module.gamma, module.beta, module.eps))
    assert not torch.equal(module(h), layer_norm(h, None, module.beta, module.eps))
    with pytest.raises(ValueError, match="eps"):
        layer_norm(h, eps=-1e-6)


def test_layer_norm_centres_then_divides_by_root_biased_variance():
    # h = (1, 2, 3): μ = 2, var = 2/3
    expected = [v / math.sqrt(2 / 3 + EPS) for v in (-1.0, 0.0, 1.0)]
    gamma, beta = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    out = layer_norm(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), gamma, beta)
    assert out.tolist() == pytest.approx([g * e + 0.5 for g, e in zip((1, 2, 3), expected)], rel=1e-14)


def test_bhyt_of_alternating_signs_is_tanh_of_lambda_over_kappa():
    # m(h) = 1, so z = ±(λ/κ)/sqrt(1 + ε) = ±0.2/sqrt(1+1e-6)
    z = 0.2 / math.sqrt(1 + EPS)
    h = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    assert bhyt(h, lam=2.0, kappa=10.0).tolist() == pytest.approx([math.tanh(z), -math.tanh(z)] * 2, rel=1e-15)


def test_bhyt_with_supplied_estimate_uses_it_instead_of_the_mean_square():
    # M = 4 while m(h) = 1: z = (3/10)·h/sqrt(4 + ε)
    h = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    out = bhyt(h, lam=3.0, kappa=10.0, gamma=torch.tensor([2.0, 1.0], dtype=torch.float64), mean_square=torch.tensor([[4.0]]))
    z = 0.3 / math.sqrt(4 + EPS)
    assert out.flatten().tolist() == pytest.approx([2 * math.tanh(z), -math.tanh(z)], rel=1e-14)


def test_dyt_and_derf_are_elementwise_tanh_and_erf():
    h = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    assert dyt(h, 0.5).tolist() == pytest.approx([math.tanh(0.5 * v) for v in (-2.0, 0.5, 3.0)], rel=1e-15)
    assert derf(h, 0.5, shift=0.1).tolist() == pytest.approx([math.erf(0.5 * v + 0.1) for v in (-2.0, 0.5, 3.0)], rel=1e-14)


def test_mean_square_is_mean_of_squares_in_float64():
    assert mean_square(torch.tensor([3.0, 4.0])).item() == pytest.approx(12.5, rel=4 * U32)
    assert mean_square(torch.tensor([3e30, 4e30])).item() == pytest.approx(12.5e60, rel=16 * U32)


def test_attention_variance_constant_hand_example_mha():
    # d = 2, one head of dim 2: W_V = I, W_O = 2I ⇒ ‖W_V W_O‖_F² = 8; T = 4 ⇒ 8 / (4·2) = 1
    c = attention_variance_constant(torch.eye(2), 2 * torch.eye(2), seq_len=4, n_heads=1, n_kv_heads=1)
    assert c.item() == pytest.approx(1.0, rel=1e-15)


def test_attention_variance_constant_hand_example_gqa():
    # d = 2, two query heads of dim 1 sharing one KV head with v_proj row (1, 2):
    # W_V (h ↦ hW, expanded) = [[1, 1], [2, 2]], W_O = I ⇒ ‖·‖_F² = 10; T = 1 ⇒ 10 / 2 = 5
    c = attention_variance_constant(torch.tensor([[1.0, 2.0]]), torch.eye(2), seq_len=1, n_heads=2, n_kv_heads=1)
    assert c.item() == pytest.approx(5.0, rel=1e-15)


def test_estimate_post_attention_mean_square_adds_c_lambda_squared_over_kappa_squared():
    m2 = estimate_post_attention_mean_square(torch.tensor([0.5], dtype=torch.float64), 0.25, lam=2.0, kappa=10.0)
    assert m2.item() == pytest.approx(0.5 + 0.25 * 0.04, rel=1e-15)


@st.composite
def gqa_shapes(draw):
    kv = draw(st.integers(1, 3))
    heads = kv * draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 4))
    d = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    return kv, heads, head_dim, d, seed


@given(gqa_shapes(), st.integers(1, 64))
def test_attention_variance_constant_matches_direct_gqa_expansion(shape, seq_len):
    kv, heads, head_dim, d, seed = shape
    g = torch.Generator().manual_seed(seed)
    w_v = torch.randn(kv * head_dim, d, generator=g, dtype=torch.float64)
    w_o = torch.randn(d, heads * head_dim, generator=g, dtype=torch.float64)
    # Direct expansion: query head k reads KV head k // (heads / kv), as attention does.
    blocks = [w_v[(k // (heads // kv)) * head_dim : (k // (heads // kv) + 1) * head_dim] for k in range(heads)]
    w_v_expanded = torch.cat(blocks, 0).T  # d × heads·head_dim
    direct = (w_v_expanded @ w_o.T).square().sum() / (seq_len * d)
    assert attention_variance_constant(w_v, w_o, seq_len, heads, kv).item() == pytest.approx(direct.item(), rel=1e-12)


def test_attention_variance_constant_is_expected_mean_square_of_uniform_attention_output():
    # Uniform attention over T iid isotropic tokens u_j with m(u_j) = 1 gives
    # a = (1/T) Σ_j u_j W_V W_O, so E m(a) = ‖W_V W_O‖_F² / (T d) = c_attn.
    torch.manual_seed(0)
    d, heads, kv, head_dim, T, n = 16, 4, 2, 4, 8, 20000
    w_v, w_o = torch.randn(kv * head_dim, d, dtype=torch.float64), torch.randn(d, heads * head_dim, dtype=torch.float64)
    c = attention_variance_constant(w_v, w_o, T, heads, kv).item()
    group = heads // kv
    w = w_v.reshape(kv, head_dim, d).repeat_interleave(group, 0).reshape(heads * head_dim, d).T @ w_o.T
    u = torch.randn(n, T, d, dtype=torch.float64)
    samples = (u.mean(1) @ w).square().mean(-1)
    # Monte Carlo error model: the sample mean of n iid draws; 5 standard errors.
    assert abs(samples.mean().item() - c) <= 5 * samples.std().item() / math.sqrt(n)


# --- the bounds as properties over adversarial inputs and every dtype ----------------------


@given(hidden_states(), lams, kappas, thresholds)
def test_saturated_fraction_never_exceeds_bound(sample, lam, kappa, t):
    h, shape = sample
    z = bhyt_argument(h, lam, kappa)
    fraction = (z.abs() >= t).double().mean().item()
    # |z̃| ≥ t implies |z| ≥ t(1 − REL): compare with the bound at that threshold.
    assert fraction <= saturated_fraction_bound(lam, kappa, t * (1 - REL)), shape


@given(hidden_states(), lams, kappas)
def test_argument_rms_never_exceeds_lambda_over_kappa(sample, lam, kappa):
    h, shape = sample
    z = bhyt_argument(h, lam, kappa).double()
    assert z.square().mean().sqrt().item() <= lam / kappa * (1 + REL), shape


@given(hidden_states(), lams, kappas)
def test_max_argument_never_exceeds_lambda_root_d_over_kappa(sample, lam, kappa):
    h, shape = sample
    z = bhyt_argument(h, lam, kappa)
    assert z.abs().max().item() <= max_argument_bound(lam, kappa, h.shape[-1]) * (1 + REL), shape


@given(hidden_states(), lams, kappas, st.integers(0, 2**31 - 1))
def test_output_never_exceeds_gamma(sample, lam, kappa, seed):
    h, shape = sample
    gamma = torch.randn(h.shape[-1], generator=torch.Generator().manual_seed(seed)) * 3
    out = bhyt(h, lam, kappa, gamma=gamma)
    # |tanh| ≤ 1 exactly in IEEE arithmetic and rounding is monotone, so no slack
    # is needed once γ is rounded to the output dtype as the product is.
    assert (out.abs() <= gamma.abs().to(out.dtype)).all(), shape
    assert out.dtype == h.dtype


@given(hidden_states(dtypes=("float32", "float64", "bfloat16", "float16")), lams, kappas, st.integers(-30, 30))
def test_bhyt_is_scale_invariant_up_to_the_epsilon_term(sample, lam, kappa, k):
    # float64 inputs: REL = 32 u₃₂ and 8 u₃₂ below over-cover float64's 32 u₆₄ and 8 u₆₄.
    h, shape = sample
    c = 2.0**k  # a power of two: c·h is exact unless it leaves the dtype's range
    ch = h * c
    assume(torch.isfinite(ch).all() and bool(((ch == 0) == (h == 0)).all()))
    assume(torch.equal(ch / c, h))
    m = mean_square(h).item()
    # Exact effect of ε (proofs/scale_invariance.md): z(ch) = ρ z(h) with
    # ρ = sqrt((m + ε) / (m + ε/c²)), so |Δu_i| ≤ |ρ − 1| |z_i| (tanh is 1-Lipschitz).
    # m(h) of a float64 token above ~1.3e154 overflows to +inf (documented in norms); ε is then
    # negligible and ρ = 1.
    rho = 1.0 if math.isinf(m) else math.sqrt((m + EPS) / (m + EPS / c**2))
    z = bhyt_argument(h, lam, kappa).double()
    u_dtype = torch.finfo(h.dtype).eps / 2
    # Float error (module docstring): 32u|z| + 4u on the side with argument z and
    # 32u·ρ|z| + 4u on the side with argument ρz, plus one rounding of each output to
    # its dtype: half an ulp of |tanh z| ≤ |z| and of |tanh ρz| ≤ ρ|z|.
    tolerance = abs(rho - 1) * z.abs() + (1 + rho) * (REL + u_dtype) * z.abs() + 8 * U32
    difference = (bhyt(ch, lam, kappa).double() - bhyt(h, lam, kappa).double()).abs()
    assert (difference <= tolerance).all(), shape


def test_epsilon_term_of_scale_invariance_is_real_for_tiny_inputs():
    # rms(h) = 1e-3 ⇒ m = ε: the ε term is O(1), and the measured change matches
    # tanh(ρ z) − tanh(z) with ρ = sqrt((m+ε)/(m+ε/c²)) to float64 rounding.
    h = torch.full((8,), 1e-3, dtype=torch.float64) * torch.tensor([1, -1] * 4, dtype=torch.float64)
    c, lam, kappa = 2.0**20, 2.0, 10.0
    m = 1e-6
    # m(h) of a float64 token above ~1.3e154 overflows to +inf (documented in norms); ε is then
    # negligible and ρ = 1.
    rho = 1.0 if math.isinf(m) else math.sqrt((m + EPS) / (m + EPS / c**2))
    z = bhyt_argument(h, lam, kappa)
    expected = torch.tanh(rho * z) - torch.tanh(z)
    measured = bhyt(c * h, lam, kappa) - bhyt(h, lam, kappa)
    assert rho == pytest.approx(math.sqrt(2), rel=1e-6)
    assert torch.allclose(measured, expected, rtol=1e-12, atol=0)


@given(hidden_states(dtypes=("float32",)), st.floats(0.05, 2.0), thresholds)
def test_dyt_saturated_fraction_tends_to_one_as_input_scale_grows(sample, alpha, t):
    h, shape = sample
    h = h / h.abs().max()  # unit peak; scale it up below
    assume(bool((h != 0).all()))
    smallest = h.abs().min().item()
    scales = [2.0**k for k in range(0, 200)]
    fractions = []
    for c in scales:
        if c * smallest * alpha >= 2 * t or c > 1e30:
            break
        fractions.append((dyt(h * c, alpha).abs() >= math.tanh(t)).double().mean().item())
    # Once α·c·min|h_i| ≥ 2t every coordinate is past tanh(t): the fraction is 1.
    c_full = 2 * t / (alpha * smallest)
    assume(c_full < 1e30)
    assert (dyt(h * c_full, alpha).abs() >= math.tanh(t) * (1 - 4 * U32)).all(), shape
    assert all(a <= b for a, b in zip(fractions, fractions[1:])), "fraction must not fall as the scale grows"
    # BHyT at the same scale keeps its bound.
    z = bhyt_argument(h * c_full, 2.0, 10.0)
    assert (z.abs() >= t).double().mean().item() <= saturated_fraction_bound(2.0, 10.0, t * (1 - REL))


# --- numerical robustness -------------------------------------------------------------------

TOKEN_NORMS = {
    "rms_norm": lambda h: rms_norm(h),
    "layer_norm": lambda h: layer_norm(h),
    "bhyt": lambda h: bhyt(h, 2.0),
    "bhyt_estimated": lambda h: bhyt(h, 2.0, mean_square=mean_square(h) * 1.5),
    "dyt": lambda h: dyt(h, 0.5),
    "derf": lambda h: derf(h, 0.5),
}


@given(hidden_states(), st.sampled_from(sorted(TOKEN_NORMS)))
def test_every_finite_input_gives_a_finite_output_in_the_input_dtype(sample, norm):
    h, shape = sample
    if norm == "bhyt_estimated":
        # m(h) itself overflows float64 for float64 entries above ~1e154; an infinite
        # estimate then gives NaN by design (test_non_finite_estimate_gives_nan_...).
        assume(bool(torch.isfinite(mean_square(h)).all()))
    out = TOKEN_NORMS[norm](h)
    assert torch.isfinite(out).all(), (norm, shape)
    assert out.dtype == h.dtype


@pytest.mark.parametrize("peak", [1e-30, 1.0, 1e19, 1e30, 3e38])
def test_huge_and_tiny_float32_inputs_keep_bhyt_exact(peak):
    # Where a naive mean(h*h) overflows (peak > ~1.8e19), BHyT must still equal its
    # value on the same direction at unit scale (ε is negligible: m ≥ 1e-60 vs ε
    # only for peak 1e-30, handled by the float64 reference below).
    direction = torch.tensor([1.0, -0.5, 0.25, 0.0, 0.75], dtype=torch.float64)
    h = (direction * peak).float()
    m = (direction * peak).square().mean().item()
    reference = torch.tanh(0.2 * direction * peak / math.sqrt(m + EPS))
    assert torch.allclose(bhyt(h, 2.0).double(), reference, rtol=REL, atol=4 * U32)
    assert torch.allclose(rms_norm(h).double(), direction * peak / math.sqrt(m + EPS), rtol=REL, atol=4 * U32)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("norm", ["rms_norm", "layer_norm", "bhyt"])
def test_non_finite_input_makes_its_token_nan_and_leaves_other_tokens(bad, norm):
    h = torch.tensor([[1.0, 2.0, 3.0], [1.0, bad, 3.0]])
    out = TOKEN_NORMS[norm](h)
    assert torch.isnan(out[1]).all()
    assert torch.equal(out[0], TOKEN_NORMS[norm](h[:1])[0])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_estimate_gives_nan_not_silent_zeros(bad):
    out = bhyt(torch.tensor([[1.0, 2.0]]), 2.0, mean_square=torch.tensor([[bad]]))
    assert torch.isnan(out).all()


def test_estimate_of_wrong_shape_is_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="broadcastable"):
        bhyt(torch.ones(2, 4), 2.0, mean_square=torch.ones(2, 4))


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_modules_hold_parameters_and_match_functions(dtype):
    h = torch.randn(3, 8).to(DTYPES[dtype])
    norm = BHyT(8, lam=3.0)
    assert torch.equal(norm(h), bhyt(h, norm.lam, norm.kappa, norm.gamma))
    assert {name for name, _ in norm.named_parameters()} == {"gamma", "lam"}
    assert {name for name, _ in DyT(8).named_parameters()} == {"gamma", "beta", "alpha"}


def test_mean_square_agrees_with_float64_reference_within_float32_rounding():
    rng = np.random.default_rng(0)
    h = torch.tensor(rng.standard_normal((64, 300)) * 10.0 ** rng.uniform(-20, 20, (64, 1)))
    reference = h.square().mean(-1, keepdim=True)
    # scaling by the row max is exact in binary; the float32 sum of 300 squares errs
    # by ≤ (log₂ 300 + 3) u ≈ 12u relatively; the float32 cast of h by u per entry.
    assert torch.allclose(mean_square(h.float()), reference, rtol=32 * U32, atol=0)


@pytest.mark.parametrize("norm", ["rms_norm", "bhyt"])
def test_gradient_at_an_all_zero_token_is_the_finite_derivative(norm):
    # At h = 0: RMSNorm(h) = h/sqrt(ε) + O(h³), so ∂/∂h = I/sqrt(ε); BHyT's tanh(λh/(κ√ε)) has λ/(κ√ε)·I.
    h = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    TOKEN_NORMS[norm](h).sum().backward()
    slope = 1 / math.sqrt(EPS) if norm == "rms_norm" else 0.2 / math.sqrt(EPS)
    assert h.grad.tolist() == pytest.approx([slope] * 4, rel=1e-12)


def test_dyt_and_derf_modules_report_their_own_argument():
    # The probes read Module.argument: DyT's is α h, Derf's α h + s, written here from
    # scratch with non-default α and s that are exact in float32 (the parameters' init dtype)
    # and dyadic inputs, so every product and sum is exact: equality, no tolerance.
    h = torch.tensor([[-2.0, 0.5, 3.0]], dtype=torch.float64)
    dyt_module, derf_module = DyT(3, alpha=0.75).double(), Derf(3, alpha=0.375).double()
    with torch.no_grad():
        derf_module.shift.fill_(0.25)
    assert torch.equal(dyt_module.argument(h), 0.75 * h)
    assert torch.equal(derf_module.argument(h), 0.375 * h + 0.25)


def test_norm_modules_pass_their_own_epsilon():
    # A module built with a non-default ε must use it: on a token with m(h) = 1e-6, RMSNorm
    # with ε = 1e-2 scales by 1/sqrt(m + ε) ≈ 9.9995, not by 1/sqrt(m + 1e-6) ≈ 707 (float64,
    # same function both sides: bit-identical).
    h = torch.full((1, 4), 1e-3, dtype=torch.float64)
    module = RMSNorm(4, eps=1e-2).double()
    assert torch.equal(module(h), rms_norm(h, module.gamma, eps=1e-2))
    assert not torch.allclose(module(h), rms_norm(h, module.gamma), rtol=0.1)


def test_bhyt_module_default_lambda_is_the_papers_two():
    # λ = 2 is the default of the attention-side norm (StackConfig.lam_in) and of the module;
    # a changed default would silently change every BHyT built without an explicit λ.
    assert float(BHyT(8).lam.detach()) == 2.0
