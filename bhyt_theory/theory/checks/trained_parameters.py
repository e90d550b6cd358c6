"""Checks of proofs/trained_parameters.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ...numerics.model import Stack, StackConfig
from ...numerics.norms import (
    KAPPA,
    bhyt,
    estimate_post_attention_mean_square,
    mean_square,
    root_mean_square,
)
from ...numerics.probes import RecordingProbe
from ..bounds import (
    attention_gain,
    depth_bound,
    saturated_fraction_bound,
)
from ..trained_bounds import (
    bhyt_output_rms_bound,
    mlp_scale_free_threshold,
    stale_saturation_factor_range,
    variance_constant_ceiling,
)
from .fixtures import adversarial_tokens
from .registry import U64, CheckResult, check


@check("trained.tanh_square_concave", kind="lemma")
def _concave() -> CheckResult:
    # f(s) = tanh²(√s): f'(s) = tanh(x) sech²(x)/x with x = √s; its x-derivative must be < 0 (sympy
    # expression evaluated with mpmath on a log grid), and f'' < 0 directly on the same grid.
    x, s = sp.symbols("x s", positive=True)
    slope = sp.diff(sp.tanh(sp.sqrt(s)) ** 2, s)
    slope_in_x = sp.simplify(slope.subs(s, x**2))
    same = sp.simplify(slope_in_x - sp.tanh(x) * sp.sech(x) ** 2 / x) == 0
    curvature = sp.lambdify(s, sp.diff(slope, s), "mpmath")
    decreasing = sp.lambdify(x, sp.diff(sp.tanh(x) * sp.sech(x) ** 2 / x, x), "mpmath")
    grid = np.logspace(-6, 2.5, 400)
    worst_curvature = max(float(curvature(v)) for v in grid)
    worst_slope = max(float(decreasing(math.sqrt(v))) for v in grid)
    ok = same and worst_curvature < 0 and worst_slope < 0
    return ok, (f"d/ds tanh^2(sqrt s) = tanh(x) sech^2(x)/x (sympy); on s in 1e-6..3e2: "
                f"max f'' = {worst_curvature:.2e} < 0, max d/dx of the slope = {worst_slope:.2e} < 0")


@check("trained.output_bound_any_lambda", kind="package",
       statements={'trained_parameters.md': (1,), 'depth_growth_assessment.md': (5,)})
def _output_bound() -> CheckResult:
    # rms(norms.bhyt(h)) ≤ trained_bounds.bhyt_output_rms_bound for λ of both signs and up to 3κ, random γ
    # (signs, peaks aligned with the tokens' mass), exact and estimated M; 8u relative slack for the
    # float64 evaluation. Tightness: constant |γ| (random signs) and a dense ±c token at ε = 0.
    rng = np.random.default_rng(21)
    worst, tight_worst = 0.0, 0.0
    for d in (8, 64, 512):
        h = adversarial_tokens(d, seed=300 + d)
        m = mean_square(h)
        for lam in (-30.0, -3.0, -0.5, 0.5, 3.0, 12.0, 30.0):
            gammas = [torch.tensor(rng.standard_normal(d)), torch.ones(d) * -2.0]
            peaked = torch.tensor(0.1 * rng.standard_normal(d))
            peaked[0] = 5.0  # aligned with the one-hot and spike tokens' mass
            gammas.append(peaked)
            for gamma in gammas:
                gamma = gamma.double()
                for factor in (None, 0.05, 1.0, 20.0):
                    estimate = None if factor is None else m * factor
                    u = bhyt(h, lam, KAPPA, gamma, estimate)
                    ratio = 1.0 if factor is None else (m / (m * factor + 1e-6)).numpy()[..., 0]
                    bound = bhyt_output_rms_bound(lam, KAPPA, float(gamma.abs().max()),
                                                  float(gamma.square().mean().sqrt()), ratio)
                    worst = max(worst, float((root_mean_square(u)[..., 0].numpy() / bound).max()))
        for lam in (-25.0, 0.3, 4.0, 40.0):
            signs = torch.tensor(rng.choice([-1.0, 1.0], size=d))
            u = bhyt(3.0 * signs[None], lam, KAPPA, 1.7 * signs, eps=0.0)
            bound = bhyt_output_rms_bound(lam, KAPPA, 1.7, 1.7)
            tight_worst = max(tight_worst, abs(float(root_mean_square(u)) / bound - 1))
    ok = worst <= 1 + 8 * U64 and tight_worst <= 64 * U64
    return ok, (f"lambda in -30..30 (kappa 10), random/peaked/negative gamma, M exact or (0.05..20) m: "
                f"max rms(u)/bound = {worst:.6f}; dense +-c token, constant |gamma|: |ratio - 1| <= {tight_worst:.1e}")


def _isometric_block(lam_in: float, lam_post: float, heads: int = 4, kv_heads: int = 2, width: int = 32,
                     seq_len: int = 16, value_scale: float = 0.5) -> Stack:
    """A one-block ``bhyt`` stack whose value heads have equal singular values and whose ``W_O`` is
    a scaled isometry: the equality case of ``variance_constant_ceiling``."""
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=heads, kv_heads=kv_heads, seq_len=seq_len,
                         lam_in=lam_in, lam_post=lam_post, init_std=0.1, dtype="float64")
    stack = Stack(config, seed=4)
    block = stack.blocks[0]
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        q_v, _ = torch.linalg.qr(torch.randn(width, width, generator=generator, dtype=torch.float64))
        q_o, _ = torch.linalg.qr(torch.randn(width, width, generator=generator, dtype=torch.float64))
        kv_rows = block.attn.v_proj.weight.shape[0]
        block.attn.v_proj.weight.copy_(value_scale * q_v[:kv_rows])  # orthonormal rows, one block per KV head
        block.attn.o_proj.weight.copy_(0.7 * q_o[:, : heads * config.head_dim])
        block.refresh_variance_constant()
    return stack


@check("trained.variance_constant_ceiling", kind="package", statements={'trained_parameters.md': (3,)})
def _ceiling() -> CheckResult:
    # c_attn (norms.attention_variance_constant via the block) ≤ trained_bounds.variance_constant_ceiling on
    # random weights (GQA and not, several scales); equality (to 1e-12) for the isometric construction.
    worst = 0.0
    for heads, kv_heads, std in ((4, 4, 0.02), (4, 2, 0.3), (8, 1, 1.0)):
        config = StackConfig(scheme="bhyt", depth=3, width=64, heads=heads, kv_heads=kv_heads, seq_len=16,
                             init_std=std, dtype="float64")
        for block in Stack(config, seed=heads).blocks:
            ceiling = variance_constant_ceiling(attention_gain(block.attn), config.head_dim, config.seq_len, config.width)
            worst = max(worst, float(block.c_attn) / ceiling)
    block = _isometric_block(2.0, 1.0).blocks[0]
    attained = float(block.c_attn) / variance_constant_ceiling(attention_gain(block.attn), block.config.head_dim,
                                                                block.config.seq_len, block.config.width)
    ok = worst <= 1.0 and abs(attained - 1) <= 1e-12
    return ok, f"random weights: max c_attn / ceiling = {worst:.4f}; isometric heads: c_attn / ceiling = {attained:.15f}"


@check("trained.mlp_threshold_sharp", kind="package", statements={'trained_parameters.md': (3,)})
def _threshold() -> CheckResult:
    # On the isometric block (where the ceiling is attained) bounds.depth_bound's scale-free MLP
    # bound switches from the Cauchy–Schwarz ("non-saturating") to the saturated route exactly at
    # trained_bounds.mlp_scale_free_threshold: below at 0.99×, above at 1.01× (ε/b ≈ 1e-4 moves it by less).
    kinds = {}
    for lam_in in (2.0, 15.0):
        stack = _isometric_block(lam_in, 1.0)
        config = stack.config
        threshold = mlp_scale_free_threshold(lam_in, config.kappa, config.seq_len, config.width, config.head_dim)
        x = torch.randn(1, 4, config.width, dtype=torch.float64)
        for factor in (0.99, 1.01):
            with torch.no_grad():
                stack.blocks[0].norm_mlp.lam.fill_(factor * threshold)
            table = depth_bound(stack, x, data_dependent=False)
            kinds[lam_in, factor] = (table.mlp_bound_kind.iloc[0], threshold)
    ok = all(kind == ("non-saturating" if factor < 1 else "saturated") for (_, factor), (kind, _) in kinds.items())
    listing = ", ".join(f"lambda1={k[0]}: x{k[1]} -> {v[0]} (threshold {v[1]:.4f})" for k, v in kinds.items())
    return ok, f"isometric block, T=16, d=32, head_dim=8: {listing}"


@check("trained.stale_constant_on_real_stack", kind="package", statements={"trained_parameters.md": (2,)})
def _stale() -> CheckResult:
    # Weights moved after c_attn was computed (W_V x1.4, W_O + 50 % noise: c_fresh ≈ 2 c_stale). On the
    # stale run's own inputs to every layer (so both M₂ share one m₁): the factor (M₂^fresh+ε)/(M₂^stale+ε),
    # M₂^fresh from estimate_post_attention_mean_square with the refreshed constant and M₂^stale the one the
    # block used (probe), lies in trained_bounds.stale_saturation_factor_range (1e-12 relative slack for
    # float64 rounding), and at layer 0 (input rms 1e-3, m₁ ≪ c λ₁²/κ²) comes within 10 % of its lower end;
    # the measured MLP-side saturated fraction stays below the stale bound; and the scale-free route of
    # bounds.depth_bound reads the stale buffer: its premise m(h')/(M₂+ε) ≤ 1 + A_l²/b holds per token with
    # b from the stale constant, and its MLP-side norm bound changes when the buffer is refreshed (λ₂ small
    # enough that the Cauchy–Schwarz route binds).
    config = StackConfig(scheme="bhyt", depth=3, width=64, heads=4, kv_heads=2, seq_len=16, init_std=0.05,
                         lam_post=1e-3, dtype="float64")
    stack = Stack(config, seed=6)
    stale = [float(block.c_attn) for block in stack.blocks]
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for block in stack.blocks:
            block.attn.v_proj.weight.mul_(1.4)
            block.attn.o_proj.weight.add_(0.5 * block.attn.o_proj.weight.std()
                                          * torch.randn(block.attn.o_proj.weight.shape, generator=generator,
                                                        dtype=torch.float64))
    x = torch.randn(2, 16, 64, generator=generator, dtype=torch.float64) * 1e-3
    stale_probe = RecordingProbe()
    with torch.no_grad():
        stack.residual(x, stale_probe)
        stale_table = depth_bound(stack, x, data_dependent=False)
        stack.refresh_variance_constants()
        fresh_table = depth_bound(stack, x, data_dependent=False)
    in_range, worst_fraction, worst_premise, layer0_reach, bound_moved = True, 0.0, 0.0, math.inf, True
    for block, c_stale in zip(stack.blocks, stale):
        layer, lam, kappa = block.layer, float(block.norm_attn.lam.detach()), block.norm_attn.kappa
        eps = block.norm_mlp.eps
        c_fresh = float(block.c_attn)
        block_input = x if layer == 0 else stale_probe.states[layer - 1, "mlp"]
        m_stale = stale_probe.estimates[layer]
        m_fresh = estimate_post_attention_mean_square(mean_square(block_input), c_fresh, lam, kappa)
        low, high = stale_saturation_factor_range(c_stale, c_fresh)
        factor = (m_fresh + eps) / (m_stale + eps)
        in_range &= bool(((factor >= low * (1 - 1e-12)) & (factor <= high * (1 + 1e-12))).all())
        if layer == 0:
            layer0_reach = float((factor.min() - low) / low) if c_stale > c_fresh else float((high - factor.max()) / high)
        exact = mean_square(stale_probe.states[layer, "attn"])
        z = stale_probe.arguments[layer, "mlp"]
        for t in (1e-4, 5e-4, 2e-3):  # thresholds at the size of |z| ~ (λ₂/κ) sqrt(m(h')/M₂) here
            bound = saturated_fraction_bound(float(block.norm_mlp.lam.detach()), block.norm_mlp.kappa, t,
                                             (exact / (m_stale + eps)).numpy())
            fraction = (z.abs() >= t).double().mean(-1, keepdim=True).numpy()
            worst_fraction = max(worst_fraction, float((fraction / bound).max()))
        rows = stale_table[stale_table.layer == layer]
        attention_term = float(rows.attention_term.iloc[0])
        b_stale = c_stale * (lam / kappa) ** 2 + eps
        premise = exact / (m_stale + eps) / (1 + attention_term**2 / b_stale)
        worst_premise = max(worst_premise, float(premise.max()))
        fresh_rows = fresh_table[fresh_table.layer == layer]
        bound_moved &= bool(abs(float(rows.mlp_norm_bound.iloc[0]) / float(fresh_rows.mlp_norm_bound.iloc[0]) - 1) > 1e-3)
    ok = in_range and layer0_reach <= 0.1 and worst_fraction <= 1.0 and worst_premise <= 1 + 1e-12 and bound_moved
    return ok, (f"W_V x1.4, W_O + 50% noise, c_attn stale: factor in proved range on shared inputs: {in_range} "
                f"(layer 0 within {layer0_reach:.1%} of its end); saturated fraction / stale bound <= "
                f"{worst_fraction:.3f}; m(h')/(M2+eps) / (1 + A^2/b_stale) <= {worst_premise:.3f}; the scale-free "
                f"MLP bound moves when the buffer is refreshed: {bound_moved}")
