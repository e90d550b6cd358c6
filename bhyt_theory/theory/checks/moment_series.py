"""Checks of the tanh/erf Gaussian moment series (proofs/variance_approximation.md)."""

from __future__ import annotations

import math
from itertools import pairwise

import mpmath
import numpy as np
import sympy as sp

from ...numerics import gaussian
from ..symbolic import (
    a,
    erf_square_moment_closed_form,
    erf_square_moment_series,
    gaussian_moment,
    partial_sums,
    tanh_prime_moment_series,
    tanh_prime_square_moment_series,
    tanh_series,
    tanh_square_moment_series,
    x,
)
from .fixtures import is_zero
from .registry import CheckResult, check


@check("series.tanh_maclaurin", kind="package", statements={'variance_approximation.md': (3,)})
def _tanh_maclaurin() -> CheckResult:
    derived = tanh_series(15)
    direct = sp.series(sp.tanh(x), x, 0, 16).removeO()
    ok = is_zero(derived - direct)
    return ok, "Bernoulli-number tanh series equals sympy's Taylor expansion to x^15"


@check("series.tanh_square_leading_terms", kind="package", statements={'variance_approximation.md': (3,)})
def _tanh_square_leading() -> CheckResult:
    stated = a**2 - 2 * a**4 + sp.Rational(17, 3) * a**6 - sp.Rational(62, 3) * a**8
    derived = tanh_square_moment_series(4)
    square_ok = is_zero(derived - stated)
    # E tanh'(aZ) by Stein's lemma, E[Z f(aZ)] = a E f'(aZ), from sympy's own Taylor series of tanh
    # (not from 1 − tanh²): E tanh'(aZ) = E[Z tanh(aZ)]/a = Σ_k t_k a^{k−1} E Z^{k+1}.
    n_terms = 5
    taylor = sp.series(sp.tanh(x), x, 0, 2 * n_terms + 1).removeO()
    stein = sp.expand(sum(taylor.coeff(x, k) * a ** (k - 1) * gaussian_moment(k + 1) for k in range(1, 2 * n_terms + 1)))
    prime = tanh_prime_moment_series(n_terms)
    prime_ok = is_zero(prime - stein)
    return square_ok and prime_ok, (f"E tanh^2(aZ) = {sp.expand(derived)} + ...; E tanh'(aZ) = {sp.expand(prime)} + ... "
                                    "equals Stein's lemma E[Z tanh(aZ)]/a from sympy's tanh series")


@check("series.completely_monotone_coefficients", kind="lemma")
def _completely_monotone_coefficients() -> CheckResult:
    # The proof's steps, each checked, rather than a necessary condition alone:
    # (1) a factor 1/(1 + s y), s > 0, has n-th derivative (−1)^n n! s^n (1 + s y)^{−n−1}: by
    #     induction on a symbolic n (the formula at n differentiates to the formula at n + 1);
    n, y, s_ = sp.Symbol("n", integer=True, nonnegative=True), sp.Symbol("y", nonnegative=True), sp.Symbol("s", positive=True)
    formula = (-1) ** n * sp.factorial(n) * s_**n * (1 + s_ * y) ** (-n - 1)
    induction_ok = is_zero(sp.diff(formula, y) - formula.subs(n, n + 1)) and is_zero(formula.subs(n, 0) - 1 / (1 + s_ * y))
    # (2) sech(√y) = Π_k (1 + s_k y)^{−1}, s_k = 4/((2k−1)²π²) (Weierstrass product of cosh): the
    #     truncated log-product errs by at most (4y/π²) Σ_{k>K} 1/(2k−1)² ≤ (4y/π²)/(2(2K − 1));
    K = 200_000
    k = np.arange(1, K + 1)
    worst = 0.0
    for value in (0.3, 1.0, 2.5):
        log_product = np.log1p(4 * value**2 / ((2 * k - 1) ** 2 * math.pi**2)).sum()
        tail = 4 * value**2 / math.pi**2 / (2 * (2 * K - 1))
        worst = max(worst, abs(log_product - math.log(math.cosh(value))) / (tail + 1e-13))
    # (3) the consequence on [0, ∞), not only at 0: (−1)^n φ^{(n)}(y) ≥ 0 for φ = sech²(√y) and
    #     sech⁴(√y), n ≤ 6, on a grid of y ∈ [0, 20] (exact symbolic derivatives, evaluated at 30 digits),
    #     and strictly at y = 0 (the Taylor coefficients alternate strictly, 12 terms).
    failures = []
    for power in (2, 4):
        phi = sp.sech(sp.sqrt(y)) ** power
        derivative = phi
        for order in range(1, 7):
            derivative = sp.diff(derivative, y)
            values = [sp.N(((-1) ** order * derivative).subs(y, point), 30) for point in np.linspace(0.01, 20, 40)]
            if min(values) < 0:
                failures.append((power, order))
        taylor = sp.series(sp.sech(x) ** power, x, 0, 24).removeO()
        coefficients = [taylor.coeff(x, 2 * j) for j in range(12)]
        if not all(sp.sign(c) == (-1) ** j for j, c in enumerate(coefficients)):
            failures.append((power, "taylor"))
    ok = induction_ok and worst <= 1.0 and not failures
    return ok, (f"factor derivatives by induction on n: {induction_ok}; cosh product within its tail bound "
                f"(worst error/bound {worst:.6f}); (-1)^n phi^(n) >= 0 on y in [0, 20] for n <= 6 and strict "
                f"alternation at 0 for sech^2, sech^4 (failures: {failures or 'none'})")


@check("series.moment_bracketing", kind="package", statements={'variance_approximation.md': (3,)})
def _moment_bracketing() -> CheckResult:
    # Quadrature error of the exact moments is ~1e-12 absolute (gaussian.py). E tanh' is not a
    # separate case: E tanh' = 1 − E tanh² shifts every partial sum and the truth alike. Brackets
    # wider than 1 say nothing about a quantity in [0, 1] and are not counted; the check needs
    # informative brackets at every a and asserts the narrowest one's width.
    tolerance = 1e-11
    cases = {
        "E tanh^2": (tanh_square_moment_series(7), gaussian.tanh_square_moment),
        "E tanh'^2": (tanh_prime_square_moment_series(7), gaussian.tanh_prime_square_moment),
    }
    violations, checked, narrowest = [], 0, {}
    for name, (series, exact) in cases.items():
        for value in (0.05, 0.1, 0.2, 0.3, 0.5):
            sums = partial_sums(series, value)
            truth = exact(value)
            informative = [(low, high) for low, high in pairwise(sums) if abs(high - low) < 1]
            if not informative:
                violations.append((name, value, "no informative bracket"))
            narrowest[name, value] = min(abs(high - low) for low, high in informative) if informative else math.inf
            for low, high in informative:
                checked += 1
                if not (min(low, high) - tolerance <= truth <= max(low, high) + tolerance):
                    violations.append((name, value))
    # At a = 0.05 the 7-term bracket is the size of the 7th term, a^14 (2k−1)!!-weighted: < 1e-12.
    ok = not violations and narrowest["E tanh^2", 0.05] < 1e-12
    return ok, (f"exact quadrature value inside all {checked} informative brackets (width < 1) of consecutive partial sums, "
                f"a = 0.05..0.5, E tanh^2 and E tanh'^2; narrowest at a = 0.05: {narrowest['E tanh^2', 0.05]:.1e}")


@check("series.erf_square_price", kind="package", statements={'variance_approximation.md': (4,)})
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


@check("series.erf_square_series_match", kind="package", statements={'variance_approximation.md': (4,)})
def _erf_square_series_match() -> CheckResult:
    n_terms = 8
    from_series = erf_square_moment_series(n_terms)
    closed = sp.series(erf_square_moment_closed_form(), a, 0, 2 * n_terms + 1).removeO()
    ok = is_zero(from_series - closed)
    return ok, f"Gaussian-moment series of erf^2 equals the closed form's Taylor series ({n_terms} terms)"


@check("series.erf_square_numeric", kind="package", statements={'variance_approximation.md': (4,)})
def _erf_square_numeric() -> CheckResult:
    # gaussian.erf_square_moment (the closed form) against mpmath's tanh-sinh quadrature of
    # erf²(az) φ(z) at 30 digits, a converged integrator at every a (its error < 1e-25); the
    # closed form evaluated in float64 errs by a few u: allow 1e-14 absolute.
    mpmath.mp.dps = 30
    worst = 0.0
    for value in (0.1, 0.5, 1.0, 2.0, 5.0):
        reference = mpmath.quad(lambda z, a_=value: mpmath.erf(a_ * z) ** 2 * mpmath.npdf(z), [-mpmath.inf, 0, mpmath.inf])
        worst = max(worst, abs(gaussian.erf_square_moment(value) - float(reference)))
    ok = worst <= 1e-14
    return ok, f"gaussian.erf_square_moment vs mpmath quadrature at 30 digits, a = 0.1..5: max error {worst:.1e}"
