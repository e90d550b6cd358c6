"""Trained parameters, a stale c_attn and the position-aware estimator
(proofs/trained_parameters.md, proofs/position_estimator.md).

Expected values are written from the formulas of the proofs, not read off the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import hidden_states, signed_lambdas

from bhyt_theory.experiments.position import (
    forced_attention,
    peaked_attention_study,
    peaked_probabilities,
    worst_peaked_error,
)
from bhyt_theory.experiments.staleness import (
    perturb,
    staleness_study,
    staleness_summary,
)
from bhyt_theory.numerics.inputs import InputSpec
from bhyt_theory.numerics.model import Stack, StackConfig, build_block
from bhyt_theory.numerics.norms import (
    bhyt,
    bhyt_argument,
    mean_square,
    root_mean_square,
    value_output_maps,
)
from bhyt_theory.theory.trained_bounds import (
    bhyt_output_rms_bound,
    increment_ratio,
    mlp_scale_free_threshold,
    peaked_attention_sum_squares,
    stale_saturation_factor_range,
    staleness_error,
    variance_constant_ceiling,
)


def test_new_bound_functions_at_hand_derived_values():
    assert bhyt_output_rms_bound(2.0, 10.0) == pytest.approx(math.tanh(0.2), rel=1e-15)
    assert bhyt_output_rms_bound(-30.0, 10.0, gamma_max=2.0, gamma_rms=1.5) == 1.5
    assert bhyt_output_rms_bound(30.0, 10.0, gamma_max=2.0, gamma_rms=3.0) == pytest.approx(2 * math.tanh(3.0))
    assert staleness_error(1.5, 1.0, 2.0, 10.0) == pytest.approx(0.5 * 0.04)
    assert stale_saturation_factor_range(1.0, 2.0) == pytest.approx((2 / 3, 2.0))
    assert stale_saturation_factor_range(3.0, 1.0)[1] == math.inf
    assert variance_constant_ceiling(2.0, 8, 16, 32) == pytest.approx(8 * 4 / (16 * 32))
    # Llama-374M shapes: κ/sqrt(1 + T·H) with T = 1024, 16 heads.
    assert mlp_scale_free_threshold(2.0, 10.0, 1024, 1024, 64) == pytest.approx(10 / math.sqrt(1 + 1024 * 16))
    assert peaked_attention_sum_squares(0.5, 3) == pytest.approx(0.25 + 0.75 / 4)
    assert increment_ratio(0.5, 3, 16, "position") == pytest.approx(1 / (4 * 0.5))
    assert increment_ratio(0.5, 3, 16, "reference") == pytest.approx(1 / (16 * 0.5))
    with pytest.raises(ValueError, match="estimator"):
        increment_ratio(0.5, 3, 16, "exact")


@settings(max_examples=200)
@given(hidden_states(dtypes=("float64",), min_log_scale=-100, max_log_scale=100), signed_lambdas(), st.floats(0.05, 20.0), st.integers(0, 2**16))
def test_output_rms_never_exceeds_the_any_lambda_bound(token, lam, factor, seed):
    # γ with random signs and a peak on the token's largest coordinate (mass and γ peak aligned).
    # Scales within 1e±100 keep the estimate M = factor · m(h) finite (m overflows near 1e154).
    h = token[0].reshape(1, -1)
    d = h.shape[-1]
    gamma = torch.as_tensor(np.random.default_rng(seed).standard_normal(d))
    gamma[int(h.abs().argmax())] = 3.0 * float(gamma.abs().max()) + 1.0
    for estimate in (None, mean_square(h) * factor):
        u = bhyt(h, lam, 10.0, gamma, estimate)
        ratio = 1.0 if estimate is None else float(mean_square(h) / (estimate + 1e-6))
        bound = bhyt_output_rms_bound(lam, 10.0, float(gamma.abs().max()), float(gamma.square().mean().sqrt()), ratio)
        assert float(root_mean_square(u)) <= bound * (1 + 1e-12)  # float64 evaluation, a few ulps


def test_no_perturbation_leaves_no_staleness_and_scaling_moves_c_by_the_fourth_power():
    config = StackConfig(scheme="bhyt", depth=2, width=32, heads=2, seq_len=8, dtype="float64")
    study = staleness_study(config, deltas=(0.0, 0.1), kinds=("scaling",), seeds=(0,), inputs=InputSpec(batch=1))
    still = study[study.delta == 0.0]
    assert (still.staleness_error == 0).all() and np.allclose(still.saturation_factor, 1.0, rtol=0, atol=1e-15)
    moved = study[study.delta == 0.1]
    # c_attn ∝ ‖W_V W_O‖_F², both scaled by 1.1.
    assert np.allclose(moved.relative_change, 1.1**4 - 1, rtol=1e-12)
    assert ((moved.saturation_factor >= moved.factor_low) & (moved.saturation_factor <= moved.factor_high)).all()
    assert set(staleness_summary(study).kind) == {"scaling"}
    with pytest.raises(ValueError, match="kind"):
        perturb(Stack(config), "rotate", 0.1, 0)


def test_forced_uniform_causal_attention_is_the_model_attention_with_zero_logits():
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=4, kv_heads=2, seq_len=8, dtype="float64")
    block = build_block(config, 0, 3)
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.attn.k_proj.weight.zero_()
        u = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert torch.allclose(forced_attention(block, u, peaked_probabilities(8, 0.0)), block.attn(u),
                              rtol=0, atol=1e-14)  # float64 rounding of O(d) sums of O(1) terms
    rows = peaked_probabilities(6, 0.4)
    assert torch.allclose(rows.sum(1), torch.ones(6, dtype=torch.float64)) and not rows.triu(1).any()
    with pytest.raises(ValueError, match="p"):
        peaked_probabilities(4, 1.5)


def test_peaked_attention_study_tracks_the_predicted_increment_ratio():
    config = StackConfig(scheme="bhyt", depth=1, width=64, heads=4, seq_len=8, dtype="float64", init_std=0.05)
    study = peaked_attention_study(config, peaks=(0.0, 1.0), seeds=(0,), inputs=InputSpec(batch=512))
    # Monte Carlo: ratio = estimate increment / measured mean; relative error ≤ 4.5 se/mean, plus the
    # finite-d term 4a⁴/(d+2)/E tanh² (≈ 0.2 %) of proofs/position_estimator.md.
    slack = 4.5 * study.increment_se / study.increment + 0.003
    assert (np.abs(study.increment_ratio / study.predicted_ratio - 1) <= slack).all()
    worst = worst_peaked_error(study)
    assert set(worst.estimator) == {"reference", "position", "position+tanh"}
    # Uniform causal: the position+tanh estimator is the most accurate of the three.
    uniform = worst[worst.p == 0.0].set_index("estimator").mean_abs_relative_error
    assert uniform["position+tanh"] < uniform["reference"]


@torch.no_grad()
def test_plain_position_estimator_can_be_farther_from_the_truth_than_the_reference():
    # Counterexample to the former position_estimator.md statement 3 ("on the same footing, without
    # the tanh correction, position is never farther from the truth than the reference"). Without
    # (L) both ratios carry a²/E tanh²(aZ) ≈ 1.078 (a = λ₁/κ = 0.2): under uniform causal attention
    # plain "position" overstates the increment by ≈ 7.8 % at every t, the reference by
    # (t+1)/T · 1.078 − 1 ≈ 4.4 % at t = 30. Once the reference itself over-estimates, the position
    # estimate (larger still, since T/(t+1) > 1) is farther from the truth: the comparison needs only
    # the reference's error to be positive beyond Monte Carlo error (4 relative standard errors).
    config = StackConfig(scheme="bhyt", depth=1, width=128, heads=4, seq_len=32, init_std=0.05, dtype="float64")
    block = build_block(config, 0, 0)
    block.attn.q_proj.weight.zero_()  # equal logits: every head attends uniformly causally
    block.attn.k_proj.weight.zero_()
    generator = torch.Generator().manual_seed(11)
    h = torch.randn(2048, 32, 128, generator=generator, dtype=torch.float64) * 0.1
    m1 = mean_square(h)
    a = block.attn(block.norm_attn(h, mean_square=m1))
    measured = mean_square(a)[..., 0]
    truth, se = measured.mean(0), measured.std(0) / math.sqrt(measured.shape[0])
    errors = {name: (block.estimate(h, m1, h + a, name) - m1).expand_as(m1)[..., 0].mean(0) / truth - 1
              for name in ("position", "reference")}
    t = 30
    assert float(errors["reference"][t]) > 4 * float(se[t] / truth[t])
    assert float(errors["position"][t]) > float(errors["reference"][t])  # so |e_pos| > |e_ref|
    assert float(errors["position"][t]) > 0.05  # the plain estimator over-estimates: r_pos > 1


@torch.no_grad()
def test_position_ratio_has_no_lower_bound_without_a_shared_pattern():
    # Counterexample to the former statement 4 without the shared-pattern hypothesis: two query heads
    # on one KV head, W_O² = −0.9 W_O¹, head 1 attends one-hot to token 0 and head 2 to token 1. Then
    # B = B₁ + B₂ = 0.1 B₁, so c_attn (and the estimate) is 100 times smaller than for one head, while
    # by statement 1 E m(a_t) = μ (‖B₁‖² + ‖B₂‖²)/d: r_pos = 0.01/(1.81 (t+1)) ≈ 0.0014 at t = 3,
    # far below the shared-pattern minimum 1/(t+1) = 0.25.
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=2, kv_heads=1, seq_len=8, init_std=0.1,
                         dtype="float64")
    block = build_block(config, 0, 0)
    head_dim = config.width // 2
    w_o = block.attn.o_proj.weight
    w_o[:, head_dim:] = -0.9 * w_o[:, :head_dim]
    block.refresh_variance_constant()
    generator = torch.Generator().manual_seed(12)
    h = torch.randn(4096, 8, 32, generator=generator, dtype=torch.float64) * 0.1
    m1 = mean_square(h)
    u = block.norm_attn(h, mean_square=m1)
    maps = value_output_maps(block.attn.v_proj.weight, w_o, 2, 1)  # (heads, d, d): B₁, B₂
    t = 3
    a = torch.zeros_like(h)
    a[:, t] = u[:, 0] @ maps[0] + u[:, 1] @ maps[1]
    measured = float(mean_square(a)[:, t, 0].mean())
    estimated = float((block.estimate(h, m1, h + a, "position") - m1).expand_as(m1)[:, t, 0].mean())
    ratio = estimated / measured
    # Predicted 0.01/(1.81·4)·a²/E tanh²(aZ) ≈ 0.0015; Monte Carlo error ~2 % of it.
    assert ratio < 0.01 < 1 / (t + 1)
    assert ratio == pytest.approx(0.01 / (1.81 * (t + 1)) * 1.078, rel=0.15)


def test_dense_token_at_lambda_equal_kappa_t_is_not_saturated_when_eps_is_positive():
    # Counterexample to "for |λ| ≥ κt the saturation bound is 1 and attained" at |λ| = κt with ε > 0:
    # the dense token h = ±c has |z_i| = t sqrt(c²/(c²+ε)) < t, so none of its coordinates reach t;
    # |λ| = κt sqrt(1 + ε/c²) (up to rounding, a hair above) saturates all of them.
    kappa, t, c, eps = 10.0, 0.5, 1e-2, 1e-6
    h = torch.tensor([[c, -c] * 32], dtype=torch.float64)
    at_threshold = bhyt_argument(h, kappa * t, kappa, eps=eps)
    assert float((at_threshold.abs() >= t).double().mean()) == 0.0
    above = bhyt_argument(h, kappa * t * math.sqrt(1 + eps / c**2) * (1 + 1e-12), kappa, eps=eps)
    assert float((above.abs() >= t).double().mean()) == 1.0
    assert float((bhyt_argument(h, kappa * t, kappa, eps=0.0).abs() >= t * (1 - 1e-15)).double().mean()) == 1.0


def test_mlp_threshold_is_a_thirteenth_to_a_thirty_eighth_of_the_paper_lambda():
    # λ₂* = κ/sqrt(1 + T H) at γ = 1, |λ₁| ≤ κ, H d_h = d: 0.078 at κ = 10, T = 1024, H = 16, i.e.
    # 1/12.8 of λ₂ = 1 and 1/38.4 of λ₂ = 3 — not "a hundredth".
    threshold = float(mlp_scale_free_threshold(2.0, 10.0, 1024, 1024, 64))
    assert threshold == pytest.approx(10.0 / math.sqrt(1 + 1024 * 16), rel=1e-12)
    assert 12 < 1.0 / threshold < 13 and 38 < 3.0 / threshold < 39


def test_stale_factor_range_at_rho_equal_one():
    # ρ = |c_stale/c_fresh − 1|: at ρ = 1 (a constant twice, or 0 times, the fresh one) the upper end is
    # unbounded; just below, 1/(1 − ρ) is finite and large.
    assert stale_saturation_factor_range(2.0, 1.0) == (0.5, math.inf)
    assert stale_saturation_factor_range(0.0, 1.0) == (0.5, math.inf)
    low, high = stale_saturation_factor_range(1.999, 1.0)
    assert low == pytest.approx(1 / 1.999) and high == pytest.approx(1 / 0.001, rel=1e-9)


@pytest.mark.parametrize("name", ["staleness", "ceiling", "threshold", "reference", "position"])
def test_float32_parameters_are_computed_in_double_precision(name):
    """λ, κ, gains and attention sums read from a float32 model arrive as np.float32; the bounds
    convert them to float64 first. Reference: the closed form on the inputs' exact values in
    Python floats. Error model: ≤ 6 float64 operations on each side, |rel. error| ≤ 12u ≈ 1.3e-15
    (allowed 1e-14); float32 arithmetic would be off by ~u₃₂ = 6e-8."""
    f = np.float32
    lam, kappa, gain, c_stale, c_fresh, s = f(0.3), f(7.0), f(1.3), f(1.1), f(0.7), f(0.37)
    L, K, G, C1, C0, S = (float(v) for v in (lam, kappa, gain, c_stale, c_fresh, s))
    cases = {
        "staleness": (lambda: staleness_error(c_stale, c_fresh, lam, kappa), (C1 - C0) * (L / K) ** 2),
        "ceiling": (lambda: variance_constant_ceiling(gain, f(8), f(48), f(96)), 8 * G**2 / (48 * 96)),
        "threshold": (lambda: mlp_scale_free_threshold(lam, kappa, f(48), f(96), f(8), gain, c_fresh, c_stale, s),
                      K * S / (C1 * math.sqrt(1 + 48 * 96 / 8 * (min(C0, G * L / K) * K / L) ** 2))),
        "reference": (lambda: increment_ratio(s, f(5), f(48), "reference"), 1 / (48 * S)),
        "position": (lambda: increment_ratio(s, f(5), f(48), "position"), 1 / (6 * S)),
    }
    compute, expected = cases[name]
    assert float(compute()) == pytest.approx(expected, rel=1e-14, abs=0)
