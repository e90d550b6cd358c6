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


@check("decode.matched_bit_identical")
def _matched() -> CheckResult:
    # The matched order repeats every rounding of the unfused path: zero outputs may differ.
    differing, total = 0, 0
    for dtype in DTYPES:
        for seed in range(3):
            for case in _cases(dtype, seed):
                fast, unfused = _fast("matched", *case), _unfused(*case)
                differing += int((_ulps(fast, unfused) > 0).sum())
                total += fast.numel()
    return differing == 0, f"matched fast path vs unfused bhyt, float32/bfloat16/float16/float64: {differing} of {total} outputs differ"


@check("decode.fused_scale_ulp_bound")
def _fused() -> CheckResult:
    # Error model (proof, statement 2): the argument differs by at most 5u relatively (u the
    # unit roundoff of float32), tanh's relative condition number is ≤ 1, tanh and the γ product add
    # at most 2 + 1 roundings on each side: |Δ| ≤ 11 u |v| ≤ 11 ulp(v), one more for a binade crossing.
    worst, differing, total = 0, 0, 0
    for seed in range(3):
        for case in _cases(torch.float32, seed):
            ulps = _ulps(_fast("fused_scale", *case), _unfused(*case))
            worst = max(worst, int(ulps.max()))
            differing += int((ulps > 0).sum())
            total += ulps.numel()
    ok = worst <= 12 and differing > 0
    return ok, (f"float32, fused per-token multiplier: {differing / total:.1%} of outputs differ, "
                f"max {worst} ulps (bound 12); the order of operations matters")


@check("decode.float64_constants_in_bfloat16")
def _float64_constants() -> CheckResult:
    # In bfloat16, λ/κ rounded to bfloat16 (unfused) and kept in float64 (fast) differ by up to
    # u = 2^-8 relatively; with tanh's condition ≤ 1 the bfloat16 outputs move by at most that shift
    # (≤ 1 ulp, since ulp(v) ≥ u|v|) plus 1 ulp of rounding: ≤ 2 ulps. In float32 the same constants change λ/κ
    # not at all (the float64 scalar is rounded to float32 when it meets x) and M₂ by ≤ 2^-23
    # relatively: a few ulps at most (the ≤ 12 ulp model of the fused check).
    bf16, bf16_total, bf16_worst, f32_worst = 0, 0, 0, 0
    for seed in range(3):
        for case in _cases(torch.bfloat16, seed):
            ulps = _ulps(_fast("float64_constants", *case), _unfused(*case))
            bf16 += int((ulps > 0).sum())
            bf16_total += ulps.numel()
            bf16_worst = max(bf16_worst, int(ulps.max()))
        for case in _cases(torch.float32, seed):
            f32_worst = max(f32_worst, int(_ulps(_fast("float64_constants", *case), _unfused(*case)).max()))
    ok = bf16 > 0 and bf16_worst <= 2 and f32_worst <= 12
    return ok, (f"float64 constants: bfloat16 {bf16 / bf16_total:.1%} of outputs differ, max {bf16_worst} ulps "
                f"(bound 2); float32 max {f32_worst} ulps (bound 12)")
