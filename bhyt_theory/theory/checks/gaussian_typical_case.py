"""Checks of proofs/gaussian_typical_case.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
from scipy import stats

from ...numerics import gaussian
from ...numerics.inputs import InputSpec
from ...numerics.norms import (
    KAPPA,
    bhyt_argument,
)
from ...numerics.probes import saturated_fraction
from ..bounds import (
    gaussian_saturated_fraction,
    gaussian_saturated_fraction_finite_width,
    saturated_fraction_bound,
)
from .fixtures import is_zero
from .registry import CheckResult, check

# The table of the proof's statement (λ = 2, κ = 10), to the digits printed there.
STATED_TABLE = {1.0: (5.73e-7, 0.04), 2.0: (1.52e-23, 0.01), 3.0: (7.34e-51, 0.00444)}
# The finite-width table of the proof's statement 2: (λ, t, d) → E s_t, to 3 significant digits.
STATED_FINITE_WIDTH = {
    (2.0, 1.0, 64): 2.62e-8, (2.0, 1.0, 256): 3.15e-7, (2.0, 1.0, 1024): 4.98e-7, (2.0, 1.0, 2048): 5.34e-7,
    (2.0, 2.0, 256): 2.97e-29, (2.0, 2.0, 1024): 1.18e-24,
    (3.0, 1.0, 64): 5.55e-4, (3.0, 1.0, 256): 7.78e-4, (3.0, 1.0, 1024): 8.38e-4, (3.0, 1.0, 2048): 8.48e-4,
    (3.0, 2.0, 256): 3.25e-12, (3.0, 2.0, 1024): 1.63e-11,
    (2.0, 0.5, 16): 7.30e-3, (3.0, 0.5, 16): 9.62e-2,
}


@check("gaussian.tail_formula", kind="lemma")
def _gaussian_tail_formula() -> CheckResult:
    v, t, sigma = sp.symbols("v t sigma", positive=True)
    density = sp.exp(-(v**2) / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))
    tail = 2 * sp.integrate(density, (v, t, sp.oo))
    ok = is_zero(tail.rewrite(sp.erfc) - sp.erfc(t / (sigma * sp.sqrt(2))))
    return ok, "P(|X| >= t) = erfc(t/(sigma sqrt 2)) for X ~ N(0, sigma^2), by symbolic integration"


@check("gaussian.large_width_fraction", kind="package", statements={'gaussian_typical_case.md': (1,)})
def _gaussian_large_width() -> CheckResult:
    # Binomial standard error of a fraction over d coordinates: sqrt(p(1−p)/d); allow 4 SE
    # plus the finite-d spread of rms(h) (relative O(1/sqrt(2d)), shifting p by ≤ |p'| t/sqrt(2d)).
    d, lam = 2**16, 2.0
    h = torch.randn(1, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 3.7
    z = bhyt_argument(h, lam, KAPPA)
    results = []
    ok = True
    for t in (0.1, 0.2, 0.3):
        observed = float(saturated_fraction(z, t))
        predicted = float(gaussian.gaussian_tail(t, lam / KAPPA))
        sigma = lam / KAPPA
        slope = 2 * t / sigma * math.exp(-(t**2) / (2 * sigma**2)) / math.sqrt(2 * math.pi)
        allowed = 4 * math.sqrt(predicted * (1 - predicted) / d) + 4 * slope / math.sqrt(2 * d)
        ok &= abs(observed - predicted) <= allowed
        results.append(f"t={t}: {observed:.4f} vs erfc {predicted:.4f}")
    return ok, "d = 65536 Gaussian token: " + "; ".join(results)


@check("gaussian.typical_vs_distribution_free", kind="package", statements={'gaussian_typical_case.md': (1,)})
def _gaussian_vs_free() -> CheckResult:
    # bounds.gaussian_saturated_fraction and bounds.saturated_fraction_bound against math.erfc and
    # (λ/(κt))² written from scratch (float64, 1e-12 relative), and the proof's table against
    # both to its printed 3 digits (half a unit in the last digit: 5e-3 relative).
    lam = 2.0
    rows, ok = [], True
    for t, (stated_typical, stated_free) in STATED_TABLE.items():
        typical = float(gaussian_saturated_fraction(lam, KAPPA, t))
        free = float(saturated_fraction_bound(lam, KAPPA, t))
        scratch_typical = math.erfc(t * KAPPA / (lam * math.sqrt(2)))
        scratch_free = min(1.0, (lam / (KAPPA * t)) ** 2)
        ok &= abs(typical / scratch_typical - 1) <= 1e-12 and abs(free / scratch_free - 1) <= 1e-12
        ok &= abs(typical / stated_typical - 1) <= 5e-3 and abs(free / stated_free - 1) <= 5e-3
        ok &= typical < free
        rows.append(f"t={t:g}: erfc {typical:.3g} vs min(1,(lam/(kappa t))^2) {free:.3g}")
    return ok, "lambda=2, kappa=10, package vs from-scratch vs the proof's table: " + "; ".join(rows)


@check("gaussian.finite_width_beta_law", kind="package", statements={'gaussian_typical_case.md': (2,)})
def _gaussian_finite_width_beta() -> CheckResult:
    # B = X/(X+Y), X ~ χ²₁, Y ~ χ²_{d−1}, so P(B ≥ x) = P(F_{1,d−1} ≥ (d−1)x/(1−x)) = P(|t_{d−1}| ≥ ·):
    # an independent route through scipy.stats' Student t. Both are special-function values
    # accurate to ~1e-13 relative; allow 1e-9. The proof's table to its 3 printed digits (5e-3).
    worst, table_ok = 0.0, True
    for lam in (0.5, 2.0, 3.0):
        for d in (2, 3, 16, 64, 256, 1024, 2048):
            for t in (0.05, 0.3, 0.5, 1.0, 2.0):
                x = (t * KAPPA / lam) ** 2 / d
                package = float(gaussian_saturated_fraction_finite_width(lam, KAPPA, t, d))
                if x >= 1:
                    table_ok &= package == 0.0
                    continue
                student = 2 * float(stats.t.sf(math.sqrt((d - 1) * x / (1 - x)), d - 1))
                if student > 1e-290:
                    worst = max(worst, abs(package / student - 1))
    for (lam, t, d), stated in STATED_FINITE_WIDTH.items():
        table_ok &= abs(float(gaussian_saturated_fraction_finite_width(lam, KAPPA, t, d)) / stated - 1) <= 5e-3
    ok = worst <= 1e-9 and table_ok
    return ok, (f"P(Beta(1/2,(d-1)/2) >= t^2 kappa^2/(lambda^2 d)) vs the Student-t route: max rel. error {worst:.1e}; "
                "zero exactly where t > (lambda/kappa) sqrt d; the proof's table reproduced")


@check("gaussian.finite_width_monte_carlo", kind="package", statements={'gaussian_typical_case.md': (2,)})
def _gaussian_finite_width_monte_carlo() -> CheckResult:
    # norms.bhyt_argument (ε = 0) on n Gaussian tokens: the per-token saturated fraction's sample mean
    # against the Beta-law value, within 4 standard errors. Error model: the sample se (std / sqrt n), but
    # never below the Poisson se sqrt(p/(n d)) of the count of saturated coordinates (rare events, nearly
    # independent coordinates), so a tail of a few events cannot pass on a vanishing sample std. n = 2e5
    # at d = 16 puts the smallest value (3e-5) at about 10 Poisson se. Above (λ/κ)√d no coordinate of any
    # token may reach t.
    lam = 3.0
    generator = torch.Generator().manual_seed(21)
    rows, ok = [], True
    for d, n, thresholds in ((16, 200_000, (0.3, 0.5, 1.0)), (64, 50_000, (0.3, 0.5, 1.0))):
        h = torch.randn(n, d, generator=generator, dtype=torch.float64) * InputSpec().std
        z = bhyt_argument(h, lam, KAPPA, eps=0.0)
        for t in thresholds:
            fractions = saturated_fraction(z, t)
            predicted = float(gaussian_saturated_fraction_finite_width(lam, KAPPA, t, d))
            mean = float(fractions.mean())
            se = max(float(fractions.std()) / math.sqrt(n), math.sqrt(predicted / (n * d)))
            limit = float(gaussian_saturated_fraction(lam, KAPPA, t))
            ok &= abs(mean - predicted) <= 4 * se
            rows.append(f"d={d}, t={t:g}: {mean:.4g} vs Beta {predicted:.4g} +- {se:.1g} (erfc limit {limit:.4g})")
        impossible = lam / KAPPA * math.sqrt(d) * (1 + 1e-9)
        ok &= float(z.abs().max()) < impossible
    # The finite-d value approaches the erfc limit monotonically as d grows (t = 1, λ = 3).
    widths = 2 ** np.arange(4, 21)
    gaps = np.abs(gaussian_saturated_fraction_finite_width(lam, KAPPA, 1.0, widths) - gaussian_saturated_fraction(lam, KAPPA, 1.0))
    ok &= bool(np.all(np.diff(gaps) < 0)) and gaps[-1] / float(gaussian_saturated_fraction(lam, KAPPA, 1.0)) < 1e-4
    return ok, "lambda = 3: " + "; ".join(rows) + f"; gap to erfc at d = 2^20: {gaps[-1]:.1e}"
