"""Checks of proofs/depth_bound.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F

from ...numerics.model import Stack, StackConfig
from ...numerics.norms import (
    bhyt,
    derf,
    dyt,
    mean_square,
    rms_norm,
)
from ...numerics.probes import RecordingProbe, saturated_fraction
from ..bounds import attention_gain, depth_bound, swiglu_gains
from ..symbolic import (
    x,
)
from .fixtures import adversarial_tokens, is_zero, small_block
from .registry import U64, CheckResult, check


def _svd_norm(weight: torch.Tensor) -> float:
    """The largest singular value by numpy's SVD: a route independent of ``bounds.spectral_norm``."""
    return float(np.linalg.svd(weight.detach().double().numpy(), compute_uv=False)[0])


@check("depth.attention_convex_combination", kind="package", statements={'depth_bound.md': (1,)})
def _depth_attention() -> CheckResult:
    # bounds.attention_gain against ‖W_O‖₂ sqrt(Σ_k ‖W_V^k‖₂²) from numpy SVDs (1e-12 relative), and
    # ‖a_t‖ ≤ G_A max_j ‖u_j‖ on the real Attention module with random and adversarially peaked
    # (large-q) attention patterns; then attained (ratio 1 to 1e-12) by identical tokens along the
    # aligned rank-1 construction of experiments.bounds.
    worst, gain_error = 0.0, 0.0
    for init_std, seed in ((0.3, 0), (3.0, 1)):
        config, block = small_block(init_std=init_std, seed=seed)
        attention = block.attn
        hd = config.head_dim
        w_v = attention.v_proj.weight.detach().double()
        value_norms = [_svd_norm(w_v[j * hd:(j + 1) * hd]) for j in range(config.kv_heads)]
        group = config.heads // config.kv_heads
        scratch = _svd_norm(attention.o_proj.weight) * math.sqrt(sum(group * n**2 for n in value_norms))
        constant = attention_gain(attention)
        gain_error = max(gain_error, abs(constant / scratch - 1))
        generator = torch.Generator().manual_seed(seed)
        for scale in (1e-3, 1.0, 1e3):
            u = torch.randn(2, 16, config.width, generator=generator, dtype=torch.float64) * scale
            u[:, 5] *= 50.0
            with torch.no_grad():
                out = attention(u)
            bound = constant * u.norm(dim=-1).amax(-1, keepdim=True)
            worst = max(worst, float((out.norm(dim=-1) / bound).max()))
    # Attaining construction: every KV head reads the unit vector p into its first coordinate
    # (W_V^k = 2 p e_0ᵀ) and W_O maps each head's first coordinate back to 0.5 p/√H, so identical
    # tokens u_j = 3p give a_t = G_A ‖u‖ p whatever the attention pattern.
    config, block = small_block(width=16, heads=4, kv_heads=2, seed=2)
    attention, hd = block.attn, config.head_dim
    p = torch.randn(config.width, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    p = p / p.norm()
    with torch.no_grad():
        attention.v_proj.weight.zero_()
        attention.v_proj.weight[::hd] = 2.0 * p
        attention.o_proj.weight.zero_()
        attention.o_proj.weight[:, ::hd] = 0.5 * p[:, None] / math.sqrt(config.heads)
        u = (3.0 * p).expand(1, 8, config.width).clone()
        attained = float((attention(u).norm(dim=-1) / (attention_gain(attention) * 3.0)).min())
    ok = worst <= 1 + 1e-12 and gain_error <= 1e-12 and abs(attained - 1) <= 1e-12
    return ok, (f"bounds.attention_gain vs numpy SVD route: {gain_error:.1e}; real Attention (GQA 4/2 heads): "
                f"max ||a_t|| / bound = {worst:.4f}; aligned rank-1 construction attains {attained:.12f}")


@check("depth.silu_contraction", kind="lemma")
def _depth_silu() -> CheckResult:
    silu = x / (1 + sp.exp(-x))
    ratio_ok = is_zero(silu / x - 1 / (1 + sp.exp(-x)))
    grid = torch.linspace(-100, 100, 400_001, dtype=torch.float64)
    numeric_ok = bool((F.silu(grid).abs() <= grid.abs()).all())
    return ratio_ok and numeric_ok, "silu(x)/x = sigmoid(x) in (0, 1), so |silu(x)| <= |x|"


@check("depth.swiglu_quadratic_bound", kind="package", statements={'depth_bound.md': (1,)})
def _depth_swiglu() -> CheckResult:
    # bounds.swiglu_gains against numpy SVD and row norms from scratch (1e-12 relative), and
    # ‖f‖ ≤ G ‖v‖² for each of the three constants on the real SwiGLU, random and large weights.
    worst, gain_error, rows_tighter = 0.0, 0.0, True
    for init_std, seed in ((0.3, 0), (2.0, 4)):
        _, block = small_block(init_std=init_std, seed=seed)
        mlp = block.mlp
        gate, up, down = (layer.weight.detach().double().numpy() for layer in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        spectral = [float(np.linalg.svd(w, compute_uv=False)[0]) for w in (gate, up, down)]
        rows = [float(np.linalg.norm(w, axis=1).max()) for w in (gate, up)]
        scratch = {"spectral": spectral[2] * spectral[0] * spectral[1], "gate_rows": spectral[2] * rows[0] * spectral[1],
                   "up_rows": spectral[2] * spectral[0] * rows[1]}
        gains = swiglu_gains(mlp)
        gain_error = max(gain_error, max(abs(gains[k] / scratch[k] - 1) for k in scratch))
        rows_tighter &= max(gains["gate_rows"], gains["up_rows"]) <= gains["spectral"] * (1 + 1e-12)
        generator = torch.Generator().manual_seed(seed)
        for scale in (1e-2, 1.0, 30.0):
            v = torch.randn(64, block.config.width, generator=generator, dtype=torch.float64) * scale
            with torch.no_grad():
                f = mlp(v)
            square = v.square().sum(-1)
            for gain in gains.values():
                worst = max(worst, float((f.norm(dim=-1) / (gain * square)).max()))
    ok = worst <= 1 + 1e-12 and gain_error <= 1e-12 and rows_tighter
    return ok, (f"bounds.swiglu_gains vs numpy route: {gain_error:.1e}; real SwiGLU: max ||f|| / (G ||v||^2) over the "
                f"three constants = {worst:.4f}; the row forms never looser")


@check("depth.norm_output_bounds", kind="package", statements={'depth_bound.md': (1,)})
def _depth_norm_outputs() -> CheckResult:
    d = 64
    h = adversarial_tokens(d, seed=9)
    rng = np.random.default_rng(9)
    gamma = torch.tensor(rng.standard_normal(d) * 2)
    beta = torch.tensor(rng.standard_normal(d))
    g_max = float(gamma.abs().max())
    root_d = math.sqrt(d)
    ratios = {
        "RMSNorm": float(rms_norm(h, gamma).norm(dim=-1).max()) / (g_max * root_d),
        "BHyT exact M": float(bhyt(h, 3.0, gamma=gamma).norm(dim=-1).max()) / (g_max * 0.3 * root_d),
        "BHyT any M": float(bhyt(h, 3.0, gamma=gamma, mean_square=mean_square(h) * 1e-4).norm(dim=-1).max())
        / float(gamma.norm()),
        "DyT": float(dyt(h, 0.5, gamma, beta).norm(dim=-1).max()) / float((gamma.abs() + beta.abs()).norm()),
        "Derf": float(derf(h, 0.5, 0.0, gamma, beta).norm(dim=-1).max()) / float((gamma.abs() + beta.abs()).norm()),
    }
    # LNS from the real model: an lns Stack with spiky γ; the input each Attention receives
    # (norm output × 1/√l) is captured by a forward pre-hook and compared with depth_bound's
    # attention_norm_bound, which must equal max|γ|/√l written from scratch; a one-hot token on
    # the γ peak attains it up to sqrt(m/(m+ε)).
    config = StackConfig(scheme="lns", depth=4, width=d, heads=4, seq_len=8, dtype="float64")
    stack = Stack(config, seed=9)
    peak = 7
    with torch.no_grad():
        for block in stack.blocks:
            block.norm_attn.gamma.copy_(gamma)
            block.norm_attn.gamma[peak] = 3 * g_max
    captured = {}
    hooks = [block.attn.register_forward_pre_hook(lambda module, args, layer=block.layer: captured.__setitem__(layer, args[0]))
             for block in stack.blocks]
    tokens = torch.cat([h[None, :8], torch.eye(d, dtype=torch.float64)[None, peak:peak + 1].expand(1, 8, d) * 1e3])
    with torch.no_grad():
        stack.residual(tokens)
    for hook in hooks:
        hook.remove()
    table = depth_bound(stack, tokens, data_dependent=False)
    lns_worst, lns_attained, formula_error = 0.0, 1.0, 0.0
    for block in stack.blocks:
        bound = float(table[table.layer == block.layer].attention_norm_bound.iloc[0])
        scratch = 3 * g_max / math.sqrt(block.layer + 1)
        formula_error = max(formula_error, abs(bound / scratch - 1))
        rms_u = captured[block.layer].square().mean(-1).sqrt()
        lns_worst = max(lns_worst, float(rms_u.max()) / bound)
        if block.layer == 0:  # deeper layers see the one-hot plus O(1) increments
            lns_attained = float(rms_u[1].min()) / bound
    ratios["LNS (model, l = 1..4)"] = lns_worst
    ok = all(r <= 1 + 8 * d * U64 for r in ratios.values()) and formula_error <= 1e-15 and lns_attained > 1 - 1e-9
    return ok, ("max ||norm output|| / bound: " + ", ".join(f"{k} {v:.4f}" for k, v in ratios.items())
                + f"; LNS bound = max|gamma|/sqrt(l) to {formula_error:.1e}, attained {lns_attained:.12f} at layer 1 by a one-hot on the gamma peak")


# The counterexample's numbers as printed in depth_bound.md (M₂/m(h') and rms(z₂)/(λ₂/κ) at position 0).
STATED_COUNTEREXAMPLE = (0.025, 6.35)


@check("depth.estimate_does_not_bound_argument", kind="package",
       statements={'depth_bound.md': (1,), 'depth_growth_assessment.md': (4,)})
def _depth_estimate_counterexample() -> CheckResult:
    # A bhyt stack on small inputs: at position 0 attention copies u_0, so the increment is
    # T times the assumed one and M₂ < m(h'); the second norm's argument exceeds λ₂/κ.
    # The trace's numbers are recomputed from scratch from the recorded states (M₂ = m(h) +
    # c_attn λ₁²/κ², z₂ = λ₂ h'/(κ sqrt(M₂ + ε)); float64, 1e-12 relative) and compared with the
    # values printed in the proof to their printed digits.
    config = StackConfig(scheme="bhyt", depth=2, width=64, heads=4, seq_len=64, init_std=0.2, dtype="float64")
    stack = Stack(config, seed=0)
    x_in = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1e-3
    table = stack.trace(x_in)
    rows = table[(table.sublayer == "attn") & (table.position == 0)]
    ratio = float(rows.estimate_ratio.min())
    arg_rows = table[(table.sublayer == "mlp") & (table.position == 0)]
    argument_excess = float(arg_rows.arg_rms.max()) / (config.lam_post / config.kappa)
    recorder = RecordingProbe()
    with torch.no_grad():
        stack.residual(x_in, recorder)
    scratch_ratio, scratch_excess = math.inf, 0.0
    inputs = x_in
    for block in stack.blocks:
        after = recorder.states[block.layer, "attn"]
        estimate = inputs.square().mean(-1) + float(block.c_attn) * (config.lam_in / config.kappa) ** 2
        scratch_ratio = min(scratch_ratio, float((estimate / after.square().mean(-1))[:, 0].mean()))
        z = config.lam_post * after / (config.kappa * (estimate[..., None] + 1e-6).sqrt())
        scratch_excess = max(scratch_excess, float(z[:, 0].square().mean().sqrt()) / (config.lam_post / config.kappa))
        inputs = recorder.states[block.layer, "mlp"]
    recomputed = abs(ratio / scratch_ratio - 1) <= 1e-12 and abs(argument_excess / scratch_excess - 1) <= 1e-12
    stated = abs(ratio - STATED_COUNTEREXAMPLE[0]) <= 5e-4 and abs(argument_excess - STATED_COUNTEREXAMPLE[1]) <= 5e-3
    ok = ratio < 1 and argument_excess > 1 and recomputed and stated
    return ok, (f"bhyt stack, inputs rms 1e-3, position 0: min M2/m(h') = {ratio:.3f}; "
                f"second norm's rms(z) / (lambda2/kappa) = {argument_excess:.2f} (recomputed from scratch; as stated)")


@check("depth.dyt_bound_is_saturated", kind="package", statements={'saturation_bound.md': (1,)})
def _depth_dyt_saturated() -> CheckResult:
    d = 256
    h = torch.randn(1, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ratios = [float(dyt(h * scale, 0.5).norm() / math.sqrt(d)) for scale in (1e-2, 1.0, 1e2, 1e4)]
    saturated = [float(saturated_fraction(dyt(h * scale, 0.5), math.tanh(1.0))) for scale in (1e-2, 1e4)]
    ok = ratios == sorted(ratios) and ratios[-1] > 0.99 and ratios[0] < 0.01 and saturated[1] > 0.99
    return ok, ("DyT (alpha 0.5): ||u|| / sqrt(d) = " + ", ".join(f"{r:.4f}" for r in ratios)
                + f" at input scales 1e-2..1e4; fraction |alpha h| >= 1 at 1e4: {saturated[1]:.3f}")


@check("depth.constant_ratios", kind="package",
       statements={'depth_bound.md': (1,), 'depth_growth_assessment.md': (1, 2, 3)})
def _depth_constant_ratios() -> CheckResult:
    # bounds.depth_bound on real rmsnorm and bhytstar stacks with identical weights (the same seed
    # draws the same linear layers): per layer, A^BHyT*/A^Pre-LN and F^BHyT*/F^Pre-LN must equal the
    # ratio of the norm-output bounds written from scratch, min(max|γ| λ/κ, rms γ)/max|γ| and its
    # square — including the saturated branch of the min (λ₂ = 15 > κ = 10) and a spiky γ, where
    # the non-saturating route uses max|γ|, not rms γ. float64, 1e-12 relative.
    base = StackConfig(depth=3, width=32, heads=4, seq_len=8, lam_in=2.0, lam_post=15.0, dtype="float64")
    x_in = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    pre_ln = Stack(base.replace(scheme="rmsnorm"), seed=5)
    star = Stack(base.replace(scheme="bhytstar"), seed=5)
    gamma = torch.ones(32, dtype=torch.float64)
    gamma[3] = 4.0
    with torch.no_grad():
        for stack in (pre_ln, star):
            for block in stack.blocks:
                block.norm_attn.gamma.copy_(gamma)
                block.norm_mlp.gamma.copy_(gamma)
    ours = depth_bound(star, x_in, data_dependent=False).groupby("layer").first()
    theirs = depth_bound(pre_ln, x_in, data_dependent=False).groupby("layer").first()
    g_max, g_rms = float(gamma.max()), float(gamma.square().mean().sqrt())
    worst, kinds = 0.0, set()
    for layer, block in enumerate(star.blocks):
        for column, lam, power in (("attention_term", base.lam_in, 1), ("mlp_term", base.lam_post, 2)):
            scratch = (min(g_max * lam / block.norm_attn.kappa, g_rms) / g_max) ** power
            worst = max(worst, abs(ours.loc[layer, column] / theirs.loc[layer, column] / scratch - 1))
        kinds |= {ours.loc[layer, "attention_bound_kind"], ours.loc[layer, "mlp_bound_kind"]}
    ok = worst <= 1e-12 and kinds == {"non-saturating", "saturated"}
    return ok, (f"bounds.depth_bound, BHyT*/Pre-LN per-layer terms vs min(max|g| lam/kappa, rms g)/max|g| (attention) and "
                f"its square (MLP), spiky gamma, both branches of the min exercised: max rel. error {worst:.1e}")


@check("depth.estimate_cauchy_schwarz", kind="package", statements={'depth_bound.md': (1,)})
def _depth_estimate_cauchy_schwarz() -> CheckResult:
    # m(h') ≤ (s + A)² with s = rms(h), and M₂ + ε = s² + b for the reference estimate:
    # (s² + b)(1 + A²/b) − (s + A)² is the square (sA/√b − √b)², so the ratio is ≤ 1 + A²/b.
    s_, amplitude, b = sp.symbols("s A b", positive=True)
    gap = (s_**2 + b) * (1 + amplitude**2 / b) - (s_ + amplitude) ** 2
    ok = is_zero(gap - (s_ * amplitude / sp.sqrt(b) - sp.sqrt(b)) ** 2)
    # attained at s = b/A, where the square vanishes
    ok = ok and is_zero(gap.subs(s_, b / amplitude))
    # The premises on a real bhyt block, at input scales around the extremal s = b/A: (a) rms(h'_t)
    # ≤ rms(h_t) + A_l (A_l from bounds.depth_bound); (b) the recorded M₂ + ε = s² + b with
    # b = c_attn λ₁²/κ₁² + ε; (c) the measured m(h')/(M₂ + ε) ≤ 1 + A_l²/b. float64: 1e-12 relative.
    config = StackConfig(scheme="bhyt", depth=1, width=32, heads=4, kv_heads=2, seq_len=8, init_std=0.3,
                         kappa_schedule="grow", dtype="float64")
    stack = Stack(config, seed=11)
    block = stack.blocks[0]
    direction = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    direction = direction / direction.square().mean(-1, keepdim=True).sqrt()
    b_ = float(block.c_attn) * (config.lam_in / config.kappa_at(0)) ** 2 + block.norm_mlp.eps
    attention_term = float(depth_bound(stack, direction, data_dependent=False).attention_term.iloc[0])
    premises, worst = True, 0.0
    for scale in (b_ / attention_term * 0.1, b_ / attention_term, b_ / attention_term * 10, 1.0, 1e3):
        x_in = direction * scale
        recorder = RecordingProbe()
        with torch.no_grad():
            stack.residual(x_in, recorder)
        after, estimate = recorder.states[0, "attn"], recorder.estimates[0]
        s_in = x_in.square().mean(-1, keepdim=True).sqrt()
        s_after = after.square().mean(-1, keepdim=True).sqrt()
        premises &= bool((s_after <= (s_in + attention_term) * (1 + 1e-12)).all())
        premises &= bool(((estimate + block.norm_mlp.eps - (s_in**2 + b_)).abs() <= 1e-12 * (s_in**2 + b_)).all())
        ratio = s_after**2 / (estimate + block.norm_mlp.eps)
        worst = max(worst, float(ratio.max()) / (1 + attention_term**2 / b_))
    ok = ok and premises and worst <= 1 + 1e-12
    return ok, ("(s^2 + b)(1 + A^2/b) - (s + A)^2 = (sA/sqrt(b) - sqrt(b))^2 >= 0, zero at s = b/A; on a real bhyt "
                f"block (kappa schedule 'grow') the premises hold at 5 input scales and max m(h')/(M2+eps) / (1 + A^2/b) = {worst:.2e}")
