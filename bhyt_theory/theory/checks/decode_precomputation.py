"""Checks of proofs/decode_precomputation.md (claim C9)."""

from __future__ import annotations

import numpy as np
import torch

from ...numerics.norms import (
    bhyt,
    bhyt_decode,
    estimate_post_attention_mean_square,
    mean_square,
    precompute_decode_constants,
)
from .registry import CheckResult, check

DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def _ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance in representable values of their dtype, from the bit patterns (independent of
    ``experiments.decode.ulp_distance``, which the experiment uses)."""
    bits = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16,
            torch.float64: torch.int64}[a.dtype]
    width = torch.iinfo(bits).bits

    def key(x: torch.Tensor) -> np.ndarray:
        raw = x.contiguous().view(bits).long().numpy().astype(object)
        return np.array([v if v >= 0 else -(v + 2 ** (width - 1)) for v in raw.ravel()], dtype=object)

    return torch.tensor(np.abs(key(a) - key(b)).astype(np.int64))


def _cases(dtype: torch.dtype, seed: int):
    """Post-attention states, m₁, c_attn, λ₁, λ₂, γ₂ and κ held as a model of ``dtype`` holds them;
    the increment c_attn λ₁²/κ² spans 1e-3 … 1e3 times m₁ so it moves M₂."""
    generator = torch.Generator().manual_seed(seed)
    for scale in (1e-3, 1.0, 30.0):
        h_in = torch.randn(3, 16, 64, generator=generator).to(dtype) * scale
        h_after = h_in + torch.randn(3, 16, 64, generator=generator).to(dtype) * scale
        m1 = mean_square(h_in)
        lam_in, lam_post = (torch.tensor(float(v)).to(dtype) for v in torch.empty(2).uniform_(-4, 4, generator=generator))
        gamma = (1 + 0.3 * torch.randn(64, generator=generator)).to(dtype)
        kappa = float(torch.empty(()).uniform_(3, 20, generator=generator))
        c_attn = torch.tensor(float(m1.mean()) * 10.0 ** float(torch.empty(()).uniform_(-3, 3, generator=generator)),
                              dtype=torch.float64) / (lam_in.double() / kappa) ** 2
        yield h_after, m1, c_attn, lam_in, lam_post, gamma, kappa


def _unfused(h_after, m1, c_attn, lam_in, lam_post, gamma, kappa):
    return bhyt(h_after, lam_post, kappa, gamma, estimate_post_attention_mean_square(m1, c_attn, lam_in, kappa))


def _fast(order, h_after, m1, c_attn, lam_in, lam_post, gamma, kappa):
    return bhyt_decode(h_after, m1, precompute_decode_constants(c_attn, lam_in, lam_post, kappa, order), gamma)


U32 = 2.0**-24
"""Unit roundoff of float32, the statistics dtype of float32 and half-precision models."""


def _python_float_cases(dtype: torch.dtype, seed: int):
    """The cases of ``_cases`` with λ₁, λ₂ given as Python floats (doubles), as a caller holding
    λ outside a model passes them."""
    for h_after, m1, c_attn, lam_in, lam_post, gamma, kappa in _cases(dtype, seed):
        yield h_after, m1, c_attn, float(lam_in), float(lam_post), gamma, kappa


@check("decode.matched_bit_identical", kind="package", statements={"decode_precomputation.md": (1, 4)})
def _matched() -> CheckResult:
    # The matched order repeats every rounding of the unfused path: zero outputs may differ, for λ
    # held as a tensor of the model's dtype and for λ given as a Python float (a double) alike.
    differing, total = 0, 0
    for dtype in DTYPES:
        for seed in range(3):
            for cases in (_cases(dtype, seed), _python_float_cases(dtype, seed)):
                for case in cases:
                    fast, unfused = _fast("matched", *case), _unfused(*case)
                    differing += int((_ulps(fast, unfused) > 0).sum())
                    total += fast.numel()
    return differing == 0, (f"matched fast path vs unfused bhyt, float32/bfloat16/float16/float64, λ as tensors "
                            f"and as Python floats: {differing} of {total} outputs differ")


def _relative_in_u(fast: torch.Tensor, unfused: torch.Tensor) -> torch.Tensor:
    """(fast − unfused)/|unfused| in units of the float32 unit roundoff, over nonzero outputs."""
    a, b = fast.double(), unfused.double()
    keep = b != 0
    return ((a - b) / b.abs())[keep] / U32


@check("decode.fused_scale_ulp_bound", kind="package", statements={"decode_precomputation.md": (2, 4)})
def _fused() -> CheckResult:
    # Error model (proof, statement 2): the argument differs by at most 5u relatively (u = 2^-24),
    # tanh's relative condition number is ≤ 1, each side's tanh kernel adds at most 2 ulps ≤ 4u|v|
    # (the stated assumption on the kernel) and the γ product one rounding: |Δ| ≤ 15 u |v|. The
    # roundings are unbiased: the mean signed relative difference over the 27 648 outputs (432 tokens
    # sharing their per-token roundings) has a standard error below 5u/sqrt(432) ≈ 0.24u, so
    # |mean| ≤ 1u (4 standard errors); a systematic error of a few u in the argument fails it.
    worst, mean_sum, count, differing = 0.0, 0.0, 0, 0
    for seed in range(3):
        for case in _cases(torch.float32, seed):
            relative = _relative_in_u(_fast("fused_scale", *case), _unfused(*case))
            worst = max(worst, float(relative.abs().max()))
            mean_sum += float(relative.sum())
            count += relative.numel()
            differing += int((relative != 0).sum())
    mean = mean_sum / count
    ok = worst <= 15 and abs(mean) <= 1 and differing > 0
    return ok, (f"float32, fused per-token multiplier: {differing / count:.1%} of outputs differ, worst "
                f"{worst:.2f}u relatively (bound 15u), mean signed {mean:+.3f}u (bound ±1u); the order matters")


@check("decode.float64_constants_in_bfloat16", kind="package", statements={"decode_precomputation.md": (3, 4)})
def _float64_constants() -> CheckResult:
    # In bfloat16, λ/κ rounded to bfloat16 (unfused) and kept in float64 (fast) differ by up to
    # u = 2^-8 relatively; with tanh's condition ≤ 1 the bfloat16 outputs move by at most that shift
    # (≤ 1 ulp, since ulp(v) ≥ u|v|) plus 1 ulp of rounding: ≤ 2 ulps. In float32 the ratio λ₂/κ is
    # the same float32 number either way, and the increment b = c_attn λ₁²/κ² moves by at most
    # 3u relatively (statement 3: fl(λ/κ) squared and rounded); M₂ then moves by ≤ 3u and the
    # argument by ≤ 1.5u + the roundings of statement 2's model: outputs within 15u relatively.
    bf16, bf16_total, bf16_worst, f32_worst, b_worst, ratio_same = 0, 0, 0, 0.0, 0.0, True
    for seed in range(3):
        for case in _cases(torch.bfloat16, seed):
            ulps = _ulps(_fast("float64_constants", *case), _unfused(*case))
            bf16 += int((ulps > 0).sum())
            bf16_total += ulps.numel()
            bf16_worst = max(bf16_worst, int(ulps.max()))
        for case in _cases(torch.float32, seed):
            f32_worst = max(f32_worst, float(_relative_in_u(_fast("float64_constants", *case),
                                                            _unfused(*case)).abs().max()))
            c_attn, lam_in, lam_post, kappa = case[2], case[3], case[4], case[6]
            matched = precompute_decode_constants(c_attn, lam_in, lam_post, kappa, "matched")
            wide = precompute_decode_constants(c_attn, lam_in, lam_post, kappa, "float64_constants")
            b_worst = max(b_worst, float((wide.increment / matched.increment - 1).abs()) / U32)
            ratio_same &= bool(wide.ratio.to(torch.float32) == matched.ratio)
    ok = bf16 > 0 and bf16_worst <= 2 and f32_worst <= 15 and b_worst <= 3 and ratio_same
    return ok, (f"float64 constants: bfloat16 {bf16 / bf16_total:.1%} of outputs differ, max {bf16_worst} ulps "
                f"(bound 2); float32: λ₂/κ unchanged {ratio_same}, b moved ≤ {b_worst:.2f}u (bound 3u), "
                f"outputs ≤ {f32_worst:.2f}u relatively (bound 15u)")
