"""Checks of proofs/gaussian_typical_case.md."""

from __future__ import annotations

import math

import sympy as sp
import torch

from ...numerics import gaussian
from ...numerics.norms import (
    KAPPA,
    bhyt_argument,
)
from .fixtures import is_zero
from .registry import CheckResult, check


@check("gaussian.tail_formula")
def _gaussian_tail_formula() -> CheckResult:
    v, t, sigma = sp.symbols("v t sigma", positive=True)
    density = sp.exp(-(v**2) / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))
    tail = 2 * sp.integrate(density, (v, t, sp.oo))
    ok = is_zero(tail.rewrite(sp.erfc) - sp.erfc(t / (sigma * sp.sqrt(2))))
    return ok, "P(|X| >= t) = erfc(t/(sigma sqrt 2)) for X ~ N(0, sigma^2), by symbolic integration"


@check("gaussian.large_width_fraction")
def _gaussian_large_width() -> CheckResult:
    # Binomial standard error of a fraction over d coordinates: sqrt(p(1−p)/d); allow 4 SE
    # plus the finite-d spread of rms(h) (relative O(1/sqrt(2d)), shifting p by ≤ |p'| t/sqrt(2d)).
    d, lam = 2**16, 2.0
    h = torch.randn(1, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 3.7
    z = bhyt_argument(h, lam, KAPPA)
    results = []
    ok = True
    for t in (0.1, 0.2, 0.3):
        observed = float((z.abs() >= t).double().mean())
        predicted = float(gaussian.gaussian_tail(t, lam / KAPPA))
        sigma = lam / KAPPA
        slope = 2 * t / sigma * math.exp(-(t**2) / (2 * sigma**2)) / math.sqrt(2 * math.pi)
        allowed = 4 * math.sqrt(predicted * (1 - predicted) / d) + 4 * slope / math.sqrt(2 * d)
        ok &= abs(observed - predicted) <= allowed
        results.append(f"t={t}: {observed:.4f} vs erfc {predicted:.4f}")
    return ok, "d = 65536 Gaussian token: " + "; ".join(results)


@check("gaussian.typical_vs_distribution_free")
def _gaussian_vs_free() -> CheckResult:
    lam = 2.0
    rows = []
    ok = True
    for t in (1.0, 2.0, 3.0):
        typical = float(gaussian.gaussian_tail(t, lam / KAPPA))
        free = min(1.0, (lam / (KAPPA * t)) ** 2)
        ok &= typical < free
        rows.append(f"t={t:g}: erfc {typical:.3g} vs min(1,(lam/(kappa t))^2) {free:.3g}")
    return ok, "lambda=2, kappa=10: " + "; ".join(rows)
