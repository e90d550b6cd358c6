"""Symbolic derivations behind BHyT's statements.

Three derivations live here; the checks that re-derive their steps live in
``bhyt_theory.theory.checks``, one module per written proof:

- Gaussian moments of tanh and erf as series in ``a = λ/κ`` (docs/estimators.md §3):
  ``E tanh²(aZ) = a² − 2a⁴ + (17/3)a⁶ − (62/3)a⁸ + …`` from the tanh Maclaurin
  series (Bernoulli numbers) and ``E Z^{2k} = (2k−1)!!``; the series diverges
  but every truncation brackets the exact value (proofs/variance_approximation.md);
  ``E erf²(aZ) = (2/π) arcsin(2a²/(1+2a²))`` by Price's theorem.
- The BHyT Jacobian ``∂z/∂h = (λ/(κ sqrt(M+ε))) (I − h hᵀ/(d(M+ε)))`` with exact
  ``M = m(h)`` (proofs/jacobian.md).
- The post-attention mean square ``m(h')`` written as BHyT's estimate
  ``m₁ + c_attn λ₁²/κ²`` plus one explicit error term per dropped assumption
  (proofs/variance_approximation.md).


References
----------
Byun et al., arXiv 2601.09719 (BHyT). Sun et al., arXiv 2502.05795 (curse of depth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from ..numerics.norms import (
    KAPPA,
    attention_variance_constant,
    bhyt,
    bhyt_argument,
    mean_square,
    value_output_maps,
)

__all__ = [
    "a",
    "x",
    "lam_sym",
    "kappa_sym",
    "eps_sym",
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
]

a = sp.Symbol("a", positive=True)
"""The ratio ``λ/κ``: the standard deviation of a Gaussian tanh argument."""
x = sp.Symbol("x", real=True)

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


MAX_EXTRA_DEGREE = 40
"""How far beyond degree ``4 n_terms`` ``_moment_series`` searches for non-zero terms before it fails."""


def _moment_series(maclaurin: Callable[[int], sp.Expr], n_terms: int) -> sp.Expr:
    """The first ``n_terms`` non-zero terms of ``E f(aZ)`` from ``f``'s Maclaurin polynomials."""
    if n_terms < 1:
        raise ValueError(f"n_terms must be ≥ 1, got {n_terms}")
    # Terms of degree ≤ degree are final; a higher truncation cannot change them. A series
    # with fewer non-zero terms than asked for (a wrong Maclaurin polynomial, e.g. one that is
    # identically zero) would loop forever: the degree is capped and the failure is an error.
    max_degree = 4 * n_terms + MAX_EXTRA_DEGREE
    for degree in range(2 * n_terms, max_degree + 1, 2):
        terms = series_terms(gaussian_moment_series(maclaurin(degree)))
        if len(terms) >= n_terms:
            return sp.Add(*terms[:n_terms])
    raise RuntimeError(f"fewer than {n_terms} non-zero terms up to degree {max_degree}: the Maclaurin polynomial is wrong")


def tanh_square_moment_series(n_terms: int) -> sp.Expr:
    """``E tanh²(aZ)``, Z ~ N(0, 1), to its first ``n_terms`` non-zero terms.

    Returns ``a² − 2a⁴ + (17/3)a⁶ − (62/3)a⁸ + …`` (a sympy expression in ``a``).

    Notes
    -----
    Derived term by term from ``tanh_series`` and ``E Z^{2k} = (2k−1)!!``. The
    series diverges for every ``a > 0``, but it is an *enveloping* series: the
    exact value lies between any two consecutive partial sums, because
    ``sech²(√y)`` is completely monotone in ``y`` (proofs/variance_approximation.md).
    Serves the tanh-curvature error term of docs/estimators.md §3 (claim C5).
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

lam_sym, kappa_sym, eps_sym = sp.symbols("lambda kappa epsilon", positive=True)
"""Symbols of BHyT's λ, κ and ε in the symbolic argument and Jacobian."""


def bhyt_argument_symbolic(d: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Symbols ``h = (h_1 … h_d)`` and ``z = λ h / (κ sqrt(m(h) + ε))`` (exact M), as columns."""
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    m = sum(component**2 for component in h) / d
    return h, lam_sym * h / (kappa_sym * sp.sqrt(m + eps_sym))


def bhyt_jacobian_symbolic(d: int) -> sp.Matrix:
    """``∂z/∂h`` of BHyT's argument with exact ``M = m(h)``, differentiated by sympy."""
    h, z = bhyt_argument_symbolic(d)
    return z.jacobian(h)


def bhyt_jacobian_closed_form(d: int) -> sp.Matrix:
    """``(λ/(κ sqrt(M+ε))) (I − h hᵀ/(d(M+ε)))`` with ``M = m(h)`` (proofs/jacobian.md)."""
    h, _ = bhyt_argument_symbolic(d)
    m = sum(component**2 for component in h) / d
    return lam_sym / (kappa_sym * sp.sqrt(m + eps_sym)) * (sp.eye(d) - h * h.T / (d * (m + eps_sym)))


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
        Which of the four assumptions of docs/estimators.md §3 each term measures.
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
    """The derivation of ``M₂`` from the four assumptions of docs/estimators.md §3, error terms kept.

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
