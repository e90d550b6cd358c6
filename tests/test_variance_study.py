"""The M₂ error decomposition of claim C5 (docs/estimators.md §3) and the attention probabilities it reads.

The central check is an identity: the reference estimate plus the error terms,
each measured by swapping in one exact quantity, equals the exact ``m(h')`` of the
block's own forward pass, to float rounding. The identity holds whatever each
intermediate term is, so every term is also pinned on its own against values derived
by hand on tiny hand-built blocks (uniform causal or two-token RoPE attention, W_V, W_O
scaled identities, ±s tokens whose m(u) is a known tanh).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bhyt_theory.experiments.variance import (
    ERROR_TERM_GROUPS,
    ERROR_TERMS,
    decompose_block,
    estimator_comparison,
    head_value_output_gram,
    variance_grid,
    variance_study,
)
from bhyt_theory.numerics.inputs import InputSpec, gaussian_inputs
from bhyt_theory.numerics.model import Block, Stack, StackConfig
from bhyt_theory.numerics.norms import EPS, attention_variance_constant
from bhyt_theory.theory.symbolic import (
    post_attention_error_terms,
    variance_decomposition,
)

U64 = 2.0**-53  # float64 unit roundoff
U32 = 2.0**-24  # float32 unit roundoff


@st.composite
def small_configs(draw) -> StackConfig:
    """Tiny bhyt stacks: depth 1–3, 1–4 heads with GQA or not, any estimator, λ drawn
    continuously, float64."""
    heads = draw(st.sampled_from([1, 2, 4]))
    return StackConfig(
        scheme=draw(st.sampled_from(["bhyt", "bhytline"])),
        depth=draw(st.integers(1, 3)),
        width=draw(st.sampled_from([16, 32])),
        heads=heads,
        kv_heads=draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0])),
        seq_len=draw(st.sampled_from([4, 8])),
        lam_in=draw(st.floats(0.1, 8.0)),
        lam_post=draw(st.floats(0.1, 8.0)),
        estimator=draw(st.sampled_from(["reference", "position+tanh", "exact"])),
        init_std=draw(st.sampled_from([0.02, 0.3])),
        dtype="float64",
    )


def _last_block_input(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    h = x.to(stack.config.torch_dtype)
    for block in stack.blocks[:-1]:
        h = block(h)
    return h


@settings(max_examples=60)
@given(small_configs(), st.sampled_from([0.02, 1.0, 50.0]), st.integers(0, 3))
def test_reference_plus_error_terms_equals_exact_mean_square(config, input_std, seed):
    stack = Stack(config, seed)
    x = gaussian_inputs(config.width, 2, config.seq_len, input_std, seed + 100)
    with torch.no_grad():
        _, q = decompose_block(stack.blocks[-1], _last_block_input(stack, x))
    total = q["reference"] + sum(q[term] for term in ERROR_TERMS)
    # Error model (float64): m(h), m(a), ⟨h, a⟩ and m(h') are d-term reductions (relative
    # error ≤ d·u each, worst case), h' = h + a is rounded once per element (2u on m(h')),
    # and the telescoping terms add O(u) each; all relative to the magnitudes involved.
    scale = q["mean_square_in"] + q["mean_square_a"] + q["cross"].abs() + q["exact"]
    assert torch.all((total - q["exact"]).abs() <= 4 * (config.width + 8) * U64 * scale)


def test_error_term_groups_partition_both_decompositions():
    symbolic_terms = [t for group in ERROR_TERM_GROUPS.values() for t in group]
    study_terms = [t for group in ERROR_TERM_GROUPS for t in group]
    assert sorted(symbolic_terms) == sorted(variance_decomposition().error_terms)
    assert sorted(study_terms) == sorted(ERROR_TERMS)


@settings(max_examples=10, deadline=None)
@given(small_configs(), st.sampled_from([0.02, 1.0]), st.integers(0, 3))
def test_study_terms_regroup_the_derivations_terms(config, input_std, seed):
    # decompose_block (batched, no (T, T, d, d) tensor) and post_attention_error_terms
    # (the derivation's seven terms from C_tj) are two computations of one decomposition:
    # per token, each group of study columns sums to its group of derivation terms.
    stack = Stack(config, seed)
    x = gaussian_inputs(config.width, 1, config.seq_len, input_std, seed + 100)
    block = stack.blocks[-1]
    with torch.no_grad():
        h = _last_block_input(stack, x)
        _, q = decompose_block(block, h)
        u = block.norm_attn(h)
        terms = post_attention_error_terms(
            h[0], block.attn.probabilities(u)[0], block.attn.v_proj.weight, block.attn.o_proj.weight,
            config.kv_heads, config.seq_len, float(block.norm_attn.lam), block.norm_attn.kappa,
            block.norm_attn.gamma.detach(),
        )
    # Error model (float64): both sides are sums of d- and T-term reductions of the same
    # quantities, each relative error ≤ (d + T)·u, relative to the magnitudes involved.
    scale = q["mean_square_in"][0] + q["mean_square_a"][0] + q["cross"][0].abs() + q["exact"][0]
    for study, derivation in ERROR_TERM_GROUPS.items():
        ours = sum(q[name][0] for name in study)
        theirs = sum(terms[name] for name in derivation)
        assert torch.all((ours - theirs).abs() <= 16 * (config.width + config.seq_len) * U64 * scale), study


def test_identity_holds_in_float32_within_float32_rounding():
    config = StackConfig(scheme="bhyt", depth=2, width=64, heads=4, seq_len=16)
    stack = Stack(config, 1)
    x = gaussian_inputs(config.width, 2, 16, 0.02, 11)
    with torch.no_grad():
        _, q = decompose_block(stack.blocks[-1], _last_block_input(stack, x))
    total = q["reference"] + sum(q[term] for term in ERROR_TERMS)
    # As above with u = 2^-24: the float32 reductions dominate (d·u relative each).
    scale = q["mean_square_in"] + q["mean_square_a"] + q["cross"].abs() + q["exact"]
    assert torch.all((total - q["exact"]).abs() <= 4 * (config.width + 8) * U32 * scale)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_probabilities_reproduce_the_attention_output(kv_heads):
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=4, kv_heads=kv_heads, seq_len=8, init_std=0.5, dtype="float64")
    attn = Stack(config, 2).blocks[0].attn
    x = gaussian_inputs(config.width, 2, 8, 1.0, 3).double()
    p = attn.probabilities(x)
    assert torch.all(p.triu(1) == 0)  # causal: exactly zero above the diagonal
    assert torch.allclose(p.sum(-1), torch.ones(2, 4, 8, dtype=torch.float64), rtol=0, atol=8 * 8 * U64)
    group = 4 // kv_heads
    v = attn.v_proj(x).view(2, 8, kv_heads, -1).transpose(1, 2).repeat_interleave(group, 1)
    recombined = attn.o_proj((p @ v).transpose(1, 2).reshape(2, 8, -1))
    # Same math, different kernels (SDPA vs explicit softmax): float64 rounding of
    # sums over T and d terms, relative to the output scale (|·| ≲ 10 here).
    assert torch.allclose(recombined, attn(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_head_gram_sums_to_the_variance_constant(kv_heads):
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=4, kv_heads=kv_heads, seq_len=8, init_std=0.3)
    block = Stack(config, 4).blocks[0]
    gram = head_value_output_gram(block)
    expected = attention_variance_constant(block.attn.v_proj.weight, block.attn.o_proj.weight, 8, 4, kv_heads) * 8 * 32
    # Σ_kk' ⟨W^k, W^k'⟩ = ‖Σ_k W^k‖² = ‖W_V W_O‖²; float64 sums of ~d² terms.
    assert gram.sum().item() == pytest.approx(expected.item(), rel=1e-12)
    assert torch.allclose(gram, gram.T)


# Hand-built single-head blocks. With W_Q = 0 every score is 0 (RoPE rotates the zero
# vector to zero), so P_tj = 1/(t+1) exactly for j ≤ t. With W_V = α I and W_O = β I the
# value-output map is A·I (A = αβ), so a_t = A Σ_j P_tj u_j, F = ‖A I‖_F²/d = A² and
# c_attn = F / T_train. A token h = s·σ with σ ∈ {±1}^d has m(h) = s² and tanh argument
# z = (λ/κ) s/√(s² + ε) · σ, so u = γ tanh(r) σ with r = (λ/κ) s/√(s² + ε) and m(u) = γ² tanh²(r).
KAPPA = 10.0
HADAMARD = ((1, 1, 1, 1), (1, -1, 1, -1), (1, 1, -1, -1), (1, -1, -1, 1))
SIGN_PATTERNS = {
    "identical": (HADAMARD[1], HADAMARD[1], HADAMARD[1]),
    "orthogonal": (HADAMARD[0], HADAMARD[1], HADAMARD[2]),
    "alternating": (HADAMARD[3], tuple(-v for v in HADAMARD[3]), HADAMARD[3]),
    "first_repeated": (HADAMARD[0], HADAMARD[2], HADAMARD[0]),
}


def _hand_block(width: int, seq_len: int, lam: float, gamma: float, value_output: tuple[float, float],
                query_gain: float = 0.0) -> Block:
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=1, seq_len=seq_len, lam_in=lam,
                         kappa=KAPPA, dtype="float64")
    block = Stack(config, 0).blocks[0]
    eye = torch.eye(width, dtype=torch.float64)
    with torch.no_grad():
        block.attn.q_proj.weight.copy_(query_gain * eye)
        block.attn.k_proj.weight.copy_(eye)
        block.attn.v_proj.weight.copy_(value_output[0] * eye)
        block.attn.o_proj.weight.copy_(value_output[1] * eye)
        block.norm_attn.gamma.fill_(gamma)
        block.refresh_variance_constant()
    return block


def _tanh_of_sign_token(lam: float, scale: float, gamma: float) -> float:
    """τ = γ tanh(r), r = (λ/κ) s/√(s² + ε): the common |u_i| of a token s·σ, σ ∈ {±1}^d."""
    return gamma * math.tanh(lam / KAPPA * scale / math.sqrt(scale**2 + EPS))


def test_uniform_causal_attention_leaves_no_concentration_beyond_causal():
    # Zero query weights make every score 0, so every head has P_tj = 1/(t+1) and, whatever
    # W_V, W_O (two random heads here), V_t = F Σ_{j≤t} m(u_j)/(t+1)² with F = c_attn·T.
    # T = 2 with tokens h_0 = s(1, 1, 1, 1), h_1 = s(2, 0, 0, 0): m(h) = s² for both, so
    # m(u_0) = tanh²(r), m(u_1) = tanh²(2r)/4 with r = (λ/κ) s/√(s² + ε) (γ = 1). By hand:
    # concentration_causal_0 = F m_0 − c (m_0 + m_1)/2 = c (3 m_0 − m_1)/2, and at t = 1 = T − 1 the
    # causal average is the full average, so concentration_causal_1 = 0; tanh_gamma = c ((m_0 + m_1)/2 − (λ/κ)²).
    lam, s = 3.0, 0.7
    config = StackConfig(scheme="bhyt", depth=1, width=4, heads=2, seq_len=2, lam_in=lam, kappa=KAPPA,
                         init_std=0.5, dtype="float64")
    block = Stack(config, 0).blocks[0]
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
    h = s * torch.tensor([[[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    with torch.no_grad():
        _, q = decompose_block(block, h)
    r = lam / KAPPA * s / math.sqrt(s**2 + EPS)
    m_0, m_1 = math.tanh(r) ** 2, math.tanh(2 * r) ** 2 / 4
    c = block.c_attn.item()
    expected = {
        "concentration_beyond_causal": [0.0, 0.0],
        "concentration_causal": [c * (3 * m_0 - m_1) / 2, 0.0],
        "tanh_gamma": [c * ((m_0 + m_1) / 2 - (lam / KAPPA) ** 2)] * 2,
    }
    # Float64: O(d + T) roundings of numbers bounded by K = c·T·max(m, (λ/κ)²) (as in the test below).
    tolerance = 8 * (4 + 2) * U64 * c * 2 * max(m_0, (lam / KAPPA) ** 2)
    for name, values in expected.items():
        assert torch.allclose(q[name][0], torch.tensor(values, dtype=torch.float64), rtol=0, atol=tolerance), name
    assert abs(m_0 - m_1) > 1e6 * U64  # unequal m(u): a per-token c·m(u_t) in place of the mean would fail


@pytest.mark.parametrize("pattern", sorted(SIGN_PATTERNS))
@pytest.mark.parametrize("train_length", [3, 8])
@pytest.mark.parametrize("lam, gamma", [(2.0, 1.0), (8.0, 1.0), (3.0, 0.5)])
def test_each_error_term_matches_its_hand_value_under_uniform_causal_attention(pattern, train_length, lam, gamma):
    alpha, beta, s = 1.5, 2.0, 0.7
    big_a, d, length = alpha * beta, 4, 3
    block = _hand_block(d, train_length, lam, gamma, (alpha, beta))
    signs = torch.tensor(SIGN_PATTERNS[pattern], dtype=torch.float64)
    with torch.no_grad():
        _, q = decompose_block(block, s * signs[None])
    tau = _tanh_of_sign_token(lam, s, gamma)
    c = big_a**2 / train_length
    # Every token has m(u) = τ², so mean_j m(u_j) = τ² and the tanh/γ term is c (τ² − (λ/κ)²).
    # Uniform causal attention over uncorrelated tokens predicts V_t = F Σ_{j≤t} τ²/(t+1)² = A² τ²/(t+1),
    # which the model's P (uniform causal here) repeats exactly: nothing beyond causal.
    # With C_ij = ⟨σ_i, σ_j⟩/d: m(a_t) = A² τ²/(t+1)² Σ_{i,j≤t} C_ij, so the correlation term is its
    # off-diagonal part (identical tokens: A² τ² t/(t+1)), and (2/d)⟨h_t, a_t⟩ = 2 A s τ/(t+1) Σ_{j≤t} C_tj.
    gram = (signs @ signs.T / d).tolist()
    expected = {"tanh_gamma": [], "concentration_causal": [], "concentration_beyond_causal": [],
                "correlation": [], "cross": [], "mean_square_a": []}
    for t in range(length):
        pairs = sum(gram[i][j] for i in range(t + 1) for j in range(t + 1))
        off_diagonal = pairs - (t + 1)
        expected["tanh_gamma"].append(c * (tau**2 - (lam / KAPPA) ** 2))
        expected["concentration_causal"].append(big_a**2 * tau**2 / (t + 1) - c * tau**2)
        expected["concentration_beyond_causal"].append(0.0)
        expected["correlation"].append(big_a**2 * tau**2 * off_diagonal / (t + 1) ** 2)
        expected["cross"].append(2 * big_a * s * tau * sum(gram[t][: t + 1]) / (t + 1))
        expected["mean_square_a"].append(big_a**2 * tau**2 * pairs / (t + 1) ** 2)
    # Float64 error model: every quantity is formed by at most O(d + T) roundings (tanh, the d-term
    # reductions, T-term cumulative and attention sums) of numbers bounded by K, so each term is
    # exact to (d + T)·u·K up to a small constant; 8 covers the constant.
    big_k = s**2 + big_a**2 * max(tau**2, (lam / KAPPA) ** 2) * train_length + 2 * abs(big_a) * s
    tolerance = 8 * (d + length) * U64 * big_k
    for name, values in expected.items():
        assert torch.allclose(q[name][0], torch.tensor(values, dtype=torch.float64), rtol=0, atol=tolerance), name
    reference = torch.full((length,), s**2 + c * (lam / KAPPA) ** 2, dtype=torch.float64)
    assert torch.allclose(q["reference"][0], reference, rtol=0, atol=tolerance)


def test_non_uniform_attention_shows_up_as_concentration_beyond_causal():
    # T = 2, d = head_dim = 2 (one RoPE frequency, angle = position in radians), W_Q = g I, W_K = I,
    # tokens h_0 = s(1, 1), h_1 = s(1, −1), so u_j = τ σ_j with σ_0 ⟂ σ_1. Row 1 of the scores:
    # q_1·k_1 = g |u_1|² = 2 g τ²; q_1·k_0 = g u_1ᵀ R(−1) u_0 = 2 g τ² sin 1 (R the 2-D rotation);
    # both over √head_dim. Row 0 has one entry, P_00 = 1.
    alpha, beta, s, lam, query_gain = 1.5, 2.0, 0.7, 8.0, 10.0
    big_a, d = alpha * beta, 2
    block = _hand_block(d, 2, lam, 1.0, (alpha, beta), query_gain=query_gain)
    h = s * torch.tensor([[[1.0, 1.0], [1.0, -1.0]]], dtype=torch.float64)
    with torch.no_grad():
        _, q = decompose_block(block, h)
    tau = _tanh_of_sign_token(lam, s, 1.0)
    score_self = 2 * query_gain * tau**2 / math.sqrt(2)
    score_back = score_self * math.sin(1.0)
    p_self = 1.0 / (1.0 + math.exp(score_back - score_self))
    p_back = 1.0 - p_self
    f, m_u = big_a**2, 2 * tau**2 / d
    # V_1 = F (P_10² + P_11²) m(u) under the model's P; uniform causal gives F m(u)/2.
    expected = {
        "concentration_beyond_causal": [0.0, f * m_u * (p_back**2 + p_self**2 - 0.5)],
        # u_0 ⟂ u_1: m(a_1) = A² (P_10² + P_11²) m(u) is exactly the uncorrelated prediction.
        "correlation": [0.0, 0.0],
        # (2/d)⟨h_1, a_1⟩ = (2/d) A P_11 ⟨s σ_1, τ σ_1⟩ = 2 A s τ P_11 (⟨σ_1, σ_0⟩ = 0).
        "cross": [2 * big_a * s * tau, 2 * big_a * s * tau * p_self],
        "concentration_causal": [f / 2 * m_u, 0.0],  # c (T/(t+1) − 1) m(u) with c = F/2
    }
    # RoPE forms cos 1 and sin 1 in float32 (relative error ≤ 2u₃₂ each), so s_11 − s_10 is off by
    # ≤ 4u₃₂(|s_11| + |s_10|); a two-way softmax has slope ≤ 1/4, so |ΔP| ≤ that/4, which moves
    # P_10² + P_11² by ≤ 2|ΔP| and P_11 by |ΔP|; both terms are ≤ K times these. Float64 rounding
    # adds (d + T)·u·K as in the uniform test.
    d_prob = 4 * U32 * (abs(score_self) + abs(score_back)) / 4
    big_k = s**2 + f * max(m_u, (lam / KAPPA) ** 2) + 2 * big_a * s
    tolerance = 2 * d_prob * big_k + 8 * (d + 2) * U64 * big_k
    for name, values in expected.items():
        assert torch.allclose(q[name][0], torch.tensor(values, dtype=torch.float64), rtol=0, atol=tolerance), name
    assert expected["concentration_beyond_causal"][1] > 1000 * tolerance  # the check is not vacuous


def test_study_estimate_ratio_matches_the_trace():
    config = StackConfig(scheme="bhyt", depth=3, width=32, heads=2, seq_len=8, estimator="position")
    stack = Stack(config, 6)
    x = gaussian_inputs(config.width, 2, 8, 0.02, 9)
    table = variance_study(stack, x)
    trace = stack.trace(x)
    trace = trace[trace["sublayer"] == "attn"]
    # Same stack, same inputs, same per-token ratio averaged over the batch: identical numbers.
    assert np.array_equal(table["estimate_ratio"].to_numpy(), trace["estimate_ratio"].to_numpy())
    # The relative terms sum to 1 − reference_ratio (the identity divided by m(h')).
    total = table["reference_ratio"] + table[list(ERROR_TERMS)].sum(axis=1)
    assert np.allclose(total, 1.0, rtol=0, atol=4 * (32 + 8) * U32)


def test_measured_saturation_never_exceeds_the_bound_under_the_estimate():
    # λ₂ = 30, κ = 10: the MLP-side argument has RMS ≈ 3, so the norm saturates and the
    # bound min(1, (λ₂/(κt))² m/(M₂+ε)) is not trivially 1 for t = 3.
    config = StackConfig(scheme="bhyt", depth=3, width=32, heads=2, seq_len=8, lam_post=30.0)
    table = variance_study(Stack(config, 2), gaussian_inputs(config.width, 2, 8, 0.02, 4))
    for t in (1, 2, 3):
        assert (table[f"saturated_fraction_{t}"] <= table[f"saturation_bound_{t}"] + 1e-12).all()
    assert (table["saturated_fraction_3"] > 0).any()


def test_second_norm_columns_use_the_exact_to_estimated_ratio():
    config = StackConfig(scheme="bhyt", depth=2, width=32, heads=2, seq_len=8, estimator="exact", lam_post=3.0)
    table = variance_study(Stack(config, 1), gaussian_inputs(config.width, 2, 8, 1.0, 2))
    # With M₂ = m(h') the ratio m/(M₂+ε) is 1 − ε/m: inputs N(0, 1) at d = 32 keep m(h') ≳ 0.25
    # per token, so it lies in [1 − 4e-6, 1]; λ₂_eff = 3·sqrt(ratio), bound = (3/10)²·ratio at t = 1.
    assert np.all((table["lam_post_effective"] <= 3.0) & (table["lam_post_effective"] >= 3.0 * (1 - 4e-6)))
    assert np.all((table["saturation_bound_1"] <= 0.09) & (table["saturation_bound_1"] >= 0.09 * (1 - 4e-6)))
    assert np.all(table["saturation_bound_2"] <= 0.09 / 4)


def test_estimator_comparison_reads_each_estimator_from_its_own_stack():
    config = StackConfig(scheme="bhyt", depth=2, width=32, heads=2, seq_len=8)
    table = estimator_comparison(config, ["reference", "exact"], seeds=(0, 1), inputs=InputSpec(batch=2), layers=(0, 1))
    assert len(table) == 2 * 2 * 4  # estimators × layers × positions {0, 1, 7, T/2 = 4, T−1 = 7}
    exact = table[table["estimator"] == "exact"]
    # M₂ = m(h') makes every ratio 1 up to the rounding of one float64 quotient.
    assert np.allclose(exact["ratio"], 1.0, rtol=0, atol=4 * U64)
    per_seed = []
    for seed in (0, 1):
        trace = Stack(config, seed).trace(gaussian_inputs(config.width, 2, 8, 0.02, seed + 10_000))
        per_seed.append(trace[trace["sublayer"] == "attn"].set_index(["layer", "position"])["estimate_ratio"])
    reference = table[table["estimator"] == "reference"].set_index(["layer", "position"])
    expected = ((per_seed[0] + per_seed[1]) / 2).loc[reference.index]
    assert np.allclose(reference["ratio"], expected, rtol=4 * U64, atol=0)  # a mean of two doubles


def test_variance_command_prints_one_row_per_estimator_and_layer(capsys):
    from bhyt_theory.cli import main

    code = main(["variance", "--depth", "2", "--width", "32", "--heads", "2", "--seq-len", "8",
                 "--layers", "0", "1", "--seeds", "0", "--batch", "1", "--estimators", "reference", "position"])
    out = capsys.readouterr().out
    assert code == 0
    assert "t=0" in out and "t=7" in out
    assert out.count("reference") == 1 and out.count("position") == 1  # a multi-index prints each name once


def test_variance_grid_command_prints_the_minimum_reference_ratio_of_each_grid_point(capsys, tmp_path):
    from bhyt_theory.cli import main

    csv = tmp_path / "grid.csv"
    code = main(["variance", "--grid", "--depth", "2", "--heads", "2", "--grid-seq-lens", "4", "8",
                 "--grid-lams", "2,1", "--grid-widths", "16", "--grid-input-stds", "0.02", "1.0",
                 "--seeds", "0", "1", "--batch", "1", "--csv", str(csv)])
    assert code == 0
    table = pd.read_csv(csv)
    assert len(table) == 2 * 2 * 2 * (4 + 8)  # input scales × seeds × layers × positions, summed over T
    # The grid wires T, λ, width, input scale and seed into the same study one runs by hand:
    # same stack, same inputs, so identical numbers.
    config = StackConfig(depth=2, heads=2, width=16, seq_len=8, lam_in=2.0, lam_post=1.0)
    direct = variance_study(Stack(config, 1), gaussian_inputs(16, 1, 8, 1.0, 1 + 10_000))
    rows = table[(table["seq_len"] == 8) & (table["input_std"] == 1.0) & (table["seed"] == 1)]
    assert np.array_equal(rows["reference_ratio"].to_numpy(), direct["reference_ratio"].to_numpy())
    # The relative terms sum to 1 − reference_ratio (float32 stacks: as in the trace test).
    total = table["reference_ratio"] + table[list(ERROR_TERMS)].sum(axis=1)
    assert np.allclose(total, 1.0, rtol=0, atol=4 * (16 + 8) * U32)
    lines = capsys.readouterr().out.splitlines()
    printed = pd.read_csv(io.StringIO("\n".join(lines[1:])), sep=r"\s+")
    assert len(printed) == 4  # T ∈ {4, 8} × input scale ∈ {0.02, 1}
    for row in printed.itertuples():
        point = table[(table["seq_len"] == row.seq_len) & (table["input_std"] == row.input_std)]
        at = point[(point["seed"] == row.seed) & (point["layer"] == row.layer) & (point["position"] == row.position)]
        assert at["reference_ratio"].item() == point["reference_ratio"].min()  # the location is the argmin
        # Printed to 4 significant digits: within half a unit of the 4th digit.
        assert abs(row.min_reference_ratio - point["reference_ratio"].min()) <= 5e-4 * abs(row.min_reference_ratio)


def test_variance_grid_command_rejects_a_malformed_lambda_pair(capsys):
    from bhyt_theory.cli import main

    assert main(["variance", "--grid", "--depth", "1", "--grid-lams", "2"]) == 2
    assert "λ₁,λ₂ pairs" in capsys.readouterr().err


def test_variance_grid_keeps_an_explicit_mlp_width_across_widths():
    # An MLP width set by hand (24, not the 48 derived from width 16) is part of the
    # architecture: at width 32 the grid must run it, not the derived 88.
    base = StackConfig(depth=2, heads=2, width=16, mlp_width=24, seq_len=4)
    table = variance_grid(base, seq_lens=(4,), lams=((2.0, 1.0),), widths=(32,), input_stds=(1.0,), inputs=InputSpec(batch=1))
    direct = variance_study(Stack(base.replace(width=32), 0), gaussian_inputs(32, 1, 4, 1.0, 10_000))
    # Same stack, same inputs: identical numbers (layer 1 reads layer 0's MLP output).
    assert np.array_equal(table["reference_ratio"].to_numpy(), direct["reference_ratio"].to_numpy())


def test_cli_grid_defaults_are_the_library_defaults():
    import inspect

    from bhyt_theory.cli import build_parser

    args = build_parser().parse_args(["variance", "--grid"])
    grid = inspect.signature(variance_grid).parameters
    assert tuple(args.grid_seq_lens) == grid["seq_lens"].default
    assert tuple(args.grid_widths) == grid["widths"].default
    assert tuple(args.grid_input_stds) == grid["input_stds"].default
    assert tuple(args.grid_lams) == grid["lams"].default  # parsed into (λ₁, λ₂) pairs by cli.lam_pair
    comparison = inspect.signature(estimator_comparison).parameters
    assert tuple(args.seeds) == comparison["seeds"].default
    assert (args.batch, args.input_std) == (comparison["inputs"].default.batch, comparison["inputs"].default.std)
