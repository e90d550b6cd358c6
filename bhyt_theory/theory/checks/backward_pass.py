"""Checks of proofs/backward_pass.md."""

from __future__ import annotations

import torch

from ...numerics.model import Stack, StackConfig, build_block
from ...numerics.norms import (
    bhyt_argument,
    estimate_post_attention_mean_square,
    mean_square,
    value_output_maps,
)
from ..backward import (
    bhyt_block_jacobian,
    lambda_gradients,
    mean_field_gradient_growth,
    rank_one_norm,
)
from .registry import U64, CheckResult, check


def _block(seed: int, lam_in: float = 2.0, lam_post: float = 1.0, init_std: float = 0.3, width: int = 16,
           seq_len: int = 6):
    """A float64 ``bhyt`` block (GQA 2/1 heads) with random γ₁, γ₂ and a non-trivial c_attn."""
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=2, kv_heads=1, seq_len=seq_len, mlp_width=24,
                         lam_in=lam_in, lam_post=lam_post, init_std=init_std, dtype="float64")
    block = build_block(config, 0, seed)
    generator = torch.Generator().manual_seed(seed + 50)
    with torch.no_grad():
        for norm in (block.norm_attn, block.norm_mlp):
            norm.gamma.copy_(1 + 0.5 * torch.randn(width, generator=generator, dtype=torch.float64))
    return block, generator


@check("backward.block_jacobian_autograd", kind="package", statements={'backward_pass.md': (1,)})
def _jacobian() -> CheckResult:
    # theory.backward.bhyt_block_jacobian (norm Jacobians in closed form, the m₁ path, sublayer
    # Jacobians) vs torch autograd through Block.forward. Each entry sums ≤ T·d products of terms
    # bounded by max|J|, so rounding is ≤ 4 T d u max|J| (u = 2⁻⁵³).
    worst, path_share = 0.0, 0.0
    for seed, lam_in, lam_post, scale in ((0, 2.0, 1.0, 0.5), (1, -3.0, 12.0, 1e-3), (2, 15.0, -0.7, 30.0)):
        block, generator = _block(seed, lam_in, lam_post)
        h = torch.randn(6, 16, generator=generator, dtype=torch.float64) * scale
        closed = bhyt_block_jacobian(block, h)
        auto = torch.autograd.functional.jacobian(lambda x, b=block: b(x[None])[0], h)
        scale_j = float(auto.abs().max())
        worst = max(worst, float((closed["total"] - auto).abs().max()) / (4 * 6 * 16 * U64 * scale_j))
        path_share = max(path_share, float(closed["mean_square_path"].abs().max()) / scale_j)
    ok = worst <= 1.0 and path_share > 1e-3
    return ok, (f"closed-form bhyt block Jacobian vs autograd (lambda of both signs and > kappa, random gamma, "
                f"input rms 1e-3..30): max error / (4 T d u max|J|) = {worst:.3f}; the m1 path's largest entry "
                f"is {path_share:.3f} of max|J| (dropping it fails)")


@check("backward.second_norm_radial_sensitivity", kind="package", statements={'backward_pass.md': (1,)})
def _radial() -> CheckResult:
    # With no attention output (W_O = 0, so h' = h), statement 1's consequence: the MLP-side argument
    # y moves along h by s₂ (b + ε)/(M₂ + ε) · h per unit radial step, b = c_attn λ₁²/κ² — where the
    # exact-M norm (BHyT*) moves by s₂ ε/(m + ε) · h. Autograd (float64, 64u relative) vs the formula.
    block, generator = _block(3)
    with torch.no_grad():
        block.attn.o_proj.weight.zero_()  # h' = h; c_attn (the buffer) keeps the weights' earlier value
    h = torch.randn(1, 16, generator=generator, dtype=torch.float64) * 0.05
    first, second = block.norm_attn, block.norm_mlp

    def argument(x):  # the MLP-side argument of the block at h' = h (zero attention output)
        m1 = mean_square(x)
        m2 = estimate_post_attention_mean_square(m1, block.c_attn, first.lam.detach(), first.kappa)
        return bhyt_argument(x, second.lam.detach(), second.kappa, m2, second.eps)

    _, along = torch.autograd.functional.jvp(argument, h, h)
    m1 = float(mean_square(h))
    b = float(block.c_attn) * (float(first.lam.detach()) / first.kappa) ** 2
    s2 = float(second.lam.detach()) / (second.kappa * (m1 + b + second.eps) ** 0.5)
    expected = s2 * (b + second.eps) / (m1 + b + second.eps) * h
    error = float((along - expected).abs().max() / expected.abs().max())
    share = (b + second.eps) / (m1 + b + second.eps)
    ok = error <= 64 * U64
    return ok, (f"h' = h: d y/d h along h = s2 (b + eps)/(M2 + eps) h to {error:.1e} relative; "
                f"radial sensitivity share {share:.3f} here (BHyT*: eps/(m + eps) = {1e-6 / (m1 + 1e-6):.1e}); "
                f"rank-one factor norm {float(rank_one_norm(block, h)[0]):.3f}")


@check("backward.lambda_gradients_autograd", kind="package", statements={'backward_pass.md': (2,)})
def _lambdas() -> CheckResult:
    # theory.backward.lambda_gradients (closed form with the sublayers' vector-Jacobian products) vs
    # autograd of ⟨R, Block.forward(h)⟩ with respect to λ₁ and λ₂; 1e3 u relative to the largest
    # term's scale (the closed form and autograd sum the same O(T d) terms in different orders).
    worst = 0.0
    cases = ((4, 2.0, 1.0, 1.0), (5, -3.0, 3.0, 1e-2), (6, 14.0, 0.0, 10.0), (7, 0.0, -2.0, 0.3))
    for seed, lam_in, lam_post, scale in cases:
        block, generator = _block(seed, lam_in, lam_post)
        h = torch.randn(6, 16, generator=generator, dtype=torch.float64) * scale
        cotangent = torch.randn(6, 16, generator=generator, dtype=torch.float64)
        closed = lambda_gradients(block, h, cotangent)
        block.zero_grad()
        (block(h[None])[0] * cotangent).sum().backward()
        auto = {"lam_in": float(block.norm_attn.lam.grad), "lam_post": float(block.norm_mlp.lam.grad)}
        size = max(abs(auto["lam_in"]), abs(auto["lam_post"]), 1e-300)
        worst = max(worst, max(abs(closed[k] - auto[k]) for k in auto) / (1e3 * U64 * size))
    ok = worst <= 1.0
    return ok, (f"dL/dlambda1 (through u and through M2) and dL/dlambda2 in closed form vs autograd, lambda in "
                f"{{-3, 0, 2, 14}} x {{-2, 0, 1, 3}}: max error / (1e3 u scale) = {worst:.3f}")


@check("backward.causal_attention_transpose", kind="package", statements={'backward_pass.md': (3,)})
def _transpose() -> CheckResult:
    # Statement 3's mechanism on a real Attention with zero query/key weights (uniform causal rows):
    # its vector-Jacobian product maps a cotangent c shared by every token to (H_T − H_s) c Bᵀ at token s
    # (H the harmonic numbers, B = Σ_k W_V^k W_O^k), and an iid cotangent g to Σ_{t≥s} g_t Bᵀ/(t+1).
    block, generator = _block(8, seq_len=12)
    attention = block.attn
    with torch.no_grad():
        attention.q_proj.weight.zero_()
        attention.k_proj.weight.zero_()
    maps = value_output_maps(attention.v_proj.weight, attention.o_proj.weight, attention.heads, attention.kv_heads)
    b = maps.sum(0)
    length = 12
    u = torch.randn(1, length, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    shared = torch.randn(16, generator=generator, dtype=torch.float64).expand(1, length, 16)
    iid = torch.randn(1, length, 16, generator=generator, dtype=torch.float64)
    out = attention(u)
    (g_shared,) = torch.autograd.grad(out, u, shared, retain_graph=True)
    (g_iid,) = torch.autograd.grad(out, u, iid)
    harmonic = torch.cumsum(1.0 / torch.arange(1, length + 1, dtype=torch.float64), 0)
    tails = harmonic[-1] - torch.cat([torch.zeros(1, dtype=torch.float64), harmonic[:-1]])  # Σ_{t≥s} 1/(t+1)
    expected_shared = tails[:, None] * (shared[0] @ b.T)
    weights = torch.tril(torch.ones(length, length, dtype=torch.float64)) / torch.arange(1, length + 1)[:, None]
    expected_iid = weights.T @ (iid[0] @ b.T)
    error = max(float((g_shared[0] - expected_shared).abs().max() / expected_shared.abs().max()),
                float((g_iid[0] - expected_iid).abs().max() / expected_iid.abs().max()))
    gain_ratio = float(tails[0] ** 2 / (1.0 / torch.arange(1, length + 1) ** 2).sum())
    ok = error <= 1e3 * U64
    return ok, (f"real Attention, uniform causal, T = {length}: shared cotangent -> (H_T - H_s) c B^T and iid -> "
                f"P^T g B^T to {error:.1e}; at s = 0 the shared component is amplified {gain_ratio:.1f}x more than "
                f"an iid one")


@check("backward.mean_field_gradient_growth", kind="package", statements={'backward_pass.md': (3,)})
def _mean_field() -> CheckResult:
    # theory.backward.mean_field_gradient_growth (weight-free: forward mean field + the backward
    # token-Gram recursion) vs backpropagation through real stacks (depth 16, width 64, T 16, 6 seeds ×
    # 4 sequences, L = Σ R ⊙ h_L): |measured mean − prediction| ≤ 3 standard errors over seeds plus 10 %
    # of the predicted excess growth (the recursion drops the MLP term, which rescales token pairs
    # without mixing tokens, the softmax derivative and O(1/d) fluctuations). Dropping the token
    # correlations of the gradient (isotropic cotangent) would predict 1.5 for RMSNorm: it fails.
    lines, ok = [], True
    for scheme in ("rmsnorm", "lns", "bhyt"):
        config = StackConfig(scheme=scheme, depth=16, width=64, heads=4, seq_len=16, init_std=0.02, dtype="float64")
        predicted = float(mean_field_gradient_growth(config).mean_field_growth.iloc[0])
        measured = []
        for seed in range(6):
            stack = Stack(config, seed)
            x = (torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
                 * 0.02).requires_grad_()
            out = stack.residual(x)
            projection = torch.randn(out.shape, generator=torch.Generator().manual_seed(200 + seed), dtype=torch.float64)
            (out * projection).sum().backward()
            measured.append(float(x.grad.norm() / projection.norm()))
        mean = sum(measured) / len(measured)
        se = (sum((v - mean) ** 2 for v in measured) / (len(measured) - 1) / len(measured)) ** 0.5
        ok &= abs(mean - predicted) <= 3 * se + 0.1 * (predicted - 1)
        lines.append(f"{scheme} {mean:.3f} +- {se:.3f} vs {predicted:.3f}")
    return ok, "||dL/dh_0|| / ||dL/dh_16||, measured (mean +- se, 6 seeds) vs mean field: " + "; ".join(lines)
