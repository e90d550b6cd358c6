"""BHyT's estimators of the post-attention mean square M₂, and what each costs.

The paper's ``bhyt`` scheme replaces the second normaliser's reduction by the
estimate ``M₂ = m₁ + c_attn λ₁²/κ²`` (docs/estimators.md). The corrections below
remove one assumption of that estimate each; ``ESTIMATORS`` maps a name
(``"reference"``, ``"position"``, ``"position+tanh"``, …, ``"exact"``) to the function
that ``Block`` calls, and ``ESTIMATOR_COSTS`` states the extra cost of each.

The reference implementation (MLAI-Yonsei/BHyT) also offers variants that *learn*
the correction instead of deriving it; they are here as training options
(``LEARNABLE_ESTIMATORS``; their scalars are parameters of each ``Block``, created
from ``estimator_parameters``), together with its "hybrid" (exact M₂ in the first
``StackConfig.exact_layers`` layers, the reference estimate after):

- ``learnable_scale``:    ``M₂ = m₁ + β · c_attn λ₁²/κ²``,              β = 1 at init;
- ``learnable_relative``: ``M₂ = m₁ (1 + η)``,                          η = 0 at init;
- ``residual_aware``:     ``M₂ = m₁ (1 + β_c) + α · c_attn λ₁²/κ²``,    β_c = 0, α = 1 at init;
- ``hybrid``:             ``M₂ = m(h')`` for layers ``< exact_layers``, else the reference.

``learnable_scale`` and ``residual_aware`` start as the reference estimate;
``learnable_relative`` starts at ``M₂ = m₁`` (it has no ``c_attn`` to start from)
and must learn the increment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import combinations
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from .gaussian import tanh_square_moment
from .norms import estimate_post_attention_mean_square, mean_square


@dataclass(frozen=True)
class EstimateInputs:
    """What an M₂ estimator may use: the exact m₁ = m(h), c_attn, λ₁, κ, γ₁ of the
    first norm, the residual state h' after attention (only the "exact" estimator
    reads it), the 0-based token positions and the T inside ``c_attn``.

    ``positions`` has shape ``(T_in, 1)`` (float64) so that it broadcasts against
    ``m₁`` of shape ``(B, T_in, 1)``; ``seq_len`` is ``StackConfig.seq_len``.
    ``parameters`` holds the block's learnable estimator scalars
    (``estimator_parameters``), ``layer`` the block's 0-based index and
    ``exact_layers`` the ``StackConfig`` field read by the "hybrid" estimator.
    ``m2_factor`` is the block's per-position factor on the increment, one float64
    value per position ``0 … seq_len − 1`` (``Block.m2_factor``), read by the
    "correlation" estimator only.
    """

    mean_square_in: Tensor
    c_attn: Tensor
    lam_in: Tensor
    kappa: float
    gamma_in: Tensor
    state_after_attention: Tensor
    positions: Tensor
    seq_len: int
    parameters: Mapping[str, Tensor] = field(default_factory=dict)
    layer: int = 0
    exact_layers: int = 0
    m2_factor: Tensor | None = None


def token_positions(h: Tensor) -> Tensor:
    """0-based positions of the tokens of ``h`` (shape ``(B, T, d)``) as a float64 ``(T, 1)`` column."""
    return torch.arange(h.shape[-2], dtype=torch.float64, device=h.device)[:, None]


def causal_key_counts(positions: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``t + 1``: the keys a query at 0-based position ``t`` attends to under a causal mask.

    Uniform causal attention (the limit of causal softmax with vanishing logits)
    has ``P_tj = 1/(t+1)`` for ``j ≤ t``, so its concentration is
    ``Σ_j P_tj² = 1/(t+1)`` (``uniform_causal_concentration``); the position
    correction of M₂, the mean-field attention average and the M₂ error
    decomposition all divide by these counts (docs/estimators.md).
    """
    return positions + 1.0


def uniform_causal_concentration(positions: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``Σ_j P_tj² = 1/(t+1)`` of uniform causal attention at 0-based ``positions``
    (also its weight ``P_tj``, j ≤ t).

    Examples
    --------
    >>> uniform_causal_concentration(np.arange(4))
    array([1.        , 0.5       , 0.33333333, 0.25      ])
    """
    return 1.0 / causal_key_counts(positions)


def _reference_estimate(inputs: EstimateInputs) -> Tensor:
    """``M₂ = m₁ + c_attn λ₁²/κ²`` (arXiv 2601.09719; docs/estimators.md §2)."""
    return estimate_post_attention_mean_square(inputs.mean_square_in, inputs.c_attn, inputs.lam_in, inputs.kappa)


def _position_correction(inputs: EstimateInputs) -> Tensor:
    """``T · Σ_j P_tj²`` of uniform causal attention, ``T/(t+1)`` at 0-based position t.

    T is the ``seq_len`` inside ``c_attn``, so the corrected increment is
    ``‖W_V W_O‖_F²/d · λ₁²/κ² / (t+1)``: T cancels, and the correction is right
    for inputs of any length, longer than T included.
    """
    return inputs.seq_len / causal_key_counts(inputs.positions)


@lru_cache(maxsize=4096)
def _tanh_curvature(ratio: float) -> float:
    """``E tanh²(aZ) / a²`` for ``a = λ/κ`` (1 in the limit a → 0), Z ~ N(0, 1)."""
    if ratio < 1e-4:  # the series 1 − 2a² + (17/3)a⁴ − …: the dropped terms are below 6e-16, and a² may underflow
        return 1.0 - 2.0 * ratio**2
    return tanh_square_moment(ratio) / ratio**2


def _tanh_correction(inputs: EstimateInputs) -> Tensor:
    """Replaces ``(λ₁/κ)²`` by ``E tanh²(λ₁/κ · Z)`` (the m(u) of a Gaussian-coordinate
    h under exact M, γ = 1).

    Written as the factor ``E tanh²(aZ)/a²`` on the increment, taken from λ's float
    value (one quadrature per distinct λ, cached) and held constant under autograd,
    so gradients still reach λ₁ through the ``λ₁²`` of the reference formula.
    """
    ratio = abs(float(inputs.lam_in.detach())) / inputs.kappa
    return torch.tensor(_tanh_curvature(ratio), dtype=torch.float64, device=inputs.c_attn.device)


def _gamma_correction(inputs: EstimateInputs) -> Tensor:
    """``mean(γ₁²)``: ``m(u) = mean_i γ_i² tanh²(z_i) ≈ mean(γ²) · mean tanh²(z)`` when γ and z
    are unrelated (the reference implementation's "use_gamma_var")."""
    return inputs.gamma_in.double().square().mean()


CORRECTIONS: dict[str, Callable[[EstimateInputs], Tensor]] = {
    "position": _position_correction,
    "tanh": _tanh_correction,
    "gamma": _gamma_correction,
}


def _corrected_estimate(inputs: EstimateInputs, corrections: tuple[str, ...]) -> Tensor:
    """``M₂ = m₁ + (c_attn · Π factors) · λ₁²/κ²``, one factor per name in ``corrections``."""
    c_attn = inputs.c_attn
    for name in corrections:
        c_attn = c_attn * CORRECTIONS[name](inputs)
    return estimate_post_attention_mean_square(inputs.mean_square_in, c_attn, inputs.lam_in, inputs.kappa)


def uncorrelated_m2_factor(seq_len: int, lam: float, kappa: float) -> np.ndarray:
    """The "correlation" factor of a block whose attended tokens are uncorrelated:
    ``T/(t+1) · E tanh²(aZ)/a²``, ``a = λ₁/κ``, at 0-based positions ``0 … T − 1``.

    It is the "position+tanh" correction, the value ``Block.m2_factor`` starts
    from before a mean-field prediction or running statistics replace it
    (docs/estimators.md §8).

    Examples
    --------
    >>> uncorrelated_m2_factor(4, 0.0, 10.0)
    array([4.        , 2.        , 1.33333333, 1.        ])
    """
    positions = np.arange(seq_len, dtype=np.float64)
    return seq_len / causal_key_counts(positions) * _tanh_curvature(abs(float(lam)) / kappa)


def position_factor(m2_factor: Tensor, positions: Tensor) -> Tensor:
    """``m2_factor`` read at 0-based ``positions`` (shape ``(T_in, 1)``); positions at or
    beyond its length ``T`` read its last entry.

    Past the training length the uncorrelated part of the increment keeps falling
    like ``1/(t+1)``, so holding the last value overstates the increment there by
    at most that part's share at ``t = T − 1`` (docs/estimators.md §8).
    """
    index = positions[:, 0].long().clamp(max=m2_factor.shape[0] - 1)
    return m2_factor[index][:, None]


def _correlation_estimate(inputs: EstimateInputs) -> Tensor:
    """``M₂ = m₁ + c_attn λ₁²/κ² · f_t``: the reference increment times the block's
    per-position factor ``f`` (``Block.m2_factor``: predicted by the mean field of
    the token Gram matrix, or tracked from running statistics; docs/estimators.md §8)."""
    if inputs.m2_factor is None:
        raise ValueError("the 'correlation' estimator needs the block's m2_factor")
    factor = position_factor(inputs.m2_factor, inputs.positions)
    return estimate_post_attention_mean_square(inputs.mean_square_in, inputs.c_attn * factor, inputs.lam_in,
                                               inputs.kappa)


def _exact_estimate(inputs: EstimateInputs) -> Tensor:
    """``M₂ = m(h')``: a second reduction (makes ``bhyt`` equal to ``bhytstar``)."""
    return mean_square(inputs.state_after_attention)


ESTIMATORS: dict[str, Callable[[EstimateInputs], Tensor]] = {"reference": _reference_estimate}
ESTIMATORS.update(
    {
        "+".join(names): partial(_corrected_estimate, corrections=names)
        for size in range(1, len(CORRECTIONS) + 1)
        for names in combinations(CORRECTIONS, size)
    }
)
ESTIMATORS["correlation"] = _correlation_estimate
ESTIMATORS["exact"] = _exact_estimate


def _increment(inputs: EstimateInputs) -> Tensor:
    """The reference increment ``c_attn λ₁²/κ²`` (M₂ − m₁ of the reference estimate)."""
    return estimate_post_attention_mean_square(0.0, inputs.c_attn, inputs.lam_in, inputs.kappa)


def _learnable_scale_estimate(inputs: EstimateInputs) -> Tensor:
    """``M₂ = m₁ + β · c_attn λ₁²/κ²`` with a learnable β per layer."""
    return inputs.mean_square_in + inputs.parameters["beta"] * _increment(inputs)


def _learnable_relative_estimate(inputs: EstimateInputs) -> Tensor:
    """``M₂ = m₁ (1 + η)`` with a learnable η per layer (no ``c_attn``)."""
    return inputs.mean_square_in * (1.0 + inputs.parameters["eta"])


def _residual_aware_estimate(inputs: EstimateInputs) -> Tensor:
    """``M₂ = m₁ (1 + β_c) + α · c_attn λ₁²/κ²``: a learnable share of the residual
    (standing in for the dropped cross term ``(2/d)⟨h, a⟩``) plus a learnable increment."""
    parameters = inputs.parameters
    return inputs.mean_square_in * (1.0 + parameters["beta_c"]) + parameters["alpha"] * _increment(inputs)


def _hybrid_estimate(inputs: EstimateInputs) -> Tensor:
    """The exact ``m(h')`` in layers ``< exact_layers``, the reference estimate after."""
    if inputs.layer < inputs.exact_layers:
        return _exact_estimate(inputs)
    return _reference_estimate(inputs)


LEARNABLE_ESTIMATORS: dict[str, dict[str, float]] = {
    "learnable_scale": {"beta": 1.0},
    "learnable_relative": {"eta": 0.0},
    "residual_aware": {"beta_c": 0.0, "alpha": 1.0},
}
"""Initial values of each learnable estimator's per-layer scalars (module docstring)."""

ESTIMATORS.update(
    {
        "learnable_scale": _learnable_scale_estimate,
        "learnable_relative": _learnable_relative_estimate,
        "residual_aware": _residual_aware_estimate,
        "hybrid": _hybrid_estimate,
    }
)

TRAINING_ESTIMATORS = (*LEARNABLE_ESTIMATORS, "hybrid")
"""Estimators meant for training: at initialisation the learnable ones equal the
reference (or m₁) and "hybrid" is exact or the reference layer by layer, so the
studies at initialisation leave them out by default."""


def estimator_parameters(estimator: str) -> dict[str, float]:
    """The learnable scalars (name → initial value) a ``Block`` holds for ``estimator``;
    empty for the estimators that learn nothing."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator {estimator!r} is not one of {tuple(ESTIMATORS)}")
    return dict(LEARNABLE_ESTIMATORS.get(estimator, {}))

ESTIMATOR_COSTS: dict[str, str] = {
    "reference": "1 add per token (m₁ + a per-layer scalar; the scalar costs ~3 flops per layer and forward)",
    "position": "+1 multiply per token (a per-position increment, T multiplies per layer and forward shared by the batch)",
    "tanh": "+0 per token; one scalar quadrature per distinct λ₁ value per layer (cached), on the host",
    "gamma": "+0 per token; 2d flops per layer and forward for mean(γ₁²)",
    "correlation": "+1 multiply per token (a per-position factor read from a buffer of T values per layer, "
                   "T multiplies per layer and forward shared by the batch); refreshing the buffer from running "
                   "statistics costs a second reduction (+2d flops per token) on the refresh passes only",
    "exact": "+2d flops per token (a second mean-square reduction over h', which the reference avoids)",
    "learnable_scale": "+1 multiply per layer and forward (β · increment); one scalar parameter per layer",
    "learnable_relative": "+1 multiply per token (m₁ · (1 + η)), no c_attn; one scalar parameter per layer",
    "residual_aware": "+1 multiply per token and 1 per layer; two scalar parameters per layer",
    "hybrid": "as \"exact\" (+2d flops per token) in the first exact_layers layers, as the reference after",
}
"""Extra cost of each M₂ estimator over the reference; a combination costs the sum
of its parts (e.g. "position+tanh+gamma": +1 multiply per token, one quadrature per
λ₁ value, 2d flops per layer and forward)."""
