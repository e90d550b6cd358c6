"""Gaussian expectations of element-wise maps: the one home of the quadrature.

Used by the theory (bounds, mean field) and by estimators inside the model.
Two tools, chosen by need:

- ``scipy.integrate.quad`` for scalar moments that must be exact to ~1e-12
  (``tanh_square_moment`` and friends);
- probabilists' Gauss–Hermite rules (``numpy.polynomial.hermite_e``) for fast,
  vectorised univariate and bivariate expectations in the mean-field recursions.
  An ``n``-node rule integrates polynomials up to degree ``2n − 1`` exactly; for
  tanh/SiLU/erf at moderate variance the error falls geometrically in ``n``;
- Mehler's expansion on those rules for the ``T × T`` kernels
  ``E f(s_t X_t) f(s_s X_s)`` of the mean-field recursion (``gaussian_kernel``), and
  the closed-form arcsine kernel of erf (``erf_kernel``, Derf).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special
from scipy.linalg import blas

ArrayLike = float | np.ndarray
Elementwise = Callable[[np.ndarray], np.ndarray]

DEFAULT_NODES = 64


@lru_cache(maxsize=None)
def hermite_rule(n: int = DEFAULT_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``x`` and weights ``w`` with ``Σ w f(x) ≈ E f(Z)``, Z ~ N(0, 1)."""
    x, w = hermegauss(n)
    return x, w / math.sqrt(2 * math.pi)


def gaussian_expectation(f: Elementwise, variance: ArrayLike, nodes: int = DEFAULT_NODES) -> np.ndarray:
    """``E f(X)``, X ~ N(0, variance), vectorised over ``variance`` (Gauss–Hermite)."""
    x, w = hermite_rule(nodes)
    std = np.sqrt(np.asarray(variance, dtype=float))[..., None]
    return (w * f(std * x)).sum(-1)


def bivariate_gaussian_expectation(
    f: Elementwise,
    g: Elementwise,
    variance_x: ArrayLike,
    variance_y: ArrayLike,
    covariance: ArrayLike,
    nodes: int = DEFAULT_NODES,
) -> np.ndarray:
    """``E f(X) g(Y)`` for centred jointly Gaussian (X, Y), vectorised over the moments.

    Writes ``X = σ_x Z₁``, ``Y = σ_y (ρ Z₁ + sqrt(1 − ρ²) Z₂)`` with independent
    standard Z₁, Z₂ and applies a tensor-product Gauss–Hermite rule (``nodes²`` points).
    """
    x, w = hermite_rule(nodes)
    var_x = np.asarray(variance_x, dtype=float)
    var_y = np.asarray(variance_y, dtype=float)
    sx, sy = np.sqrt(var_x), np.sqrt(var_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(sx * sy > 0, np.asarray(covariance, dtype=float) / (sx * sy), 0.0)
    rho = np.clip(rho, -1.0, 1.0)[..., None, None]
    z1, z2 = x[:, None], x[None, :]
    fx = f(sx[..., None, None] * z1)
    gy = g(sy[..., None, None] * (rho * z1 + np.sqrt(1 - rho**2) * z2))
    return np.einsum("...ij,i,j->...", fx * gy, w, w)


def _quad_moment(f: Callable[[float], float], a: float) -> float:
    """``E f(aZ)`` by adaptive quadrature on the (even) integrand over [0, ∞)."""
    value, _ = integrate.quad(
        lambda z: f(a * z) * math.exp(-0.5 * z * z), 0.0, math.inf, epsabs=1e-14, epsrel=1e-13, limit=200
    )
    return 2.0 * value / math.sqrt(2 * math.pi)


def _vectorised(moment: Callable[[float], float]) -> Callable[[ArrayLike], ArrayLike]:
    vector = np.vectorize(moment, otypes=[float])

    def wrapped(a: ArrayLike) -> ArrayLike:
        result = vector(np.abs(np.asarray(a, dtype=float)))
        return float(result) if result.ndim == 0 else result

    wrapped.__name__, wrapped.__doc__ = moment.__name__, moment.__doc__
    return wrapped


@_vectorised
def tanh_square_moment(a: float) -> float:
    """``E tanh²(aZ)``, Z ~ N(0, 1), to ~1e-12 absolute (adaptive quadrature).

    The linear-tanh assumption of BHyT's estimate replaces it by ``a²``; the
    asymptotic series is ``a² − 2a⁴ + (17/3)a⁶ − …`` (docs/estimators.md §3).
    """
    return _quad_moment(lambda x: math.tanh(x) ** 2, a)


@_vectorised
def tanh_prime_moment(a: float) -> float:
    """``E tanh′(aZ) = E[1 − tanh²(aZ)]``."""
    return 1.0 - _quad_moment(lambda x: math.tanh(x) ** 2, a)


@_vectorised
def tanh_prime_square_moment(a: float) -> float:
    """``E tanh′(aZ)² = E[(1 − tanh²(aZ))²]``."""
    return _quad_moment(lambda x: (1.0 - math.tanh(x) ** 2) ** 2, a)


def gaussian_tail(t: ArrayLike, std: ArrayLike) -> ArrayLike:
    """``P(|X| ≥ t)`` for X ~ N(0, std²): ``erfc(t / (std √2))``."""
    return special.erfc(np.asarray(t, dtype=float) / (np.asarray(std, dtype=float) * math.sqrt(2)))


# --- bivariate kernels: Derf's closed form and Mehler's expansion -------------------------

KERNEL_TOLERANCE = 1e-10
# Quadrature tiers (nodes, Hermite orders): the first two serve the near-linear
# tanh/SiLU arguments of BHyT and RMSNorm (rms ≲ 0.7 and ≲ 1.2); DyT deep in a stack has tanh
# arguments of rms ≳ 2, whose Hermite coefficients decay slowly. 360 nodes is the
# largest rule numpy's hermegauss returns finite weights for.
_TIERS = ((24, 16), (64, 40), (160, 110), (360, 260))
_MAX_RELATIVE_TAIL = 1e-2


def erf_kernel(
    alpha_x: np.ndarray | float,
    alpha_y: np.ndarray | float,
    variance_x: np.ndarray | float,
    variance_y: np.ndarray | float,
    covariance: np.ndarray | float,
) -> np.ndarray:
    """``E erf(α_x X) erf(α_y Y)`` for centred jointly Gaussian (X, Y), closed form.

    Notes
    -----
    ``erf(y) = E_W sign(√2 y − W)`` for W ~ N(0, 1), and Sheppard's
    ``E sign(U) sign(V) = (2/π) arcsin corr(U, V)`` give

        E erf(aX) erf(bY) = (2/π) arcsin( 2ab c / sqrt((1 + 2a² v_x)(1 + 2b² v_y)) ),

    c = Cov(X, Y). With a = b, X = Y, v = 1 it is ``erf_square_moment``.
    This is Derf's pre-norm kernel map (shift s = 0 at init; docs/normalisers.md).
    """
    a = np.asarray(alpha_x, dtype=float)
    b = np.asarray(alpha_y, dtype=float)
    argument = (
        2 * a * b * np.asarray(covariance, dtype=float)
        / np.sqrt((1 + 2 * a**2 * np.asarray(variance_x)) * (1 + 2 * b**2 * np.asarray(variance_y)))
    )
    return 2.0 / math.pi * np.arcsin(np.clip(argument, -1.0, 1.0))


def erf_square_moment(a: ArrayLike) -> ArrayLike:
    """``E erf²(aZ) = (2/π) arcsin(2a² / (1 + 2a²))``, Z ~ N(0, 1): ``erf_kernel`` on its diagonal
    (Derf's analogue of ``tanh_square_moment``).

    Examples
    --------
    >>> round(erf_square_moment(1.0), 12)  # (2/π) arcsin(2/3)
    0.464559054398
    """
    result = erf_kernel(a, a, 1.0, 1.0, 1.0)
    return float(result) if np.ndim(result) == 0 else result


@lru_cache(maxsize=None)
def _hermite_functions(nodes: int, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and the weighted ``φ_n(x_k) = √w_k · He_n(x_k)/√(n!)``.

    The recurrence ``φ_{n+1} = (x φ_n − √n φ_{n−1}) / √(n+1)`` is run on the
    weighted values, which stay below 1, so high orders neither overflow at
    the outer nodes nor lose the tiny weights there.
    """
    x, w = hermite_rule(nodes)
    phi = np.empty((n_terms, nodes))
    phi[0] = np.sqrt(w)
    if n_terms > 1:
        phi[1] = x * phi[0]
    for n in range(1, n_terms - 1):
        phi[n + 1] = (x * phi[n] - math.sqrt(n) * phi[n - 1]) / math.sqrt(n + 1)
    return x, phi


@lru_cache(maxsize=None)
def _upper_ones(n: int) -> np.ndarray:
    """``U`` with ``(A U)[:, k] = Σ_{n≤k} A[:, n]`` (a cumulative sum as one product)."""
    return np.triu(np.ones((n, n)))


def _mehler_coefficients(f: Elementwise, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients ``c_n(t) = E[f(s_t X) ψ_n(X)]`` and ``E f(s_t X)²``.

    Returns the orders n kept, the coefficients of those orders (T × kept) and
    the second moments. Orders are kept up to the first N whose unexplained
    second moment ``R = E f² − Σ_{n<N} c_n²`` is below ``KERNEL_TOLERANCE``
    (relative to the largest ``E f²``; ``_MAX_RELATIVE_TAIL`` at worst); orders
    whose ``c_n²`` is below 1e-3 of that tolerance for every token (e.g. the
    even orders of an odd f) are skipped.
    """
    for tier, (nodes, n_terms) in enumerate(_TIERS):
        # Gauss–Hermite with n nodes on f(s·x), f analytic in |Im x| < π/2 (tanh; SiLU's
        # strip is twice as wide), errs by ~exp(−(π/s)·sqrt(2n)); skip too coarse a tier.
        widest_allowed = math.pi * math.sqrt(2 * nodes) / -math.log(1e-3 * KERNEL_TOLERANCE)
        if tier < len(_TIERS) - 1 and scales.max() > widest_allowed:
            continue
        x, phi = _hermite_functions(nodes, n_terms)
        weighted = f(scales[:, None] * x[None, :]) * phi[0]
        second = (weighted**2).sum(1)
        coefficients = weighted @ phi.T
        largest = max(second.max(), np.finfo(float).tiny)
        relative = (second[:, None] - coefficients**2 @ _upper_ones(n_terms)).max(0) / largest
        enough = np.nonzero(relative <= KERNEL_TOLERANCE)[0]
        if enough.size:
            break
    if not enough.size and relative[-1] > _MAX_RELATIVE_TAIL:
        raise ValueError(
            f"Hermite expansion leaves {relative[-1]:.2g} of the second moment unexplained "
            f"(arguments of rms up to {scales.max():.3g} are too saturated for the mean-field kernel)"
        )
    coefficients = coefficients[:, : enough[0] + 1] if enough.size else coefficients
    orders = np.nonzero((coefficients**2).max(0) > 1e-3 * KERNEL_TOLERANCE * largest)[0]
    return orders, coefficients[:, orders], second


def gaussian_kernel(f: Elementwise, scales: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``E f(s_t X_t) f(s_s X_s)`` for standard Gaussians of correlation ``ρ_ts``.

    Parameters
    ----------
    f : element-wise map (numpy)
    scales : array of shape ``(T,)``
        The standard deviations ``s_t`` of the arguments.
    correlation : array of shape ``(T, T)``
        ``ρ``, symmetric with unit diagonal.

    Returns
    -------
    array of shape ``(T, T)``.

    Notes
    -----
    Mehler: ``Σ_{n<N} c_n(t) c_n(s) ρ_tsⁿ`` (Horner in ρ), with the diagonal
    replaced by the quadrature of ``E f(s_t X)²``; the off-diagonal truncation
    error is at most ``|ρ_ts|^N sqrt(R_t R_s) ≤ KERNEL_TOLERANCE · max_t E f²``
    (for tanh arguments of rms ≳ 3, where tanh is nearly a sign, only
    ``_MAX_RELATIVE_TAIL`` = 1 %, reached at rms ≈ 25; at rms 8 the measured error
    against 360-node bivariate quadrature is ~5e-4 of ``E f²``). The Gauss–Hermite tier is chosen so that its error estimate
    ``exp(−(π/s)·sqrt(2·nodes))`` (f analytic in the strip |Im x| < π/2, as tanh
    and SiLU are) is below ``1e-3 · KERNEL_TOLERANCE``.
    """
    orders, coefficients, second = _mehler_coefficients(f, np.asarray(scales, dtype=float))
    if not orders.size:
        return np.diag(second)
    powers: dict[int, np.ndarray] = {1: correlation}
    kernel = np.outer(coefficients[:, -1], coefficients[:, -1])
    for k in range(len(orders) - 2, -1, -1):
        gap = int(orders[k + 1] - orders[k])
        if gap not in powers:
            powers[gap] = correlation**gap
        kernel *= powers[gap]
        # In-place rank-one update (BLAS ger) on the Fortran view of the symmetric kernel.
        blas.dger(1.0, coefficients[:, k], coefficients[:, k], a=kernel.T, overwrite_a=True)
    if orders[0]:
        kernel *= correlation ** int(orders[0])
    np.fill_diagonal(kernel, second)
    return kernel
