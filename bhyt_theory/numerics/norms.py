"""Normalisers over the last dimension: RMSNorm, LayerNorm, DyT, Derf and BHyT.

Each normaliser is a plain function (the formula, written once) and a thin
``torch.nn.Module`` that only holds its learnable parameters and calls the
function. Notation follows docs/notation.md and docs/normalisers.md: ``m(h) = mean_i h_i²`` per
token, ``ε = 1e-6`` inside every square root.

Numerics
--------
Statistics are computed in float32 (float64 for float64 input) whatever the
input dtype; outputs come back in the input dtype. Reductions are *scaled*:
``h`` is divided by ``s = max_i |h_i|`` before squaring, so every finite input,
from 1e-38 to 3e38 in float32, gives a finite, correct result (a naive
``mean(h*h)`` overflows above ~1.8e19 and would turn BHyT into silent zeros).
The mean square itself is returned in float64, where ``(3.4e38)²`` still fits
(for float64 input above ~1.3e154 it overflows to +inf; BHyT with exact M does
not form it and stays correct there).

Non-finite input propagates, as torch does, and never turns into a finite
wrong number: a NaN or ±Inf anywhere in a token makes the whole token's output
NaN for the token-statistic norms (RMSNorm, LayerNorm, BHyT — BHyT with a
supplied estimate ``M`` included, because the per-token scale ``max_i |h_i|``
is a statistic of the whole token); a non-finite mean-square estimate ``M``
does the same for BHyT. The element-wise DyT and Derf keep torch's
element-wise limits (``tanh(±inf) = ±1``, ``NaN → NaN``).

Validation
----------
What cannot be computed correctly is rejected, naming the argument:
hidden states must be floating tensors (float16, bfloat16, float32, float64;
an integer, bool or complex ``h`` would come back truncated to integers or
with its imaginary part dropped → ``TypeError``) with at least one dimension
and a non-empty last (feature) dimension (→ ``ValueError``); ``κ`` must be
finite and > 0, ``ε`` finite and ≥ 0 (→ ``ValueError``). ``λ`` may be any
finite real: ``λ = 0`` gives the zero output (the sublayer's branch is off)
and ``λ < 0`` is ``BHyT`` with ``γ`` negated, since tanh is odd. The reference
implementation trains λ as an unconstrained parameter, so a trained λ may
reach or cross zero and must still be computable; the bounds use ``|λ|``.
``model.StackConfig`` accepts any finite λ too; only the command line, which
sets initial values, requires λ₁, λ₂ > 0. A tensor λ
is used as is (checking its value would synchronise a GPU on every call).

References
----------
BHyT: Byun et al., arXiv 2601.09719. DyT: Zhu et al., arXiv 2503.10622.
Derf: arXiv 2512.10938.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor, nn

EPS = 1e-6
KAPPA = 10.0

__all__ = [
    "EPS",
    "KAPPA",
    "check_hidden_states",
    "check_real",
    "mean_square",
    "root_mean_square",
    "rms_norm",
    "layer_norm",
    "dyt_argument",
    "dyt",
    "derf_argument",
    "derf",
    "bhyt_argument",
    "bhyt",
    "attention_variance_constant",
    "value_output_maps",
    "estimate_post_attention_mean_square",
    "DECODE_ORDERS",
    "DecodeConstants",
    "precompute_decode_constants",
    "bhyt_decode",
    "RMSNorm",
    "LayerNorm",
    "DyT",
    "Derf",
    "BHyT",
]


def _stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision and float32 inputs, float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_hidden_states(h: Tensor, name: str = "h") -> None:
    """Reject a ``h`` no normaliser can compute correctly (module docstring, "Validation").

    Raises
    ------
    TypeError
        ``h`` is not a tensor, or its dtype is not floating (integer, bool, complex).
    ValueError
        ``h`` is 0-dimensional or its last (feature) dimension is empty.
    """
    if not isinstance(h, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(h).__name__}")
    if not h.is_floating_point():
        raise TypeError(
            f"{name} must have a floating dtype (float16, bfloat16, float32 or float64), got {h.dtype}; "
            f"convert it explicitly first ({name}.float() for integers or bool, {name}.real for complex)"
        )
    if h.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the features), got a 0-dim tensor")
    if h.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last (feature) dimension, got shape {tuple(h.shape)}")


def check_real(value: float | Tensor, name: str, minimum: float | None = None, strict: bool = False) -> None:
    """Reject a scalar parameter outside its range: a real number, finite, and
    ``> minimum`` (``strict``) or ``≥ minimum``; a real tensor is accepted as is.

    Raises
    ------
    TypeError
        ``value`` is not a real number (bool, complex, string) or a complex tensor.
    ValueError
        ``value`` is NaN, infinite, or below ``minimum``.
    """
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (minimum is not None and (value <= minimum if strict else value < minimum)):
        accepted = "a finite real" if minimum is None else f"finite and {'>' if strict else '≥'} {minimum:g}"
        raise ValueError(f"{name} must be {accepted}, got {value!r}")


def _check_bhyt_scalars(lam: float | Tensor, kappa: float, eps: float) -> None:
    check_real(lam, "lam")
    check_real(kappa, "kappa", minimum=0.0, strict=True)
    check_real(eps, "eps", minimum=0.0)


def _statistics_input(h: Tensor) -> Tensor:
    """``h`` validated and cast to the statistics dtype."""
    check_hidden_states(h)
    return h.to(_stat_dtype(h.dtype))


def _scaled(h: Tensor) -> tuple[Tensor, Tensor]:
    """Split ``h = s · x`` with ``s = max |h_i|`` per token, so ``|x_i| ≤ 1``.

    Rows of zeros get ``s = 1``. A NaN or Inf in a row makes its ``s`` non-finite
    (``amax`` propagates NaN), and ``x`` then holds NaN, which propagates to every
    statistic of that row and to BHyT's output under a supplied estimate ``M``.
    """
    h = _statistics_input(h)
    scale = h.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    # Dividing by NaN where the scale is not finite fills those rows with NaN: one pass over
    # h, where a NaN mask over x would take a second.
    x = h / torch.where(torch.isfinite(scale), scale, torch.full_like(scale, math.nan))
    return x, scale


def _inverse_root(x: Tensor, scale: Tensor, eps: float, centred: bool = False) -> Tensor:
    """``x / sqrt(mean(x²)(·s²) + ε)`` times ``s``, i.e. ``h / sqrt(m(h) + ε)``.

    Written as ``x / hypot(r, √ε / s)`` with ``r = rms(x)`` so that neither
    ``s²`` nor ``ε / s²`` is ever formed; ``√ε / s`` may overflow to +inf only
    when the exact answer underflows to 0 anyway.
    """
    if centred:
        x = x - x.mean(dim=-1, keepdim=True)
    return x / torch.hypot(_rms(x), math.sqrt(eps) / scale)


def _rms(x: Tensor) -> Tensor:
    """``sqrt(mean x²)`` over the last dimension. ``vector_norm`` has the subgradient 0
    at a zero row, where ``sqrt(mean(x²))`` would give NaN gradients."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True) / math.sqrt(x.shape[-1])


def root_mean_square(h: Tensor) -> Tensor:
    """``rms(h) = sqrt(m(h))`` per token, shape ``h.shape[:-1] + (1,)``, overflow-safe.

    Returned in the statistics dtype (float32, or float64 for float64 input).
    """
    x, scale = _scaled(h)
    return scale * _rms(x)


def mean_square(h: Tensor) -> Tensor:
    """``m(h) = (1/d) Σ_i h_i²`` per token, in float64, shape ``h.shape[:-1] + (1,)``.

    The reduction runs in float32 on the scaled input (float64 for float64
    input); only the per-token result is float64, so ``m(h)`` of any finite
    float32 ``h`` is finite. This is the statistic BHyT's ``M`` estimates.
    """
    x, scale = _scaled(h)
    r2 = x.square().mean(dim=-1, keepdim=True)
    return r2.double() * scale.double().square()


def _apply_affine(y: Tensor, gamma: Tensor | None, beta: Tensor | None, dtype: torch.dtype) -> Tensor:
    if gamma is not None:
        y = y * gamma.to(y.dtype)
    if beta is not None:
        y = y + beta.to(y.dtype)
    return y.to(dtype)


def rms_norm(h: Tensor, gamma: Tensor | None = None, eps: float = EPS) -> Tensor:
    """RMSNorm: ``γ ⊙ h / sqrt(m(h) + ε)``.

    Examples
    --------
    >>> rms_norm(torch.tensor([3.0, 4.0]))  # m = 12.5
    tensor([0.8485, 1.1314])
    """
    check_real(eps, "eps", minimum=0.0)
    x, scale = _scaled(h)
    return _apply_affine(_inverse_root(x, scale, eps), gamma, None, h.dtype)


def layer_norm(
    h: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None, eps: float = EPS
) -> Tensor:
    """LayerNorm: ``γ ⊙ (h − μ) / sqrt(var(h) + ε) + β`` (biased variance)."""
    check_real(eps, "eps", minimum=0.0)
    x, scale = _scaled(h)
    return _apply_affine(_inverse_root(x, scale, eps, centred=True), gamma, beta, h.dtype)


def dyt_argument(h: Tensor, alpha: float | Tensor) -> Tensor:
    """DyT's tanh argument ``α h``, in the statistics dtype."""
    return alpha * _statistics_input(h)


def dyt(h: Tensor, alpha: float | Tensor, gamma: Tensor | None = None, beta: Tensor | None = None) -> Tensor:
    """Dynamic Tanh (Zhu et al., arXiv 2503.10622): ``γ ⊙ tanh(α h) + β``.

    No token statistic: the tanh argument scales with the input, so for any
    fixed α the saturated fraction tends to 1 as the input scale grows (docs/statements.md §2;
    claim C2).
    """
    return _apply_affine(torch.tanh(dyt_argument(h, alpha)), gamma, beta, h.dtype)


def derf_argument(h: Tensor, alpha: float | Tensor, shift: float | Tensor = 0.0) -> Tensor:
    """Derf's erf argument ``α h + s``, in the statistics dtype."""
    return alpha * _statistics_input(h) + shift


def derf(
    h: Tensor,
    alpha: float | Tensor,
    shift: float | Tensor = 0.0,
    gamma: Tensor | None = None,
    beta: Tensor | None = None,
) -> Tensor:
    """Derf (arXiv 2512.10938): ``γ ⊙ erf(α h + s) + β``."""
    return _apply_affine(torch.erf(derf_argument(h, alpha, shift)), gamma, beta, h.dtype)


def _check_mean_square(h: Tensor, estimate: Tensor | float) -> Tensor:
    """The estimate ``M`` as a real tensor broadcastable to ``h[..., :1]``."""
    estimate = torch.as_tensor(estimate, device=h.device)
    if estimate.is_complex() or estimate.dtype == torch.bool:
        raise TypeError(f"mean_square must be real, got dtype {estimate.dtype}")
    if estimate.shape[-1:] not in ((1,), ()):
        raise ValueError(
            f"mean_square must be broadcastable to h[..., :1]; got shape {tuple(estimate.shape)} "
            f"for h of shape {tuple(h.shape)}"
        )
    return estimate


def bhyt_argument(
    h: Tensor,
    lam: float | Tensor,
    kappa: float = KAPPA,
    mean_square: Tensor | float | None = None,
    eps: float = EPS,
) -> Tensor:
    """The tanh argument of BHyT: ``z = λ h / (κ sqrt(M + ε))``.

    Parameters
    ----------
    h : Tensor, shape ``(..., d)``, floating dtype, ``d ≥ 1``
    lam : float or scalar Tensor
        λ (learnable in the model), any finite real: 0 gives ``z = 0``, a negative
        λ flips the sign of ``z`` (module docstring, "Validation").
    kappa : float
        κ > 0, fixed (10 in the paper).
    mean_square : Tensor broadcastable to ``h[..., :1]``, optional
        The estimate ``M``. ``None`` means the exact ``m(h)`` (BHyT*), computed
        overflow-safely.
    eps : float
        ε ≥ 0.

    Raises
    ------
    TypeError, ValueError
        For ``h``, ``lam``, ``kappa``, ``eps`` outside the ranges above
        (``check_hidden_states``, ``check_real``).

    Returns
    -------
    Tensor in the statistics dtype (float32, or float64 for float64 input).

    Notes
    -----
    With exact ``M``, ``mean(z²) = (λ/κ)² m/(m+ε) ≤ (λ/κ)²`` and
    ``max|z_i| ≤ (λ/κ)√d`` (proofs/bounded_argument.md). A non-finite ``M``
    gives NaN, never the silent zeros ``h / sqrt(inf)`` would.
    """
    _check_bhyt_scalars(lam, kappa, eps)
    ratio = lam / kappa
    if mean_square is None:
        x, scale = _scaled(h)
        return _inverse_root(x, scale, eps) * ratio
    estimate = _check_mean_square(h, mean_square)
    x, scale = _scaled(h)
    # Per token, z = x · (s / sqrt(M + ε)) · λ/κ; the factor is formed in float64
    # so that neither a huge M nor a tiny one over- or underflows before it meets x.
    factor = scale.double() / (estimate.double() + eps).sqrt()
    factor = torch.where(torch.isfinite(estimate), factor, torch.full_like(factor, math.nan))
    return x * factor.to(x.dtype) * ratio


def bhyt(
    h: Tensor,
    lam: float | Tensor,
    kappa: float = KAPPA,
    gamma: Tensor | None = None,
    mean_square: Tensor | None = None,
    eps: float = EPS,
) -> Tensor:
    """BHyT: ``γ ⊙ tanh(λ h / (κ sqrt(M + ε)))``, no bias (arXiv 2601.09719).

    ``mean_square=None`` uses the exact ``M = m(h)`` (the ``bhytstar`` scheme).
    The output satisfies ``|u_i| ≤ |γ_i| · min(1, |z_i|)``.

    Examples
    --------
    >>> h = torch.tensor([1.0, -1.0, 1.0, -1.0])  # m = 1, so z = ±0.2/sqrt(1+1e-6)
    >>> bhyt(h, lam=2.0)
    tensor([ 0.1974, -0.1974,  0.1974, -0.1974])
    """
    z = bhyt_argument(h, lam, kappa, mean_square, eps)
    return _apply_affine(torch.tanh(z), gamma, None, h.dtype)


def attention_variance_constant(
    w_v: Tensor, w_o: Tensor, seq_len: int, n_heads: int, n_kv_heads: int
) -> Tensor:
    """``c_attn = ‖W_V W_O‖_F² / (T · d)``, the per-layer constant of BHyT's estimate.

    Parameters
    ----------
    w_v : Tensor, shape ``(n_kv_heads · head_dim, d)``
        ``v_proj.weight`` in ``nn.Linear`` orientation.
    w_o : Tensor, shape ``(d, n_heads · head_dim)``
        ``o_proj.weight``.
    seq_len : int
        ``T``, the training sequence length.
    n_heads, n_kv_heads : int
        Query heads and key/value heads; KV head ``j`` serves query heads
        ``j·g … j·g + g − 1`` with ``g = n_heads / n_kv_heads``, exactly as
        attention repeats them.

    Returns
    -------
    0-dim float64 Tensor.

    Notes
    -----
    In the orientation ``h ↦ h W``: ``W_V = w_vᵀ`` expanded over query groups is
    ``d × (n_heads·head_dim)`` and ``W_O = w_oᵀ``. Under uniform attention over
    ``T`` uncorrelated isotropic tokens with ``m(u) = 1``, ``E m(a) = c_attn``
    (docs/estimators.md §1; proofs/variance_approximation.md).

    Computed in float64 without expanding the heads: the g query heads sharing KV
    head j all read ``B_j`` (that head's slice of ``w_vᵀ``), so
    ``W_V W_O = B Õ`` with ``Õ_j = Σ_r W_O^{(j, r)}`` (``d_kv × d``, d_kv = n_kv_heads ·
    head_dim), and ``‖B Õ‖_F² = Σ (BᵀB) ∘ (Õ Õᵀ)``: ``2 d d_kv²`` multiply-adds
    through the Gram matrices when ``2 d_kv < d``, else ``d² d_kv`` directly
    (``d² d_full`` for the expanded product).
    """
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    d = w_o.shape[0]
    head_dim = w_v.shape[0] // n_kv_heads
    if w_v.shape != (n_kv_heads * head_dim, d) or w_o.shape != (d, n_heads * head_dim):
        raise ValueError(
            f"inconsistent shapes: w_v {tuple(w_v.shape)}, w_o {tuple(w_o.shape)} "
            f"for n_heads={n_heads}, n_kv_heads={n_kv_heads}"
        )
    values = w_v.detach().double()  # Bᵀ, d_kv × d
    group = n_heads // n_kv_heads
    outputs = w_o.detach().double().reshape(d, n_kv_heads, group, head_dim).sum(2).reshape(d, -1).T  # Õ, d_kv × d
    if 2 * values.shape[0] < d:
        squared_norm = ((values @ values.T) * (outputs @ outputs.T)).sum()
    else:
        squared_norm = (values.T @ outputs).square().sum()
    return squared_norm / (seq_len * d)


def _value_heads(w_v: Tensor, n_heads: int, n_kv_heads: int) -> Tensor:
    """``v_proj.weight`` as one ``(head_dim, d)`` block per *query* head, float64: query head
    ``k`` reads KV head ``k // (n_heads / n_kv_heads)``, exactly as attention repeats them."""
    d = w_v.shape[1]
    heads = w_v.detach().double().reshape(n_kv_heads, -1, d)
    return heads.repeat_interleave(n_heads // n_kv_heads, dim=0)


def value_output_maps(w_v: Tensor, w_o: Tensor, n_heads: int, n_kv_heads: int) -> Tensor:
    """Per-head value-output maps ``W^k = W_V^k W_O^k`` (``h ↦ h W``), float64, ``(n_heads, d, d)``.

    Query head ``k`` reads KV head ``k // g`` (``g = n_heads / n_kv_heads``), as
    attention repeats them: ``W_V^k`` is that KV head's ``d × head_dim`` slice of
    ``w_vᵀ`` and ``W_O^k`` the ``head_dim × d`` slice of ``w_oᵀ``. Their sum is
    ``W_V W_O`` of ``attention_variance_constant`` (docs/estimators.md §1; claim C5). Memory is
    ``n_heads · d²`` doubles: for per-head analyses at small and moderate width.
    """
    d = w_o.shape[0]
    out = w_o.detach().double().reshape(d, n_heads, -1).permute(1, 2, 0)  # (heads, head_dim, d)
    return _value_heads(w_v, n_heads, n_kv_heads).transpose(1, 2) @ out


def estimate_post_attention_mean_square(
    mean_square: Tensor, c_attn: float | Tensor, lam: float | Tensor, kappa: float = KAPPA
) -> Tensor:
    """BHyT's second-norm estimate ``M₂ = m₁ + c_attn · λ₁² / κ²`` (no second reduction).

    ``lam`` is the *input-side* λ₁ (docs/estimators.md §2).
    """
    check_real(kappa, "kappa", minimum=0.0, strict=True)
    return mean_square + c_attn * (lam / kappa) ** 2


DECODE_ORDERS = ("matched", "fused_scale", "float64_constants")
"""Orders of operations of the decode-time fast path (``bhyt_decode``):

``"matched"``: ``λ₂/κ`` and ``c_attn (λ₁/κ)²`` rounded exactly as the unfused
``bhyt`` and ``estimate_post_attention_mean_square`` round them (``λ/κ`` in λ's
dtype, squared in λ's dtype, times the float64 ``c_attn``), and the argument
formed as ``(x · s/sqrt(M₂+ε)) · λ₂/κ``, two multiplies per element, as ``bhyt_argument``;
``"fused_scale"``: the same constants, but one per-token multiplier
``s/sqrt(M₂+ε) · λ₂/κ`` formed in float64 and one multiply per element;
``"float64_constants"``: the constants from λ in float64 (``λ₂/κ`` and
``c_attn λ₁²/κ²`` never rounded to λ's dtype), then the matched order."""


@dataclass(frozen=True)
class DecodeConstants:
    """The two per-layer scalars of the decode-time fast path (docs/estimators.md; claim C9).

    ``ratio`` is ``λ₂/κ`` (0-dim, in λ's dtype or float64) and ``increment`` is
    ``c_attn λ₁²/κ²`` (0-dim float64); ``order`` is the ``DECODE_ORDERS`` entry they
    were made for.
    """

    ratio: Tensor
    increment: Tensor
    order: str


def _check_order(order: str) -> None:
    if order not in DECODE_ORDERS:
        raise ValueError(f"order must be one of {DECODE_ORDERS}, got {order!r}")


def precompute_decode_constants(
    c_attn: Tensor | float, lam_in: Tensor | float, lam_post: Tensor | float, kappa: float = KAPPA,
    order: str = "matched",
) -> DecodeConstants:
    """``λ₂/κ`` and ``c_attn λ₁²/κ²``, computed once per layer for decoding (claim C9).

    Parameters
    ----------
    c_attn : float or 0-dim Tensor
        The layer's attention variance constant (``attention_variance_constant``).
    lam_in, lam_post : float or 0-dim Tensor
        λ₁ of the norm before attention and λ₂ of the norm before the MLP, in the
        dtype the model holds them (bfloat16 in a bfloat16 model).
    kappa : float
        κ of the layer (its scheduled value).
    order : one of ``DECODE_ORDERS``

    Returns
    -------
    DecodeConstants

    Notes
    -----
    The reference implementation's README says the decode path precomputes these
    two scalars and is exact (arXiv 2601.09719; claim C9). With ``order="matched"``
    the scalars are the very values the unfused computation forms on every call,
    ``lam / kappa`` and ``c_attn * (lam / kappa) ** 2`` in the same dtypes, so
    ``bhyt_decode`` is bit-identical to ``bhyt`` fed ``estimate_post_attention_mean_square``
    (proofs/decode_precomputation.md).
    """
    _check_order(order)
    check_real(kappa, "kappa", minimum=0.0, strict=True)
    c_attn = torch.as_tensor(c_attn, dtype=torch.float64)
    # A Python float is a double: the unfused path forms λ/κ and c_attn (λ₁/κ)² from it in
    # float64, so the matched constants do too (torch.as_tensor would round it to float32).
    lam_in, lam_post = (lam.detach() if isinstance(lam, Tensor) else torch.tensor(float(lam), dtype=torch.float64)
                        for lam in (lam_in, lam_post))
    if order == "float64_constants":
        lam_in, lam_post = lam_in.double(), lam_post.double()
        return DecodeConstants(lam_post / kappa, c_attn * lam_in**2 / kappa**2, order)
    return DecodeConstants(lam_post / kappa, c_attn * (lam_in / kappa) ** 2, order)


def bhyt_decode(
    h_after: Tensor, mean_square_in: Tensor, constants: DecodeConstants, gamma: Tensor | None = None,
    eps: float = EPS,
) -> Tensor:
    """The MLP-side BHyT of a ``bhyt`` block from precomputed constants (decode fast path).

    ``γ₂ ⊙ tanh(x · s/sqrt(M₂ + ε) · λ₂/κ)`` with ``h' = s · x`` (``s = max|h'_i|``)
    and ``M₂ = m₁ + c_attn λ₁²/κ²``, the constants taken from ``constants`` instead
    of being formed from λ₁, λ₂, κ and ``c_attn`` on every call.

    Parameters
    ----------
    h_after : Tensor, shape ``(..., d)``
        The residual state after attention, ``h'``.
    mean_square_in : Tensor broadcastable to ``h_after[..., :1]``
        ``m₁ = m(h)`` of the block input (``mean_square``, float64).
    constants : DecodeConstants
        From ``precompute_decode_constants``; its ``order`` fixes the order of operations.
    gamma : Tensor, optional
        γ₂.

    Returns
    -------
    Tensor in ``h_after``'s dtype. With ``order="matched"`` it is bit-identical to
    ``bhyt(h_after, λ₂, κ, γ₂, estimate_post_attention_mean_square(m₁, c_attn, λ₁, κ))``
    called with the same λ₁, λ₂ (Tensors of any dtype, or Python floats, which both paths
    treat as float64), κ, ``c_attn``, γ₂ and ε, on the same device and torch build, for every
    input dtype (proofs/decode_precomputation.md, statement 1; claim C9). The other orders
    are not bit-identical in general (statements 2 and 3 bound their difference).
    """
    _check_order(constants.order)
    check_real(eps, "eps", minimum=0.0)
    estimate = _check_mean_square(h_after, mean_square_in) + constants.increment
    x, scale = _scaled(h_after)
    factor = scale.double() / (estimate.double() + eps).sqrt()
    factor = torch.where(torch.isfinite(estimate), factor, torch.full_like(factor, math.nan))
    if constants.order == "fused_scale":
        z = x * (factor * constants.ratio.double()).to(x.dtype)
    else:
        z = x * factor.to(x.dtype) * constants.ratio
    return _apply_affine(torch.tanh(z), gamma, None, h_after.dtype)


class _Affine(nn.Module):
    """Holds γ (and β) of a width-``d`` normaliser."""

    def __init__(self, d: int, bias: bool):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d)) if bias else None


class RMSNorm(_Affine):
    """RMSNorm with learnable γ (``rms_norm``): the Pre-LN baseline of claims C1, C2, C7."""

    def __init__(self, d: int, eps: float = EPS):
        super().__init__(d, bias=False)
        self.eps = eps

    def forward(self, h: Tensor) -> Tensor:
        return rms_norm(h, self.gamma, self.eps)


class LayerNorm(_Affine):
    """LayerNorm with learnable γ, β (``layer_norm``)."""

    def __init__(self, d: int, eps: float = EPS):
        super().__init__(d, bias=True)
        self.eps = eps

    def forward(self, h: Tensor) -> Tensor:
        return layer_norm(h, self.gamma, self.beta, self.eps)


class DyT(_Affine):
    """DyT with learnable scalar α and γ, β (``dyt``; claim C2). ``argument`` is α h."""

    def __init__(self, d: int, alpha: float = 0.5):
        super().__init__(d, bias=True)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def argument(self, h: Tensor) -> Tensor:
        return dyt_argument(h, self.alpha)

    def forward(self, h: Tensor) -> Tensor:
        return dyt(h, self.alpha, self.gamma, self.beta)


class Derf(_Affine):
    """Derf with learnable scalars α, s and γ, β (``derf``). ``argument`` is α h + s."""

    def __init__(self, d: int, alpha: float = 0.5):
        super().__init__(d, bias=True)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.shift = nn.Parameter(torch.tensor(0.0))

    def argument(self, h: Tensor) -> Tensor:
        return derf_argument(h, self.alpha, self.shift)

    def forward(self, h: Tensor) -> Tensor:
        return derf(h, self.alpha, self.shift, self.gamma, self.beta)


class BHyT(_Affine):
    """BHyT with learnable scalar λ and γ, fixed κ, no bias (``bhyt``; claims C3–C5).

    ``forward(h, mean_square=None)``: ``None`` uses the exact m(h) (BHyT*), a tensor
    is the estimate M; ``argument`` returns the tanh argument z.
    """

    def __init__(self, d: int, lam: float = 2.0, kappa: float = KAPPA, eps: float = EPS):
        super().__init__(d, bias=False)
        _check_bhyt_scalars(lam, kappa, eps)
        self.lam = nn.Parameter(torch.tensor(float(lam)))
        self.kappa = float(kappa)
        self.eps = eps

    def argument(self, h: Tensor, mean_square: Tensor | None = None) -> Tensor:
        return bhyt_argument(h, self.lam, self.kappa, mean_square, self.eps)

    def forward(self, h: Tensor, mean_square: Tensor | None = None) -> Tensor:
        return bhyt(h, self.lam, self.kappa, self.gamma, mean_square, self.eps)
