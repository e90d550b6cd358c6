"""Checks of proofs/backward_pass.md."""

from __future__ import annotations

import numpy as np
import torch

from ...numerics.inputs import InputSpec
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
    mean_field_gradient_gram,
    rank_one_norm,
)
from .registry import U64, CheckResult, check


def _block(seed: int, lam_in: float = 2.0, lam_post: float = 1.0, init_std: float = 0.3, width: int = 16,
           seq_len: int = 6):
    """A float64 ``bhyt`` block (GQA: 4 query heads on 2 KV heads, all distinct) with random γ₁, γ₂
    and a non-trivial c_attn: pairing a query head with the wrong KV head changes its output."""
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=4, kv_heads=2, seq_len=seq_len, mlp_width=24,
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
                f"radial sensitivity share {share:.3f} here (BHyT*: eps/(m + eps) = {1e-6 / (m1 + 1e-6):.1e})")


@check("backward.rank_one_norm_spectral", kind="package", statements={"backward_pass.md": (1,)})
def _rank_one() -> CheckResult:
    # theory.backward.rank_one_norm against the spectral norm (torch.linalg.matrix_norm, ord 2) of the
    # m₁-path factor obtained by autograd: ∂v_t/∂h_t with h' held fixed, i.e. v = γ₂ tanh(y(h', M₂(m₁(h)))).
    # Both sides are O(d) float64 operations on the same numbers: 64 d u relative. λ₂ of both signs
    # (a norm is never negative) and above κ; and the bound s₂ max|γ₂| sqrt(m(h') m₁)/(M₂+ε) ≥ it.
    worst, bound_excess, signs = 0.0, 0.0, []
    for seed, lam_in, lam_post in ((9, 2.0, 1.0), (10, -3.0, -0.7), (11, 15.0, -12.0)):
        block, generator = _block(seed, lam_in, lam_post)
        first, second = block.norm_attn, block.norm_mlp
        h = torch.randn(6, 16, generator=generator, dtype=torch.float64) * 0.3
        with torch.no_grad():
            h_after = h + block.attn(first(h[None]))[0]
        norms = rank_one_norm(block, h)
        signs.append(float(norms.min()))
        for t in range(h.shape[0]):
            def through_m2(x, t=t, block=block, first=first, second=second, h_after=h_after):
                m2 = estimate_post_attention_mean_square(mean_square(x), block.c_attn, first.lam.detach(), first.kappa)
                return second.gamma.detach() * torch.tanh(bhyt_argument(h_after[t], second.lam.detach(), second.kappa,
                                                                         m2, second.eps))
            jac = torch.autograd.functional.jacobian(through_m2, h[t])
            reference = float(torch.linalg.matrix_norm(jac, ord=2))
            worst = max(worst, abs(float(norms[t]) - reference) / reference)
            m1, m_after = float(mean_square(h[t])), float(mean_square(h_after[t]))
            b = float(block.c_attn) * (float(first.lam.detach()) / first.kappa) ** 2
            m2 = m1 + b
            s2 = abs(float(second.lam.detach())) / (second.kappa * (m2 + second.eps) ** 0.5)
            bound = s2 * float(second.gamma.detach().abs().max()) * (m_after * m1) ** 0.5 / (m2 + second.eps)
            bound_excess = max(bound_excess, float(norms[t]) / bound)
    ok = worst <= 64 * 16 * U64 and min(signs) > 0 and bound_excess <= 1 + 64 * 16 * U64
    return ok, (f"rank_one_norm vs ||d v_t/d h_t through M2||_2 by autograd, lambda2 in {{1, -0.7, -12}}: max rel. "
                f"error {worst:.1e}; smallest value {min(signs):.3e} (> 0); at most {bound_excess:.3f} of the bound")


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
    # B from the weights alone: query head k reads KV head k // (heads / kv_heads) (GQA groups of
    # consecutive query heads); W_V^j = rows j·d_h … of v_proj.weight transposed, W_O^k = columns of o_proj.
    w_v, w_o = attention.v_proj.weight.detach(), attention.o_proj.weight.detach()
    head_dim, group = w_o.shape[1] // attention.heads, attention.heads // attention.kv_heads
    b = sum(w_v[(k // group) * head_dim:(k // group + 1) * head_dim].T @ w_o[:, k * head_dim:(k + 1) * head_dim].T
            for k in range(attention.heads))
    assert torch.allclose(b, value_output_maps(w_v, w_o, attention.heads, attention.kv_heads).sum(0), rtol=1e-12)
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
    return ok, (f"real Attention (4 query heads on 2 KV heads), uniform causal, T = {length}: shared cotangent -> (H_T - H_s) c B^T and iid -> "
                f"P^T g B^T to {error:.1e}; at s = 0 the shared component is amplified {gain_ratio:.1f}x more than "
                f"an iid one")


@check("backward.mean_field_gradient_growth", kind="package", statements={"backward_pass.md": (3,)})
def _mean_field() -> CheckResult:
    # theory.backward.mean_field_gradient_gram (weight-free: forward mean field + the backward token-Gram
    # recursion) against the token Gram of back-propagated gradients, K̂[t, s] = mean ⟨g_t, g_s⟩/d at the
    # input of real stacks (depth 16, width 64, T 16, 6 seeds × 4 sequences, L = Σ R ⊙ h_L), compared as
    # whole T × T matrices. Error model: ‖K̂ − K‖_F ≤ 3 ‖se‖_F (Monte Carlo, se per entry over seeds)
    # + 0.25 ‖K − I‖_F (the dropped MLP term, softmax derivative and O(1/d) terms: the depth-64 table
    # has measured/predicted 0.82–1.01). BHyT at λ₁ = κ, where E sech⁴ = 0.45 matters. Swapping PᵀKP for
    # PKPᵀ moves the mass from the first tokens to the last (≈ 1.0 ‖K − I‖_F off) and dropping E sech⁴
    # doubles BHyT's excess (≈ 0.98): both fail.
    lines, ok = [], True
    for scheme, lam_in in (("rmsnorm", 2.0), ("lns", 2.0), ("bhyt", 10.0)):
        config = StackConfig(scheme=scheme, depth=16, width=64, heads=4, seq_len=16, init_std=0.02, dtype="float64",
                             lam_in=lam_in)
        predicted = mean_field_gradient_gram(config)[0]
        grams = []
        for seed in range(6):
            stack = Stack(config, seed)
            x = (torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
                 * InputSpec().std).requires_grad_()  # the input variance the prediction assumes
            out = stack.residual(x)
            projection = torch.randn(out.shape, generator=torch.Generator().manual_seed(200 + seed), dtype=torch.float64)
            (out * projection).sum().backward()
            grams.append(torch.einsum("ntd,nsd->ts", x.grad, x.grad).numpy() / (4 * 64))
        measured = np.mean(grams, axis=0)
        se = np.std(grams, axis=0, ddof=1) / np.sqrt(len(grams))
        excess = np.linalg.norm(predicted - np.eye(16))
        error = np.linalg.norm(measured - predicted)
        allowed = 3 * np.linalg.norm(se) + 0.25 * excess
        ok &= bool(error <= allowed) and excess > 0
        lines.append(f"{scheme} {error / excess:.2f} (allowed {allowed / excess:.2f})")
    return ok, ("token Gram of dL/dh_0, measured vs mean field, ||K_meas - K||_F / ||K - I||_F: " + "; ".join(lines))
