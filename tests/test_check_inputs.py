"""The proof-step checks' own inputs and comparators are what the checks say they are.

A check can pass for the wrong reason: its random inputs drawn from the global RNG (a failure
could not be replayed), inputs that miss the regime the check is about, or a comparator that
misreads its numbers. These tests pin the helpers of ``bhyt_theory.theory.checks`` that the
checks build on; ``test_proofs.py`` runs the checks themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bhyt_theory.theory.checks import (
    backward_pass,
    correlation_estimator,
    decode_precomputation,
    trained_parameters,
    variance_approximation,
)

# ---------------------------------------------------------------------------
# Reproducibility: a check's random inputs come from its own seeded generators
# ---------------------------------------------------------------------------


def _backward_block():
    block, generator = backward_pass._block(3)
    return [block.norm_attn.gamma, block.norm_mlp.gamma, torch.randn(4, generator=generator, dtype=torch.float64)]


def _isometric_weights():
    block = trained_parameters._isometric_block(2.0, 1.0).blocks[0]
    return [block.attn.v_proj.weight, block.attn.o_proj.weight, block.c_attn]


def _exchangeable():
    return [correlation_estimator._exchangeable_tokens(8, 5, 16, 0.2, 0.3, seed=1)]


def _decode_cases():
    return [tensor if isinstance(tensor, torch.Tensor) else torch.tensor(tensor)
            for case in decode_precomputation._cases(torch.float32, 1) for tensor in case]


def _patterns():
    return [variance_approximation._distinct_head_patterns(2, 5, seed=18)]


INPUT_HELPERS = {
    "backward_pass._block": _backward_block,
    "trained_parameters._isometric_block": _isometric_weights,
    "correlation_estimator._exchangeable_tokens": _exchangeable,
    "decode_precomputation._cases": _decode_cases,
    "variance_approximation._distinct_head_patterns": _patterns,
}


@pytest.mark.parametrize("name", sorted(INPUT_HELPERS))
def test_check_inputs_do_not_depend_on_the_global_rng(name):
    # The same call under two different global torch/numpy RNG states must give the same tensors,
    # bit for bit (same process, same machine, same operations): a helper that draws any of its
    # random numbers from the global RNG (generator=None) makes its check irreproducible.
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        draws.append([t.detach().clone() for t in INPUT_HELPERS[name]()])
    for first, second in zip(*draws, strict=True):
        assert torch.equal(first, second), name


def test_backward_block_has_distinct_random_gains():
    # The docstring's promise, on which the Jacobian checks rely to catch a γ₁/γ₂ mix-up: γ₁, γ₂ are
    # random (not the initial ones) and differ from each other.
    block, _ = backward_pass._block(0)
    gamma_1, gamma_2 = block.norm_attn.gamma.detach(), block.norm_mlp.gamma.detach()
    assert not torch.equal(gamma_1, torch.ones_like(gamma_1)) and not torch.equal(gamma_1, gamma_2)


# ---------------------------------------------------------------------------
# The inputs cover the regime each check is about
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", decode_precomputation.DTYPES, ids=str)
def test_decode_cases_increment_spans_1e_minus3_to_1e3_of_m1(dtype):
    # _cases promises b = c_attn λ₁²/κ² between 1e-3 and 1e3 times mean m₁, so that b moves M₂ in
    # some cases (b ≫ m₁) and not in others (b ≪ m₁): a decode path that drops or misplaces the
    # increment only fails where b matters. b / mean m₁ is computed in float64 from the stored
    # numbers, so it is exact to a few float64 roundings (1e-12 relative slack).
    ratios = []
    for seed in range(3):  # the seeds the decode checks use
        for _h, m1, c_attn, lam_in, _lp, _g, kappa in decode_precomputation._cases(dtype, seed):
            b = float(c_attn) * (float(lam_in) / kappa) ** 2
            ratios.append(b / float(m1.double().mean()))
    ratios = np.array(ratios)
    assert ratios.min() >= 1e-3 * (1 - 1e-12) and ratios.max() <= 1e3 * (1 + 1e-12), ratios
    assert ratios.min() < 0.1 and ratios.max() > 10, ratios  # both regimes present


def test_distinct_head_patterns_are_causal_attention_rows():
    # Attention patterns: row t is a distribution over tokens j ≤ t (rows sum to 1 to float64
    # rounding, 16u for a 7-term sum), and the heads differ.
    pattern = variance_approximation._distinct_head_patterns(3, 7, seed=18)
    assert pattern.shape == (3, 7, 7)
    assert torch.all(pattern >= 0)
    assert torch.equal(pattern.triu(1), torch.zeros_like(pattern))
    assert torch.allclose(pattern.sum(-1), torch.ones(3, 7, dtype=torch.float64), rtol=0, atol=16 * 2.0**-53)
    assert not torch.equal(pattern[0], pattern[1])


# ---------------------------------------------------------------------------
# The decode checks' comparator: distance in representable values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, bits", [(torch.float16, torch.int16), (torch.bfloat16, torch.int16)], ids=str)
def test_ulps_is_the_rank_distance_among_all_values_of_a_16_bit_float(dtype, bits):
    # Reference independent of _ulps's bit arithmetic: every non-NaN value of the dtype, sorted by
    # value with -0 and +0 one value; the distance of two values is the difference of their ranks.
    everything = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(bits).view(dtype)
    values = torch.unique(everything[~torch.isnan(everything)].float()).to(dtype)  # sorted, ±0 merged
    ranks = torch.arange(values.numel())
    anchors = [int(torch.nonzero(values == 0)[0]), 0, values.numel() - 1, values.numel() // 3]
    for anchor in anchors:
        distance = decode_precomputation._ulps(values, values[anchor].expand_as(values))
        assert torch.equal(distance, (ranks - anchor).abs()), (dtype, anchor)
    assert int(decode_precomputation._ulps(torch.tensor([-0.0], dtype=dtype), torch.tensor([0.0], dtype=dtype))) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ulps_counts_nextafter_steps_across_zero_and_around_one(dtype):
    # Reference: k steps of nextafter move k representable values; across zero -0 and +0 are one value.
    zero = torch.zeros(1, dtype=dtype)
    subnormal = float(torch.nextafter(zero, zero + 1))  # the smallest positive value
    for start in (-3 * subnormal, -1.0, 1.0, -torch.finfo(dtype).smallest_normal):
        x = torch.tensor([start], dtype=dtype)
        walk = [x]
        for _ in range(6):
            walk.append(torch.nextafter(walk[-1], torch.tensor([np.inf], dtype=dtype)))
        walk = torch.cat(walk)
        distance = decode_precomputation._ulps(walk, walk[0].expand_as(walk))
        assert torch.equal(distance, torch.arange(7)), (dtype, start, distance)


def test_position_z_scores_are_in_standard_errors_of_the_batch_mean():
    # The position checks' comparator: |mean − expected| / (s/√n + r·|expected|). Hand numbers: samples
    # ±1 around 3 (n = 4, s = √(4/3), se = s/2); an expected value one se below the mean is z = 1,
    # and with r = 0.1 it is se / (se + 0.1·|expected|). float64 rounding: 1e-12 relative.
    from bhyt_theory.theory.checks import position_estimator

    samples = torch.tensor([[4.0], [2.0], [4.0], [2.0]], dtype=torch.float64)
    se = (4 / 3) ** 0.5 / 2
    expected = torch.tensor([3.0 - se], dtype=torch.float64)
    assert abs(float(position_estimator._z_scores(samples, expected, 0.0)[0]) - 1) <= 1e-12
    relative = float(position_estimator._z_scores(samples, expected, 0.1)[0])
    assert abs(relative - se / (se + 0.1 * (3.0 - se))) <= 1e-12
