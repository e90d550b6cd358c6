"""Hypothesis searches for violations of every bound of ``bhyt_theory.bounds`` on the real
``Stack`` (docs/statements.md §2, §5; proofs/depth_bound.md, proofs/saturation_bound.md).

Weights are the model's Gaussian ones, scaled, or overwritten in place with
adversarial ones (large norms, rank-1 value/output maps aligned with the input,
spiky γ, sign-flipped λ); inputs are Gaussian, identical tokens, one-hot or
k-spike tokens, heavy-tailed, at scales from 1e-8 to 1e8; every scheme.

Float32 error model (u = 2⁻²⁴). Each term of the depth bound is a product of
factors ‖W‖₂ (or a row norm) and a norm-output bound, none of which depends on
the input scale, so rounding errors do not compound through depth: each computed
increment exceeds its exact value by at most a relative η₁. A float32 matrix
product with inner dimension n satisfies fl(Wx) = (W + ΔW)x, |ΔW| ≤ γ_n |W|
(γ_n = nu/(1 − nu)), hence ‖fl(Wx)‖ ≤ (1 + γ_n √n) ‖W‖₂ ‖x‖ since
‖ |W| ‖₂ ≤ ‖W‖_F ≤ √n ‖W‖₂. A sublayer chains at most 6 such factors (norm
output, W_V, the softmax average whose rows sum to 1 ± γ_T, W_O; or norm
output, W_g, W_up, W_down with ‖v‖ counted twice), so η₁ = 6 γ_n √n with n the
largest inner dimension. The 2L residual additions and the rms of the result add
(2L + 16) u. Allowance: measured ≤ bound · (1 + η₁ + (2L + 16) u).
For the saturation bound the computed argument is within REL = 32u of the exact
one (tests/test_norms.py), and m(h')/M₂ is formed from float32 reductions with
relative error ≤ REL as well.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import gamma_peaks

from bhyt_theory.experiments.bounds import align_weights, sign_direction
from bhyt_theory.numerics.model import (
    KAPPA_SCHEDULES,
    SCHEMES,
    Stack,
    StackConfig,
    hidden_states,
)
from bhyt_theory.numerics.norms import root_mean_square
from bhyt_theory.numerics.probes import RecordingProbe
from bhyt_theory.numerics.schemes import scheme_row
from bhyt_theory.theory.bounds import depth_bound, saturated_fraction_bound

U32 = 2.0**-24
REL = 32 * U32
BHYT_SCHEMES = ("bhyt", "bhytline", "bhytstar")


def depth_tolerance(config: StackConfig) -> float:
    """Relative allowance η₁ + (2L + 16) u of the module docstring."""
    n = max(config.width, config.mlp_width, config.seq_len, 16)
    gamma_n = n * U32 / (1 - n * U32)
    return 6 * gamma_n * math.sqrt(n) + (2 * config.depth + 16) * U32


# --- strategies -----------------------------------------------------------------------------


@st.composite
def stack_configs(draw, schemes=SCHEMES) -> StackConfig:
    """A small Stack configuration: width ≤ 64, depth ≤ 6, any scheme, GQA, κ schedule, estimator."""
    width = draw(st.sampled_from([8, 16, 32, 64]))
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if (width // h) % 2 == 0]))
    return StackConfig(
        scheme=draw(st.sampled_from(schemes)),
        depth=draw(st.integers(1, 6)),
        width=width,
        heads=heads,
        kv_heads=draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0])),
        mlp_width=draw(st.sampled_from([None, 8, 96])),
        seq_len=draw(st.integers(1, 16)),
        lam_in=draw(st.floats(0.05, 10.0)),
        lam_post=draw(st.floats(0.05, 10.0)),
        kappa=draw(st.floats(1.0, 20.0)),
        kappa_schedule=draw(st.sampled_from(sorted(KAPPA_SCHEDULES))),
        dyt_alpha=10 ** draw(st.floats(-2.0, 1.0)),
        derf_alpha=10 ** draw(st.floats(-2.0, 1.0)),
        estimator=draw(st.sampled_from(["reference", "exact", "position+tanh+gamma"])),
        init_std=10 ** draw(st.floats(-3.0, 0.7)),
    )


@st.composite
def adversarial_stacks(draw, schemes=SCHEMES) -> tuple[Stack, torch.Tensor, str]:
    """A Stack with (possibly) adversarial weights and γ, β, λ, and its input ``(batch, T, d)``.

    Returns ``(stack, x, description)``; the description names the constructions.
    """
    config = draw(stack_configs(schemes))
    seed = draw(st.integers(0, 2**16))
    stack = Stack(config, seed)
    generator = torch.Generator().manual_seed(seed)
    d = config.width
    direction = sign_direction(d, generator)
    weights = draw(st.sampled_from(["gaussian", "aligned", "aligned_large_gate"]))
    if weights == "aligned":
        align_weights(stack, direction, value_scale=10 ** draw(st.floats(-1, 1)),
                      output_scale=10 ** draw(st.floats(-1, 1)), gate_scale=1.0, up_scale=1.0)
    elif weights == "aligned_large_gate":
        align_weights(stack, direction)
    norms_kind = draw(st.sampled_from(["default", "spiky_gamma", "negative_lambda"]))
    with torch.no_grad():
        for module in stack.modules():
            if norms_kind == "spiky_gamma" and hasattr(module, "gamma"):
                module.gamma.copy_(torch.randn(d, generator=generator) * torch.rand(d, generator=generator) ** 4 * 5)
                if getattr(module, "beta", None) is not None:
                    module.beta.copy_(torch.randn(d, generator=generator))
            if norms_kind == "negative_lambda" and hasattr(module, "lam"):
                module.lam.neg_()
    if draw(st.booleans()):
        stack.refresh_variance_constants()  # otherwise c_attn stays that of the Gaussian init
    batch, length = draw(st.integers(1, 2)), draw(st.integers(1, 16))
    inputs = draw(st.sampled_from(["gaussian", "identical_along_p", "one_hot", "spikes", "heavy_tailed"]))
    if inputs == "gaussian":
        x = torch.randn(batch, length, d, generator=generator)
    elif inputs == "identical_along_p":
        x = (math.sqrt(d) * direction).expand(batch, length, d).clone()
    elif inputs == "one_hot":
        x = torch.zeros(batch, length, d)
        x[..., draw(st.integers(0, d - 1))] = 1.0
    elif inputs == "spikes":
        x = torch.zeros(batch, length, d)
        x[..., : draw(st.integers(1, d))] = 1.0
    else:
        x = torch.tan(math.pi * (torch.rand(batch, length, d, generator=generator) - 0.5))  # standard Cauchy
    log_scale = draw(st.floats(-8.0, 8.0))
    x = x * 10**log_scale
    return stack, x, f"{config.scheme}: weights={weights}, norms={norms_kind}, inputs={inputs}, scale=1e{log_scale:.1f}"


@st.composite
def aligned_gamma_peak_stacks(draw) -> tuple[Stack, torch.Tensor, str]:
    """A BHyT-family Stack whose input mass, γ peak and value direction sit on one coordinate i.

    Every token is ``c √d e_i`` (one-hot on i), every norm's γ has its peak on i
    (``strategies.gamma_peaks``) and every block is rank-1 along ``e_i``
    (``experiments.bounds.align_weights``), so each norm output is
    ``γ_i tanh(z_i) e_i`` and attention passes it on at full gain. With ``(λ/κ)√d``
    moderate, tanh is near-linear and rms(u) ≈ max|γ| · λ/κ ≫ rms(γ) · λ/κ: the
    construction on which a bound using rms(γ) in place of max|γ| fails.
    """
    width = draw(st.sampled_from([8, 16, 32]))
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if (width // h) % 2 == 0]))
    config = StackConfig(
        scheme=draw(st.sampled_from(BHYT_SCHEMES)),
        depth=draw(st.integers(1, 4)),
        width=width,
        heads=heads,
        kv_heads=draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0])),
        seq_len=draw(st.integers(1, 8)),
        lam_in=draw(st.floats(0.05, 3.0)),
        lam_post=draw(st.floats(0.05, 3.0)),
        kappa=draw(st.floats(5.0, 20.0)),
        kappa_schedule=draw(st.sampled_from(sorted(KAPPA_SCHEDULES))),
        estimator=draw(st.sampled_from(["reference", "exact"])),
    )
    stack = Stack(config, draw(st.integers(0, 2**16)))
    gamma, peak = draw(gamma_peaks(width))
    direction = torch.zeros(width)
    direction[peak] = 1.0
    align_weights(stack, direction, value_scale=10 ** draw(st.floats(-1, 1)), output_scale=10 ** draw(st.floats(-1, 1)))
    with torch.no_grad():
        for block in stack.blocks:
            block.norm_attn.gamma.copy_(torch.as_tensor(gamma, dtype=torch.float32))
            block.norm_mlp.gamma.copy_(torch.as_tensor(gamma, dtype=torch.float32))
    batch, length = draw(st.integers(1, 2)), draw(st.integers(1, 8))
    scale = 10 ** draw(st.floats(-4.0, 4.0))
    x = (math.sqrt(width) * scale * direction).expand(batch, length, width).clone()
    return stack, x, f"{config.scheme}: gamma peak {gamma[peak]:.3g} on coordinate {peak}, input scale {scale:.3g}"


def run(stack: Stack, x: torch.Tensor) -> RecordingProbe:
    recorder = RecordingProbe()
    with torch.no_grad():
        stack.residual(x, recorder)
    return recorder


# --- properties -----------------------------------------------------------------------------


def _assert_depth_bound_holds(stack: Stack, x: torch.Tensor, description: str) -> None:
    recorder = run(stack, x)
    table = depth_bound(stack, x)
    tolerance = depth_tolerance(stack.config)
    batch, length = x.shape[:2]
    for variant, part in table.groupby("variant"):
        for layer, rows in part.groupby("layer"):
            for sublayer, column in (("attn", "bound_after_attention"), ("mlp", "bound")):
                bound = rows[column].to_numpy().reshape(batch, length)
                measured = root_mean_square(recorder.states[layer, sublayer])[..., 0].double().numpy()
                worst = float(np.max(measured / bound))
                assert worst <= 1 + tolerance, (
                    f"{description}; {variant} bound violated after layer {layer} {sublayer}: "
                    f"measured/bound = {worst!r} > 1 + {tolerance:.2e}"
                )


@settings(max_examples=500)
@given(case=adversarial_stacks())
def test_sublayer_increments_never_exceed_attention_and_mlp_terms(case):
    # rms(h' − h) ≤ A_l and rms(h'' − h') ≤ F_l, checked on their own so that a large
    # input cannot hide a violation. h and h' are float32; their difference is formed
    # in float64 (exact), so the only extra error is the rounding of the residual add,
    # |fl(h + a) − (h + a)| ≤ u |h + a| per coordinate: ≤ u · rms(h') in rms.
    stack, x, description = case
    recorder = run(stack, x)
    table = depth_bound(stack, x)
    eta = depth_tolerance(stack.config)
    batch, length = x.shape[:2]
    previous = hidden_states(x, stack.config)
    for layer in range(stack.config.depth):
        after_attention, after_mlp = recorder.states[layer, "attn"], recorder.states[layer, "mlp"]
        for sublayer, before, after, column in (("attn", previous, after_attention, "attention_term"),
                                                ("mlp", after_attention, after_mlp, "mlp_term")):
            increment = root_mean_square(after.double() - before.double())[..., 0].numpy()
            allowance = U32 * root_mean_square(after)[..., 0].double().numpy()
            for variant, part in table[table["layer"] == layer].groupby("variant"):
                term = part[column].to_numpy().reshape(batch, length)
                excess = increment - (term * (1 + eta) + allowance)
                assert np.all(excess <= 0), (
                    f"{description}; {variant} {column} violated at layer {layer}: "
                    f"increment {increment.max()!r} > term {term.max()!r}"
                )
        previous = after_mlp


@settings(max_examples=400)
@given(case=adversarial_stacks())
def test_residual_rms_never_exceeds_depth_bound(case):
    _assert_depth_bound_holds(*case)


@settings(max_examples=250)
@given(case=adversarial_stacks(schemes=BHYT_SCHEMES))
def test_bhyt_residual_rms_never_exceeds_depth_bound(case):
    _assert_depth_bound_holds(*case)


@settings(max_examples=300)
@given(case=adversarial_stacks(schemes=BHYT_SCHEMES), t=st.floats(0.01, 5.0))
def test_saturated_fraction_never_exceeds_bound_in_stack(case, t):
    stack, x, description = case
    recorder = run(stack, x)
    assert recorder.arguments, description
    for (layer, sublayer), z in recorder.arguments.items():
        block = stack.blocks[layer]
        norm = block.norm_attn if sublayer == "attn" else block.norm_mlp
        estimated = sublayer == "mlp" and scheme_row(stack.config.scheme).estimates_m2
        # exact M: mean(z²) ≤ (λ/κ)²; estimated M₂: mean(z²) ≤ (λ/κ)² m(h')/M₂
        ratio = recorder.mean_square_ratio(layer).numpy() if estimated else 1.0
        bound = saturated_fraction_bound(norm.lam.item(), norm.kappa, t * (1 - REL), np.asarray(ratio) * (1 + REL))
        fraction = (z.abs() >= t).double().mean(-1).numpy()
        excess = fraction - bound
        assert np.all(excess <= 0), (
            f"{description}; layer {layer} {sublayer} (estimated M={estimated}): "
            f"fraction {fraction.max()} > bound at t={t}"
        )


@settings(max_examples=150)
@given(case=aligned_gamma_peak_stacks())
def test_depth_bound_holds_when_input_mass_gamma_peak_and_values_align(case):
    _assert_depth_bound_holds(*case)
