"""Symbolic derivations behind BHyT's statements, and the registry of checks.

Three derivations live here, each next to the checks that re-derive its steps:

- Gaussian moments of tanh and erf as series in ``a = λ/κ`` (SPEC §3, §5):
  ``E tanh²(aZ) = a² − 2a⁴ + (17/3)a⁶ − (62/3)a⁸ + …`` from the tanh Maclaurin
  series (Bernoulli numbers) and ``E Z^{2k} = (2k−1)!!``; the series diverges
  but every truncation brackets the exact value (proofs/variance_approximation.md);
  ``E erf²(aZ) = (2/π) arcsin(2a²/(1+2a²))`` by Price's theorem.
- The BHyT Jacobian ``∂z/∂h = (λ/(κ sqrt(M+ε))) (I − h hᵀ/(d(M+ε)))`` with exact
  ``M = m(h)`` (proofs/jacobian.md).
- The post-attention mean square ``m(h')`` written as BHyT's estimate
  ``m₁ + c_attn λ₁²/κ²`` plus one explicit error term per dropped assumption
  (proofs/variance_approximation.md).

``CHECKS`` maps a check id to a zero-argument function returning
``(passed, message)``; every proof in ``proofs/`` lists the ids covering its
steps, and ``bhyt-theory checks`` runs them all.

References
----------
Byun et al., arXiv 2601.09719 (BHyT). Sun et al., arXiv 2502.05795 (curse of depth).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import sympy as sp
import torch
import torch.nn.functional as F
from scipy import special
from torch import Tensor

from . import gaussian
from .model import Stack, StackConfig, build_block
from .norms import (
    KAPPA,
    attention_variance_constant,
    bhyt,
    bhyt_argument,
    derf,
    dyt,
    mean_square,
    rms_norm,
    value_output_maps,
)

__all__ = [
    "a",
    "x",
    "CHECKS",
    "gaussian_moment",
    "tanh_series",
    "erf_series",
    "gaussian_moment_series",
    "tanh_square_moment_series",
    "tanh_prime_moment_series",
    "tanh_prime_square_moment_series",
    "erf_square_moment_series",
    "erf_square_moment_closed_form",
    "series_terms",
    "partial_sums",
    "bhyt_argument_symbolic",
    "bhyt_jacobian_symbolic",
    "bhyt_jacobian_closed_form",
    "VarianceDecomposition",
    "variance_decomposition",
    "post_attention_error_terms",
    "PROOF_SECTIONS",
    "PROOFS_DIR",
    "run_checks",
    "proof_sections",
    "check_references",
]

a = sp.Symbol("a", positive=True)
"""The ratio ``λ/κ``: the standard deviation of a Gaussian tanh argument."""
x = sp.Symbol("x", real=True)

CheckResult = tuple[bool, str]
CHECKS: dict[str, Callable[[], CheckResult]] = {}
"""Check id (``"<proof topic>.<step>"``) → zero-argument function re-deriving or
verifying one proof step, returning ``(passed, message)``. Filled by ``@_check``."""

# float64 unit roundoff; tolerances of the numeric checks are multiples of it.
U64 = 2.0**-53


def _check(check_id: str) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    def register(function: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        if check_id in CHECKS:
            raise ValueError(f"duplicate check id {check_id!r}")

        @functools.wraps(function)
        def run() -> CheckResult:
            passed, message = function()
            return bool(passed), message  # numpy/torch booleans become plain bool

        CHECKS[check_id] = run
        return run

    return register


# ---------------------------------------------------------------------------
# Series of tanh and erf, and their Gaussian moments
# ---------------------------------------------------------------------------


def gaussian_moment(k: int) -> sp.Integer:
    """``E Z^k`` for Z ~ N(0, 1): 0 for odd k, ``(k−1)!!`` for even k."""
    return sp.Integer(0) if k % 2 else sp.factorial2(k - 1)


def tanh_series(degree: int) -> sp.Expr:
    """Maclaurin polynomial of ``tanh x`` up to ``x^degree`` (inclusive).

    Notes
    -----
    ``tanh x = Σ_{n≥1} 2^{2n}(2^{2n} − 1) B_{2n} x^{2n−1} / (2n)!`` with Bernoulli
    numbers ``B_{2n}``; radius of convergence π/2 (poles at ±iπ/2).
    """
    terms = [
        2 ** (2 * n) * (2 ** (2 * n) - 1) * sp.bernoulli(2 * n) / sp.factorial(2 * n) * x ** (2 * n - 1)
        for n in range(1, (degree + 1) // 2 + 1)
    ]
    return sp.Add(*terms)


def erf_series(degree: int) -> sp.Expr:
    """Maclaurin polynomial of ``erf x`` up to ``x^degree``: ``(2/√π) Σ (−1)^n x^{2n+1}/(n!(2n+1))``."""
    terms = [
        2 / sp.sqrt(sp.pi) * (-1) ** n * x ** (2 * n + 1) / (sp.factorial(n) * (2 * n + 1))
        for n in range(0, (degree - 1) // 2 + 1)
    ]
    return sp.Add(*terms)


def _truncate(polynomial: sp.Expr, degree: int) -> sp.Expr:
    poly = sp.Poly(sp.expand(polynomial), x)
    return sp.Add(*(c * x**k for (k,), c in poly.terms() if k <= degree))


def gaussian_moment_series(polynomial: sp.Expr) -> sp.Expr:
    """``E p(aZ)`` for a polynomial ``p(x)``: ``Σ_k c_k a^k E Z^k``."""
    poly = sp.Poly(sp.expand(polynomial), x)
    return sp.Add(*(c * a**k * gaussian_moment(k) for (k,), c in poly.terms()))


def _moment_series(maclaurin: Callable[[int], sp.Expr], n_terms: int) -> sp.Expr:
    """The first ``n_terms`` non-zero terms of ``E f(aZ)`` from ``f``'s Maclaurin polynomials."""
    if n_terms < 1:
        raise ValueError(f"n_terms must be ≥ 1, got {n_terms}")
    degree = 2 * n_terms
    while True:
        terms = series_terms(gaussian_moment_series(maclaurin(degree)))
        # Terms of degree ≤ degree are final; a higher truncation cannot change them.
        if len(terms) >= n_terms:
            return sp.Add(*terms[:n_terms])
        degree += 2


def tanh_square_moment_series(n_terms: int) -> sp.Expr:
    """``E tanh²(aZ)``, Z ~ N(0, 1), to its first ``n_terms`` non-zero terms.

    Returns ``a² − 2a⁴ + (17/3)a⁶ − (62/3)a⁸ + …`` (a sympy expression in ``a``).

    Notes
    -----
    Derived term by term from ``tanh_series`` and ``E Z^{2k} = (2k−1)!!``. The
    series diverges for every ``a > 0``, but it is an *enveloping* series: the
    exact value lies between any two consecutive partial sums, because
    ``sech²(√y)`` is completely monotone in ``y`` (proofs/variance_approximation.md).
    Serves SPEC §3's tanh-curvature error term (claim C5).
    """
    return _moment_series(lambda degree: _truncate(tanh_series(degree + 1) ** 2, degree), n_terms)


def tanh_prime_moment_series(n_terms: int) -> sp.Expr:
    """``E tanh′(aZ) = E[1 − tanh²(aZ)] = 1 − a² + 2a⁴ − …`` (first ``n_terms`` non-zero terms)."""
    return _moment_series(lambda degree: _truncate(1 - tanh_series(degree + 1) ** 2, degree), n_terms)


def tanh_prime_square_moment_series(n_terms: int) -> sp.Expr:
    """``E tanh′(aZ)² = E[(1 − tanh²(aZ))²] = 1 − 2a² + …`` (first ``n_terms`` non-zero terms)."""
    return _moment_series(lambda degree: _truncate((1 - tanh_series(degree + 1) ** 2) ** 2, degree), n_terms)


def erf_square_moment_series(n_terms: int) -> sp.Expr:
    """``E erf²(aZ)`` to its first ``n_terms`` non-zero terms, from the erf series (Derf)."""
    return _moment_series(lambda degree: _truncate(erf_series(degree + 1) ** 2, degree), n_terms)


def erf_square_moment_closed_form() -> sp.Expr:
    """``E erf²(aZ) = (2/π) arcsin(2a² / (1 + 2a²))`` (derived by Price's theorem; check
    ``series.erf_square_price``). ``gaussian.erf_square_moment`` is its numeric home."""
    return 2 / sp.pi * sp.asin(2 * a**2 / (1 + 2 * a**2))


def series_terms(series: sp.Expr) -> list[sp.Expr]:
    """The non-zero terms of a polynomial in ``a``, in increasing degree."""
    poly = sp.Poly(sp.expand(series), a)
    return [c * a**k for (k,), c in sorted(poly.terms()) if c != 0]


def partial_sums(series: sp.Expr, value: float) -> np.ndarray:
    """Partial sums ``S_1, S_2, …`` of ``series`` (in increasing degree) at ``a = value``."""
    terms = series_terms(series)
    return np.cumsum([float(term.subs(a, value)) for term in terms])


# ---------------------------------------------------------------------------
# The BHyT Jacobian
# ---------------------------------------------------------------------------

_lam, _kappa, _eps = sp.symbols("lambda kappa epsilon", positive=True)


def bhyt_argument_symbolic(d: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Symbols ``h = (h_1 … h_d)`` and ``z = λ h / (κ sqrt(m(h) + ε))`` (exact M), as columns."""
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    m = sum(component**2 for component in h) / d
    return h, _lam * h / (_kappa * sp.sqrt(m + _eps))


def bhyt_jacobian_symbolic(d: int) -> sp.Matrix:
    """``∂z/∂h`` of BHyT's argument with exact ``M = m(h)``, differentiated by sympy."""
    h, z = bhyt_argument_symbolic(d)
    return z.jacobian(h)


def bhyt_jacobian_closed_form(d: int) -> sp.Matrix:
    """``(λ/(κ sqrt(M+ε))) (I − h hᵀ/(d(M+ε)))`` with ``M = m(h)`` (proofs/jacobian.md)."""
    h, _ = bhyt_argument_symbolic(d)
    m = sum(component**2 for component in h) / d
    return _lam / (_kappa * sp.sqrt(m + _eps)) * (sp.eye(d) - h * h.T / (d * (m + _eps)))


# ---------------------------------------------------------------------------
# The variance approximation and its error terms
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VarianceDecomposition:
    """``m(h'_t) = M₂ + Σ error terms``, exactly, for one token t.

    Attributes
    ----------
    exact : sympy.Expr
        ``m(h'_t)`` built from the quantities of the derivation (below).
    reference : sympy.Expr
        BHyT's ``M₂ = m₁ + c_attn λ₁²/κ²``.
    error_terms : dict[str, sympy.Expr]
        One entry per dropped assumption; ``exact − reference − Σ error_terms = 0``.
    assumption : dict[str, str]
        Which of SPEC §3's four assumptions each term measures.
    vanishing : dict[sympy.Symbol, sympy.Expr]
        The substitution under which all four assumptions hold exactly.

    Notes
    -----
    Symbols: ``m1 = m(h_t)``; ``c`` = c_attn; ``T`` the training length; ``S`` the
    attention concentration (``Σ_j P_tj²`` for heads sharing one pattern);
    ``E_cross = (2/d)⟨h_t, a_t⟩``; ``E_corr``, the j ≠ j' terms of ``m(a_t)``;
    ``E_aniso``, the diagonal terms minus their isotropic value;
    ``δ_γ, δ_curv, δ_ε``, the (weighted) token average of
    ``m(u) − m(tanh z)``, ``m(tanh z) − m(z)`` and ``m(z) − λ²/κ²``.
    """

    exact: sp.Expr
    reference: sp.Expr
    error_terms: dict[str, sp.Expr]
    assumption: dict[str, str]
    vanishing: dict[sp.Symbol, sp.Expr]


def variance_decomposition() -> VarianceDecomposition:
    """The derivation of ``M₂`` from SPEC §3's four assumptions, error terms kept.

    Notes
    -----
    ``m(h'_t) = m₁ + E_cross + m(a_t)``;
    ``m(a_t) = E_corr + E_aniso + T c S m̄`` (diagonal terms at their isotropic
    value ``‖C_tj‖_F²/d · m(u_j)``, summed: ``‖B‖_F²/d · S · m̄ = T c S m̄``);
    ``m̄ = λ²/κ² + δ_γ + δ_curv + δ_ε``. Splitting ``T c S m̄ = c m̄ + (S − 1/T) T c m̄``
    gives ``m(h'_t) = m₁ + c λ²/κ² + E_cross + E_corr + E_aniso + E_conc + c(δ_γ + δ_curv + δ_ε)``.
    Serves claim C5 (proofs/variance_approximation.md).
    """
    m1, c, T, S, lam, kappa = sp.symbols("m1 c T S lambda kappa", positive=True)
    e_cross, e_corr, e_aniso, d_gamma, d_curv, d_eps = sp.symbols(
        "E_cross E_corr E_aniso delta_gamma delta_curv delta_eps", real=True
    )
    mean_u = lam**2 / kappa**2 + d_gamma + d_curv + d_eps
    exact = m1 + e_cross + e_corr + e_aniso + T * c * S * mean_u
    reference = m1 + c * lam**2 / kappa**2
    error_terms = {
        "cross": e_cross,
        "correlation": e_corr,
        "anisotropy": e_aniso,
        "concentration": (S - 1 / T) * T * c * mean_u,
        "gamma": c * d_gamma,
        "curvature": c * d_curv,
        "epsilon": c * d_eps,
    }
    assumption = {
        "cross": "(i) the cross term (2/d)<h, a> is dropped",
        "correlation": "(ii) tokens uncorrelated: off-diagonal j != j' terms dropped",
        "anisotropy": "(ii) tokens isotropic: u W W^T u^T replaced by m(u) ||W||_F^2",
        "concentration": "(iii) attention uniform over T tokens: sum_j P_tj^2 = 1/T",
        "gamma": "(iv) gamma = 1",
        "curvature": "(iv) tanh linear: m(tanh z) = m(z)",
        "epsilon": "(iv) m(z) = lambda^2/kappa^2 (the eps in sqrt(m + eps) dropped)",
    }
    vanishing = {e_cross: 0, e_corr: 0, e_aniso: 0, S: 1 / T, d_gamma: 0, d_curv: 0, d_eps: 0}
    return VarianceDecomposition(exact, reference, error_terms, assumption, vanishing)


@torch.no_grad()
def post_attention_error_terms(
    h: Tensor,
    attention: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    n_kv_heads: int,
    seq_len: int,
    lam: float,
    kappa: float = KAPPA,
    gamma: Tensor | None = None,
) -> dict[str, Tensor]:
    """Every term of ``variance_decomposition`` evaluated on concrete numbers, per token.

    Parameters
    ----------
    h : Tensor, shape ``(T, d)``
        The residual stream before the block (one sequence).
    attention : Tensor, shape ``(n_heads, T, T)``
        Attention probabilities ``P^k`` (rows sum to 1).
    w_v, w_o : Tensor
        ``v_proj.weight`` ``(n_kv_heads·head_dim, d)`` and ``o_proj.weight`` ``(d, n_heads·head_dim)``.
    n_kv_heads, seq_len : int
        Key/value heads; the training length T of ``c_attn``.
    lam, kappa, gamma
        The first norm's λ₁, κ and γ₁ (``None``: γ = 1).

    Returns
    -------
    dict of float64 Tensors of shape ``(T,)``: ``exact`` (``m(h')``), ``reference``
    (``M₂``), ``concentration_sum`` (``S_t``), and one entry per ``error_terms`` key.

    Notes
    -----
    With ``C_tj = Σ_k P^k_tj B_k`` and ``B = Σ_k B_k``: ``a_t = Σ_j u_j C_tj``;
    ``S_t = Σ_j ‖C_tj‖_F² / ‖B‖_F²`` (``= Σ_j P_tj²`` when all heads share P);
    ``m̄_t = Σ_j ‖C_tj‖_F² m(u_j) / Σ_j ‖C_tj‖_F²``. Small sizes only: the
    ``(T, T, d, d)`` tensor ``C`` is formed.
    """
    h = h.double()
    length, d = h.shape
    n_heads = attention.shape[0]
    gamma64 = torch.ones(d, dtype=torch.float64, device=h.device) if gamma is None else gamma.double()
    m1 = mean_square(h)[:, 0]
    z = bhyt_argument(h, lam, kappa)
    u = bhyt(h, lam, kappa, gamma64)
    blocks = value_output_maps(w_v, w_o, n_heads, n_kv_heads)
    c_attn = attention_variance_constant(w_v, w_o, seq_len, n_heads, n_kv_heads)
    mixing = torch.einsum("ktj,kab->tjab", attention.double(), blocks)  # C_tj
    a_t = torch.einsum("ja,tjab->tb", u, mixing)
    exact = mean_square(h + a_t)[:, 0]

    # pair[t, j, j'] = (1/d) u_j C_tj C_tj'ᵀ u_j'ᵀ
    projected = torch.einsum("ja,tjab->tjb", u, mixing)
    pair = torch.einsum("tjb,tkb->tjk", projected, projected) / d
    diagonal = torch.diagonal(pair, dim1=1, dim2=2)
    frobenius = mixing.square().sum((-1, -2))  # ‖C_tj‖_F², (T, T)
    m_u = u.square().mean(-1)
    isotropic = frobenius / d * m_u
    total_b = c_attn * seq_len * d  # ‖B‖_F²
    concentration_sum = frobenius.sum(-1) / total_b
    weights = frobenius / frobenius.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    ratio_sq = (lam / kappa) ** 2
    per_token = {
        "gamma": m_u - torch.tanh(z).square().mean(-1),
        "curvature": torch.tanh(z).square().mean(-1) - z.square().mean(-1),
        "epsilon": z.square().mean(-1) - ratio_sq,
    }
    mean_u = weights @ m_u
    terms = {
        "exact": exact,
        "reference": m1 + c_attn * ratio_sq,
        "concentration_sum": concentration_sum,
        "cross": 2.0 / d * (h * a_t).sum(-1),
        "correlation": pair.sum((-1, -2)) - diagonal.sum(-1),
        "anisotropy": (diagonal - isotropic).sum(-1),
        "concentration": (concentration_sum - 1.0 / seq_len) * seq_len * c_attn * mean_u,
    }
    terms.update({name: c_attn * (weights @ value) for name, value in per_token.items()})
    return terms


# ---------------------------------------------------------------------------
# Checks: helpers
# ---------------------------------------------------------------------------


def _is_zero(expression: sp.Expr) -> bool:
    return sp.simplify(expression) == 0


def _adversarial_tokens(d: int, seed: int) -> Tensor:
    """Float64 tokens of width d attacking the bounds: one-hot, k equal spikes,
    Cauchy, large offset, Gaussian; each at scales 1e-30 … 1e30."""
    rng = np.random.default_rng(seed)
    shapes = [np.eye(d)[0], (np.arange(d) < max(1, d // 8)).astype(float), rng.standard_cauchy(d),
              1e3 + 1e-3 * rng.standard_normal(d), rng.standard_normal(d)]
    scales = 10.0 ** np.array([-30, -6, -3, 0, 3, 30])
    rows = [shape * scale for shape in shapes for scale in scales]
    return torch.tensor(np.array(rows), dtype=torch.float64)


def _small_block(scheme: str = "bhytstar", width: int = 32, heads: int = 4, kv_heads: int = 2,
                 init_std: float = 0.3, seed: int = 0):
    config = StackConfig(scheme=scheme, depth=1, width=width, heads=heads, kv_heads=kv_heads,
                         mlp_width=48, seq_len=16, init_std=init_std, dtype="float64")
    return config, build_block(config, 0, seed)


def _operator_norm(w: Tensor) -> float:
    return float(torch.linalg.matrix_norm(w.detach().double(), ord=2))


# ---------------------------------------------------------------------------
# Checks: series (proofs/variance_approximation.md)
# ---------------------------------------------------------------------------


@_check("series.tanh_maclaurin")
def _tanh_maclaurin() -> CheckResult:
    derived = tanh_series(15)
    direct = sp.series(sp.tanh(x), x, 0, 16).removeO()
    ok = _is_zero(derived - direct)
    return ok, "Bernoulli-number tanh series equals sympy's Taylor expansion to x^15"


@_check("series.tanh_square_leading_terms")
def _tanh_square_leading() -> CheckResult:
    stated = a**2 - 2 * a**4 + sp.Rational(17, 3) * a**6 - sp.Rational(62, 3) * a**8
    derived = tanh_square_moment_series(4)
    prime = tanh_prime_moment_series(5)
    ok = _is_zero(derived - stated) and _is_zero(prime - (1 - derived))
    return ok, f"E tanh^2(aZ) = {sp.expand(derived)} + ...; E tanh'(aZ) = 1 - E tanh^2(aZ) term by term"


@_check("series.completely_monotone_coefficients")
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


@_check("series.moment_bracketing")
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


@_check("series.erf_square_price")
def _erf_square_price() -> CheckResult:
    # Price: d/dρ E[erf X erf Y] = E[erf' X erf' Y] = (4/π) E e^{−X²−Y²} = (4/π)/sqrt(det(I + 2Σ)),
    # Σ = [[s, ρ], [ρ, s]]; integrate ρ from 0 (independent) to s (X = Y).
    s, rho = sp.symbols("s rho", positive=True)
    sigma = sp.Matrix([[s, rho], [rho, s]])
    integrand = 4 / sp.pi / sp.sqrt((sp.eye(2) + 2 * sigma).det())
    antiderivative = 2 / sp.pi * sp.asin(2 * rho / (1 + 2 * s))
    derivative_ok = _is_zero(sp.diff(antiderivative, rho) - integrand)
    value = antiderivative.subs(rho, s) - antiderivative.subs(rho, 0)
    closed_ok = _is_zero(value - erf_square_moment_closed_form().subs(a, sp.sqrt(s)))
    # The Gaussian integral E e^{−X²−Y²} = det(I + 2Σ)^{−1/2}, by a 64² Gauss–Hermite rule.
    worst = 0.0
    for var, cov in ((0.3, 0.1), (1.0, 0.7), (0.5, -0.4)):
        square_exponential = lambda v: np.exp(-v * v)  # noqa: E731
        quad = gaussian.bivariate_gaussian_expectation(square_exponential, square_exponential, var, var, cov)
        worst = max(worst, abs(quad - 1 / math.sqrt((1 + 2 * var) ** 2 - 4 * cov**2)))
    ok = derivative_ok and closed_ok and worst < 1e-10
    return ok, f"Price's theorem integrates to (2/pi) asin(2a^2/(1+2a^2)); E exp(-X^2-Y^2) matches det formula to {worst:.1e}"


@_check("series.erf_square_series_match")
def _erf_square_series_match() -> CheckResult:
    n_terms = 8
    from_series = erf_square_moment_series(n_terms)
    closed = sp.series(erf_square_moment_closed_form(), a, 0, 2 * n_terms + 1).removeO()
    ok = _is_zero(from_series - closed)
    return ok, f"Gaussian-moment series of erf^2 equals the closed form's Taylor series ({n_terms} terms)"


@_check("series.erf_square_numeric")
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


# ---------------------------------------------------------------------------
# Checks: bounded argument (proofs/bounded_argument.md)
# ---------------------------------------------------------------------------


@_check("argument.mean_square_identity")
def _argument_mean_square_identity() -> CheckResult:
    d = 4
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    estimate = sp.Symbol("M", positive=True)
    z = _lam * h / (_kappa * sp.sqrt(estimate + _eps))
    m = sum(c**2 for c in h) / d
    ok = _is_zero(sum(c**2 for c in z) / d - (_lam / _kappa) ** 2 * m / (estimate + _eps))
    return ok, "mean(z^2) = (lambda/kappa)^2 m(h)/(M + eps) symbolically (d = 4)"


@_check("argument.exact_bounds_adversarial")
def _argument_exact_bounds() -> CheckResult:
    # float64: z is formed with O(d) roundings, so allow 8 d u relative.
    worst_mean, worst_max = 0.0, 0.0
    for d in (1, 7, 64, 1024):
        h = _adversarial_tokens(d, seed=d)
        for lam, kappa in ((2.0, 10.0), (3.0, 10.0), (8.0, 1.0)):
            z = bhyt_argument(h, lam, kappa)
            ratio = lam / kappa
            worst_mean = max(worst_mean, float((z.square().mean(-1) / ratio**2).max()))
            worst_max = max(worst_max, float((z.abs().amax(-1) / (ratio * math.sqrt(d))).max()))
    tolerance = 1 + 8 * 1024 * U64
    ok = worst_mean <= tolerance and worst_max <= tolerance
    return ok, (f"adversarial tokens (d up to 1024, scales 1e-30..1e30): max mean(z^2)/(lam/kappa)^2 = {worst_mean:.6f}, "
                f"max |z_i| / ((lam/kappa) sqrt d) = {worst_max:.6f}")


@_check("argument.one_hot_attains_max")
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


# ---------------------------------------------------------------------------
# Checks: saturation (proofs/saturation_bound.md)
# ---------------------------------------------------------------------------


@_check("saturation.markov_step")
def _saturation_markov() -> CheckResult:
    # #{i : z_i² ≥ t²} · t² ≤ Σ z_i²: checked with exact counts on adversarial tokens.
    worst = 0.0
    for d in (5, 64, 1000):
        h = _adversarial_tokens(d, seed=100 + d)
        for lam, t in ((2.0, 0.05), (2.0, 0.2), (3.0, 1.0)):
            z = bhyt_argument(h, lam, KAPPA)
            fraction = (z.abs() >= t).double().mean(-1)
            bound = torch.clamp((lam / (KAPPA * t)) ** 2 * torch.ones_like(fraction), max=1.0)
            worst = max(worst, float((fraction / bound).max()))
    ok = worst <= 1.0
    return ok, f"adversarial tokens: max saturated fraction / min(1, (lambda/(kappa t))^2) = {worst:.4f}"


@_check("saturation.spike_tightness")
def _saturation_spikes() -> CheckResult:
    # k = d (λ/(κt))² equal spikes give z = t exactly at ε = 0 (up to rounding, 8u).
    d, lam, t = 100, 2.0, 1.0
    k = round(d * (lam / (KAPPA * t)) ** 2)
    h = torch.zeros(1, d, dtype=torch.float64)
    h[0, :k] = 5.0
    z = bhyt_argument(h, lam, KAPPA, eps=0.0)
    spike = float(z[0, 0])
    fraction = float((z.abs() >= t * (1 - 8 * U64)).double().mean())
    bound = (lam / (KAPPA * t)) ** 2
    ok = abs(spike - t) <= 8 * U64 and fraction == k / d and abs(k / d - bound) <= 4 * U64
    return ok, f"{k} equal spikes in d = {d}: z_spike = {spike!r}, fraction {fraction} = bound {bound}"


@_check("saturation.estimate_scaling")
def _saturation_estimate() -> CheckResult:
    # Under an estimate M the bound becomes min(1, (λ/(κt))² m(h)/M).
    worst = 0.0
    for d in (16, 256):
        h = _adversarial_tokens(d, seed=200 + d)
        m = mean_square(h)
        for factor in (0.01, 0.3, 1.0, 5.0):
            estimate = m * factor
            for t in (0.1, 0.5, 2.0):
                z = bhyt_argument(h, 2.0, KAPPA, mean_square=estimate)
                fraction = (z.abs() >= t).double().mean(-1, keepdim=True)
                bound = torch.clamp((2.0 / (KAPPA * t)) ** 2 * m / estimate, max=1.0)
                worst = max(worst, float((fraction / bound).max()))
    ok = worst <= 1.0
    return ok, f"estimated M = (0.01..5) m(h): max fraction / min(1, (lambda/(kappa t))^2 m/M) = {worst:.4f}"


# ---------------------------------------------------------------------------
# Checks: Gaussian typical case (proofs/gaussian_typical_case.md)
# ---------------------------------------------------------------------------


@_check("gaussian.tail_formula")
def _gaussian_tail_formula() -> CheckResult:
    v, t, sigma = sp.symbols("v t sigma", positive=True)
    density = sp.exp(-(v**2) / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))
    tail = 2 * sp.integrate(density, (v, t, sp.oo))
    ok = _is_zero(tail.rewrite(sp.erfc) - sp.erfc(t / (sigma * sp.sqrt(2))))
    return ok, "P(|X| >= t) = erfc(t/(sigma sqrt 2)) for X ~ N(0, sigma^2), by symbolic integration"


@_check("gaussian.large_width_fraction")
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


@_check("gaussian.typical_vs_distribution_free")
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


# ---------------------------------------------------------------------------
# Checks: scale invariance (proofs/scale_invariance.md)
# ---------------------------------------------------------------------------


@_check("scale.argument_identity")
def _scale_identity() -> CheckResult:
    d = 3
    h, z = bhyt_argument_symbolic(d)
    c = sp.Symbol("c", positive=True)
    scaled = z.subs({component: c * component for component in h}, simultaneous=True)
    m = sum(component**2 for component in h) / d
    target = _lam * h / (_kappa * sp.sqrt(m + _eps / c**2))
    ok = all(_is_zero(p - q) for p, q in zip(scaled, target))
    at_zero = all(_is_zero(p - q) for p, q in zip(scaled.subs(_eps, 0), z.subs(_eps, 0)))
    return ok and at_zero, "z(c h) = lambda h / (kappa sqrt(m + eps/c^2)); equals z(h) at eps = 0"


@_check("scale.invariance_at_zero_eps")
def _scale_zero_eps() -> CheckResult:
    # float64 rounding of z and tanh: a few u relative; allow 16 u.
    worst = 0.0
    h = _adversarial_tokens(48, seed=3)[:, :] / 1e20
    base = bhyt(h, 2.0, eps=0.0)
    for c in (1e-200, 1e-8, 0.5, 3.0, 1e8, 1e200):
        worst = max(worst, float(((bhyt(h * c, 2.0, eps=0.0) - base).abs()).max()))
    ok = worst <= 16 * U64
    return ok, f"eps = 0, c in 1e-200..1e200: max |BHyT(c h) - BHyT(h)| = {worst:.1e}"


@_check("scale.epsilon_effect_bound")
def _scale_epsilon_bound() -> CheckResult:
    # |Δu_i| ≤ |γ_i| |ρ − 1| |z_i| with ρ = sqrt((m+ε)/(m+ε/c²)); rounding slack 16u.
    rng = np.random.default_rng(11)
    gamma = torch.tensor(rng.normal(1.0, 0.5, 64))
    worst = 0.0
    for rms in (1e-4, 1e-3, 1e-2, 1.0):
        h = torch.tensor(rng.standard_normal((8, 64))) * rms
        m = mean_square(h)
        z = bhyt_argument(h, 2.0)
        for c in (0.1, 2.0, 1e3):
            rho = torch.sqrt((m + 1e-6) / (m + 1e-6 / c**2))
            change = (bhyt(h * c, 2.0, gamma=gamma) - bhyt(h, 2.0, gamma=gamma)).abs()
            bound = gamma.abs() * (rho - 1).abs() * z.abs()
            worst = max(worst, float(((change - bound) / (bound + 1e-300)).max()))
    ok = worst <= 16 * U64 * 1e3
    return ok, f"|Delta u_i| <= |gamma_i| |rho - 1| |z_i|: max relative excess {worst:.1e}"


@_check("scale.epsilon_effect_numbers")
def _scale_epsilon_numbers() -> CheckResult:
    eps = 1e-6

    def rho(m: float, c: float) -> float:
        return math.sqrt((m + eps) / (m + eps / c**2))

    # |ρ − 1| ≤ ε / (2 min(m, c² m)) on a grid; float64 evaluation of ρ errs by a few u.
    worst = max(
        abs(rho(m, c) - 1) / (eps / (2 * min(m, c * c * m)) + 8 * U64)
        for m in 10.0 ** np.arange(-12, 5) for c in 10.0 ** np.arange(-4.0, 4.5, 0.5)
    )
    large = abs(rho(1.0, 1e6) - 1)
    small = rho(1e-6, 1e6) - 1
    ok = worst <= 1 and large < 1e-6 and 0.4 < small < 0.42
    return ok, (f"|rho - 1| / (eps / (2 min(m(h), m(ch)))) <= {worst:.3f} on the grid; c -> inf: "
                f"rms(h) = 1: rho - 1 = {large:.1e} (negligible); rms(h) = 1e-3 (m = eps): {small:.3f} (sqrt 2 - 1, O(1))")


# ---------------------------------------------------------------------------
# Checks: output bound (proofs/output_bound.md)
# ---------------------------------------------------------------------------


@_check("output.tanh_min_inequality")
def _output_tanh_min() -> CheckResult:
    # x − tanh x has derivative tanh² x ≥ 0 and vanishes at 0, so tanh x ≤ x for x ≥ 0.
    derivative_ok = _is_zero(sp.diff(x - sp.tanh(x), x) - sp.tanh(x) ** 2)
    grid = np.linspace(-50, 50, 200_001)
    numeric_ok = bool(np.all(np.abs(np.tanh(grid)) <= np.minimum(1.0, np.abs(grid))))
    return derivative_ok and numeric_ok, "d/dx (x - tanh x) = tanh^2 x >= 0; |tanh x| <= min(1, |x|) on a 2e5-point grid"


@_check("output.rms_bound_adversarial")
def _output_rms_bound() -> CheckResult:
    rng = np.random.default_rng(5)
    worst_exact, worst_estimate = 0.0, 0.0
    for d in (8, 128):
        h = _adversarial_tokens(d, seed=300 + d)
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


@_check("output.small_ratio_tightness")
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


# ---------------------------------------------------------------------------
# Checks: depth bound (proofs/depth_bound.md)
# ---------------------------------------------------------------------------


@_check("depth.attention_convex_combination")
def _depth_attention() -> CheckResult:
    # ‖a_t‖ ≤ ‖W_O‖₂ sqrt(Σ_k ‖W_V^k‖₂²) max_j ‖u_j‖ on the real Attention module,
    # with random and with adversarially peaked (large-q) attention patterns.
    worst = 0.0
    for init_std, seed in ((0.3, 0), (3.0, 1)):
        config, block = _small_block(init_std=init_std, seed=seed)
        attention = block.attn
        hd = config.head_dim
        w_v = attention.v_proj.weight.detach().double()
        value_norms = [_operator_norm(w_v[j * hd:(j + 1) * hd]) for j in range(config.kv_heads)]
        group = config.heads // config.kv_heads
        head_sum = sum(group * n**2 for n in value_norms)
        constant = _operator_norm(attention.o_proj.weight) * math.sqrt(head_sum)
        generator = torch.Generator().manual_seed(seed)
        for scale in (1e-3, 1.0, 1e3):
            u = torch.randn(2, 16, config.width, generator=generator, dtype=torch.float64) * scale
            u[:, 5] *= 50.0
            with torch.no_grad():
                out = attention(u)
            bound = constant * u.norm(dim=-1).amax(-1, keepdim=True)
            worst = max(worst, float((out.norm(dim=-1) / bound).max()))
    ok = worst <= 1 + 1e-12
    return ok, f"real Attention (GQA 4/2 heads): max ||a_t|| / bound = {worst:.4f}"


@_check("depth.silu_contraction")
def _depth_silu() -> CheckResult:
    silu = x / (1 + sp.exp(-x))
    ratio_ok = _is_zero(silu / x - 1 / (1 + sp.exp(-x)))
    grid = torch.linspace(-100, 100, 400_001, dtype=torch.float64)
    numeric_ok = bool((F.silu(grid).abs() <= grid.abs()).all())
    return ratio_ok and numeric_ok, "silu(x)/x = sigmoid(x) in (0, 1), so |silu(x)| <= |x|"


@_check("depth.swiglu_quadratic_bound")
def _depth_swiglu() -> CheckResult:
    worst_operator, worst_columns, columns_tighter = 0.0, 0.0, True
    for init_std, seed in ((0.3, 0), (2.0, 4)):
        _, block = _small_block(init_std=init_std, seed=seed)
        mlp = block.mlp
        # h ↦ h W orientation: W = weight.T, and g_i = v · W_gate[:, i] uses row i of weight.
        gate, up, down = (layer.weight.detach().double() for layer in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        operator = _operator_norm(down) * _operator_norm(gate) * _operator_norm(up)
        columns = _operator_norm(down) * min(
            float(gate.norm(dim=1).max()) * _operator_norm(up), float(up.norm(dim=1).max()) * _operator_norm(gate)
        )
        columns_tighter &= columns <= operator * (1 + 1e-12)
        generator = torch.Generator().manual_seed(seed)
        for scale in (1e-2, 1.0, 30.0):
            v = torch.randn(64, block.config.width, generator=generator, dtype=torch.float64) * scale
            with torch.no_grad():
                f = mlp(v)
            square = v.square().sum(-1)
            worst_operator = max(worst_operator, float((f.norm(dim=-1) / (operator * square)).max()))
            worst_columns = max(worst_columns, float((f.norm(dim=-1) / (columns * square)).max()))
    ok = worst_operator <= 1 + 1e-12 and worst_columns <= 1 + 1e-12 and columns_tighter
    return ok, (f"real SwiGLU: max ||f|| / (||W_d|| ||W_g|| ||W_u|| ||v||^2) = {worst_operator:.4f}, "
                f"column-norm form {worst_columns:.4f} (never looser)")


@_check("depth.norm_output_bounds")
def _depth_norm_outputs() -> CheckResult:
    d = 64
    h = _adversarial_tokens(d, seed=9)
    rng = np.random.default_rng(9)
    gamma = torch.tensor(rng.standard_normal(d) * 2)
    beta = torch.tensor(rng.standard_normal(d))
    g_max = float(gamma.abs().max())
    root_d = math.sqrt(d)
    ratios = {
        "RMSNorm": float(rms_norm(h, gamma).norm(dim=-1).max()) / (g_max * root_d),
        "BHyT exact M": float(bhyt(h, 3.0, gamma=gamma).norm(dim=-1).max()) / (g_max * 0.3 * root_d),
        "BHyT any M": float(bhyt(h, 3.0, gamma=gamma, mean_square=mean_square(h) * 1e-4).norm(dim=-1).max())
        / float(gamma.norm()),
        "LNS l=4": float((rms_norm(h, gamma) / 2).norm(dim=-1).max()) / (g_max * root_d / 2),
        "DyT": float(dyt(h, 0.5, gamma, beta).norm(dim=-1).max()) / float((gamma.abs() + beta.abs()).norm()),
        "Derf": float(derf(h, 0.5, 0.0, gamma, beta).norm(dim=-1).max()) / float((gamma.abs() + beta.abs()).norm()),
    }
    ok = all(r <= 1 + 8 * d * U64 for r in ratios.values())
    return ok, "max ||norm output|| / bound: " + ", ".join(f"{k} {v:.4f}" for k, v in ratios.items())


@_check("depth.estimate_does_not_bound_argument")
def _depth_estimate_counterexample() -> CheckResult:
    # A bhyt stack on small inputs: at position 0 attention copies u_0, so the increment is
    # T times the assumed one and M₂ < m(h'); the second norm's argument exceeds λ₂/κ.
    config = StackConfig(scheme="bhyt", depth=2, width=64, heads=4, seq_len=64, init_std=0.2, dtype="float64")
    stack = Stack(config, seed=0)
    x_in = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1e-3
    table = stack.trace(x_in)
    rows = table[(table.sublayer == "attn") & (table.position == 0)]
    ratio = float(rows.estimate_ratio.min())
    arg_rows = table[(table.sublayer == "mlp") & (table.position == 0)]
    argument_excess = float(arg_rows.arg_rms.max()) / (config.lam_post / config.kappa)
    ok = ratio < 1 and argument_excess > 1
    return ok, (f"bhyt stack, inputs rms 1e-3, position 0: min M2/m(h') = {ratio:.3f}; "
                f"second norm's rms(z) / (lambda2/kappa) = {argument_excess:.2f}")


@_check("depth.dyt_bound_is_saturated")
def _depth_dyt_saturated() -> CheckResult:
    d = 256
    h = torch.randn(1, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ratios = [float(dyt(h * scale, 0.5).norm() / math.sqrt(d)) for scale in (1e-2, 1.0, 1e2, 1e4)]
    saturated = [float((dyt(h * scale, 0.5).abs() >= math.tanh(1.0)).double().mean()) for scale in (1e-2, 1e4)]
    ok = ratios == sorted(ratios) and ratios[-1] > 0.99 and ratios[0] < 0.01 and saturated[1] > 0.99
    return ok, ("DyT (alpha 0.5): ||u|| / sqrt(d) = " + ", ".join(f"{r:.4f}" for r in ratios)
                + f" at input scales 1e-2..1e4; fraction |alpha h| >= 1 at 1e4: {saturated[1]:.3f}")


@_check("depth.constant_ratios")
def _depth_constant_ratios() -> CheckResult:
    g, d, ratio, attn_c, mlp_c = sp.symbols("g d r A F", positive=True)
    rms_attn = attn_c * g * sp.sqrt(d) / sp.sqrt(d)
    rms_mlp = mlp_c * (g * sp.sqrt(d)) ** 2 / sp.sqrt(d)
    bhyt_attn = attn_c * g * ratio * sp.sqrt(d) / sp.sqrt(d)
    bhyt_mlp = mlp_c * (g * ratio * sp.sqrt(d)) ** 2 / sp.sqrt(d)
    ok = _is_zero(bhyt_attn / rms_attn - ratio) and _is_zero(bhyt_mlp / rms_mlp - ratio**2)
    return ok, "per-layer constants: BHyT/RMSNorm = lambda/kappa (attention), (lambda/kappa)^2 (MLP)"


@_check("depth.estimate_cauchy_schwarz")
def _depth_estimate_cauchy_schwarz() -> CheckResult:
    # m(h') ≤ (s + A)² with s = rms(h), and M₂ + ε = s² + b for the reference estimate:
    # (s² + b)(1 + A²/b) − (s + A)² is the square (sA/√b − √b)², so the ratio is ≤ 1 + A²/b.
    s_, amplitude, b = sp.symbols("s A b", positive=True)
    gap = (s_**2 + b) * (1 + amplitude**2 / b) - (s_ + amplitude) ** 2
    ok = _is_zero(gap - (s_ * amplitude / sp.sqrt(b) - sp.sqrt(b)) ** 2)
    # attained at s = b/A, where the square vanishes
    ok = ok and _is_zero(gap.subs(s_, b / amplitude))
    return ok, "(s^2 + b)(1 + A^2/b) - (s + A)^2 = (sA/sqrt(b) - sqrt(b))^2 >= 0, zero at s = b/A"


# ---------------------------------------------------------------------------
# Checks: Jacobian (proofs/jacobian.md)
# ---------------------------------------------------------------------------


@_check("jacobian.symbolic_closed_form")
def _jacobian_symbolic() -> CheckResult:
    ok = all(
        (bhyt_jacobian_symbolic(d) - bhyt_jacobian_closed_form(d)).applyfunc(sp.simplify) == sp.zeros(d, d)
        for d in (2, 3, 4)
    )
    return ok, "sympy's dz/dh equals (lambda/(kappa sqrt(M+eps))) (I - h h^T/(d(M+eps))) for d = 2, 3, 4"


@_check("jacobian.autograd_match")
def _jacobian_autograd() -> CheckResult:
    # float64 autograd vs the lambdified closed form: each entry carries O(d) roundings of
    # magnitude ≤ ‖J‖, so allow 64 d u ‖J‖_max.
    rng = np.random.default_rng(12)
    worst = 0.0
    for d in (2, 3, 4):
        h_symbols, _ = bhyt_argument_symbolic(d)
        closed = sp.lambdify([*h_symbols, _lam, _kappa, _eps], bhyt_jacobian_closed_form(d), "numpy")
        for _ in range(10):
            point = rng.standard_normal(d) * 10.0 ** rng.uniform(-2, 2)
            lam = float(rng.uniform(0.5, 4.0))
            auto = torch.autograd.functional.jacobian(
                lambda v: bhyt_argument(v, lam, KAPPA), torch.tensor(point, dtype=torch.float64)
            ).numpy()
            expected = np.array(closed(*point, lam, KAPPA, 1e-6), dtype=float)
            scale = np.abs(expected).max()
            worst = max(worst, float(np.abs(auto - expected).max() / (64 * d * U64 * scale)))
    ok = worst <= 1.0
    return ok, f"torch autograd of norms.bhyt_argument vs closed form, d = 2, 3, 4: max error / (64 d u ||J||) = {worst:.3f}"


@_check("jacobian.eigenstructure")
def _jacobian_eigen() -> CheckResult:
    d = 3
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    m = sum(c**2 for c in h) / d
    projector = sp.eye(d) - h * h.T / (d * (m + _eps))
    along = (projector * h - _eps / (m + _eps) * h).applyfunc(sp.simplify)
    orthogonal = sp.Matrix([h[1], -h[0], 0])  # hᵀ v = 0
    across = (projector * orthogonal - orthogonal).applyfunc(sp.simplify)
    ok = along == sp.zeros(d, 1) and across == sp.zeros(d, 1)
    return ok, "(I - h h^T/(d(M+eps))) h = eps/(M+eps) h, and v for v orthogonal to h"


@_check("jacobian.operator_norm_scaling")
def _jacobian_norm() -> CheckResult:
    # Spectral norm of the autograd Jacobian vs λ/(κ sqrt(m+ε)) over scales; 64 d u relative.
    d = 32
    base = torch.randn(d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    worst = 0.0
    for scale in (1e-3, 1.0, 1e3):
        h = base * scale
        jac = torch.autograd.functional.jacobian(lambda v: bhyt_argument(v, 2.0), h)
        norm = float(torch.linalg.matrix_norm(jac, ord=2))
        predicted = 2.0 / (KAPPA * math.sqrt(float(mean_square(h)) + 1e-6))
        worst = max(worst, abs(norm / predicted - 1))
    ok = worst <= 64 * d * U64
    return ok, f"||dz/dh||_2 = lambda/(kappa sqrt(m+eps)) at rms 1e-3..1e3: max relative error {worst:.1e}"


# ---------------------------------------------------------------------------
# Checks: variance approximation (proofs/variance_approximation.md)
# ---------------------------------------------------------------------------


@_check("variance.residual_expansion")
def _variance_residual() -> CheckResult:
    d = 3
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    attn = sp.Matrix(sp.symbols(f"a1:{d + 1}", real=True))
    lhs = sum(c**2 for c in h + attn) / d
    rhs = sum(c**2 for c in h) / d + sp.Rational(2, d) * h.dot(attn) + sum(c**2 for c in attn) / d
    return _is_zero(sp.expand(lhs - rhs)), "m(h + a) = m(h) + (2/d)<h, a> + m(a)"


@_check("variance.attention_square_split")
def _variance_square_split() -> CheckResult:
    # Symbolic T = 3 tokens, d = 2, one shared pattern: m(a_t) = diagonal + off-diagonal,
    # and the diagonal term of an isotropic u has mean m(u) ‖W‖_F² (E u_i u_k = m δ_ik).
    T, d = 3, 2
    p = sp.symbols("p1:4", real=True)
    u = [sp.Matrix(1, d, sp.symbols(f"u{j}_1:{d + 1}", real=True)) for j in range(T)]
    w = sp.Matrix(d, d, sp.symbols("w1:5", real=True))
    a_t = sum((p[j] * u[j] * w for j in range(T)), sp.zeros(1, d))
    m_a = (a_t * a_t.T)[0] / d
    diagonal = sum(p[j] ** 2 * (u[j] * w * w.T * u[j].T)[0] for j in range(T)) / d
    off = sum(p[j] * p[k] * (u[j] * w * w.T * u[k].T)[0] for j in range(T) for k in range(T) if j != k) / d
    split_ok = _is_zero(sp.expand(m_a - diagonal - off))
    mu = sp.Symbol("mu", positive=True)
    variables = list(u[0])
    quadratic = sp.Poly(sp.expand((u[0] * w * w.T * u[0].T)[0]), *variables)
    # E u_i u_k = m δ_ik: only the u_i² monomials survive, each with weight m.
    expected = sum(
        coefficient * mu for powers, coefficient in quadratic.terms() if sorted(powers) == [0] * (d - 1) + [2]
    )
    isotropic_ok = _is_zero(expected - mu * sum(c**2 for c in w))
    return split_ok and isotropic_ok, "m(a_t) = sum_j P_tj^2 (.)/d + sum_{j!=k} P_tj P_tk (.)/d; E u W W^T u^T = m(u) ||W||_F^2"


@_check("variance.reduces_to_reference")
def _variance_reduces() -> CheckResult:
    decomposition = variance_decomposition()
    residual = decomposition.exact - decomposition.reference - sum(decomposition.error_terms.values())
    exact_ok = _is_zero(residual)
    vanish = decomposition.exact.subs(decomposition.vanishing) - decomposition.reference
    terms_vanish = all(_is_zero(term.subs(decomposition.vanishing)) for term in decomposition.error_terms.values())
    ok = exact_ok and _is_zero(vanish) and terms_vanish
    return ok, f"exact = M2 + sum of {len(decomposition.error_terms)} error terms; all vanish and exact = M2 under the four assumptions"


@_check("variance.decomposition_on_real_block")
def _variance_real_block() -> CheckResult:
    # q_proj = 0 makes the real Attention module uniform causal, P_tj = 1/t; then the
    # decomposition must sum to m(h + Attn(u)) computed by the module (float64, 1e-12 rel).
    config, block = _small_block(scheme="bhytstar", width=16, heads=2, kv_heads=1, init_std=0.5, seed=6)
    T = config.seq_len
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.norm_attn.gamma.copy_(torch.linspace(0.5, 1.5, config.width, dtype=torch.float64))
    h = torch.randn(1, T, config.width, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 0.7
    with torch.no_grad():
        module_state = h + block.attn(block.norm_attn(h))
    causal = torch.tril(torch.ones(T, T, dtype=torch.float64))
    pattern = (causal / causal.sum(-1, keepdim=True)).expand(config.heads, T, T)
    terms = post_attention_error_terms(
        h[0], pattern, block.attn.v_proj.weight, block.attn.o_proj.weight, config.kv_heads, T,
        float(block.norm_attn.lam.detach()), config.kappa, block.norm_attn.gamma.detach(),
    )
    module_exact = mean_square(module_state)[0, :, 0]
    names = variance_decomposition().error_terms
    assembled = terms["reference"] + sum(terms[name] for name in names)
    position = torch.arange(1, T + 1, dtype=torch.float64)
    err_module = float(((terms["exact"] - module_exact).abs() / module_exact).max())
    err_sum = float(((assembled - terms["exact"]).abs() / terms["exact"]).max())
    err_conc = float((terms["concentration_sum"] * position - 1).abs().max())
    ok = err_module < 1e-12 and err_sum < 1e-12 and err_conc < 1e-12
    return ok, (f"real block, uniform causal attention: decomposition vs module m(h') rel. error {err_module:.1e}; "
                f"M2 + terms vs exact {err_sum:.1e}; S_t = 1/t to {err_conc:.1e}")


@_check("variance.uniform_causal_concentration")
def _variance_uniform_causal() -> CheckResult:
    t, j, T = sp.symbols("t j T", positive=True, integer=True)
    concentration = sp.summation((1 / t) ** 2, (j, 1, t))
    ok = _is_zero(concentration - 1 / t) and _is_zero(concentration / (1 / T) - T / t)
    return ok, "uniform causal attention: sum_{j<=t} (1/t)^2 = 1/t, i.e. T/t times the assumed 1/T"


@_check("variance.tanh_curvature_numbers")
def _variance_curvature() -> CheckResult:
    rows = []
    ok = True
    for value in (0.1, 0.2, 0.3):
        exact = float(gaussian.tanh_square_moment(value))
        ok &= exact < value**2
        rows.append(f"a={value}: E tanh^2 = {exact:.6g} = {exact / value**2:.4f} a^2")
    return ok, "; ".join(rows)


# ---------------------------------------------------------------------------
# Proof files: the sections they must have and the checks they cite
# ---------------------------------------------------------------------------

PROOF_SECTIONS = ("Assumptions", "Statement", "Proof", "Tightness", "Checks")
"""Level-2 headings every ``proofs/*.md`` has, in this order; the fourth may read
"Tightness example" or "Tightness example or counterexample"."""

_CHECK_REFERENCE = re.compile(r"`check:([A-Za-z0-9_.\-]+)`")


PROOFS_DIR = Path(__file__).resolve().parent.parent / "proofs"
"""The written proofs, in the repository next to the package."""


def proof_sections(text: str) -> list[str]:
    """The level-2 headings (``## …``) of a proof, in order."""
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


def check_references(proofs: Path) -> dict[str, list[str]]:
    """Check id → the ``proofs/*.md`` file names that cite it as `` `check:<id>` ``."""
    references: dict[str, list[str]] = {}
    for path in sorted(proofs.glob("*.md")):
        for check_id in dict.fromkeys(_CHECK_REFERENCE.findall(path.read_text(encoding="utf-8"))):
            references.setdefault(check_id, []).append(path.name)
    return references


def run_checks(proofs: Path = PROOFS_DIR) -> pd.DataFrame:
    """Run every registered check: one row per check id with ``passed``, ``message``
    and the ``proofs`` files citing it. A check that raises is a failure whose
    message names the exception, so one broken check never hides the others."""
    references = check_references(proofs) if proofs.is_dir() else {}
    rows = []
    for check_id, check in CHECKS.items():
        try:
            passed, message = check()
        except Exception as error:  # reported as a failed check, with its cause
            passed, message = False, f"raised {type(error).__name__}: {error}"
        rows.append({"check": check_id, "passed": bool(passed), "message": message,
                     "proofs": ", ".join(references.get(check_id, []))})
    return pd.DataFrame(rows)
