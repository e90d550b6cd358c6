"""The M₂ error decomposition of claim C5 (SPEC §3) and the attention probabilities it reads.

The central check is an identity: the reference estimate plus the error terms,
each measured by swapping in one exact quantity, equals the exact ``m(h')`` of the
block's own forward pass, to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bhyt_theory.model import Stack, StackConfig, gaussian_inputs
from bhyt_theory.norms import attention_variance_constant
from bhyt_theory.variance_study import (
    ERROR_TERMS,
    decompose_block,
    estimator_comparison,
    head_value_output_gram,
    variance_study,
)

U64 = 2.0**-53  # float64 unit roundoff
U32 = 2.0**-24  # float32 unit roundoff


def small_configs() -> st.SearchStrategy:
    """Tiny bhyt stacks: GQA or not, any estimator, reference λ pairs, float64."""
    return st.builds(
        StackConfig,
        scheme=st.sampled_from(["bhyt", "bhytline"]),
        depth=st.just(2),
        width=st.sampled_from([16, 32]),
        heads=st.just(4),
        kv_heads=st.sampled_from([1, 2, 4]),
        seq_len=st.sampled_from([4, 8]),
        lam_in=st.sampled_from([2.0, 3.0, 8.0]),
        lam_post=st.sampled_from([1.0, 3.0]),
        estimator=st.sampled_from(["reference", "position+tanh", "exact"]),
        init_std=st.sampled_from([0.02, 0.3]),
        dtype=st.just("float64"),
    )


def _last_block_input(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    h = x.to(stack.config.torch_dtype)
    for block in stack.blocks[:-1]:
        h = block(h)
    return h


@settings(max_examples=25)
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


def test_uniform_causal_attention_leaves_no_concentration_beyond_causal():
    # Zero query and key weights make every score 0, so P is exactly uniform causal and
    # the uncorrelated prediction is F Σ_{j≤t} m(u_j)/(t+1)² (SPEC §3) by hand.
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=2, seq_len=8, init_std=0.2, dtype="float64")
    block = Stack(config, 0).blocks[0]
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.attn.k_proj.weight.zero_()
    x = gaussian_inputs(config.width, 3, 8, 1.0, 5).double()
    with torch.no_grad():
        _, q = decompose_block(block, x)
    assert q["concentration_beyond_causal"].abs().max().item() <= 64 * U64 * q["exact"].max().item()
    f = block.c_attn.item() * 8
    m_u = q["mean_square_u"]
    positions = torch.arange(1, 9, dtype=torch.float64)
    uncorrelated = f * m_u.cumsum(-1) / positions**2
    uniform = block.c_attn.item() * m_u.mean(-1, keepdim=True)
    assert torch.allclose(q["concentration_causal"], uncorrelated - uniform, rtol=1e-12, atol=1e-15)


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
    table = estimator_comparison(config, ["reference", "exact"], seeds=(0, 1), batch=2, layers=(0, 1))
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
