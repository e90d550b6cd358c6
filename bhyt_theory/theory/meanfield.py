"""Mean-field predictions at initialisation: the token Gram recursion of docs/statements.md §8.

At initialisation every linear weight is drawn iid ``N(0, σ²)`` (``σ = init_std``),
fresh in every layer, so the residual stream is described by its token-by-token
Gram matrix

    K_ts = E⟨h_t, h_s⟩ / d,        t, s = 0 … T−1,

and each sublayer adds the Gram matrix of its increment: the increment is linear
(odd) in the sublayer's output weight (W_O, W_down), so its cross term with the
residual vanishes in expectation. The per-position mean square is ``diag(K)``.
Nothing here depends on the width except through the products ``dσ²`` etc., so
a prediction costs O(depth · T² · n_terms) whatever the width.

The model, sublayer by sublayer (γ = 1, β = 0, shift 0 at init; K₀ = v·I for
iid inputs of variance v; ε the stabiliser of ``norms``):

- Coordinates of ``h`` are jointly Gaussian across tokens with covariance K (the
  Gaussian-coordinate model), so ``ρ_ts = K_ts / sqrt(K_tt K_ss)`` and every
  element-wise norm maps K through a bivariate Gaussian kernel.
- Pre-norms, ``K ↦ K_u``: RMSNorm ``K_ts / sqrt((K_tt+ε)(K_ss+ε))`` (LNS: times
  1/l, l the 1-based layer); BHyT ``E tanh(a_t X) tanh(a_s Y)`` with standard
  X, Y of correlation ρ_ts and ``a_t = (λ/κ) sqrt(K_tt / (M_t + ε))`` (M_t = K_tt
  for exact M); DyT ``E tanh(α h_t) tanh(α h_s)``; Derf the arcsine kernel
  ``erf_kernel``.
- Attention with probabilities P (uniform causal by default: at init the
  logits ``q·k/√head_dim`` have variance ``(dσ² m(u))²``, small for
  dσ² ≪ 1): ``a = P U W_V W_O`` gives
  ``K ↦ K + d σ² · d_full σ² · P K_u Pᵀ`` (E[W_O W_Oᵀ] = dσ² I and, with GQA's
  repeated key/value heads, E[W_V W_Vᵀ] = g · d_kv σ² I = d_full σ² I).
  ``attention="softmax"`` replaces ``P K_u Pᵀ`` by ``E[P K_u Pᵀ]`` over the causal
  softmax of Gaussian, RoPE-rotated queries and keys of token covariance
  ``dσ² K_u`` (``softmax_attention_average``): the uniform model is its dσ² → 0
  limit and is ~10 % off for RMSNorm-fed attention at dσ² ≈ 0.4 (the paper's
  374M shape), where the softmax model stays within the Monte Carlo error.
- SwiGLU ``f = W_down(silu(W_g v) ⊙ W_up v)``: ``W_g v`` and ``W_up v`` are
  independent Gaussian across tokens with covariance ``G = dσ² K_v``, so
  ``K ↦ K + mlp_width σ² · G ∘ S`` with ``S_ts = E silu(X_t) silu(X_s)``, X ~ N(0, G).
- Peri-LN's output RMSNorm rescales each increment to rms 1, so the increment
  Gram is its correlation matrix.
- BHyT's estimate (``bhyt``, ``bhytline``): ``M₂_t = K_tt + E[c_attn] λ₁²/κ²``
  with ``E c_attn = d · d_full σ⁴ / T_train`` (``attention_variance_constant_moments``)
  for the reference estimator; the other ``model.ESTIMATORS`` are evaluated on
  the same mean-field inputs.

Bivariate moments use Mehler's expansion: for standard X, Y of correlation ρ,
``E F(X) G(Y) = Σ_n ρⁿ E[F ψ_n] E[G ψ_n]`` with ψ_n = He_n/√(n!), so each token
needs one set of univariate Gauss–Hermite coefficients and the T×T kernel is a
polynomial in ρ. The diagonal is the (quadrature) second moment; an
off-diagonal truncated after N terms errs by at most ``|ρ|^N sqrt(R_t R_s)``,
R the unexplained second moment, kept below ``KERNEL_TOLERANCE`` times ``E F²``.

What the model leaves out, each an error against a finite stack (measured in
tests/test_meanfield.py): the O(1/d) fluctuation of each norm's rms
(``E[1/m̂] ≈ (1 + 2/d)/m`` for Gaussian coordinates); under the uniform
models, attention that is not exactly uniform, which raises ``Σ_j P_tj²`` by a
factor ≈ ``exp((dσ² m(u))²)`` on the uncorrelated part of K (the "softmax" model
keeps it, up to the sampling error of its draws); the spread of the realised c_attn around its
mean; and the rounding of the stack's dtype. The seed-to-seed spread of the
stack itself is large (the shared, token-correlated component is nearly one
Gaussian direction per layer), so Monte Carlo needs several seeds.

References
----------
Byun et al., arXiv 2601.09719 (BHyT); Sun et al., arXiv 2502.05795 (LNS);
Kim et al., arXiv 2502.02732 (Peri-LN); Zhu et al., arXiv 2503.10622 (DyT);
arXiv 2512.10938 (Derf); Mehler's formula for bivariate Gaussian moments
(e.g. O'Donnell, *Analysis of Boolean Functions*, §11.2).
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Callable

import numpy as np
import pandas as pd
import torch
from scipy import special

from ..numerics.estimators import (
    ESTIMATORS,
    EstimateInputs,
    causal_key_counts,
    uniform_causal_concentration,
)
from ..numerics.gaussian import (
    KERNEL_TOLERANCE,
    erf_kernel,
    gaussian_kernel,
    gaussian_tail,
)
from ..numerics.model import StackConfig, rotary
from ..numerics.norms import EPS
from ..numerics.probes import SATURATION_THRESHOLDS, position_average
from ..numerics.schemes import scheme_row

__all__ = [
    "ATTENTION_MODELS",
    "KERNEL_TOLERANCE",
    "attention_matrix",
    "attention_variance_constant_moments",
    "erf_kernel",
    "gaussian_kernel",
    "NORM_KERNELS",
    "OUTPUT_NORM_KERNELS",
    "PREDICTION_COLUMNS",
    "predict_per_position",
    "predict",
]

ATTENTION_MODELS = ("uniform_causal", "uniform", "softmax")
# Gaussian query/key draws per layer that the "softmax" attention model averages over.
SOFTMAX_SAMPLES = 32
SOFTMAX_SEED = 0

Elementwise = Callable[[np.ndarray], np.ndarray]


def _silu(x: np.ndarray) -> np.ndarray:
    return x * special.expit(x)


def attention_matrix(length: int, attention: str | np.ndarray = "uniform_causal") -> np.ndarray:
    """The ``T × T`` attention probabilities P of the mean-field model.

    Parameters
    ----------
    length : int
        T, the number of token positions.
    attention : {"uniform_causal", "uniform"} or array of shape ``(T, T)``
        "uniform_causal": ``P_tj = 1/(t+1)`` for ``j ≤ t`` (0-based), the limit of
        causal softmax attention with vanishing logits, ``Σ_j P_tj² = 1/(t+1)``;
        "uniform": ``P_tj = 1/T`` (the estimate's assumption, ``Σ_j P_tj² = 1/T``);
        or any row-stochastic matrix, to vary ``Σ_j P_tj²``.

    Returns
    -------
    float64 array of shape ``(T, T)``.
    """
    if isinstance(attention, str):
        if attention == "uniform_causal":
            return np.tril(np.ones((length, length))) / causal_key_counts(np.arange(length))[:, None]
        if attention == "uniform":
            return np.full((length, length), 1.0 / length)
        raise ValueError(f"attention {attention!r} is not 'uniform_causal', 'uniform' or a matrix "
                         "(the 'softmax' model has random probabilities: softmax_attention_average)")
    matrix = np.asarray(attention, dtype=float)
    if matrix.shape != (length, length):
        raise ValueError(f"attention matrix has shape {matrix.shape}, expected {(length, length)}")
    if (matrix < 0).any() or not np.allclose(matrix.sum(1), 1.0, rtol=0, atol=1e-12):
        raise ValueError("attention matrix must be row-stochastic (non-negative rows summing to 1)")
    return matrix


def attention_variance_constant_moments(config: StackConfig) -> tuple[float, float]:
    """Mean and variance of ``c_attn = ‖W_V W_O‖_F² / (T d)`` over iid N(0, σ²) weights.

    Parameters
    ----------
    config : StackConfig
        Uses ``width`` (d), ``heads``, ``kv_heads``, ``head_dim``, ``seq_len`` (T)
        and ``init_std`` (σ).

    Returns
    -------
    (mean, variance) : floats

    Notes
    -----
    With g = heads/kv_heads, the expanded W_V repeats each key/value block
    ``B_j`` (d × head_dim) over its g query heads, so
    ``W_V W_O = Σ_j B_j (Σ_r O_{j,r}) = B Õ`` with B of shape ``d × d_kv``
    (d_kv = kv_heads · head_dim, entries of variance σ²) and Õ of shape
    ``d_kv × d`` (entries of variance gσ², the sum of g independent blocks).
    For Q = ‖BÕ‖_F², conditioning on B: ``E[Q|B] = d g σ² ‖B‖_F²`` and
    ``Var[Q|B] = 2 d g² σ⁴ tr((BᵀB)²)``; with the Wishart moment
    ``E tr((BᵀB)²) = σ⁴ d d_kv (d + d_kv + 1)``,

        E Q   = d² d_full σ⁴                         (d_full = g d_kv: no GQA effect)
        Var Q = 2 g² σ⁸ d² d_kv (2d + d_kv + 1)      (GQA raises the relative spread).

    Divide by ``T d`` (and its square) for c_attn. The mean is the per-layer
    constant of BHyT's estimate at initialisation (docs/estimators.md §1, claim C5).
    """
    d, sigma2 = config.width, config.init_std**2
    group = config.heads // config.kv_heads
    d_kv = config.kv_heads * config.head_dim
    d_full = config.heads * config.head_dim
    scale = config.seq_len * d
    mean = d * d * d_full * sigma2**2
    variance = 2.0 * group**2 * sigma2**4 * d * d * d_kv * (2 * d + d_kv + 1)
    return mean / scale, variance / scale**2


def _correlation(gram: np.ndarray) -> np.ndarray:
    """``ρ = K / sqrt(diag diagᵀ)``; a token of zero mean square (only a Gram of
    σ = 0 weights has one) gets ρ = 0 off the diagonal."""
    diagonal = np.diag(gram)
    positive = diagonal > 0
    inverse_root = np.where(positive, 1.0 / np.sqrt(np.where(positive, diagonal, 1.0)), 0.0)
    rho = gram * inverse_root[:, None] * inverse_root
    np.fill_diagonal(rho, 1.0)
    return rho


NormKernel = Callable[..., tuple[np.ndarray, "np.ndarray | float"]]


def _rms_kernel(gram: np.ndarray, config: StackConfig, lam: float, layer: int, estimate, divisor: float):
    """RMSNorm (and LayerNorm, whose feature mean is O(1/√d) under the Gaussian-coordinate
    model): ``K_ts / sqrt((K_tt+ε)(K_ss+ε))``, divided by the branch divisor²; no argument."""
    inverse_root = 1.0 / np.sqrt(np.diag(gram) + EPS) / divisor
    return gram * inverse_root[:, None] * inverse_root, np.nan


def _derf_kernel(gram: np.ndarray, config: StackConfig, lam: float, layer: int, estimate, divisor: float):
    """Derf: the arcsine kernel ``erf_kernel`` (shift 0 at init)."""
    alpha, diagonal = config.derf_alpha, np.diag(gram)
    kernel = erf_kernel(alpha, alpha, diagonal[:, None], diagonal[None, :], gram)
    return kernel / divisor**2, alpha**2 * diagonal


def _dyt_kernel(gram: np.ndarray, config: StackConfig, lam: float, layer: int, estimate, divisor: float):
    """DyT: ``E tanh(α h_t) tanh(α h_s)`` (Mehler, ``gaussian_kernel``)."""
    argument_variance = config.dyt_alpha**2 * np.diag(gram)
    kernel = gaussian_kernel(np.tanh, np.sqrt(argument_variance), _correlation(gram))
    return kernel / divisor**2, argument_variance


def _bhyt_kernel(gram: np.ndarray, config: StackConfig, lam: float, layer: int, estimate, divisor: float):
    """BHyT: ``E tanh(a_t X) tanh(a_s Y)``, ``a_t = (λ/κ) sqrt(K_tt / (M_t + ε))``
    (``estimate=None``: the exact ``M_t = K_tt``)."""
    diagonal = np.diag(gram)
    mean_square = diagonal if estimate is None else estimate
    ratio = lam / config.kappa_at(layer)
    argument_variance = ratio**2 * diagonal / (mean_square + EPS)
    kernel = gaussian_kernel(np.tanh, np.sqrt(argument_variance), _correlation(gram))
    return kernel / divisor**2, argument_variance


NORM_KERNELS: dict[str, NormKernel] = {
    "rmsnorm": _rms_kernel,
    "layernorm": _rms_kernel,
    "dyt": _dyt_kernel,
    "derf": _derf_kernel,
    "bhyt": _bhyt_kernel,
}
"""The mean-field face of each normaliser of ``numerics.schemes.NORMALISERS``, as a
pre-norm: ``kernel(K, config, λ, layer, M, divisor) → (K_u, Var z)``, the Gram matrix of
its output (divided by the row's branch divisor²) and the variance of its tanh/erf
argument (NaN where it has none); ``M`` is BHyT's fed mean square per token (``None``:
the exact one)."""


def _pre_norm(
    gram: np.ndarray, config: StackConfig, lam: float, layer: int, estimate: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | float]:
    """Gram matrix of the row's pre-norm output and the variance of its tanh/erf argument."""
    row = scheme_row(config.scheme)
    return NORM_KERNELS[row.pre_norm](gram, config, lam, layer, estimate, row.branch_divisor(layer))


@lru_cache(maxsize=64)
def _estimate_increment(config: StackConfig, kappa: float, length: int, c_attn: float) -> np.ndarray:
    """``δ_t = M₂_t − m₁_t`` of ``config.estimator`` (not "exact") at one κ, per position.

    The estimator formulas are the model's own (``model.ESTIMATORS``), fed the
    mean-field statistics: ``E c_attn`` for c_attn, γ₁ = 1 (init). Each of them is
    ``m₁ + δ`` with δ independent of m₁, which is checked here (m₁ = 0 and 1), so δ is
    computed once per κ instead of once per layer.
    """
    def evaluate(mean_square_in: float) -> np.ndarray:
        inputs = EstimateInputs(
            mean_square_in=torch.full((length, 1), mean_square_in, dtype=torch.float64),
            c_attn=torch.tensor(c_attn, dtype=torch.float64),
            lam_in=torch.tensor(config.lam_in, dtype=torch.float64),
            kappa=kappa,
            gamma_in=torch.ones(1, dtype=torch.float64),
            state_after_attention=torch.empty(0),
            positions=torch.arange(length, dtype=torch.float64)[:, None],
            seq_len=config.seq_len,
        )
        return ESTIMATORS[config.estimator](inputs).reshape(length).numpy()

    increment = evaluate(0.0)
    if not np.allclose(evaluate(1.0) - 1.0, increment, rtol=1e-12, atol=1e-15):
        raise ValueError(f"estimator {config.estimator!r} is not of the form m₁ + δ; the mean field cannot use it")
    return increment


def _gaussian_factor(gram: torch.Tensor) -> torch.Tensor:
    """``F`` with ``F Fᵀ = gram`` (symmetric PSD): Cholesky, or the eigen-decomposition
    with negative rounding-level eigenvalues clipped when the Gram matrix is singular
    (deep stacks make tokens almost collinear)."""
    factor, info = torch.linalg.cholesky_ex(gram)
    if int(info) == 0:
        return factor
    values, vectors = torch.linalg.eigh(gram)
    return vectors * values.clamp(min=0).sqrt()


@torch.no_grad()
def softmax_attention_average(
    gram: np.ndarray, config: StackConfig, samples: int = SOFTMAX_SAMPLES, seed: int = SOFTMAX_SEED
) -> np.ndarray:
    """``E[P K Pᵀ]`` for the causal softmax attention of Gaussian queries and keys.

    Parameters
    ----------
    gram : array of shape ``(T, T)``
        ``K_u``, the token Gram matrix of the attention input u (the pre-norm output).
    config : StackConfig
        Uses ``width`` (d), ``init_std`` (σ), ``head_dim`` and ``rope_theta``.
    samples : int
        Independent query/key draws (each one attention head) averaged over.
    seed : int
        Seed of the draws (the prediction is deterministic).

    Returns
    -------
    array of shape ``(T, T)``.

    Notes
    -----
    Given u, a head's queries ``q_t = W_Q u_t`` and keys ``k_t = W_K u_t`` are exactly
    Gaussian over iid ``N(0, σ²)`` weights: independent of each other, coordinates
    iid, with token covariance ``dσ² K_u`` (the mean field puts the Gram matrix's
    expectation in place of the realised one). RoPE then rotates them by position,
    so the logit covariance is

        Cov(s_tj, s_t'j') = (dσ²)² K_tt' K_jj' · c((t − t') − (j − j')),
        c(n) = (2/head_dim) Σ_f cos(n θ_f),

    the rotation averaged over the frequency pairs θ_f = base^(−2f/head_dim):
    RoPE decorrelates keys far apart, so even almost collinear tokens (deep
    layers) get logits that vary with position. Rather than truncate an
    expansion of the softmax in this covariance, the queries and keys are
    drawn (``samples`` heads of ``head_dim`` coordinates, ``model.rotary``
    applied) and ``P = causal softmax(q kᵀ/√head_dim)`` formed exactly. The value
    path is Gaussian given u and independent of P, so ``E[P K_u Pᵀ]`` is the
    attention half's Gram increment up to the gain ``dσ² · d_full σ²``; the
    heads' cross terms vanish with E[W_O] = 0, so one head's P suffices (GQA's
    shared keys do not matter). The draws' sampling error on the diagonal is
    ~``sqrt(Var Σ_j P_tj² K_jj / samples)``, a fraction of the (small) part of
    the increment that non-uniform attention adds.

    Cost per layer: a Cholesky factor of K_u (``T³/3``) and ``samples · 2T³``
    multiply-adds for ``P K_u Pᵀ`` (float32; the factor in float64): ~7·10¹⁰ at
    T = 1024, 32 samples.
    Serves claim C5 at the paper's shapes, where dσ² ≈ 0.4 makes attention
    visibly non-uniform (docs/estimators.md).
    """
    length, head_dim = gram.shape[0], config.head_dim
    generator = torch.Generator().manual_seed(seed)
    gram_t = torch.as_tensor(gram, dtype=torch.float64)
    # The factor in float64 (K_u may be nearly singular), everything after it in float32:
    # its rounding (~1e-7 relative) is far below the draws' sampling error.
    factor = _gaussian_factor(config.width * config.init_std**2 * gram_t).float()
    gram32 = gram_t.float()
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    total = torch.zeros(length, length, dtype=torch.float64)
    # A few heads at a time keeps the (heads, T, T) temporaries small at T = 1024.
    for start in range(0, samples, 4):
        heads = min(4, samples - start)
        draws = torch.randn(2, heads, length, head_dim, generator=generator)
        queries, keys = (rotary(factor @ draw, config.rope_theta) for draw in draws)
        scores = queries @ keys.transpose(-1, -2) / math.sqrt(head_dim)
        probabilities = scores.masked_fill_(future, -math.inf).softmax(-1)
        # Σ_n P_n (P_n K)ᵀ as one product over the stacked (n, j) index: a flat GEMM.
        mixed = (probabilities.reshape(-1, length) @ gram32).reshape(heads, length, length)
        total += (probabilities.transpose(0, 1).reshape(length, -1) @ mixed.transpose(0, 1).reshape(length, -1).T).double()
    average = (total / samples).numpy()
    return (average + average.T) / 2


def _attention_average(
    length: int, attention: str | np.ndarray, config: StackConfig, samples: int
) -> Callable[[np.ndarray], np.ndarray]:
    """``K ↦ E[P K Pᵀ]`` for symmetric K. Uniform causal ``P = D L`` (L lower ones,
    D = diag(1/(t+1))) runs as two cumulative sums, ``L K Lᵀ = L (L K)ᵀ``: O(T²);
    "softmax" is ``softmax_attention_average`` (its draws seeded per call, so every
    layer sees fresh, reproducible ones)."""
    if isinstance(attention, str) and attention == "softmax":
        seeds = itertools.count(SOFTMAX_SEED)
        return lambda gram: softmax_attention_average(gram, config, samples, next(seeds))
    if isinstance(attention, str) and attention == "uniform_causal":
        inverse_counts = uniform_causal_concentration(np.arange(length))
        scale = np.outer(inverse_counts, inverse_counts)
        return lambda gram: np.add.accumulate(np.add.accumulate(gram, 0).T, 0) * scale
    probabilities = attention_matrix(length, attention)
    return lambda gram: probabilities @ gram @ probabilities.T


def _normalised_increment(increment: np.ndarray) -> np.ndarray:
    """An output RMSNorm (Peri-LN; LayerNorm up to O(1/d)): the increment's Gram divided to unit diagonal."""
    root = np.sqrt(np.diag(increment) + EPS)
    return increment / np.outer(root, root)


OUTPUT_NORM_KERNELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rmsnorm": _normalised_increment,
    "layernorm": _normalised_increment,
}
"""The mean-field face of a normaliser used after a sublayer (a row's ``post_norm``):
the increment's Gram matrix ↦ that of its normalised version. Only the unit-rms
normalisers are available as output norms here."""


def _output_norm(config: StackConfig) -> Callable[[np.ndarray], np.ndarray]:
    name = scheme_row(config.scheme).post_norm
    if name is None:
        return lambda increment: increment
    if name not in OUTPUT_NORM_KERNELS:
        raise ValueError(f"no mean-field kernel for output norm {name!r}; available: {tuple(OUTPUT_NORM_KERNELS)}")
    return OUTPUT_NORM_KERNELS[name]


PREDICTION_COLUMNS = (
    "layer", "sublayer", "position", "mean_square", "rms", "mean_square_estimate", "estimate_ratio",
    "arg_rms", "saturated_fraction_1", "saturated_fraction_2", "saturated_fraction_3",
)


def _recursion(
    config: StackConfig,
    input_variance: float,
    attention: str | np.ndarray,
    length: int | None,
    token_correlations: bool,
    attention_samples: int = SOFTMAX_SAMPLES,
) -> dict[str, np.ndarray]:
    """The Gram recursion; every value column as an array of shape ``(2 · depth, T)``,
    row ``2l`` the "attn" and ``2l + 1`` the "mlp" sublayer of layer l."""
    length = config.seq_len if length is None else length
    if input_variance <= 0:
        raise ValueError(f"input_variance must be > 0, got {input_variance}")
    if attention_samples < 1:
        raise ValueError(f"attention_samples must be ≥ 1, got {attention_samples}")
    average = _attention_average(length, attention, config, attention_samples)
    d, sigma2 = config.width, config.init_std**2
    attention_gain = d * sigma2 * config.heads * config.head_dim * sigma2
    c_attn = attention_variance_constant_moments(config)[0]
    estimated = scheme_row(config.scheme).estimates_m2
    output_norm = _output_norm(config)
    shape = (2 * config.depth, length)
    mean_square, estimate_column, argument_variance = np.empty(shape), np.full(shape, np.nan), np.full(shape, np.nan)
    gram = input_variance * np.eye(length)
    for layer in range(config.depth):
        attn, mlp = 2 * layer, 2 * layer + 1
        normalised, argument_variance[attn] = _pre_norm(gram, config, config.lam_in, layer)
        increment = output_norm(attention_gain * average(normalised))
        after_attention = gram + increment
        if not token_correlations:
            after_attention = np.diag(np.diag(after_attention))
        mean_square[attn] = np.diag(after_attention)
        estimate = None
        if estimated:
            if config.estimator == "exact":
                estimate = mean_square[attn]
            else:
                estimate = np.diag(gram) + _estimate_increment(config, config.kappa_at(layer), length, c_attn)
            estimate_column[attn] = estimate

        normalised, argument_variance[mlp] = _pre_norm(after_attention, config, config.lam_post, layer, estimate)
        gate = d * sigma2 * normalised
        silu_kernel = gaussian_kernel(_silu, np.sqrt(np.diag(gate)), _correlation(gate))
        increment = output_norm(config.mlp_width * sigma2 * gate * silu_kernel)
        gram = after_attention + increment
        if not token_correlations:
            gram = np.diag(np.diag(gram))
        mean_square[mlp] = np.diag(gram)
    arg_rms = np.sqrt(argument_variance)
    return {
        "mean_square": mean_square,
        "mean_square_estimate": estimate_column,
        "estimate_ratio": estimate_column / mean_square,
        "arg_rms": arg_rms,
    } | {f"saturated_fraction_{t:g}": gaussian_tail(t, arg_rms) for t in SATURATION_THRESHOLDS}


def _index(depth: int) -> dict[str, np.ndarray]:
    return {"layer": np.repeat(np.arange(depth), 2), "sublayer": np.tile(["attn", "mlp"], depth)}


def predict_per_position(
    config: StackConfig,
    input_variance: float = 0.02**2,
    attention: str | np.ndarray = "uniform_causal",
    length: int | None = None,
    token_correlations: bool = True,
    attention_samples: int = SOFTMAX_SAMPLES,
) -> pd.DataFrame:
    """Mean-field prediction at initialisation, one row per layer × sublayer × position.

    Parameters
    ----------
    config : StackConfig
        The stack; ``dtype``/``device`` are ignored (exact arithmetic is predicted).
    input_variance : float
        v in ``K₀ = v I``: iid input tokens with iid N(0, v) coordinates.
    attention : {"uniform_causal", "uniform", "softmax"} or (T, T) row-stochastic array
        The attention probabilities: fixed ones (``attention_matrix``; RoPE acts
        on queries and keys only, so it does not enter), or "softmax", the causal
        softmax of Gaussian, RoPE-rotated queries and keys whose covariance
        follows from the layer's Gram matrix (``softmax_attention_average``).
        "uniform_causal" is the limit dσ² → 0 of "softmax" and much cheaper;
        "softmax" is needed where dσ² m(u) ≳ 0.4 (e.g. RMSNorm at the paper's
        d = 1024, σ = 0.02).
    length : int, optional
        T of the inputs (default ``config.seq_len``). ``c_attn`` always uses the
        training length ``config.seq_len``.
    token_correlations : bool
        ``False`` drops the off-diagonal of K after every residual add: the
        per-position recursion that treats tokens as uncorrelated (docs/statements.md §8).
    attention_samples : int
        Query/key draws per layer of the "softmax" model (ignored otherwise).

    Returns
    -------
    DataFrame with the columns of ``Stack.trace`` that the model predicts
    (``PREDICTION_COLUMNS``): ``mean_square`` of the residual state right after
    the sublayer's residual add and its ``rms``; on ``bhyt``/``bhytline`` "attn"
    rows ``mean_square_estimate`` (M₂) and ``estimate_ratio`` (M₂ / m(h'));
    for tanh/erf schemes ``arg_rms`` and ``saturated_fraction_{1,2,3}`` of the
    argument of the norm feeding that sublayer under the Gaussian-coordinate
    model (``P(|z| ≥ t) = erfc(t / (arg_rms √2))``). Other entries are NaN.

    Notes
    -----
    The recursion of the module docstring; cost O(depth · T² · n_terms) for
    uniform causal attention (O(depth · T³) for a general P, O(depth · samples · T³)
    for "softmax"), independent of width. Serves docs/statements.md §8 ("token
    correlations matter") and claims C1, C3, C4, C5 at initialisation.
    """
    columns = _recursion(config, input_variance, attention, length, token_correlations, attention_samples)
    n_rows, n_positions = columns["mean_square"].shape
    table = pd.DataFrame(
        {name: np.repeat(values, n_positions) for name, values in _index(config.depth).items()}
        | {"position": np.tile(np.arange(n_positions), n_rows)}
        | {name: values.ravel() for name, values in columns.items()}
    )
    table["rms"] = np.sqrt(table["mean_square"])
    return table.reindex(columns=list(PREDICTION_COLUMNS))


def predict(
    config: StackConfig,
    input_variance: float = 0.02**2,
    attention: str | np.ndarray = "uniform_causal",
    length: int | None = None,
    token_correlations: bool = True,
    attention_samples: int = SOFTMAX_SAMPLES,
) -> pd.DataFrame:
    """Position-averaged mean-field prediction, one row per layer × sublayer.

    Parameters are those of ``predict_per_position``, which gives the per-position
    rows. Positions are averaged as for Monte Carlo tables
    (``probes.position_average``): ``rms`` and ``arg_rms`` are the roots of the
    position-averaged squares, everything else a plain mean.

    Examples
    --------
    >>> table = predict(StackConfig(scheme="rmsnorm", depth=2, width=64, heads=2, seq_len=8))
    >>> list(table.columns[:3]), len(table)
    (['layer', 'sublayer', 'mean_square'], 4)
    """
    per_position = predict_per_position(
        config, input_variance, attention, length, token_correlations, attention_samples)
    averaged = position_average(per_position.drop(columns="position"), ["layer", "sublayer"])
    return averaged.reindex(columns=[c for c in PREDICTION_COLUMNS if c != "position"])
