"""The block stack: the schemes of docs/schemes.md §2, their identities, and the trace table."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import kappa_schedules, kappas

from bhyt_theory.cli import main
from bhyt_theory.numerics.model import (
    DRAW_CHUNK,
    PRESETS,
    SCHEMES,
    Attention,
    Stack,
    StackConfig,
    build_block,
    draw_weights,
    layer_seed,
    linear_shapes,
    rotary,
)
from bhyt_theory.numerics.norms import (
    EPS,
    BHyT,
    DyT,
    RMSNorm,
    attention_variance_constant,
    estimate_post_attention_mean_square,
)
from bhyt_theory.numerics.probes import TRACE_COLUMNS, RecordingProbe

U32 = 2.0**-24
SMALL = dict(depth=3, width=32, heads=4, seq_len=8)


def inputs(batch=2, length=8, width=32, std=0.02, seed=1):
    return torch.randn(batch, length, width, generator=torch.Generator().manual_seed(seed)) * std


@torch.no_grad()
def manual_states(stack: Stack, x: torch.Tensor) -> list[torch.Tensor]:
    """Residual states after every sublayer, recomputed block by block from the
    block's own modules (an independent path to the probe's numbers)."""
    states, h = [], x
    for block in stack.blocks:
        if block.scheme in ("bhyt", "bhytline"):
            m1 = h.double().square().mean(-1, keepdim=True)
            h = h + block.attn(block.norm_attn(h, mean_square=m1))
            states.append(h)
            m2 = estimate_post_attention_mean_square(m1, block.c_attn, block.norm_attn.lam, block.norm_attn.kappa)
            h = h + block.mlp(block.norm_mlp(h, mean_square=m2))
        else:
            a = block.attn(block.norm_attn(h) * block.branch_scale)
            h = h + (block.norm_attn_out(a) if block.scheme == "periln" else a)
            states.append(h)
            f = block.mlp(block.norm_mlp(h) * block.branch_scale)
            h = h + (block.norm_mlp_out(f) if block.scheme == "periln" else f)
        states.append(h)
    return states


def test_bhyt_and_bhytline_compute_identical_numbers():
    # Regression guard only: both schemes run the same sequential code here (the reference
    # implementation differs in CUDA-stream scheduling, not arithmetic), so this cannot test
    # that scheduling; it fails if a change makes the two code paths diverge.
    x = inputs()
    a = Stack(StackConfig(scheme="bhyt", **SMALL), seed=3)
    b = Stack(StackConfig(scheme="bhytline", **SMALL), seed=3)
    assert torch.equal(a(x), b(x))
    pd.testing.assert_frame_equal(a.trace(x).drop(columns="scheme"), b.trace(x).drop(columns="scheme"))


@pytest.mark.parametrize("input_std", [0.02, 1.0, 1e3])
def test_bhyt_with_exact_estimate_equals_bhytstar(input_std):
    x = inputs(std=input_std)
    exact = Stack(StackConfig(scheme="bhyt", estimator="exact", **SMALL), seed=5)
    star = Stack(StackConfig(scheme="bhytstar", **SMALL), seed=5)
    # The two compute z along different float32 paths (float64 factor vs hypot), each
    # within 32u of exact (tests/test_norms.py); 6 norms deep, with the stack at
    # init close to the identity, the states agree to ~6·32u ≈ 1.1e-5 relatively.
    assert torch.allclose(exact.residual(x), star.residual(x), rtol=2e-5, atol=0)


def test_seed_determines_weights():
    config = StackConfig(scheme="rmsnorm", **SMALL)
    a, b, c = Stack(config, seed=0), Stack(config, seed=0), Stack(config, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.blocks[0].attn.q_proj.weight, c.blocks[0].attn.q_proj.weight)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_build_block_rebuilds_the_stacks_block_alone(scheme):
    config = StackConfig(scheme=scheme, **SMALL)
    stack = Stack(config, seed=7)
    block = build_block(config, 2, seed=7)
    for (name, p), q in zip(stack.blocks[2].named_parameters(), block.parameters()):
        assert torch.equal(p, q), name
    assert torch.equal(stack.blocks[2].c_attn, block.c_attn)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_block_weights_are_the_seeded_float32_draws_in_module_order(dtype, kv_heads):
    """The drawing rule, restated from scratch: block l's generator is seeded with
    layer_seed(seed, l) and each projection, in the order q, k, v, o, gate, up, down,
    is ``randn(shape) · init_std`` in float32, then cast. Bit for bit: a seed must
    mean the same weights however the block is built."""
    config = StackConfig(scheme="bhyt", dtype=dtype, kv_heads=kv_heads, init_std=0.03, **SMALL)
    block = build_block(config, 1, seed=5)
    generator = torch.Generator().manual_seed(layer_seed(5, 1))
    projections = [block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.o_proj,
                   block.mlp.gate_proj, block.mlp.up_proj, block.mlp.down_proj]
    for projection in projections:
        expected = torch.randn(projection.weight.shape, generator=generator) * 0.03
        assert torch.equal(projection.weight, expected.to(config.torch_dtype))


FIXTURES = Path(__file__).parent / "fixtures"


def kernel_family() -> str:
    """torch's float32 ``normal_`` has two kernel families that differ in the last bit: the
    vectorised one (AVX2 and AVX-512 give the same bits) and the generic one, which a CPU
    without AVX2 runs."""
    return "vectorised" if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else "generic"


TINY_LAYER = StackConfig(width=16, heads=2, kv_heads=1, mlp_width=24)
"""A layer of 1920 numbers: weights of 256, 128, 128, 256, 384, 384 and 384."""


@pytest.mark.parametrize("chunk", [DRAW_CHUNK, 200])
def test_weight_draws_equal_the_stored_draws_of_their_kernel_family(chunk):
    """Same seed → same weights, bit for bit, across machines: the draws of
    ``draw_weights`` (layer 3 of seed 7, a width-16 block) against draws stored in
    tests/fixtures/weight_draws.npz (the generator is deterministic; BLAS plays no
    part), for both kernel families (the generic one recorded with
    ATEN_CPU_CAPABILITY=default). In one chunk (the default) and in chunks of 200
    numbers: chunks that end inside a weight and pieces that are not a multiple of
    16 numbers (torch redraws the last 16 of such a piece)."""
    stored = np.load(FIXTURES / "weight_draws.npz")
    prefix = kernel_family() + ("" if chunk == DRAW_CHUNK else "_chunked")
    weights = draw_weights(linear_shapes(TINY_LAYER), 0.02, layer_seed(7, 3), chunk=chunk)
    assert len(weights) == 7
    for index, weight in enumerate(weights):
        np.testing.assert_array_equal(weight.numpy(), stored[f"{prefix}_w{index}"])


def test_a_wide_layers_draw_equals_the_stored_digest_of_its_kernel_family():
    """The default chunk size is part of what a seed means: a width-512 layer (2 756 608
    numbers, three chunks of ``DRAW_CHUNK``) against the SHA-256 of its float32 bytes
    stored in tests/fixtures/weight_draws.npz for its kernel family. Another chunk size,
    chunk seed or chunk order changes the digest."""
    stored = np.load(FIXTURES / "weight_draws.npz")
    weights = draw_weights(linear_shapes(StackConfig(width=512, heads=8, kv_heads=2)), 0.02, layer_seed(7, 3))
    digest = hashlib.sha256(b"".join(weight.numpy().tobytes() for weight in weights)).hexdigest()
    assert digest == str(stored[f"{kernel_family()}_wide_sha256"])


def test_chunk_k_of_a_draw_is_the_next_normals_of_its_own_generator():
    """The chunk rule from scratch: the weights laid end to end, scaled back by
    ``init_std``, are chunk after chunk of ``chunk`` standard normals, chunk 0 from a
    generator seeded with the layer seed itself and chunk k ≥ 1 from the
    ``SeedSequence`` child with spawn key k. Every weight here is a multiple of 16
    numbers, so piece-wise draws equal one ``randn`` per chunk bit for bit (torch's
    Box–Muller pairs numbers within blocks of 16); chunks of one number take torch's
    scalar path, the same for a piece and for ``randn(1)``. The draw does not depend on
    the number of threads drawing the chunks."""
    seed, scale = layer_seed(7, 3), 0.5
    previous = torch.get_num_threads()
    try:
        for chunk, threads in itertools.product((1, 256), (1, 2)):
            expected = []
            for k in range(math.ceil(1920 / chunk)):
                chunk_generator_seed = seed if k == 0 else int(
                    np.random.SeedSequence(seed, spawn_key=(k,)).generate_state(1)[0])
                generator = torch.Generator().manual_seed(chunk_generator_seed)
                expected.append(torch.randn(min(chunk, 1920 - k * chunk), generator=generator) * scale)
            torch.set_num_threads(threads)
            weights = draw_weights(linear_shapes(TINY_LAYER), scale, seed, chunk=chunk)
            assert [tuple(weight.shape) for weight in weights] == list(linear_shapes(TINY_LAYER))
            assert torch.equal(torch.cat([weight.flatten() for weight in weights]), torch.cat(expected))
    finally:
        torch.set_num_threads(previous)
    with pytest.raises(ValueError, match="chunk must be a positive number"):
        draw_weights(linear_shapes(TINY_LAYER), scale, seed, chunk=0)


def test_preset_gives_the_paper_shape_and_explicit_fields_override_it():
    config = StackConfig.from_preset("llama-374m", scheme="rmsnorm", depth=3)
    assert (config.width, config.heads, config.kv_heads, config.mlp_width, config.head_dim, config.seq_len) == (
        1024, 16, 4, 4096, 64, 1024)
    assert (config.scheme, config.depth) == ("rmsnorm", 3)
    one_b, three_b = StackConfig.from_preset("llama-1b"), StackConfig.from_preset("llama-3b")
    assert (one_b.width, one_b.depth, one_b.heads, one_b.kv_heads, one_b.mlp_width) == (2048, 16, 32, 8, 8192)
    assert (three_b.width, three_b.depth, three_b.heads, three_b.kv_heads, three_b.head_dim) == (3072, 28, 24, 8, 128)
    with pytest.raises(ValueError, match="preset 'llama-7b' is not one of"):
        StackConfig.from_preset("llama-7b")


def test_cli_preset_sets_the_shape_and_options_given_override_it(tmp_path):
    csv = tmp_path / "trace.csv"
    assert main(["trace", "--preset", "llama-374m", "--depth", "1", "--width", "64", "--heads", "4",
                 "--kv-heads", "2", "--mlp-width", "96", "--seq-len", "8", "--batch", "1", "--csv", str(csv)]) == 0
    assert len(pd.read_csv(csv)) == 1 * 2 * 8
    from bhyt_theory.cli import build_parser
    from bhyt_theory.cli.common import config_from_arguments

    args = build_parser().parse_args(["variance", "--preset", "llama-1b", "--heads", "16"])
    config = config_from_arguments(args)
    # the preset's depth wins over the command's own default depth (65); --heads wins over the preset
    assert (config.depth, config.width, config.heads, config.kv_heads) == (16, 2048, 16, 8)
    assert config == StackConfig.from_preset("llama-1b", heads=16)
    assert set(PRESETS) == {"llama-374m", "llama-1b", "llama-3b"}


def test_weights_are_gaussian_with_init_std():
    config = StackConfig(scheme="rmsnorm", depth=2, width=64, heads=4, init_std=0.05)
    w = torch.cat([p.flatten() for n, p in Stack(config).named_parameters() if n.endswith("proj.weight")])
    # n ≈ 100k iid N(0, σ²) draws: the sample std has relative standard error 1/sqrt(2n) ≈ 0.2%.
    assert w.std().item() == pytest.approx(0.05, rel=5 / math.sqrt(2 * w.numel()))
    assert abs(w.mean().item()) <= 5 * 0.05 / math.sqrt(w.numel())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_trace_mean_square_is_the_residual_mean_square_after_each_sublayer(scheme):
    config = StackConfig(scheme=scheme, **SMALL)
    stack, x = Stack(config, seed=2), inputs(std=0.5)
    table = stack.trace(x)
    assert list(table.columns[2:]) == list(TRACE_COLUMNS)
    assert len(table) == config.depth * 2 * x.shape[1]
    expected = torch.stack([s.double().square().mean(-1).mean(0) for s in manual_states(stack, x)]).flatten()
    # float32 states, float64 statistics: the probe's scaled float32 reduction errs by ≤ 16u.
    assert table["mean_square"].to_numpy() == pytest.approx(expected.numpy(), rel=32 * U32)


def test_trace_reports_the_estimate_the_mlp_side_bhyt_used():
    config = StackConfig(scheme="bhyt", **SMALL)
    stack, x = Stack(config, seed=2), inputs(std=0.5)
    table = stack.trace(x)
    attn = table[table.sublayer == "attn"]
    assert table[table.sublayer == "mlp"]["mean_square_estimate"].isna().all()
    states = manual_states(stack, x)
    for layer, block in enumerate(stack.blocks):
        h_in = x if layer == 0 else states[2 * layer - 1]
        m1 = h_in.double().square().mean(-1)
        m2 = m1 + block.c_attn * (block.norm_attn.lam.item() / block.norm_attn.kappa) ** 2
        rows = attn[attn.layer == layer]
        assert rows["mean_square_estimate"].to_numpy() == pytest.approx(m2.mean(0).numpy(), rel=32 * U32)
        ratio = (m2 / states[2 * layer].double().square().mean(-1)).mean(0)
        assert rows["estimate_ratio"].to_numpy() == pytest.approx(ratio.numpy(), rel=64 * U32)


def test_tanh_argument_columns_only_for_tanh_schemes():
    x = inputs()
    for scheme in SCHEMES:
        table = Stack(StackConfig(scheme=scheme, **SMALL)).trace(x)
        has_argument = table["arg_rms"].notna().all()
        assert has_argument == (scheme in ("dyt", "derf", "bhyt", "bhytline", "bhytstar", "bhytc")), scheme


def test_bhytstar_trace_argument_rms_is_lambda_over_kappa():
    # Exact M: rms of z over each token is (λ/κ) sqrt(m/(m+ε)); inputs of std 1 make ε negligible (1e-6).
    config = StackConfig(scheme="bhytstar", lam_in=3.0, lam_post=1.5, **SMALL)
    table = Stack(config).trace(inputs(std=1.0))
    for sublayer, lam in (("attn", 3.0), ("mlp", 1.5)):
        values = table[table.sublayer == sublayer]["arg_rms"]
        assert values.to_numpy() == pytest.approx(lam / 10.0, rel=2e-6)


def test_lns_scales_each_pre_norm_output_by_inverse_root_layer():
    config = StackConfig(scheme="lns", **SMALL)
    stack = Stack(config)
    x = inputs(std=0.3)
    states = [x] + manual_states(stack, x)[1::2]
    seen = []
    for block in stack.blocks:
        block.attn.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    stack.residual(x)
    for layer, (h, u) in enumerate(zip(states, seen)):
        expected = stack.blocks[layer].norm_attn(h) / math.sqrt(layer + 1)
        assert torch.allclose(u, expected, rtol=4 * U32, atol=0)


def test_periln_increments_are_rms_normalised_sublayer_outputs():
    # Each Peri-LN increment is RMSNorm(o) (γ = 1) of the sublayer output o, so its
    # per-token rms is sqrt(m(o)/(m(o)+ε)) — below 1, whatever o's scale.
    stack, x = Stack(StackConfig(scheme="periln", **SMALL)), inputs(std=0.02)
    states = [x] + manual_states(stack, x)
    outputs = []
    for block in stack.blocks:
        for sublayer in (block.attn, block.mlp):
            sublayer.register_forward_hook(lambda module, args, out: outputs.append(out.double()))
    stack.residual(x)
    for before, after, o in zip(states, states[1:], outputs):
        rms = (after - before).double().square().mean(-1).sqrt()
        m = o.square().mean(-1)
        # float32 subtraction of states of rms ≤ 3 loses ≤ 3u·2 absolute per coordinate
        assert torch.allclose(rms, (m / (m + EPS)).sqrt(), rtol=0, atol=1e-6)


def test_final_norm_follows_the_scheme():
    assert isinstance(Stack(StackConfig(scheme="dyt", **SMALL)).final_norm, DyT)
    assert isinstance(Stack(StackConfig(scheme="bhyt", **SMALL)).final_norm, RMSNorm)
    assert isinstance(Stack(StackConfig(scheme="bhyt", lam_final=2.0, **SMALL)).final_norm, BHyT)
    # The last-layer BHyT* carries lam_final (not κ, not the default λ = 2) and the last layer's κ.
    config = StackConfig(scheme="bhyt", lam_final=3.5, kappa_schedule="decay", **SMALL)
    final = Stack(config).final_norm
    assert float(final.lam.detach()) == 3.5 and final.kappa == config.kappa_at(config.depth - 1)


def test_kappa_schedule_sets_kappa_per_layer():
    config = StackConfig(scheme="bhyt", kappa_schedule="decay", **SMALL)
    kappas = [block.norm_attn.kappa for block in Stack(config).blocks]
    assert kappas == pytest.approx([10.0, 10 / math.sqrt(2), 10 / math.sqrt(3)])


def test_gqa_equals_multi_head_attention_with_repeated_kv_weights():
    gqa = Attention(StackConfig(width=32, heads=4, kv_heads=2))
    mha = Attention(StackConfig(width=32, heads=4, kv_heads=4))
    with torch.no_grad():
        for name in ("q_proj", "o_proj"):
            getattr(mha, name).weight.copy_(getattr(gqa, name).weight)
        for name in ("k_proj", "v_proj"):
            w = getattr(gqa, name).weight.reshape(2, 8, 32)
            getattr(mha, name).weight.copy_(w.repeat_interleave(2, 0).reshape(32, 32))
    x = inputs(std=1.0)
    assert torch.allclose(gqa(x), mha(x), rtol=1e-5, atol=1e-6)


def test_attention_is_causal():
    attention = Attention(StackConfig(width=32, heads=4))
    x = inputs(std=1.0)
    y = x.clone()
    y[:, 5:] = torch.randn_like(y[:, 5:])
    assert torch.equal(attention(x)[:, :5], attention(y)[:, :5])


def test_zero_query_key_weights_give_uniform_causal_averages():
    attention = Attention(StackConfig(width=32, heads=4))
    with torch.no_grad():
        attention.q_proj.weight.zero_()
    x = inputs(std=1.0)
    values = attention.o_proj(attention.v_proj(x))
    expected = values.cumsum(1) / torch.arange(1, 9).reshape(1, 8, 1)
    assert torch.allclose(attention(x), expected, rtol=1e-5, atol=1e-6)


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 1000))
@settings(max_examples=200)
def test_rope_scores_depend_only_on_position_difference(i, j, shift):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64), torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64)
    length = max(i, j) + shift + 1
    qs, ks = q.expand(1, 1, length, 16), k.expand(1, 1, length, 16)
    rq, rk = rotary(qs, 10000.0), rotary(ks, 10000.0)
    # angles are formed in float32 (as in Llama), so positions up to ~1e3 carry ~1e3·u rad error
    assert (rq[0, 0, i] @ rk[0, 0, j]).item() == pytest.approx((rq[0, 0, i + shift] @ rk[0, 0, j + shift]).item(), abs=1e-3)
    assert rq[0, 0, i].norm().item() == pytest.approx(q.norm().item(), rel=1e-6)


@pytest.mark.parametrize("calls", [[(0, 8), (3, 5), (0, 8)], [(5, 1), (0, 6), (5, 1), (2, 9)]])
def test_rope_rotates_each_coordinate_pair_by_position_times_its_frequency(calls):
    """rotary(x, θ, start) at position t turns the pair (x_i, x_{i+h/2}) by (start + t)·θ^(−2i/h),
    whatever shapes and starts were asked before (the cos/sin tables are computed once per shape)."""
    head_dim, theta = 16, 500.0
    g = torch.Generator().manual_seed(3)
    for start, length in calls:
        x = torch.randn(2, 3, length, head_dim, generator=g)
        angle = (start + torch.arange(length, dtype=torch.float64)).outer(
            theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        first, second = x.double().chunk(2, -1)
        expected = torch.cat([first * angle.cos() - second * angle.sin(), second * angle.cos() + first * angle.sin()], -1)
        # float32 angles (as in Llama) carry ≤ (start + t)·u rad, cos/sin/products a few u more: ≤ 2e-5 · |x| here
        assert torch.allclose(rotary(x, theta, start).double(), expected, rtol=0, atol=2e-5 * float(x.abs().max()))


@pytest.mark.parametrize("scheme", ["rmsnorm", "bhyt", "lns"])
def test_blocks_compute_the_same_numbers_with_and_without_autograd(scheme):
    """Without autograd the MLP multiplies in the gate's own buffer; the numbers are the same,
    bit for bit on one machine (a product taken in place of the wrong factor would not be)."""
    config = StackConfig(scheme=scheme, depth=2, width=64, heads=2, seq_len=8)
    block, x = build_block(config, 1, 4), inputs(width=64, std=1.0)
    with_grad = block(x).detach()
    with torch.no_grad():
        assert torch.equal(block(x), with_grad)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(scheme="layernorm"), "scheme"),
        (dict(width=30, heads=4), "multiple of heads"),
        (dict(heads=4, kv_heads=3), "kv_heads"),
        (dict(width=12, heads=4), "even"),
        (dict(depth=0), "depth"),
        (dict(kappa=0.0), "kappa"),
        (dict(estimator="magic"), "estimator"),
        (dict(heads=0), "heads must be an integer ≥ 1"),
        (dict(kv_heads=0), "kv_heads must be an integer ≥ 1"),
        (dict(scheme="rmsnorm", lam_final=2.0), "BHyT schemes only"),
        (dict(init_std=float("nan")), "init_std must be finite and ≥ 0"),
        (dict(lam_in=float("nan")), "lam_in must be a finite real"),
        (dict(lam_post=float("-inf")), "lam_post must be a finite real"),
        (dict(lam_final=-1.0), "lam_final must be finite and ≥ 0"),
        (dict(kappa=-10.0), "kappa must be finite and > 0"),
        (dict(rope_theta=float("inf")), "rope_theta must be finite"),
        (dict(depth=2.5), "depth must be an integer"),
        (dict(dtype="int32"), "dtype 'int32' is not one of"),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_message(changes, message):
    with pytest.raises(ValueError, match=message):
        StackConfig(**changes)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_variance_constant_stays_float64_in_low_precision_stacks(dtype):
    # c_attn of the block's own (low-precision) weights, computed and kept in float64;
    # a bf16/fp16 copy of it would be off by up to 2⁻⁹ / 2⁻¹².
    low = Stack(StackConfig(scheme="bhyt", dtype=dtype, **SMALL), seed=4)
    low.to(torch.float32)
    for block in low.blocks:
        attn = block.attn
        exact = attention_variance_constant(attn.v_proj.weight, attn.o_proj.weight, SMALL["seq_len"], 4, 4)
        assert block.c_attn.dtype == torch.float64
        assert block.c_attn.item() == exact.item()


def test_replace_derives_defaults_again_but_keeps_explicit_values():
    config = StackConfig(width=256, heads=4)
    wider = config.replace(width=512, heads=8)
    assert (wider.mlp_width, wider.kv_heads) == (8 * math.ceil(8 * 512 / 24), 8)  # ⌈8·512/3⌉ rounded up to 8
    explicit = StackConfig(width=256, heads=4, kv_heads=2, mlp_width=1000).replace(width=512)
    assert (explicit.mlp_width, explicit.kv_heads) == (1000, 2)


def test_trace_rejects_inputs_of_the_wrong_width():
    with pytest.raises(ValueError, match="expected hidden states"):
        Stack(StackConfig(**SMALL)).trace(torch.zeros(1, 4, 16))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
@pytest.mark.parametrize("scheme", ["bhyt", "rmsnorm", "dyt"])
def test_stack_runs_in_every_dtype(dtype, scheme):
    table = Stack(StackConfig(scheme=scheme, dtype=dtype, **SMALL)).trace(inputs(std=1.0))
    assert table["mean_square"].notna().all() and (table["mean_square"] > 0).all()


def test_trace_command_prints_per_layer_table_and_writes_csv(tmp_path, capsys):
    csv = tmp_path / "trace.csv"
    code = main(["trace", "--scheme", "bhyt", "--depth", "2", "--width", "32", "--heads", "4", "--seq-len", "8", "--csv", str(csv)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean_square" in printed and "attn" in printed
    table = pd.read_csv(csv)
    assert len(table) == 2 * 2 * 8 and set(TRACE_COLUMNS) <= set(table.columns)


def test_trace_command_reports_invalid_config_and_exits_2(capsys):
    assert main(["trace", "--scheme", "nope"]) == 2
    assert "--scheme: invalid choice: 'nope'" in capsys.readouterr().err


@settings(max_examples=40)
@given(schedule=kappa_schedules, kappa=kappas, depth=st.integers(2, 5), heads=st.sampled_from([1, 2, 4]),
       lam_in=st.floats(0.1, 8.0))
def test_bhyt_estimate_uses_each_layers_scheduled_kappa(schedule, kappa, depth, heads, lam_in):
    # M₂ = m(h_l) + c_attn,l λ₁²/κ_l² with κ_l the layer's scheduled κ (l = layer + 1):
    # decay κ/√l, grow κ√l, mild_grow κ l^¼, written here from scratch. float64: m(h) is a
    # d-term reduction (≤ d u relative) and the increment a few more roundings: 4(d + 8) u.
    scale = {"decay": lambda l: l**-0.5, "grow": lambda l: l**0.5, "mild_grow": lambda l: l**0.25}[schedule]
    config = StackConfig(scheme="bhyt", depth=depth, width=16, heads=heads, seq_len=4, kappa=kappa,
                         kappa_schedule=schedule, lam_in=lam_in, init_std=0.3, dtype="float64")
    stack = Stack(config, seed=depth)
    recorder = RecordingProbe()
    with torch.no_grad():
        stack.residual(inputs(width=16, length=4, std=0.5).double(), recorder)
    h = inputs(width=16, length=4, std=0.5).double()
    # λ₁ as stored: BHyT initialises λ through a float32 tensor, so λ = 0.1 is 0.1 ± u₃₂ even in a
    # float64 stack; the formula is checked at the stored value.
    lam_stored = float(torch.tensor(lam_in, dtype=torch.float32))
    for block in stack.blocks:
        kappa_layer = kappa * scale(block.layer + 1)
        expected = h.square().mean(-1, keepdim=True) + float(block.c_attn) * (lam_stored / kappa_layer) ** 2
        got = recorder.estimates[block.layer]
        assert torch.allclose(got, expected, rtol=4 * (16 + 8) * 2.0**-53, atol=0), (block.layer, schedule)
        h = recorder.states[block.layer, "mlp"]


def test_sweep_preset_supplies_the_fields_the_grid_leaves_alone(tmp_path):
    csv = tmp_path / "sweep.csv"
    assert main(["sweep", "--preset", "llama-1b", "--scheme", "rmsnorm", "--depth", "1", "--width", "64",
                 "--heads", "4", "--kv-heads", "2", "--mlp-width", "96", "--seq-len", "8", "--seeds", "0",
                 "--batch", "1", "--no-cache", "--no-progress", "--csv", str(csv)]) == 0
    table = pd.read_csv(csv)
    # rope_theta is the Llama-3.2 base of the preset; the grid set the shape
    assert (table["rope_theta"] == 500000.0).all() and (table["width"] == 64).all()
    assert (table["kv_heads"] == 2).all() and len(table) == 2 * 8


def test_set_m2_factors_refuses_a_table_with_the_wrong_number_of_layers():
    # One row per block: a (depth − 1)-row table must not silently leave the last block unset.
    config = StackConfig(scheme="bhytc", depth=3, width=16, heads=2, seq_len=4)
    stack = Stack(config, seed=0)
    with pytest.raises(ValueError):
        stack.set_m2_factors(np.ones((2, 4)))
    stack.set_m2_factors(np.full((3, 4), 0.5))
    assert all(torch.equal(block.m2_factor, torch.full((4,), 0.5, dtype=torch.float64)) for block in stack.blocks)


def test_build_block_draws_nothing_from_the_global_generator():
    # The linears are placeholders (empty_linears) overwritten by the layer's own seeded draw:
    # building a block must neither spend time on nor consume torch's global random stream.
    config = StackConfig(scheme="bhyt", depth=1, width=16, heads=2, seq_len=4)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    build_block(config, 0, seed=0)
    assert torch.equal(torch.rand(4), expected)


def test_a_row_that_does_not_estimate_m2_gets_no_estimator_scalars():
    # A learnable estimator on a non-estimating row (bhytstar) would add dead parameters to the optimiser.
    stack = Stack(StackConfig(scheme="bhytstar", depth=1, width=16, heads=2, seq_len=4,
                              estimator="learnable_scale"), seed=0)
    assert dict(stack.blocks[0].estimator_parameters) == {}


def test_a_float64_stack_has_a_float64_final_norm():
    stack = Stack(StackConfig(scheme="rmsnorm", depth=1, width=16, heads=2, seq_len=4, dtype="float64"), seed=0)
    assert all(p.dtype == torch.float64 for p in stack.final_norm.parameters())


def test_block_moves_its_statistics_with_it_and_keeps_recurse():
    config = StackConfig(scheme="bhyt", depth=1, width=16, heads=2, seq_len=4)
    block = build_block(config, 0, seed=0)
    # to_empty(recurse=False) re-allocates the block's own buffers only, not its children's weights.
    storage = block.attn.q_proj.weight.data_ptr()
    block.to_empty(device="cpu", recurse=False)
    assert block.attn.q_proj.weight.data_ptr() == storage
    # c_attn and m2_factor keep float64 but follow the block's device (meta: no memory needed).
    block = build_block(config, 0, seed=0).to("meta")
    assert block.c_attn.device.type == "meta" and block.c_attn.dtype == torch.float64
    assert block.m2_factor.device.type == "meta" and block.m2_factor.dtype == torch.float64


def test_inconsistent_value_output_shapes_are_refused_naming_both():
    with pytest.raises(ValueError, match=r"inconsistent shapes: w_v \(8, 8\), w_o \(8, 6\)"):
        attention_variance_constant(torch.zeros(8, 8), torch.zeros(8, 6), 4, 2, 2)


def test_build_block_moves_cpu_weights_to_the_configs_device():
    # The CPU draw must follow config.device even when the dtype already matches (float32);
    # the meta device stands in for an accelerator on a CPU-only machine.
    block = build_block(StackConfig(scheme="bhyt", depth=1, width=16, heads=2, seq_len=4, device="meta"), 0, seed=0)
    assert {p.device.type for p in block.parameters()} == {"meta"}
    assert block.c_attn.device.type == "meta"
