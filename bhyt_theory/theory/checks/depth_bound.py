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
from ..symbolic import (
    x,
)
from .fixtures import adversarial_tokens, is_zero, operator_norm, small_block
from .registry import U64, CheckResult, check


@check("depth.attention_convex_combination")
def _depth_attention() -> CheckResult:
    # ‖a_t‖ ≤ ‖W_O‖₂ sqrt(Σ_k ‖W_V^k‖₂²) max_j ‖u_j‖ on the real Attention module,
    # with random and with adversarially peaked (large-q) attention patterns.
    worst = 0.0
    for init_std, seed in ((0.3, 0), (3.0, 1)):
        config, block = small_block(init_std=init_std, seed=seed)
        attention = block.attn
        hd = config.head_dim
        w_v = attention.v_proj.weight.detach().double()
        value_norms = [operator_norm(w_v[j * hd:(j + 1) * hd]) for j in range(config.kv_heads)]
        group = config.heads // config.kv_heads
        head_sum = sum(group * n**2 for n in value_norms)
        constant = operator_norm(attention.o_proj.weight) * math.sqrt(head_sum)
        generator = torch.Generator().manual_seed(seed)
        for scale in (1e-3, 1.0, 1e3):
            u = torch.randn(2, 16, config.width, generator=generator, dtype=torch.float64) * scale
            u[:, 5] *= 50.0
            with torch.no_grad():
                out = attention(u)
            bound = constant * u.norm(dim=-1).amax(-1, keepdim=True)
            worst = max(worst, float((out.norm(dim=-1) / bound).max()))
    ok = worst <= 1 + 1e-12
    return ok, f"real Attention (GQA 4/2 heads): max ||a_t|| / bound = {worst:.4f}"


@check("depth.silu_contraction")
def _depth_silu() -> CheckResult:
    silu = x / (1 + sp.exp(-x))
    ratio_ok = is_zero(silu / x - 1 / (1 + sp.exp(-x)))
    grid = torch.linspace(-100, 100, 400_001, dtype=torch.float64)
    numeric_ok = bool((F.silu(grid).abs() <= grid.abs()).all())
    return ratio_ok and numeric_ok, "silu(x)/x = sigmoid(x) in (0, 1), so |silu(x)| <= |x|"


@check("depth.swiglu_quadratic_bound")
def _depth_swiglu() -> CheckResult:
    worst_operator, worst_columns, columns_tighter = 0.0, 0.0, True
    for init_std, seed in ((0.3, 0), (2.0, 4)):
        _, block = small_block(init_std=init_std, seed=seed)
        mlp = block.mlp
        # h ↦ h W orientation: W = weight.T, and g_i = v · W_gate[:, i] uses row i of weight.
        gate, up, down = (layer.weight.detach().double() for layer in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        operator = operator_norm(down) * operator_norm(gate) * operator_norm(up)
        columns = operator_norm(down) * min(
            float(gate.norm(dim=1).max()) * operator_norm(up), float(up.norm(dim=1).max()) * operator_norm(gate)
        )
        columns_tighter &= columns <= operator * (1 + 1e-12)
        generator = torch.Generator().manual_seed(seed)
        for scale in (1e-2, 1.0, 30.0):
            v = torch.randn(64, block.config.width, generator=generator, dtype=torch.float64) * scale
            with torch.no_grad():
                f = mlp(v)
            square = v.square().sum(-1)
            worst_operator = max(worst_operator, float((f.norm(dim=-1) / (operator * square)).max()))
            worst_columns = max(worst_columns, float((f.norm(dim=-1) / (columns * square)).max()))
    ok = worst_operator <= 1 + 1e-12 and worst_columns <= 1 + 1e-12 and columns_tighter
    return ok, (f"real SwiGLU: max ||f|| / (||W_d|| ||W_g|| ||W_u|| ||v||^2) = {worst_operator:.4f}, "
                f"column-norm form {worst_columns:.4f} (never looser)")


@check("depth.norm_output_bounds")
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
        "LNS l=4": float((rms_norm(h, gamma) / 2).norm(dim=-1).max()) / (g_max * root_d / 2),
        "DyT": float(dyt(h, 0.5, gamma, beta).norm(dim=-1).max()) / float((gamma.abs() + beta.abs()).norm()),
        "Derf": float(derf(h, 0.5, 0.0, gamma, beta).norm(dim=-1).max()) / float((gamma.abs() + beta.abs()).norm()),
    }
    ok = all(r <= 1 + 8 * d * U64 for r in ratios.values())
    return ok, "max ||norm output|| / bound: " + ", ".join(f"{k} {v:.4f}" for k, v in ratios.items())


@check("depth.estimate_does_not_bound_argument")
def _depth_estimate_counterexample() -> CheckResult:
    # A bhyt stack on small inputs: at position 0 attention copies u_0, so the increment is
    # T times the assumed one and M₂ < m(h'); the second norm's argument exceeds λ₂/κ.
    config = StackConfig(scheme="bhyt", depth=2, width=64, heads=4, seq_len=64, init_std=0.2, dtype="float64")
    stack = Stack(config, seed=0)
    x_in = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1e-3
    table = stack.trace(x_in)
    rows = table[(table.sublayer == "attn") & (table.position == 0)]
    ratio = float(rows.estimate_ratio.min())
    arg_rows = table[(table.sublayer == "mlp") & (table.position == 0)]
    argument_excess = float(arg_rows.arg_rms.max()) / (config.lam_post / config.kappa)
    ok = ratio < 1 and argument_excess > 1
    return ok, (f"bhyt stack, inputs rms 1e-3, position 0: min M2/m(h') = {ratio:.3f}; "
                f"second norm's rms(z) / (lambda2/kappa) = {argument_excess:.2f}")


@check("depth.dyt_bound_is_saturated")
def _depth_dyt_saturated() -> CheckResult:
    d = 256
    h = torch.randn(1, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ratios = [float(dyt(h * scale, 0.5).norm() / math.sqrt(d)) for scale in (1e-2, 1.0, 1e2, 1e4)]
    saturated = [float((dyt(h * scale, 0.5).abs() >= math.tanh(1.0)).double().mean()) for scale in (1e-2, 1e4)]
    ok = ratios == sorted(ratios) and ratios[-1] > 0.99 and ratios[0] < 0.01 and saturated[1] > 0.99
    return ok, ("DyT (alpha 0.5): ||u|| / sqrt(d) = " + ", ".join(f"{r:.4f}" for r in ratios)
                + f" at input scales 1e-2..1e4; fraction |alpha h| >= 1 at 1e4: {saturated[1]:.3f}")


@check("depth.constant_ratios")
def _depth_constant_ratios() -> CheckResult:
    g, d, ratio, attn_c, mlp_c = sp.symbols("g d r A F", positive=True)
    rms_attn = attn_c * g * sp.sqrt(d) / sp.sqrt(d)
    rms_mlp = mlp_c * (g * sp.sqrt(d)) ** 2 / sp.sqrt(d)
    bhyt_attn = attn_c * g * ratio * sp.sqrt(d) / sp.sqrt(d)
    bhyt_mlp = mlp_c * (g * ratio * sp.sqrt(d)) ** 2 / sp.sqrt(d)
    ok = is_zero(bhyt_attn / rms_attn - ratio) and is_zero(bhyt_mlp / rms_mlp - ratio**2)
    return ok, "per-layer constants: BHyT/RMSNorm = lambda/kappa (attention), (lambda/kappa)^2 (MLP)"


@check("depth.estimate_cauchy_schwarz")
def _depth_estimate_cauchy_schwarz() -> CheckResult:
    # m(h') ≤ (s + A)² with s = rms(h), and M₂ + ε = s² + b for the reference estimate:
    # (s² + b)(1 + A²/b) − (s + A)² is the square (sA/√b − √b)², so the ratio is ≤ 1 + A²/b.
    s_, amplitude, b = sp.symbols("s A b", positive=True)
    gap = (s_**2 + b) * (1 + amplitude**2 / b) - (s_ + amplitude) ** 2
    ok = is_zero(gap - (s_ * amplitude / sp.sqrt(b) - sp.sqrt(b)) ** 2)
    # attained at s = b/A, where the square vanishes
    ok = ok and is_zero(gap.subs(s_, b / amplitude))
    return ok, "(s^2 + b)(1 + A^2/b) - (s + A)^2 = (sA/sqrt(b) - sqrt(b))^2 >= 0, zero at s = b/A"
