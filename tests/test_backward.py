"""The backward pass of a bhyt block and gradient norms through depth (proofs/backward_pass.md)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import signed_lambdas

from bhyt_theory.experiments.gradients import (
    correlated_gains,
    gradient_growth,
    gradient_norms,
    gradient_study,
    gradient_table,
    jacobian_gain,
)
from bhyt_theory.numerics.inputs import InputSpec
from bhyt_theory.numerics.model import Stack, StackConfig, build_block
from bhyt_theory.theory.backward import (
    bhyt_block_jacobian,
    lambda_gradients,
    mean_field_gradient_gram,
    mean_field_gradient_growth,
    norm_slope_squared,
    rank_one_norm,
)

U64 = 2.0**-53


def _block(lam_in: float, lam_post: float, seed: int = 0, width: int = 8, seq_len: int = 5):
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=2, seq_len=seq_len, mlp_width=16,
                         lam_in=lam_in, lam_post=lam_post, init_std=0.4, dtype="float64")
    block = build_block(config, 0, seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        block.norm_mlp.gamma.copy_(torch.randn(width, generator=generator, dtype=torch.float64))
    return block, generator


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e3])
def test_block_jacobian_equals_autograd_and_needs_the_mean_square_path(scale):
    block, generator = _block(2.5, -1.5, seed=11)
    h = torch.randn(5, 8, generator=generator, dtype=torch.float64) * scale
    closed = bhyt_block_jacobian(block, h)
    auto = torch.autograd.functional.jacobian(lambda x: block(x[None])[0], h)
    # float64 rounding of sums of ≤ T d terms of size ≤ max|J|: 4 T d u max|J|.
    tolerance = 4 * 5 * 8 * U64 * float(auto.abs().max())
    assert float((closed["total"] - auto).abs().max()) <= tolerance
    assert float((closed["total"] - closed["mean_square_path"] - auto).abs().max()) > 100 * tolerance


@settings(max_examples=25)
@given(signed_lambdas(), signed_lambdas(), st.integers(0, 10_000))
def test_lambda_gradients_equal_autograd_for_any_lambda(lam_in, lam_post, seed):
    block, generator = _block(lam_in, lam_post, seed=seed)
    h = torch.randn(5, 8, generator=generator, dtype=torch.float64) * 0.3
    cotangent = torch.randn(5, 8, generator=generator, dtype=torch.float64)
    closed = lambda_gradients(block, h, cotangent)
    (block(h[None])[0] * cotangent).sum().backward()
    auto = {"lam_in": float(block.norm_attn.lam.grad), "lam_post": float(block.norm_mlp.lam.grad)}
    # Same O(T d) terms summed in another order: 1e3 u relative to the larger gradient (or 1e-300).
    scale = max(abs(auto["lam_in"]), abs(auto["lam_post"]), 1e-300)
    assert max(abs(closed[k] - auto[k]) for k in auto) <= 1e3 * U64 * scale


def test_closed_forms_reject_other_schemes_and_batched_input():
    config = StackConfig(scheme="bhytstar", depth=1, width=8, heads=2, dtype="float64")
    with pytest.raises(ValueError, match="bhyt"):
        bhyt_block_jacobian(build_block(config, 0, 0), torch.zeros(3, 8, dtype=torch.float64))
    block, _ = _block(2.0, 1.0)
    with pytest.raises(ValueError, match="one float64 sequence"):
        bhyt_block_jacobian(block, torch.zeros(1, 3, 8, dtype=torch.float64))


class _TokenwiseLinear(torch.nn.Module):
    """h ↦ h A for every token: ‖J‖_F²/(T d) = ‖A‖_F²/d and no token mixing."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.matrix = torch.nn.Parameter(matrix)

    def forward(self, h):
        return h @ self.matrix


def test_hutchinson_gain_and_token_gram_recursion_on_a_known_jacobian():
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(16, 16, generator=generator, dtype=torch.float64) / 4
    block = _TokenwiseLinear(matrix)
    h = torch.zeros(3, 10, 16, dtype=torch.float64)
    exact = float(matrix.square().sum()) / 16
    gain, se = jacobian_gain(block, h, probes=32)
    assert abs(gain - exact) <= 5 * se  # Hutchinson is unbiased; 5 standard errors
    # A token-wise map keeps K = I, so each gain is ‖Jᵀ v‖²/‖v‖² for iid v: the same expectation.
    gains = correlated_gains([block, block], [h, h], probes=32)
    assert all(abs(g - exact) <= 0.1 * exact for g in gains)  # 32·3·10·16 samples: se ≈ 1 %, allow 10 %


def test_gradient_norms_start_at_the_projection_and_match_autograd():
    config = StackConfig(scheme="rmsnorm", depth=3, width=16, heads=2, seq_len=8, dtype="float64")
    stack = Stack(config, seed=1)
    x = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.02
    norms, states = gradient_norms(stack, x, projection_seed=5)
    projection = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert norms[-1] == pytest.approx(float(projection.norm()) / math.sqrt(projection.numel()), rel=1e-14)
    x_grad = x.clone().requires_grad_()
    (stack.residual(x_grad) * projection).sum().backward()
    assert norms[0] == pytest.approx(float(x_grad.grad.norm()) / math.sqrt(x.numel()), rel=1e-12)
    assert len(states) == config.depth and torch.equal(states[0], x)


def test_gradient_study_table_is_tidy():
    config = StackConfig(depth=2, width=8, heads=2, seq_len=4, mlp_width=8, dtype="float64")
    study = gradient_study(config, schemes=("rmsnorm", "bhyt"), seeds=(0, 1), inputs=InputSpec(batch=1), probes=2,
                           progress=False)
    assert len(study) == 2 * 2 * (config.depth + 1)
    top = study[study.layer == config.depth]
    assert (top.growth == 1).all() and (top.predicted_growth == 1).all() and (top.correlated_growth == 1).all()
    assert (top.mean_field_growth == 1).all()
    table = gradient_table(study, layers=[0])
    assert (table.ci_low <= table.growth).all() and (table.growth <= table.ci_high).all()
    assert set(gradient_growth(study).scheme) == {"rmsnorm", "bhyt"}


def test_mean_field_gradient_growth_of_one_token_and_one_layer_is_hand_derived():
    # T = 1: P = [[1]], so K₀ = K₁ (1 + d d_full σ⁴ s²) with RMSNorm's slope s² = 1/(v + ε) at the input
    # variance v: growth = sqrt(1 + d d_full σ⁴/(v + ε)).
    config = StackConfig(scheme="rmsnorm", depth=1, width=32, heads=2, seq_len=1, init_std=0.05)
    growth = mean_field_gradient_growth(config, input_variance=0.01).mean_field_growth.to_numpy()
    assert growth[1] == 1.0
    assert growth[0] == pytest.approx(math.sqrt(1 + 32 * 32 * 0.05**4 / (0.01 + 1e-6)), rel=1e-12)
    with pytest.raises(ValueError, match="periln"):
        mean_field_gradient_growth(config.replace(scheme="periln"))


def test_rank_one_norm_is_a_norm_for_negative_lambda_post():
    # Counterexample to the former rank_one_norm, which multiplied by s₂ = λ₂/(κ sqrt(M₂+ε)) and so
    # returned a negative "spectral norm" for λ₂ < 0; it must equal the λ₂ > 0 value (|s₂| is all that
    # changes) and the spectral norm of the explicit rank-one matrix D₂ s₂ h'_t h_tᵀ/(d(M₂+ε)).
    negative, generator = _block(2.0, -0.7, seed=3)
    positive, _ = _block(2.0, 0.7, seed=3)
    h = torch.randn(5, 8, generator=generator, dtype=torch.float64) * 0.3
    norms = rank_one_norm(negative, h)
    assert bool((norms > 0).all())
    torch.testing.assert_close(norms, rank_one_norm(positive, h), rtol=64 * U64, atol=0)  # same numbers, |s₂|
    first, second = negative.norm_attn, negative.norm_mlp
    with torch.no_grad():
        after = h + negative.attn(first(h[None]))[0]
        m1 = h.square().mean(-1)
        m2 = m1 + negative.c_attn * (first.lam / first.kappa) ** 2
        s2 = second.lam / (second.kappa * (m2 + second.eps).sqrt())
        y = s2[:, None] * after
        d2 = second.gamma / torch.cosh(y).square()
    for t in range(5):
        matrix = s2[t] * torch.outer(d2[t] * after[t], h[t]) / (8 * (m2[t] + second.eps))
        # O(d) float64 operations on both sides: 64 d u relative.
        assert float(norms[t]) == pytest.approx(float(torch.linalg.matrix_norm(matrix, ord=2)), rel=64 * 8 * U64)


def test_mean_field_gradient_gram_of_two_tokens_is_hand_derived():
    # T = 2, one layer, uniform causal P = [[1, 0], [1/2, 1/2]], K₁ = I: K₀ = I + g S PᵀP S with
    # PᵀP = [[5/4, 1/4], [1/4, 1/4]] and S = diag(1/sqrt(v+ε)) (RMSNorm at the input, both tokens at
    # variance v). PKPᵀ would give [[1, 1/2], [1/2, 1/2]] instead: the check separates them.
    config = StackConfig(scheme="rmsnorm", depth=1, width=32, heads=2, seq_len=2, init_std=0.05)
    gram = mean_field_gradient_gram(config, input_variance=0.01)
    g = 32 * 32 * 0.05**4 / (0.01 + 1e-6)
    expected = [[1 + 1.25 * g, 0.25 * g], [0.25 * g, 1 + 0.25 * g]]
    assert gram[1].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert gram[0] == pytest.approx(np.array(expected), rel=1e-12)
    growth = mean_field_gradient_growth(config, input_variance=0.01).mean_field_growth.to_numpy()
    assert growth[0] == pytest.approx(math.sqrt((2 + 1.5 * g) / 2), rel=1e-12)


def test_block_jacobian_serves_bhytline_as_bhyt():
    # bhytline computes bhyt's numbers (only the scheduling differs): same closed form, same Jacobian.
    config = StackConfig(scheme="bhytline", depth=1, width=8, heads=2, seq_len=5, mlp_width=16, init_std=0.4,
                         dtype="float64")
    block = build_block(config, 0, 0)
    twin = build_block(config.replace(scheme="bhyt"), 0, 0)
    h = torch.randn(5, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.equal(bhyt_block_jacobian(block, h)["total"], bhyt_block_jacobian(twin, h)["total"])


def test_backward_checks_run_on_distinct_gqa_heads():
    # The GQA checks need several KV heads, each shared by two query heads, or a head-pairing bug
    # (repeat for repeat_interleave) goes unseen.
    from bhyt_theory.theory.checks.backward_pass import _block as check_block

    block, _ = check_block(0)
    assert (block.attn.heads, block.attn.kv_heads) == (4, 2) and block.scheme == "bhyt"
    assert block.config.dtype == "float64"


def test_norm_slopes_of_bhytstar_and_dyt_against_quadrature():
    # BHyT* (exact m₁) has bhyt's attention-side slope; DyT's is α² E sech⁴(α sqrt(m) Z), here by
    # mpmath's adaptive quadrature (15 digits; the Hermite rule needs far more than 60 nodes here).
    m = np.array([0.01, 0.5, 4.0])
    bhyt = StackConfig(scheme="bhyt", width=16, heads=2)
    np.testing.assert_allclose(norm_slope_squared(bhyt.replace(scheme="bhytstar"), 0, m),
                               norm_slope_squared(bhyt, 0, m), rtol=1e-15)
    dyt = bhyt.replace(scheme="dyt")
    alpha = dyt.dyt_alpha

    def expectation(scale: float) -> float:
        density = 1 / mpmath.sqrt(2 * mpmath.pi)
        return float(mpmath.quad(lambda z: mpmath.sech(scale * z) ** 4 * mpmath.exp(-z * z / 2) * density,
                                 [-mpmath.inf, 0, mpmath.inf]))

    expected = [alpha**2 * expectation(alpha * math.sqrt(v)) for v in m]
    np.testing.assert_allclose(norm_slope_squared(dyt, 0, m), expected, rtol=1e-12)
