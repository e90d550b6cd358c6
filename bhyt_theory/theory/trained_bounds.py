"""Bounds for trained parameters and for BHyT's estimators under non-uniform attention.

Any sign and size of λ, any γ and a stale ``c_attn`` (``proofs/trained_parameters.md``),
and the position-aware estimator when attention is peaked rather than uniform
(``proofs/position_estimator.md``). The bounds at initialisation — saturation, operator
norms, the per-token depth bound — are in ``bounds``.
"""

from __future__ import annotations

import numpy as np

from .bounds import scalar_or_array

__all__ = [
    "bhyt_output_rms_bound",
    "staleness_error",
    "stale_saturation_factor_range",
    "variance_constant_ceiling",
    "mlp_scale_free_threshold",
    "peaked_attention_sum_squares",
    "increment_ratio",
]

ArrayLike = float | np.ndarray


# --- trained parameters: any λ, any γ, a stale c_attn (proofs/trained_parameters.md) -------


def bhyt_output_rms_bound(
    lam: ArrayLike, kappa: ArrayLike, gamma_max: ArrayLike = 1.0, gamma_rms: ArrayLike = 1.0,
    mean_square_ratio: ArrayLike = 1.0,
) -> ArrayLike:
    """``rms(u) ≤ min(rms(γ), max|γ| · tanh(|λ|/κ · sqrt(m(h)/(M+ε))))`` for any λ and γ.

    Parameters
    ----------
    lam, kappa : float or array
        λ of either sign and any size (λ < 0, λ > κ included), κ > 0.
    gamma_max, gamma_rms : float or array
        ``max_i |γ_i|`` and ``rms(γ)`` of the norm's gain.
    mean_square_ratio : float or array, default 1
        ``m(h)/(M + ε)`` for a norm fed the estimate ``M`` (1 bounds the exact ``M``).

    Returns
    -------
    The bound, broadcast over the arguments.

    Notes
    -----
    ``s ↦ tanh²(√s)`` is concave on ``s ≥ 0`` (its derivative ``tanh(x) sech²(x)/x``,
    ``x = √s``, is a product of positive decreasing factors), so by Jensen
    ``mean_i γ_i² tanh²(z_i) ≤ max γ² · tanh²(sqrt(mean z²))`` and
    ``mean(z²) = (λ/κ)² m/(M + ε)`` (proofs/bounded_argument.md); ``|tanh| ≤ 1`` gives
    ``rms(γ)``. Attained for ``|γ_i|`` constant by a dense token ``h_i = ±c`` at
    ``ε = 0``. It is never looser than ``max|γ| min(1, |λ|/κ)`` of
    proofs/output_bound.md and strictly tighter for every λ ≠ 0 — most visibly for
    ``|λ| > κ``, where ``min(1, ·)`` gives ``max|γ|`` and this gives ``max|γ| tanh(|λ|/κ)``
    (proofs/trained_parameters.md, statement 1; claims C3, C4).
    """
    lam, kappa, gmax, grms, ratio = (np.asarray(v, dtype=float) for v in (lam, kappa, gamma_max, gamma_rms,
                                                                           mean_square_ratio))
    return scalar_or_array(np.minimum(grms, np.abs(gmax) * np.tanh(np.abs(lam) / kappa * np.sqrt(ratio))))


def staleness_error(c_stale: ArrayLike, c_fresh: ArrayLike, lam_in: ArrayLike, kappa: ArrayLike) -> ArrayLike:
    """The extra error term of ``M₂`` from a stale ``c_attn``: ``(c_stale − c_fresh) · λ₁²/κ²``.

    Notes
    -----
    ``M₂^stale = m₁ + c_stale λ₁²/κ² = M₂^fresh + (c_stale − c_fresh) λ₁²/κ²``, so the
    decomposition of proofs/variance_approximation.md gains this one term, whatever
    the input (proofs/trained_parameters.md, statement 2; claim C5). The reference
    implementation refreshes ``c_attn`` about 50 times per run.
    """
    c_stale, c_fresh, lam, kappa = (np.asarray(v, dtype=float) for v in (c_stale, c_fresh, lam_in, kappa))
    return scalar_or_array((c_stale - c_fresh) * (lam / kappa) ** 2)


def stale_saturation_factor_range(c_stale: ArrayLike, c_fresh: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """Range of ``(M₂^fresh + ε)/(M₂^stale + ε)``, the factor a stale ``c_attn`` puts on the
    MLP-side saturation bound, for every input: ``[1/(1 + ρ), 1/(1 − ρ)]`` with
    ``ρ = |c_stale/c_fresh − 1|`` (upper end ``inf`` for ``ρ ≥ 1``).

    Notes
    -----
    The saturation bound under an estimate is ``min(1, (λ₂/(κt))² m(h')/(M₂ + ε))``
    (proofs/saturation_bound.md), so the stale bound is the fresh one times
    ``(M₂^fresh + ε)/(M₂^stale + ε) = 1/(1 + Δ)``, ``Δ = (c_stale − c_fresh) λ₁²/κ² / (M₂^fresh + ε)``,
    and ``|Δ| ≤ ρ`` because ``M₂^fresh + ε ≥ c_fresh λ₁²/κ²`` (proofs/trained_parameters.md,
    statement 2). The ends are approached when ``m₁ + ε ≪ c_fresh λ₁²/κ²``.
    """
    c_stale, c_fresh = np.asarray(c_stale, dtype=float), np.asarray(c_fresh, dtype=float)
    rho = np.abs(c_stale / c_fresh - 1.0)
    with np.errstate(divide="ignore"):
        upper = np.where(rho < 1.0, 1.0 / np.maximum(1.0 - rho, 0.0), np.inf)
    return scalar_or_array(1.0 / (1.0 + rho)), scalar_or_array(upper)


def variance_constant_ceiling(gain: ArrayLike, head_dim: ArrayLike, seq_len: ArrayLike, width: ArrayLike) -> ArrayLike:
    """``c_attn ≤ head_dim · G_A² / (T d)`` for every weight, ``G_A`` = :func:`attention_gain`.

    Notes
    -----
    ``‖W_V W_O‖_F² = ‖[W_V^1 … W_V^H] W_O‖_F² ≤ ‖W_O‖₂² Σ_k ‖W_V^k‖_F²`` and
    ``‖W_V^k‖_F² ≤ head_dim ‖W_V^k‖₂²`` (rank ≤ head_dim), so
    ``‖W_V W_O‖_F² ≤ head_dim · G_A²``; divide by ``T d``. Equality when every head's
    ``W_V^k`` has ``head_dim`` equal singular values and ``W_O`` is a scaled isometry
    (proofs/trained_parameters.md, statement 3).
    """
    gain, head_dim, seq_len, width = (np.asarray(v, dtype=float) for v in (gain, head_dim, seq_len, width))
    return scalar_or_array(head_dim * gain**2 / (seq_len * width))


def mlp_scale_free_threshold(
    lam_in: ArrayLike, kappa: ArrayLike, seq_len: ArrayLike, width: ArrayLike, head_dim: ArrayLike,
    gamma_in_max: ArrayLike = 1.0, gamma_in_rms: ArrayLike = 1.0, gamma_post_max: ArrayLike = 1.0,
    gamma_post_rms: ArrayLike = 1.0,
) -> ArrayLike:
    """Largest ``|λ₂|`` for which ``bhyt``'s input-scale-free MLP bound can beat the saturated one.

    Returns
    -------
    ``κ · rms(γ₂) / (max|γ₂| · sqrt(1 + (T d/head_dim) (ū κ/λ₁)²))`` with
    ``ū = min(rms(γ₁), max|γ₁| |λ₁|/κ)``: for any weights, the Cauchy–Schwarz route
    ``max|γ₂| (|λ₂|/κ) sqrt(1 + A_l²/b)`` of proofs/depth_bound.md is below the saturated
    ``rms(γ₂)`` only if ``|λ₂|`` is below this (in the limit ``ε ≪ c_attn λ₁²/κ²``).

    Notes
    -----
    ``A_l = G_A ū`` and, by :func:`variance_constant_ceiling`,
    ``b = c_attn λ₁²/κ² ≤ head_dim G_A² λ₁²/(T d κ²)``, so
    ``A_l²/b ≥ (T d/head_dim)(ū κ/λ₁)²`` whatever the weights; the threshold is
    attained (the condition is sharp) by the equality weights of
    :func:`variance_constant_ceiling`. At γ = 1, |λ₁| ≤ κ it is
    ``κ/sqrt(1 + T d/head_dim)``: 0.078 for κ = 10, T = 1024, d/head_dim = 16 heads,
    far below the paper's λ₂ ∈ {1, 3} (proofs/trained_parameters.md, statement 3; claim C4).
    """
    lam, kappa, seq_len, width, head_dim, g1max, g1rms, g2max, g2rms = (
        np.asarray(v, dtype=float)
        for v in (lam_in, kappa, seq_len, width, head_dim, gamma_in_max, gamma_in_rms, gamma_post_max, gamma_post_rms)
    )
    norm_output = np.minimum(g1rms, np.abs(g1max) * np.abs(lam) / kappa)
    factor = np.sqrt(1.0 + seq_len * width / head_dim * (norm_output * kappa / np.abs(lam)) ** 2)
    return scalar_or_array(kappa * g2rms / (np.abs(g2max) * factor))


# --- the position-aware estimator under non-uniform attention (proofs/position_estimator.md) ---


def peaked_attention_sum_squares(p: ArrayLike, position: ArrayLike) -> ArrayLike:
    """``Σ_j P_tj²`` of the causal row ``P_tj = p·[j = j*] + (1 − p)/(t+1)``, ``j ≤ t``:
    ``p² + (1 − p²)/(t + 1)`` (t 0-based; p = 0 uniform causal, p = 1 one-hot)."""
    p, t = np.asarray(p, dtype=float), np.asarray(position, dtype=float)
    return scalar_or_array(p**2 + (1.0 - p**2) / (t + 1.0))


def increment_ratio(sum_squares: ArrayLike, position: ArrayLike, seq_len: ArrayLike, estimator: str) -> ArrayLike:
    """Estimated / expected attention increment of an M₂ estimator, for uncorrelated isotropic tokens.

    Parameters
    ----------
    sum_squares : ``S_t = Σ_j P_tj²`` of the attention row (all heads sharing it)
    position : 0-based t
    seq_len : the T inside ``c_attn``
    estimator : ``"reference"`` (``1/(T S_t)``) or ``"position"`` (``1/((t+1) S_t)``)

    Notes
    -----
    Under uncorrelated isotropic tokens with ``m(u_j) = μ``, ``E m(a_t) = ‖W_V W_O‖_F²/d · S_t μ``;
    the reference increment is ``c_attn μ = ‖W_V W_O‖_F²/(T d) μ`` and the position one
    ``‖W_V W_O‖_F²/((t+1) d) μ``. Since ``1/(t+1) ≤ S_t ≤ 1`` for a causal row (Cauchy–Schwarz,
    equality iff uniform causal), the position ratio lies in ``[1/(t+1), 1]`` and is 1
    iff attention is uniform causal; for ``t + 1 ≤ T`` the reference ratio is never
    closer to 1 (proofs/position_estimator.md; claim C5).
    """
    s, t, seq_len = (np.asarray(v, dtype=float) for v in (sum_squares, position, seq_len))
    if estimator == "reference":
        return scalar_or_array(1.0 / (seq_len * s))
    if estimator == "position":
        return scalar_or_array(1.0 / ((t + 1.0) * s))
    raise ValueError(f"estimator must be 'reference' or 'position', got {estimator!r}")
