"""Checks of proofs/bounded_argument.md."""

from __future__ import annotations

import math

import sympy as sp
import torch

from ...numerics.norms import (
    bhyt_argument,
)
from ..symbolic import (
    eps_sym,
    kappa_sym,
    lam_sym,
)
from .fixtures import adversarial_tokens, is_zero
from .registry import U64, CheckResult, check


@check("argument.mean_square_identity", kind="package",
       statements={'bounded_argument.md': (1,), 'saturation_bound.md': (1,)})
def _argument_mean_square_identity() -> CheckResult:
    d = 4
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    estimate = sp.Symbol("M", positive=True)
    z = lam_sym * h / (kappa_sym * sp.sqrt(estimate + eps_sym))
    m = sum(c**2 for c in h) / d
    symbolic_ok = is_zero(sum(c**2 for c in z) / d - (lam_sym / kappa_sym) ** 2 * m / (estimate + eps_sym))
    # norms.bhyt_argument against the identity's right-hand side written from scratch, on
    # adversarial tokens (scales 1e-30..1e30), exact M and estimates M = (1e-3..1e3) m(h), ε = 1e-6
    # and 0. float64: mean(z²) carries O(d) roundings, allow 16 d u relative.
    worst = 0.0
    for d_numeric in (3, 64):
        tokens = adversarial_tokens(d_numeric, seed=40 + d_numeric)
        m_numeric = tokens.square().mean(-1, keepdim=True)
        for lam, kappa in ((2.0, 10.0), (-3.0, 7.0)):
            for factor in (None, 1e-3, 1.0, 1e3):
                for eps in (1e-6, 0.0):
                    estimate_numeric = None if factor is None else m_numeric * factor
                    z_numeric = bhyt_argument(tokens, lam, kappa, mean_square=estimate_numeric, eps=eps)
                    used = m_numeric if factor is None else estimate_numeric
                    expected = (lam / kappa) ** 2 * m_numeric / (used + eps)
                    worst = max(worst, float(((z_numeric.square().mean(-1, keepdim=True) - expected).abs() / expected).max()))
    ok = symbolic_ok and worst <= 16 * 64 * U64
    return ok, (f"mean(z^2) = (lambda/kappa)^2 m(h)/(M + eps) symbolically (d = 4), and norms.bhyt_argument matches it "
                f"on adversarial tokens with exact and estimated M: max rel. error {worst:.1e}")


@check("argument.exact_bounds_adversarial", kind="package", statements={'bounded_argument.md': (2, 3)})
def _argument_exact_bounds() -> CheckResult:
    # float64: z is formed with O(d) roundings, so allow 8 d u relative.
    worst_mean, worst_max = 0.0, 0.0
    for d in (1, 7, 64, 1024):
        h = adversarial_tokens(d, seed=d)
        for lam, kappa in ((2.0, 10.0), (3.0, 10.0), (8.0, 1.0)):
            z = bhyt_argument(h, lam, kappa)
            ratio = lam / kappa
            worst_mean = max(worst_mean, float((z.square().mean(-1) / ratio**2).max()))
            worst_max = max(worst_max, float((z.abs().amax(-1) / (ratio * math.sqrt(d))).max()))
    tolerance = 1 + 8 * 1024 * U64
    ok = worst_mean <= tolerance and worst_max <= tolerance
    return ok, (f"adversarial tokens (d up to 1024, scales 1e-30..1e30): max mean(z^2)/(lam/kappa)^2 = {worst_mean:.6f}, "
                f"max |z_i| / ((lam/kappa) sqrt d) = {worst_max:.6f}")


@check("argument.one_hot_attains_max", kind="package", statements={'bounded_argument.md': (3,)})
def _argument_one_hot() -> CheckResult:
    d, lam, kappa = 256, 2.0, 10.0
    h = torch.zeros(1, d, dtype=torch.float64)
    h[0, 3] = 1.0
    z_max = float(bhyt_argument(h, lam, kappa).abs().max())
    bound = lam / kappa * math.sqrt(d)
    # With m = 1/d the ε-shrinkage is sqrt(m/(m+ε)) = 1 − O(dε).
    predicted = bound * math.sqrt((1 / d) / (1 / d + 1e-6))
    ok = abs(z_max - predicted) <= 8 * U64 * bound and z_max <= bound
    return ok, f"one-hot, d = 256: max|z| = {z_max:.9f} vs bound (lambda/kappa) sqrt d = {bound:.9f}"
