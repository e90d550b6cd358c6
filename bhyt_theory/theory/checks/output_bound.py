"""Checks of proofs/output_bound.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ...numerics.norms import (
    KAPPA,
    bhyt,
    bhyt_argument,
    mean_square,
)
from ..symbolic import (
    x,
)
from .fixtures import adversarial_tokens, is_zero
from .registry import U64, CheckResult, check


@check("output.tanh_min_inequality", kind="lemma")
def _output_tanh_min() -> CheckResult:
    # x − tanh x has derivative tanh² x ≥ 0 and vanishes at 0, so tanh x ≤ x for x ≥ 0.
    derivative_ok = is_zero(sp.diff(x - sp.tanh(x), x) - sp.tanh(x) ** 2)
    grid = np.linspace(-50, 50, 200_001)
    numeric_ok = bool(np.all(np.abs(np.tanh(grid)) <= np.minimum(1.0, np.abs(grid))))
    return derivative_ok and numeric_ok, "d/dx (x - tanh x) = tanh^2 x >= 0; |tanh x| <= min(1, |x|) on a 2e5-point grid"


@check("output.rms_bound_adversarial", kind="package", statements={'output_bound.md': (2, 3), 'depth_bound.md': (1,)})
def _output_rms_bound() -> CheckResult:
    rng = np.random.default_rng(5)
    worst_exact, worst_estimate = 0.0, 0.0
    for d in (8, 128):
        h = adversarial_tokens(d, seed=300 + d)
        gamma = torch.tensor(rng.standard_normal(d) * 3)
        m = mean_square(h)
        for lam in (1.0, 3.0, 30.0):
            u = bhyt(h, lam, gamma=gamma)
            bound = gamma.abs().max() * min(1.0, lam / KAPPA)
            worst_exact = max(worst_exact, float((u.square().mean(-1).sqrt() / bound).max()))
            for factor in (0.05, 1.0, 20.0):
                v = bhyt(h, lam, gamma=gamma, mean_square=m * factor)
                bound_m = gamma.abs().max() * torch.clamp(lam / KAPPA * torch.sqrt(1 / torch.tensor(factor)), max=1.0)
                worst_estimate = max(worst_estimate, float((v.square().mean(-1).sqrt() / bound_m).max()))
    tolerance = 1 + 8 * 128 * U64
    ok = worst_exact <= tolerance and worst_estimate <= tolerance
    return ok, (f"rms(u) / (max|gamma| min(1, lam/kappa)) <= {worst_exact:.4f}; "
                f"under M = (0.05..20) m: rms(u) / bound <= {worst_estimate:.4f}")


@check("output.elementwise_bound", kind="package", statements={"output_bound.md": (1,)})
def _output_elementwise() -> CheckResult:
    # norms.bhyt against |γ_i| min(1, |z_i|) with z from norms.bhyt_argument, on adversarial tokens,
    # λ of both signs and above κ, exact and estimated M. The output is γ·tanh(z) rounded once
    # more than z: allow 4u relative above the bound. Equality |u_i| = |γ_i| |z_i| to first order
    # as z → 0 makes the bound sharp, so the check also asserts that it is approached.
    rng = np.random.default_rng(17)
    worst, closest = 0.0, math.inf
    for d in (8, 128):
        h = adversarial_tokens(d, seed=310 + d)
        gamma = torch.tensor(rng.standard_normal(d) * 3)
        for lam in (-25.0, -0.3, 0.01, 3.0, 30.0):
            for estimate in (None, mean_square(h) * 0.05, mean_square(h) * 20.0):
                u = bhyt(h, lam, gamma=gamma, mean_square=estimate)
                z = bhyt_argument(h, lam, mean_square=estimate)
                bound = gamma.abs() * torch.clamp(z.abs(), max=1.0)
                keep = bound > 0
                ratio = u.abs()[keep] / bound[keep]
                worst = max(worst, float(ratio.max()))
                closest = min(closest, float((1 - ratio).min()))
    ok = worst <= 1 + 4 * U64 and closest < 1e-6
    return ok, f"|u_i| / (|gamma_i| min(1, |z_i|)) <= {worst:.16f}; sharp to {closest:.1e}"


@check("output.small_ratio_tightness", kind="package", statements={'output_bound.md': (2,)})
def _output_tightness() -> CheckResult:
    h = torch.tensor([[1.0, -1.0] * 32], dtype=torch.float64)
    ratios = []
    for lam in (2.0, 0.2, 0.02):
        u = bhyt(h, lam, eps=0.0)
        ratios.append(float(u.square().mean().sqrt() / (lam / KAPPA)))
    # rms(u)/(λ/κ) = tanh(λ/κ)/(λ/κ) = 1 − (λ/κ)²/3 + …
    ok = all(abs(r - math.tanh(lam / KAPPA) / (lam / KAPPA)) < 1e-14 for r, lam in zip(ratios, (2.0, 0.2, 0.02)))
    ok = ok and ratios[0] < ratios[1] < ratios[2] < 1
    return ok, "h = (+-1): rms(u)/(lambda/kappa) = " + ", ".join(f"{r:.6f}" for r in ratios) + " for lambda = 2, 0.2, 0.02"
