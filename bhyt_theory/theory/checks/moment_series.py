"""Checks of the tanh/erf Gaussian moment series (proofs/variance_approximation.md)."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from scipy import special

from ...numerics import gaussian
from ..symbolic import (
    a,
    erf_square_moment_closed_form,
    erf_square_moment_series,
    partial_sums,
    tanh_prime_moment_series,
    tanh_prime_square_moment_series,
    tanh_series,
    tanh_square_moment_series,
    x,
)
from .fixtures import is_zero
from .registry import CheckResult, check


@check("series.tanh_maclaurin")
def _tanh_maclaurin() -> CheckResult:
    derived = tanh_series(15)
    direct = sp.series(sp.tanh(x), x, 0, 16).removeO()
    ok = is_zero(derived - direct)
    return ok, "Bernoulli-number tanh series equals sympy's Taylor expansion to x^15"


@check("series.tanh_square_leading_terms")
def _tanh_square_leading() -> CheckResult:
    stated = a**2 - 2 * a**4 + sp.Rational(17, 3) * a**6 - sp.Rational(62, 3) * a**8
    derived = tanh_square_moment_series(4)
    prime = tanh_prime_moment_series(5)
    ok = is_zero(derived - stated) and is_zero(prime - (1 - derived))
    return ok, f"E tanh^2(aZ) = {sp.expand(derived)} + ...; E tanh'(aZ) = 1 - E tanh^2(aZ) term by term"


@check("series.completely_monotone_coefficients")
def _completely_monotone_coefficients() -> CheckResult:
    # A completely monotone φ(y) has (−1)^k φ^{(k)}(0) > 0: the Taylor coefficients in
    # y = x² of sech²(√y) and sech⁴(√y) must strictly alternate in sign.
    failures = []
    for power in (2, 4):
        taylor = sp.series(sp.sech(x) ** power, x, 0, 24).removeO()
        coefficients = [taylor.coeff(x, 2 * k) for k in range(12)]
        if not all(sp.sign(c) == (-1) ** k for k, c in enumerate(coefficients)):
            failures.append(power)
    # Weierstrass product cosh x = Π_k (1 + 4x²/((2k−1)²π²)), each factor's reciprocal
    # 1/(1 + s y) completely monotone in y; the truncated log-product errs by at most
    # (4x²/π²) Σ_{k>K} 1/(2k−1)² ≤ (4x²/π²) / (2(2K − 1)).
    K = 200_000
    k = np.arange(1, K + 1)
    worst = 0.0
    for value in (0.3, 1.0, 2.5):
        log_product = np.log1p(4 * value**2 / ((2 * k - 1) ** 2 * math.pi**2)).sum()
        tail = 4 * value**2 / math.pi**2 / (2 * (2 * K - 1))
        worst = max(worst, abs(log_product - math.log(math.cosh(value))) / (tail + 1e-13))
    ok = not failures and worst <= 1.0
    return ok, (f"Taylor coefficients of sech^2, sech^4 in y = x^2 alternate strictly (12 terms); "
                f"cosh product matches within its tail bound (worst error/bound {worst:.6f})")


@check("series.moment_bracketing")
def _moment_bracketing() -> CheckResult:
    # Quadrature error of the exact moments is ~1e-12 absolute (gaussian.py).
    tolerance = 1e-11
    cases = {
        "E tanh^2": (tanh_square_moment_series(7), gaussian.tanh_square_moment),
        "E tanh'": (tanh_prime_moment_series(7), gaussian.tanh_prime_moment),
        "E tanh'^2": (tanh_prime_square_moment_series(7), gaussian.tanh_prime_square_moment),
    }
    violations, checked = [], 0
    for name, (series, exact) in cases.items():
        for value in (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2):
            sums = partial_sums(series, value)
            truth = exact(value)
            for low, high in zip(sums[:-1], sums[1:]):
                checked += 1
                if not (min(low, high) - tolerance <= truth <= max(low, high) + tolerance):
                    violations.append((name, value))
    ok = not violations
    return ok, f"exact quadrature value between consecutive partial sums in {checked - len(violations)}/{checked} cases"


@check("series.erf_square_price")
def _erf_square_price() -> CheckResult:
    # Price: d/dρ E[erf X erf Y] = E[erf' X erf' Y] = (4/π) E e^{−X²−Y²} = (4/π)/sqrt(det(I + 2Σ)),
    # Σ = [[s, ρ], [ρ, s]]; integrate ρ from 0 (independent) to s (X = Y).
    s, rho = sp.symbols("s rho", positive=True)
    sigma = sp.Matrix([[s, rho], [rho, s]])
    integrand = 4 / sp.pi / sp.sqrt((sp.eye(2) + 2 * sigma).det())
    antiderivative = 2 / sp.pi * sp.asin(2 * rho / (1 + 2 * s))
    derivative_ok = is_zero(sp.diff(antiderivative, rho) - integrand)
    value = antiderivative.subs(rho, s) - antiderivative.subs(rho, 0)
    closed_ok = is_zero(value - erf_square_moment_closed_form().subs(a, sp.sqrt(s)))
    # The Gaussian integral E e^{−X²−Y²} = det(I + 2Σ)^{−1/2}, by a 64² Gauss–Hermite rule.
    worst = 0.0
    for var, cov in ((0.3, 0.1), (1.0, 0.7), (0.5, -0.4)):
        square_exponential = lambda v: np.exp(-v * v)  # noqa: E731
        quad = gaussian.bivariate_gaussian_expectation(square_exponential, square_exponential, var, var, cov)
        worst = max(worst, abs(quad - 1 / math.sqrt((1 + 2 * var) ** 2 - 4 * cov**2)))
    ok = derivative_ok and closed_ok and worst < 1e-10
    return ok, f"Price's theorem integrates to (2/pi) asin(2a^2/(1+2a^2)); E exp(-X^2-Y^2) matches det formula to {worst:.1e}"


@check("series.erf_square_series_match")
def _erf_square_series_match() -> CheckResult:
    n_terms = 8
    from_series = erf_square_moment_series(n_terms)
    closed = sp.series(erf_square_moment_closed_form(), a, 0, 2 * n_terms + 1).removeO()
    ok = is_zero(from_series - closed)
    return ok, f"Gaussian-moment series of erf^2 equals the closed form's Taylor series ({n_terms} terms)"


@check("series.erf_square_numeric")
def _erf_square_numeric() -> CheckResult:
    # Error model: the 128-node rule errs by less than its distance to the 64-node rule
    # (geometric convergence in the node count); allow 10× that, plus 1e-13 of rounding.
    worst_error, worst_ratio = 0.0, 0.0
    for value in (0.1, 0.5, 1.0, 2.0):
        rule_64 = gaussian.gaussian_expectation(lambda v: special.erf(v) ** 2, value**2, nodes=64)
        rule_128 = gaussian.gaussian_expectation(lambda v: special.erf(v) ** 2, value**2, nodes=128)
        error = abs(rule_128 - gaussian.erf_square_moment(value))
        worst_error = max(worst_error, error)
        worst_ratio = max(worst_ratio, error / (10 * abs(rule_64 - rule_128) + 1e-13))
    ok = worst_ratio <= 1.0
    return ok, (f"gaussian.erf_square_moment vs 128-node Gauss-Hermite, a = 0.1..2: max error {worst_error:.1e}, "
                f"max error / allowed {worst_ratio:.2f}")
