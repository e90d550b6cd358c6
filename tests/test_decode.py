"""The decode-time fast path of BHyT (claim C9; proofs/decode_precomputation.md)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bhyt_theory.experiments.decode import (
    block_decode_forward,
    decode_exactness,
    greedy_decode,
    ulp_distance,
)
from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import (
    DECODE_ORDERS,
    bhyt,
    bhyt_decode,
    estimate_post_attention_mean_square,
    mean_square,
    precompute_decode_constants,
)

SMALL = StackConfig(scheme="bhyt", depth=2, width=32, heads=2, seq_len=16, init_std=0.1)


def _states(config: StackConfig, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 8, config.width, generator=generator) * 0.02).to(config.torch_dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_matched_fast_path_reproduces_block_forward_bit_for_bit(dtype):
    config = SMALL.replace(dtype=dtype)
    stack = Stack(config, seed=3)
    h = _states(config)
    for block in stack.blocks:
        out, fast, unfused = block_decode_forward(block, h, "matched")
        assert torch.equal(fast, unfused)
        assert torch.equal(out, block(h))
        h = out


def test_fused_order_changes_some_float32_outputs_by_few_ulps():
    # Error model (proof, statement 2): ≤ 12 ulps; the single rounding of the fused multiplier
    # differs from the two of the unfused path for a positive fraction of outputs.
    stack = Stack(SMALL, seed=1)
    _, fast, unfused = block_decode_forward(stack.blocks[0], _states(SMALL), "fused_scale")
    ulps = ulp_distance(fast, unfused)
    assert 0 < int((ulps > 0).sum()) and int(ulps.max()) <= 12


@settings(max_examples=200)
@given(st.floats(-1e30, 1e30, allow_nan=False), st.sampled_from([torch.float32, torch.bfloat16]))
def test_ulp_distance_of_adjacent_floats_is_one(value, dtype):
    a = torch.tensor(value, dtype=torch.float32).to(dtype)
    # The next float away from zero: its bit pattern's magnitude + 1 (either sign).
    integer = torch.int32 if dtype == torch.float32 else torch.int16
    b = (a.view(integer) + 1).view(dtype)
    assert int(ulp_distance(a[None], b[None])) == 1


def test_ulp_distance_across_zero():
    tiny = torch.tensor([1e-45])  # the smallest float32 subnormal
    assert int(ulp_distance(tiny, -tiny)) == 2
    assert int(ulp_distance(torch.tensor([0.0]), torch.tensor([-0.0]))) == 0


def test_decode_exactness_table_has_exact_matched_rows():
    table = decode_exactness(seeds=(0,), config=SMALL, batch=2, prompt_length=4, steps=3)
    assert list(table[["dtype", "order"]].itertuples(index=False, name=None)) == [
        (dtype, order) for dtype in ("float32", "bfloat16") for order in DECODE_ORDERS
    ]
    matched = table[table.order == "matched"]
    assert (matched.norm_fraction_differing == 0).all() and (matched.block_fraction_differing == 0).all()
    assert (matched.greedy_identical_fraction == 1).all()
    bf16_float64 = table[(table.dtype == "bfloat16") & (table.order == "float64_constants")]
    assert float(bf16_float64.norm_fraction_differing.iloc[0]) > 0  # λ/κ rounded to bfloat16 vs not


def test_greedy_decode_appends_the_requested_number_of_tokens():
    stack = Stack(SMALL, seed=0)
    embedding = torch.randn(10, SMALL.width) * 0.02
    prompt = torch.randint(0, 10, (2, 3), generator=torch.Generator().manual_seed(0))
    tokens = greedy_decode(stack, embedding, prompt, 4, None)
    assert tokens.shape == (2, 4) and int(tokens.max()) < 10


def test_bad_order_and_scheme_are_rejected():
    with pytest.raises(ValueError, match="order"):
        precompute_decode_constants(0.1, 2.0, 1.0, 10.0, order="fast")
    constants = precompute_decode_constants(0.1, 2.0, 1.0, 10.0)
    with pytest.raises(ValueError, match="order"):
        bhyt_decode(torch.ones(1, 4), torch.ones(1, 1), type(constants)(constants.ratio, constants.increment, "x"))
    block = Stack(SMALL.replace(scheme="bhytstar"), seed=0).blocks[0]
    with pytest.raises(ValueError, match="scheme"):
        block_decode_forward(block, _states(SMALL), "matched")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_matched_fast_path_is_bit_identical_for_python_float_lambda(dtype):
    # Counterexample to the former precomputation: λ given as Python floats was rounded to
    # float32, so with float64 data every one of the outputs differed from the unfused path
    # (which divides the double λ by κ in float64). Same process: exact comparison is valid.
    generator = torch.Generator().manual_seed(7)
    h_in = torch.randn(3, 16, 64, generator=generator).to(dtype)
    h_after = h_in + torch.randn(3, 16, 64, generator=generator).to(dtype)
    m1, c_attn = mean_square(h_in), torch.tensor(0.37, dtype=torch.float64)
    lam_in, lam_post, kappa = 2.3, -1.7, 7.3
    unfused = bhyt(h_after, lam_post, kappa, None, estimate_post_attention_mean_square(m1, c_attn, lam_in, kappa))
    fast = bhyt_decode(h_after, m1, precompute_decode_constants(c_attn, lam_in, lam_post, kappa))
    assert torch.equal(fast, unfused)


def test_python_float_lambda_gives_float64_constants():
    constants = precompute_decode_constants(0.5, 2.3, -1.7, 7.3)
    assert constants.ratio.dtype == torch.float64 and float(constants.ratio) == -1.7 / 7.3
    assert float(constants.increment) == 0.5 * (2.3 / 7.3) ** 2


def test_float32_increment_can_move_by_more_than_two_unit_roundoffs():
    # Counterexample to "b changes by at most 2^-23 = 2u": fl(λ/κ) squared and rounded carries up
    # to 3u; a search over float32 λ finds a relative change above 2.5u.
    u = 2.0**-24
    lams = torch.linspace(0.5, 4.0, 4001, dtype=torch.float32)
    worst = 0.0
    for lam in lams:
        matched = precompute_decode_constants(1.0, lam, lam, 10.0, "matched").increment
        wide = precompute_decode_constants(1.0, lam, lam, 10.0, "float64_constants").increment
        worst = max(worst, abs(float(wide / matched) - 1) / u)
    assert 2.5 < worst <= 3.0


@pytest.mark.parametrize("kappa", [0.0, -10.0])
def test_precomputation_refuses_a_non_positive_kappa(kappa):
    with pytest.raises(ValueError, match="kappa"):
        precompute_decode_constants(0.5, 2.0, 1.0, kappa)
