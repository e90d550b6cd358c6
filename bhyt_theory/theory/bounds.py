"""Rigorous bounds of the theory layer: bounded argument, saturation, and depth.

Every function here evaluates a proved inequality (``proofs/``) numerically,
vectorised over numpy arrays where its arguments are scalars. The Gaussian
moments the bounds are compared with live in :mod:`bhyt_theory.gaussian` and are
re-exported here, so the theory has one import point and one home per formula.

Statements served (docs/statements.md §1, §2, §5): bounded argument (``max_argument_bound``),
distribution-free saturation bound (``saturated_fraction_bound``), Gaussian
typical case (``gaussian_saturated_fraction``), and the per-token depth bound
(``depth_bound``) for BHyT and every baseline; claims C3 and C4.

Depth bound in one line (``proofs/depth_bound.md``): for every token t,

    rms(h_L,t) ≤ rms(h_0,t) + Σ_l (A_l + F_l),

with the attention term ``A_l`` and the MLP term ``F_l`` in rms units (‖·‖/√d),
built from the spectral norms of the layer's weights and a bound on the norm
output that does not depend on the input scale. With fixed weights the bound is
*linear in depth* for every scheme, Pre-LN included; what BHyT changes is the
constant: its attention term carries a factor λ/κ and its MLP term (quadratic
in the norm output) a factor (λ/κ)², where RMSNorm has 1. DyT and Derf have a
bound only because |tanh|, |erf| ≤ 1: it is the *saturated* bound, without any
λ/κ factor, and it is approached as the input scale grows. For the paper's
BHyT, whose MLP-side norm is fed the estimate ``M₂ = m₁ + c_attn λ₁²/κ²``, the
λ/κ factor on that side needs ``M₂ ≥ m(h')``, which nothing guarantees; the
input-scale-free bound there is ``|tanh| ≤ 1`` or a Cauchy–Schwarz bound with a
factor ``sqrt(1 + A_l²/(c_attn λ₁²/κ² + ε))``, and a data-dependent bound keeps
the measured ``m(h')/M₂`` (``depth_bound``'s two variants).

References
----------
Byun et al., "Bounded Hyperbolic Tangent", arXiv 2601.09719 (BHyT).
Sun et al., arXiv 2502.05795 (LNS); Kim et al., arXiv 2502.02732 (Peri-LN);
Zhu et al., arXiv 2503.10622 (DyT); arXiv 2512.10938 (Derf).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import special
from torch import Tensor, nn

from ..numerics.gaussian import (
    erf_square_moment,
    gaussian_tail,
    tanh_prime_moment,
    tanh_prime_square_moment,
    tanh_square_moment,
)
from ..numerics.model import (
    Attention,
    Block,
    Stack,
    SwiGLU,
    hidden_states,
)
from ..numerics.norms import mean_square, root_mean_square
from ..numerics.probes import RecordingProbe
from ..numerics.schemes import scheme_row

__all__ = [
    "saturated_fraction_bound",
    "max_argument_bound",
    "gaussian_saturated_fraction",
    "gaussian_saturated_fraction_finite_width",
    "tanh_square_moment",
    "tanh_prime_moment",
    "tanh_prime_square_moment",
    "erf_square_moment",
    "spectral_norm",
    "attention_gain",
    "swiglu_gains",
    "swiglu_gain",
    "BOUND_KINDS",
    "depth_bound",
    "DEPTH_BOUND_COLUMNS",
    "NORM_OUTPUT_BOUNDS",
    "OUTPUT_NORM_TERMS",
]

ArrayLike = float | np.ndarray


def scalar_or_array(value: np.ndarray) -> ArrayLike:
    """A 0-dim result as a Python float, anything else unchanged."""
    return float(value) if np.ndim(value) == 0 else value


def saturated_fraction_bound(lam: ArrayLike, kappa: ArrayLike, t: ArrayLike, mean_square_ratio: ArrayLike = 1.0) -> ArrayLike:
    """Distribution-free bound on the fraction of BHyT arguments with ``|z_i| ≥ t``.

    Parameters
    ----------
    lam, kappa : float or array
        λ and κ of the norm.
    t : float or array, > 0
        Saturation threshold.
    mean_square_ratio : float or array, default 1
        ``m(h) / M`` for a norm fed the estimate ``M``; 1 for the exact ``M = m(h)``.

    Returns
    -------
    ``min(1, (λ / (κ t))² · mean_square_ratio)``, broadcast over the arguments.

    Notes
    -----
    ``mean(z²) = (λ/κ)² m/(M + ε) ≤ (λ/κ)² · m/M`` and, by Markov's inequality on
    ``z_i²``, ``#{i : |z_i| ≥ t} / d ≤ mean(z²) / t²``. Attained (up to ε) by an
    input with ``k = d (λ/(κt))²`` equal spikes and zeros elsewhere
    (``proofs/saturation_bound.md``; docs/statements.md §2, claim C3).

    Examples
    --------
    >>> saturated_fraction_bound(2.0, 10.0, 1.0)
    0.04000000000000001
    """
    lam, kappa, t, ratio = (np.asarray(v, dtype=float) for v in (lam, kappa, t, mean_square_ratio))
    return scalar_or_array(np.minimum(1.0, (lam / (kappa * t)) ** 2 * ratio))


def max_argument_bound(lam: ArrayLike, kappa: ArrayLike, d: ArrayLike) -> ArrayLike:
    """``max_i |z_i| ≤ (|λ|/κ) √d`` for BHyT with the exact ``M`` (bounded argument).

    Notes
    -----
    ``z_i² ≤ Σ_j z_j² = d (λ/κ)² m/(m + ε) ≤ d (λ/κ)²``; attained up to ε by a
    one-hot input (``proofs/bounded_argument.md``; docs/statements.md §1, claim C3).

    Examples
    --------
    >>> max_argument_bound(2.0, 10.0, 256)  # (2/10) · 16
    3.2
    """
    lam, kappa, d = (np.asarray(v, dtype=float) for v in (lam, kappa, d))
    return scalar_or_array(np.abs(lam) / kappa * np.sqrt(d))


def gaussian_saturated_fraction(lam: ArrayLike, kappa: ArrayLike, t: ArrayLike) -> ArrayLike:
    """Typical-case saturated fraction: ``P(|z| ≥ t) = erfc(t κ / (λ √2))`` for z ~ N(0, (λ/κ)²).

    Notes
    -----
    With Gaussian coordinates and exact ``M``, each ``z_i`` is ``(λ/κ)`` times a
    coordinate standardised by the token's own rms, which tends to N(0, 1) as
    ``d`` grows (``proofs/gaussian_typical_case.md``; docs/statements.md §2, claim C3).
    """
    std = np.abs(np.asarray(lam, dtype=float)) / np.asarray(kappa, dtype=float)
    return scalar_or_array(np.asarray(gaussian_tail(t, std)))


def gaussian_saturated_fraction_finite_width(lam: ArrayLike, kappa: ArrayLike, t: ArrayLike, d: ArrayLike) -> ArrayLike:
    """Exact expected saturated fraction at width ``d`` for Gaussian tokens and exact ``M`` (ε = 0).

    Parameters
    ----------
    lam, kappa : float or array
        λ and κ of the norm (only ``|λ|`` matters).
    t : float or array, > 0
        Saturation threshold.
    d : int or array, ≥ 2
        Width (the number of coordinates of a token).

    Returns
    -------
    ``E s_t = P(|z_i| ≥ t) = P(B ≥ x)``, ``B ~ Beta(1/2, (d−1)/2)``, ``x = t² κ² / (λ² d)``;
    exactly 0 where ``t > (|λ|/κ) √d`` (``x > 1``: no input reaches such a threshold).

    Notes
    -----
    With ε = 0, ``z_i² κ²/(λ² d) = h_i² / Σ_j h_j²``. For iid centred Gaussian
    coordinates (any σ) that ratio is ``X/(X + Y)`` with independent ``X ~ χ²₁`` and
    ``Y ~ χ²_{d−1}``, i.e. ``Beta(1/2, (d−1)/2)``; the fraction's mean is the
    marginal tail, ``I_{1−x}((d−1)/2, 1/2)`` (regularised incomplete beta). As
    ``d → ∞`` it tends to :func:`gaussian_saturated_fraction`. With ε > 0 every
    ``|z_i|`` is smaller, so this value bounds the fraction's mean from above
    (``proofs/gaussian_typical_case.md``; docs/claims.md, claim C3).

    Examples
    --------
    >>> gaussian_saturated_fraction_finite_width(2.0, 10.0, 1.0, 16)  # (λ/κ)√d = 0.8 < 1
    0.0
    """
    lam, kappa, t, d = (np.asarray(v, dtype=float) for v in (lam, kappa, t, d))
    if np.any(d < 2):
        raise ValueError(f"d must be ≥ 2 (a width-1 token has |z| = (λ/κ) sqrt(m/(m+ε)) always), got {d}")
    if np.any(t <= 0):
        raise ValueError(f"t must be > 0, got {t}")
    x = (t * kappa / lam) ** 2 / d
    tail = special.betainc((d - 1) / 2, 0.5, np.clip(1 - x, 0.0, 1.0))
    return scalar_or_array(np.where(x > 1, 0.0, tail))


# --- operator norms ------------------------------------------------------------------------


def spectral_norm(weight: Tensor) -> float:
    """``‖W‖₂``, the largest singular value, in float64 (the same for ``W`` and ``Wᵀ``)."""
    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2))


def _max_row_norm(weight: Tensor) -> float:
    """``‖W‖_{2→∞} = max_i ‖W_{i,:}‖₂`` of an ``nn.Linear`` weight (rows = outputs)."""
    return float(weight.detach().double().norm(dim=1).max())


def attention_gain(attention: Attention) -> float:
    """``G_A = ‖W_O‖₂ · sqrt(Σ_k ‖W_V^k‖₂²)``, so ``‖a_t‖ ≤ G_A · max_j ‖u_j‖``.

    Parameters
    ----------
    attention : Attention
        ``W_V^k`` is the ``d × head_dim`` block of ``v_proj`` that query head k
        reads (key/value heads repeated over their query groups, exactly as the
        forward repeats them); ``W_O`` is ``o_proj``.

    Notes
    -----
    Head k's output for token t is the convex combination
    ``o^k_t = Σ_j P^k_tj u_j W_V^k`` (causal: ``j ≤ t``, rows of ``P^k`` sum to 1),
    so ``‖o^k_t‖ ≤ ‖W_V^k‖₂ max_j ‖u_j‖`` by the triangle inequality. The output
    ``a_t = [o^1_t, …, o^H_t] W_O`` then has
    ``‖a_t‖ ≤ ‖W_O‖₂ sqrt(Σ_k ‖o^k_t‖²) ≤ G_A max_j ‖u_j‖``. Attained by rank-1
    ``W_V^k = σ_k p q_kᵀ``, ``W_O`` whose top right singular vector is the
    concatenated ``(σ_k q_k)``, and every ``u_j = c p`` (``proofs/depth_bound.md``).
    The bound holds whatever the attention probabilities, so RoPE, the query
    and key weights and the input scale do not enter it.
    """
    group = attention.heads // attention.kv_heads
    head_dim = attention.v_proj.weight.shape[0] // attention.kv_heads
    w_v = attention.v_proj.weight.detach().double().reshape(attention.kv_heads, head_dim, -1)
    kv_head_norms = torch.linalg.matrix_norm(w_v, ord=2)
    value_norm = math.sqrt(group * float(kv_head_norms.square().sum()))
    return spectral_norm(attention.o_proj.weight) * value_norm


def swiglu_gains(mlp: SwiGLU) -> dict[str, float]:
    """Three valid constants ``G`` with ``‖f‖ ≤ G ‖v‖²`` for ``f = W_down(silu(W_g v) ⊙ W_up v)``.

    Returns
    -------
    dict with
    ``"spectral"``: ``‖W_down‖₂ ‖W_g‖₂ ‖W_up‖₂``;
    ``"gate_rows"``: ``‖W_down‖₂ ‖W_g‖_{2→∞} ‖W_up‖₂``;
    ``"up_rows"``: ``‖W_down‖₂ ‖W_g‖₂ ‖W_up‖_{2→∞}``,
    where ``‖W‖_{2→∞} = max_i ‖W_{i,:}‖₂`` is the largest row norm (row i gives
    output coordinate i).

    Notes
    -----
    All three start from ``‖f‖ ≤ ‖W_down‖₂ ‖silu(g) ⊙ w‖₂`` with ``g = W_g v``,
    ``w = W_up v``, and use ``|silu(x)| = |x| σ(x) ≤ |x|`` and
    ``‖x ⊙ y‖₂ ≤ ‖x‖_∞ ‖y‖₂``:

    - spectral: ``‖silu(g) ⊙ w‖ ≤ ‖g‖_∞ ‖w‖ ≤ ‖g‖₂ ‖w‖ ≤ ‖W_g‖₂ ‖W_up‖₂ ‖v‖²``;
    - gate_rows: ``‖g‖_∞ = max_i |⟨W_g[i], v⟩| ≤ ‖W_g‖_{2→∞} ‖v‖`` (Cauchy–Schwarz
      per row) in place of ``‖g‖₂``;
    - up_rows: the other factor in the ∞-norm, ``‖silu(g) ⊙ w‖ ≤ ‖silu(g)‖₂ ‖w‖_∞
      ≤ ‖W_g‖₂ ‖W_up‖_{2→∞} ‖v‖²``.

    Since ``‖W‖_{2→∞} ≤ ‖W‖₂``, the row routes are never looser than the spectral
    one. All are attained, as ``‖v‖ → ∞`` along a fixed direction, by rank-1
    ``W_g = s e_i pᵀ``, ``W_up = s' e_i pᵀ``, ``W_down = s'' p e_iᵀ`` with
    ``v ∥ p`` (then ``silu(x)/x → 1``); at bounded ``‖v‖`` the ratio is
    ``σ(s ‖v‖)``. No bound linear in ‖v‖ exists (silu(x) ~ x for x → ∞), which is
    why the MLP term is quadratic in the norm-output bound.
    """
    down = spectral_norm(mlp.down_proj.weight)
    gate, up = spectral_norm(mlp.gate_proj.weight), spectral_norm(mlp.up_proj.weight)
    return {
        "spectral": down * gate * up,
        "gate_rows": down * _max_row_norm(mlp.gate_proj.weight) * up,
        "up_rows": down * gate * _max_row_norm(mlp.up_proj.weight),
    }


def swiglu_gain(mlp: SwiGLU) -> float:
    """The tightest of :func:`swiglu_gains`: ``‖f‖ ≤ swiglu_gain(mlp) · ‖v‖²``."""
    return min(swiglu_gains(mlp).values())


# --- norm-output bounds --------------------------------------------------------------------

BOUND_KINDS = {
    "normalised": "RMSNorm, LNS, Peri-LN: from dividing by the token's rms; no tanh",
    "non-saturating": "BHyT: from |tanh z| ≤ |z|, carries the factor λ/κ",
    "saturated": "from |tanh|, |erf| ≤ 1, no λ/κ factor, approached as the input scale grows "
    "(DyT, Derf, and BHyT wherever that route is the binding one)",
}
"""The ``*_bound_kind`` values of :func:`depth_bound` and where each comes from."""

NormBound = tuple[np.ndarray, np.ndarray]  # (bound on rms(u), its kind), broadcastable per token


def _gamma_max(norm: nn.Module) -> float:
    return float(norm.gamma.detach().double().abs().max())


def _gamma_rms(norm: nn.Module) -> float:
    return float(norm.gamma.detach().double().square().mean().sqrt())


def _rms_norm_output(norm: nn.Module) -> NormBound:
    """RMSNorm: ``‖γ ⊙ h‖ / sqrt(m+ε) ≤ max|γ| ‖h‖ / sqrt(m+ε) = max|γ| √d sqrt(m/(m+ε))``,
    so ``rms(u) ≤ max|γ|``; attained by a spike on the largest |γ_i|."""
    return np.asarray(_gamma_max(norm)), np.asarray("normalised")


def _bhyt_output(norm: nn.Module, argument_rms: float | np.ndarray) -> NormBound:
    """BHyT: ``|u_i| = |γ_i| |tanh z_i| ≤ |γ_i| min(1, |z_i|)``, so
    ``rms(u) ≤ min(rms(γ), max|γ| · rms(z))`` with ``rms(z) ≤ argument_rms``."""
    argument_rms = np.asarray(argument_rms, dtype=float)
    # An unbounded argument (no claim on M) leaves only the |tanh| ≤ 1 route, even for γ = 0.
    non_saturating = np.where(np.isinf(argument_rms), np.inf, _gamma_max(norm) * argument_rms)
    saturated = _gamma_rms(norm)
    kind = np.where(non_saturating < saturated, "non-saturating", "saturated")
    return np.minimum(non_saturating, saturated), kind


def _bounded_tanh_output(norm: nn.Module) -> NormBound:
    """DyT/Derf: ``|γ_i tanh(α h_i) + β_i| ≤ |γ_i| + |β_i|``, so ``rms(u) ≤ rms(|γ| + |β|)``.

    The bound is the saturated one: it is approached as the input scale grows
    (the argument ``α h`` is not normalised), and no λ/κ-like factor exists.
    """
    total = norm.gamma.detach().double().abs() + norm.beta.detach().double().abs()
    return np.asarray(float(total.square().mean().sqrt())), np.asarray("saturated")


def _layer_norm_output(norm: nn.Module) -> NormBound:
    """LayerNorm: ``rms((h − μ)/sqrt(var + ε)) = sqrt(var/(var + ε)) ≤ 1``, so by the triangle
    inequality ``rms(γ ⊙ y + β) ≤ max|γ| + rms(β)``; attained up to ε with β = 0 by a
    zero-mean spike pair on the largest |γ_i|."""
    beta_rms = float(norm.beta.detach().double().square().mean().sqrt())
    return np.asarray(_gamma_max(norm) + beta_rms), np.asarray("normalised")


NORM_OUTPUT_BOUNDS = {
    "rmsnorm": lambda norm, argument_rms: _rms_norm_output(norm),
    "layernorm": lambda norm, argument_rms: _layer_norm_output(norm),
    "dyt": lambda norm, argument_rms: _bounded_tanh_output(norm),
    "derf": lambda norm, argument_rms: _bounded_tanh_output(norm),
    "bhyt": _bhyt_output,
}
"""The bound face of each normaliser of ``numerics.schemes.NORMALISERS``:
``bound(norm, argument_rms) → (bound on rms(u), kind)``, where ``argument_rms``
bounds BHyT's ``rms(z)`` (the others ignore it; ``BOUND_KINDS``)."""


def _output_norm_term(norm: nn.Module, term: ArrayLike) -> ArrayLike:
    """A unit-rms output norm (Peri-LN's ``N₁ᵒ``, ``N₂ᵒ``) applied to an increment of rms ≤ ``term``:
    ``max|γᵒ| · sqrt(m/(m+ε))``, increasing in ``m``, at ``m = term²``."""
    return _gamma_max(norm) * term / np.sqrt(np.square(term) + norm.eps)


OUTPUT_NORM_TERMS = {"rmsnorm": _output_norm_term}
"""Bounds on a sublayer's increment through a row's ``post_norm``, keyed by normaliser
name: ``term(norm, bound on the un-normalised increment's rms) → bound after it``."""


def _norm_side(block: Block, norm: nn.Module, argument_rms: ArrayLike) -> NormBound:
    """The row's pre-norm bound, times the branch scale (LNS's ``1/√l``)."""
    bound, kind = NORM_OUTPUT_BOUNDS[block.row.pre_norm](norm, argument_rms)
    return bound * block.branch_scale, kind


def _output_side(block: Block, norm: nn.Module, term: ArrayLike) -> ArrayLike:
    """``term`` through the row's output norm (unchanged when the row has none)."""
    name = block.row.post_norm
    if name is None:
        return term
    if name not in OUTPUT_NORM_TERMS:
        raise ValueError(f"no bound for output norm {name!r}; available: {tuple(OUTPUT_NORM_TERMS)}")
    return OUTPUT_NORM_TERMS[name](norm, term)


# --- the per-token depth bound -------------------------------------------------------------

DEPTH_BOUND_COLUMNS = (
    "scheme",
    "variant",
    "layer",
    "batch",
    "position",
    "rms_input",
    "attention_norm_bound",
    "attention_term",
    "attention_bound_kind",
    "mlp_norm_bound",
    "mlp_term",
    "mlp_bound_kind",
    "bound_after_attention",
    "bound",
)


def _attention_side(block: Block) -> tuple[NormBound, float]:
    """Bound on ``rms(u)`` for the attention input (and its kind), and ``A_l`` (rms units).

    ``A_l = G_A · ū`` since ``‖a_t‖/√d ≤ G_A max_j ‖u_j‖/√d``; Peri-LN adds
    ``N₁ᵒ(a)`` instead, bounded by RMSNorm's output bound
    ``max|γᵒ| · sqrt(m(a)/(m(a)+ε))``, increasing in ``m(a)``, evaluated at the
    Pre-LN bound on ``rms(a)``.
    """
    norm = block.norm_attn
    u = _norm_side(block, norm, abs(float(norm.lam)) / norm.kappa if block.row.bhyt_family else np.nan)
    term = attention_gain(block.attn) * float(u[0])
    return u, float(_output_side(block, block.norm_attn_out, term))


def _mlp_side(block: Block, attention_term: float, estimate_ratio: Tensor | None) -> tuple[NormBound, np.ndarray]:
    """Bound on ``rms(v)`` for the MLP input, ``F_l`` (rms units) and the bound kind.

    ``F_l = G_F ‖v‖² / √d = G_F √d rms-bound(v)²`` with ``G_F = swiglu_gain``.
    For ``bhyt``/``bhytline`` (MLP-side BHyT fed the estimate ``M₂``):

    - ``estimate_ratio=None`` (input-scale-free): ``rms(v) ≤ rms(γ₂)`` always
      (|tanh| ≤ 1), and, for the reference ``M₂ = m₁ + c_attn λ₁²/κ₁²``, also
      ``rms(v) ≤ max|γ₂| (|λ₂|/κ₂) sqrt(1 + A_l²/b)`` with ``b = c_attn λ₁²/κ₁² + ε``:
      from ``rms(h') ≤ rms(h) + A_l`` and Cauchy–Schwarz,
      ``(s + A)² ≤ (s² + b)(1 + A²/b)`` for every ``s = rms(h) ≥ 0``, so
      ``m(h')/(M₂ + ε) ≤ 1 + A_l²/b`` whatever the input scale. ``M₂ ≥ m(h')`` is
      *not* guaranteed, so the λ/κ factor is multiplied by this (often large)
      number; for the ``exact`` estimator the factor is 1; for any other
      estimator only ``rms(γ₂)`` is claimed.
    - ``estimate_ratio`` given (data-dependent, per token):
      ``rms(v) ≤ min(rms(γ₂), max|γ₂| (|λ₂|/κ₂) sqrt(m(h')/(M₂ + ε)))`` with the
      measured ``m(h')/(M₂ + ε)`` of each token.
    """
    norm = block.norm_mlp
    d = norm.gamma.shape[0]
    argument_rms = np.nan
    if block.row.bhyt_family:
        argument_rms = abs(float(norm.lam)) / norm.kappa * _estimate_factor(block, attention_term, estimate_ratio)
    v = _norm_side(block, norm, argument_rms)
    term = swiglu_gain(block.mlp) * math.sqrt(d) * np.square(v[0])
    return v, _output_side(block, block.norm_mlp_out, term)


def _estimate_factor(block: Block, attention_term: float, estimate_ratio: Tensor | None) -> float | np.ndarray:
    """A bound on ``sqrt(m(h')/(M + ε))`` for the MLP-side BHyT (``_mlp_side``); ``inf`` when none is claimed."""
    if not block.row.estimates_m2 or block.config.estimator == "exact":
        return 1.0
    if estimate_ratio is not None:
        return np.sqrt(estimate_ratio.cpu().numpy())
    if block.config.estimator == "reference":
        attn_norm = block.norm_attn
        b = float(block.c_attn) * (float(attn_norm.lam) / attn_norm.kappa) ** 2 + block.norm_mlp.eps
        return math.sqrt(1.0 + attention_term**2 / b)
    return math.inf


@torch.no_grad()
def depth_bound(stack: Stack, x: Tensor, data_dependent: bool = True) -> pd.DataFrame:
    """Per-token bound on ``rms(h_l)`` after every layer of ``stack`` on input ``x``.

    Parameters
    ----------
    stack : Stack
        Any scheme; its *current* weights, γ, β, λ, κ and ``c_attn`` buffers are used.
    x : Tensor, shape ``(batch, T, width)``
        The input ``h_0``; only ``rms(h_0,t)`` per token enters the bound, except
        for the data-dependent BHyT variant, which runs the stack on ``x``.
    data_dependent : bool
        For ``bhyt``/``bhytline``, also return the variant that uses each token's
        measured ``m(h')/(M₂+ε)`` on the MLP side.

    Returns
    -------
    DataFrame, one row per variant × layer × batch × position, columns
    ``DEPTH_BOUND_COLUMNS``: ``variant`` (``"scale_free"``; ``"data_dependent"``
    for ``bhyt``/``bhytline``), ``rms_input`` = rms(h_0,t),
    ``attention_norm_bound`` ≥ max_j rms(u_j) and ``attention_term`` = A_l,
    ``mlp_norm_bound`` ≥ rms(v_t) and ``mlp_term`` = F_l (rms units), the kind of
    each norm-output bound (``BOUND_KINDS``), and the cumulative bounds
    ``bound_after_attention`` ≥ rms(h'_l,t) and ``bound`` ≥ rms(h_l+1,t) (the state
    after layer l's MLP residual add; ``layer`` is 0-based).

    Notes
    -----
    ``rms(h + a) ≤ rms(h) + rms(a)`` (triangle inequality), applied once per
    sublayer:

        rms(h_L,t) ≤ rms(h_0,t) + Σ_l (A_l + F_l),
        A_l = G_A,l · ū_l,    F_l = G_F,l · √d · v̄_l²,

    with ``G_A = ‖W_O‖₂ sqrt(Σ_k ‖W_V^k‖₂²)`` (:func:`attention_gain`),
    ``G_F`` the tightest SwiGLU constant (:func:`swiglu_gain`), and ``ū, v̄`` the
    norm-output bounds in rms units:

    - RMSNorm (Pre-LN): ``max|γ|``; LNS: ``max|γ|/√l`` (l 1-based);
    - Peri-LN: the increment itself is an RMSNorm output, ``A_l, F_l ≤ max|γᵒ|``
      (refined by ``sqrt(m/(m+ε))`` at the Pre-LN bound on the sublayer output);
    - BHyT/BHyT* with exact M: ``min(rms(γ), max|γ| · |λ|/κ)``;
    - BHyT with the reference ``M₂`` on the MLP side: see ``_mlp_side``; the
      input-scale-free bound is ``rms(γ₂)`` unless the Cauchy–Schwarz route is
      smaller, and the data-dependent one keeps the measured ``m(h')/(M₂+ε)``;
    - DyT/Derf: ``rms(|γ| + |β|)``, the saturated bound.

    The bound is linear in depth for every scheme with fixed weights, Pre-LN
    included. BHyT's constants are smaller than RMSNorm's by λ/κ (attention) and
    (λ/κ)² (MLP, quadratic in ‖v‖) — when its non-saturating route binds. It
    bounds magnitude growth; it does not say growth is absent
    (``proofs/depth_bound.md``; docs/statements.md §5, claims C1, C4).
    """
    x = hidden_states(x, stack.config)
    batch, length, _ = x.shape
    rms_input = root_mean_square(x)[..., 0].double().cpu().numpy()
    variants = ["scale_free"]
    recorder = RecordingProbe()
    if data_dependent and scheme_row(stack.config.scheme).estimates_m2:
        stack.residual(x, recorder)
        variants.append("data_dependent")
    positions = np.broadcast_to(np.arange(length), (batch, length)).ravel()
    batches = np.repeat(np.arange(batch), length)
    parts = []
    for variant in variants:
        running = rms_input.copy()
        for block in stack.blocks:
            u, attention_term = _attention_side(block)
            ratio = None
            if variant == "data_dependent":
                exact = mean_square(recorder.states[block.layer, "attn"])
                estimate = recorder.estimates[block.layer].double().expand_as(exact)
                ratio = (exact / (estimate + block.norm_mlp.eps))[..., 0]
            (v, mlp_kind), mlp_term = _mlp_side(block, attention_term, ratio)
            after_attention = running + attention_term
            running = after_attention + mlp_term
            size = batch * length
            parts.append(
                pd.DataFrame(
                    {
                        "scheme": stack.config.scheme,
                        "variant": variant,
                        "layer": block.layer,
                        "batch": batches,
                        "position": positions,
                        "rms_input": rms_input.ravel(),
                        "attention_norm_bound": float(u[0]),
                        "attention_term": attention_term,
                        "attention_bound_kind": str(u[1]),
                        "mlp_norm_bound": np.broadcast_to(v, (batch, length)).ravel(),
                        "mlp_term": np.broadcast_to(mlp_term, (batch, length)).ravel(),
                        "mlp_bound_kind": np.broadcast_to(mlp_kind, (batch, length)).ravel(),
                        "bound_after_attention": np.broadcast_to(after_attention, (batch, length)).ravel(),
                        "bound": np.broadcast_to(running, (batch, length)).ravel(),
                    },
                    index=range(size),
                )
            )
    return pd.concat(parts, ignore_index=True).reindex(columns=list(DEPTH_BOUND_COLUMNS))
