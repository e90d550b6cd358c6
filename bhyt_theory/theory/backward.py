"""The backward pass of a ``bhyt`` block in closed form (proofs/backward_pass.md).

A ``bhyt`` block maps one sequence ``h`` (``T × d``, tokens as rows) to

    m₁ = m(h),  u = γ₁ ⊙ tanh(s₁ h),  h' = h + Attn(u),
    M₂ = m₁ + c_attn λ₁²/κ²,  v = γ₂ ⊙ tanh(s₂ h'),  h'' = h' + MLP(v),

with ``s₁ = λ₁/(κ sqrt(m₁+ε))`` and ``s₂ = λ₂/(κ sqrt(M₂+ε))`` per token. Its
Jacobian is assembled here from the closed-form Jacobians of the two norms
(proofs/jacobian.md) and the Jacobians of the two sublayers, which are the
sublayers' own business (taken from ``Attention`` and ``SwiGLU`` by autograd,
one sublayer at a time):

    ∂h'/∂h = I + J_A D₁ s₁ (I − h hᵀ/(d(m₁+ε))),
    ∂h''/∂h = ∂h'/∂h + J_F D₂ s₂ [∂h'/∂h − (token-diagonal) h' hᵀ/(d(M₂+ε))],

``D₁ = diag(γ₁ sech² z)``, ``D₂ = diag(γ₂ sech² y)``. The last, rank-one-per-token
term is ∂M₂/∂h through m₁: M₂ is formed from the block *input*, so the second
norm depends on h twice — through h' and through m₁. The gradients with
respect to λ₁ and λ₂ of a loss ``L`` with cotangent ``R = ∂L/∂h''`` follow the
same chain (``lambda_gradients``).

References
----------
Byun et al., arXiv 2601.09719 (BHyT); proofs/jacobian.md (the norms' Jacobians).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..numerics.gaussian import tanh_prime_square_moment
from ..numerics.inputs import InputSpec
from ..numerics.model import Block, StackConfig
from ..numerics.norms import (
    EPS,
    bhyt_argument,
    estimate_post_attention_mean_square,
    mean_square,
)
from .meanfield import attention_matrix, predict_per_position

__all__ = ["BlockJacobian", "bhyt_block_jacobian", "lambda_gradients", "rank_one_norm", "MEAN_FIELD_GRADIENT_SCHEMES",
           "norm_slope_squared", "mean_field_gradient_gram", "mean_field_gradient_growth"]


class BlockJacobian(dict):
    """The pieces of ``∂h''/∂h`` of one sequence, each a float64 ``(T, d, T, d)`` tensor
    ``J[t, i, s, j] = ∂out_{t,i}/∂h_{s,j}``: ``"after_attention"`` (∂h'/∂h), ``"mean_square_path"``
    (the rank-one-per-token term through m₁, inside the MLP branch) and ``"total"`` (∂h''/∂h)."""


def _forward_pieces(block: Block, h: Tensor) -> dict[str, Tensor]:
    """The intermediate quantities of a ``bhyt`` block on one float64 sequence ``h`` (T, d)."""
    if block.scheme not in ("bhyt", "bhytline") or block.config.estimator != "reference":
        raise ValueError(f"the closed form is for bhyt/bhytline with the reference estimate, got "
                         f"{block.scheme!r}/{block.config.estimator!r}")
    if h.ndim != 2 or h.dtype != torch.float64:
        raise ValueError(f"h must be one float64 sequence of shape (T, d), got {tuple(h.shape)} {h.dtype}")
    first, second = block.norm_attn, block.norm_mlp
    lam1, lam2 = float(first.lam.detach()), float(second.lam.detach())
    m1 = mean_square(h)
    z = bhyt_argument(h, lam1, first.kappa, m1, first.eps)
    u = first.gamma.detach().double() * torch.tanh(z)
    h_after = h + block.attn(u[None])[0]
    m2 = estimate_post_attention_mean_square(m1, block.c_attn.double(), lam1, first.kappa)
    y = bhyt_argument(h_after, lam2, second.kappa, m2, second.eps)
    v = second.gamma.detach().double() * torch.tanh(y)
    return {"m1": m1, "z": z, "u": u, "h_after": h_after, "m2": m2, "y": y, "v": v,
            "s1": lam1 / (first.kappa * (m1 + first.eps).sqrt()), "s2": lam2 / (second.kappa * (m2 + second.eps).sqrt()),
            "d1": first.gamma.detach().double() / torch.cosh(z).square(),
            "d2": second.gamma.detach().double() / torch.cosh(y).square()}


def _sublayer_jacobian(module: torch.nn.Module, x: Tensor) -> Tensor:
    """Autograd Jacobian of a sublayer on one sequence: ``(T, d, T, d)``."""
    return torch.autograd.functional.jacobian(lambda v: module(v[None])[0], x)


@torch.no_grad()
def bhyt_block_jacobian(block: Block, h: Tensor) -> BlockJacobian:
    """``∂h''/∂h`` of a float64 ``bhyt`` block at one sequence ``h`` of shape ``(T, d)``, in closed form.

    Returns
    -------
    BlockJacobian with ``"after_attention"``, ``"mean_square_path"`` and ``"total"``.

    Notes
    -----
    The norms' Jacobians are the closed forms of proofs/jacobian.md,
    ``∂u_t/∂h_t = D₁ s₁ (I − h_t h_tᵀ/(d(m₁+ε)))`` and, at fixed M₂,
    ``∂v_t/∂h'_t = D₂ s₂``; ``∂M₂_t/∂h_t = 2 h_tᵀ/d`` adds
    ``−D₂ s₂ h'_t h_tᵀ/(d(M₂+ε))`` to ``∂v_t/∂h_t``. The sublayer Jacobians
    ``J_A = ∂Attn/∂u`` and ``J_F = ∂MLP/∂v`` come from autograd on each sublayer
    alone (proofs/backward_pass.md, statement 1).
    """
    pieces = _forward_pieces(block, h)
    length, width = h.shape
    eye = torch.eye(width, dtype=torch.float64)
    identity = torch.einsum("ts,ij->tisj", torch.eye(length, dtype=torch.float64), eye)
    projector = eye - torch.einsum("ti,tj->tij", h, h) / (width * (pieces["m1"][..., None] + block.norm_attn.eps))
    norm1 = pieces["d1"][:, :, None] * pieces["s1"][..., None] * projector  # (T, d, d): ∂u_t/∂h_t
    with torch.enable_grad():
        attention = _sublayer_jacobian(block.attn, pieces["u"])
        mlp = _sublayer_jacobian(block.mlp, pieces["v"])
    after = identity + torch.einsum("tisk,skj->tisj", attention, norm1)
    norm2 = pieces["d2"] * pieces["s2"]  # (T, d): ∂v_t/∂h'_t = diag(D₂ s₂) at fixed M₂
    radial = -torch.einsum("ti,tj->tij", pieces["h_after"], h) / (width * (pieces["m2"][..., None] + block.norm_mlp.eps))
    mean_square_path = torch.einsum("tisk,skj->tisj", mlp, norm2[:, :, None] * radial)
    total = after + torch.einsum("tisk,skrj->tirj", mlp, norm2[:, :, None, None] * after) + mean_square_path
    return BlockJacobian(after_attention=after, mean_square_path=mean_square_path, total=total)


@torch.no_grad()
def lambda_gradients(block: Block, h: Tensor, cotangent: Tensor) -> dict[str, float]:
    """``∂L/∂λ₁`` and ``∂L/∂λ₂`` of ``L = ⟨cotangent, h''⟩`` for one float64 sequence, in closed form.

    Returns
    -------
    dict with ``"lam_in"`` (λ₁) and ``"lam_post"`` (λ₂).

    Notes
    -----
    With ``g_v = J_Fᵀ R`` (the MLP's vector-Jacobian product) and
    ``g_h' = R + s₂ D₂ g_v`` (the MLP branch at fixed M₂), ``g_u = J_Aᵀ g_h'``:

        ∂L/∂λ₂ = Σ_t ⟨g_v,t, D₂ h'_t⟩ / (κ sqrt(M₂,t + ε)),
        ∂L/∂λ₁ = Σ_t ⟨g_u,t, D₁ h_t⟩ / (κ sqrt(m₁,t + ε))
                 − Σ_t ⟨g_v,t, D₂ y_t⟩ · c_attn λ₁ / (κ² (M₂,t + ε)),

    the last term being λ₁'s path through M₂ (``∂M₂/∂λ₁ = 2 c_attn λ₁/κ²``,
    ``∂y/∂M₂ = −y/(2(M₂+ε))``). Valid at λ = 0 (no division by λ)
    (proofs/backward_pass.md, statement 2).
    """
    pieces = _forward_pieces(block, h)
    first, second = block.norm_attn, block.norm_mlp
    with torch.enable_grad():
        v = pieces["v"].detach().requires_grad_()
        (grad_v,) = torch.autograd.grad(block.mlp(v[None])[0], v, cotangent)
        grad_after = cotangent + pieces["s2"] * pieces["d2"] * grad_v
        u = pieces["u"].detach().requires_grad_()
        (grad_u,) = torch.autograd.grad(block.attn(u[None])[0], u, grad_after)
    lam1 = float(first.lam.detach())
    post = (grad_v * pieces["d2"] * pieces["h_after"]).sum(-1, keepdim=True) / (second.kappa * (pieces["m2"] + second.eps).sqrt())
    through_u = (grad_u * pieces["d1"] * h).sum(-1, keepdim=True) / (first.kappa * (pieces["m1"] + first.eps).sqrt())
    through_m2 = -(grad_v * pieces["d2"] * pieces["y"]).sum(-1, keepdim=True) * float(block.c_attn) * lam1 / (
        first.kappa**2 * (pieces["m2"] + second.eps))
    return {"lam_in": float((through_u + through_m2).sum()), "lam_post": float(post.sum())}


@torch.no_grad()
def rank_one_norm(block: Block, h: Tensor) -> Tensor:
    """``‖D₂ s₂ h'_t h_tᵀ‖₂ / (d(M₂+ε))`` per token: the spectral norm of the m₁-path factor
    of the second norm (before J_F), ``s₂ ‖D₂ h'_t‖ ‖h_t‖ / (d(M₂,t+ε))``."""
    pieces = _forward_pieces(block, h)
    width = h.shape[-1]
    return (pieces["s2"][..., 0].abs() * (pieces["d2"] * pieces["h_after"]).norm(dim=-1) * h.norm(dim=-1)
            / (width * (pieces["m2"][..., 0] + block.norm_mlp.eps)))



MEAN_FIELD_GRADIENT_SCHEMES = ("rmsnorm", "lns", "dyt", "derf", "bhyt", "bhytline", "bhytstar")
"""Schemes whose attention-side norm has a closed-form mean slope (Peri-LN's output norm
needs the sublayer output's token Gram, which the forward mean field does not expose)."""


def norm_slope_squared(config: StackConfig, layer: int, mean_square_in: np.ndarray) -> np.ndarray:
    """Mean squared per-coordinate slope of the attention-side norm of 0-based ``layer`` at γ = 1, per
    token, for Gaussian coordinates of mean square ``mean_square_in`` (the norm's ``∂u_i/∂h_i`` averaged
    over coordinates, the projector's one removed direction of d neglected):

    RMSNorm ``1/(m+ε)``; LNS ``1/(l (m+ε))`` (l = layer + 1); BHyT/BHyT* (exact m₁)
    ``(λ₁/κ)² E sech⁴(a Z)/(m+ε)`` with ``a = (λ₁/κ) sqrt(m/(m+ε))``; DyT
    ``α² E sech⁴(α sqrt(m) Z)``; Derf ``α² (4/π) / sqrt(1 + 4α² m)`` (proofs/backward_pass.md, statement 3b).
    """
    m = np.asarray(mean_square_in, dtype=float)
    scheme = config.scheme
    if scheme in ("rmsnorm", "lns"):
        return 1.0 / ((m + EPS) * (layer + 1 if scheme == "lns" else 1))
    if scheme in ("bhyt", "bhytline", "bhytstar"):
        ratio = abs(config.lam_in) / config.kappa_at(layer)
        return ratio**2 * np.asarray(tanh_prime_square_moment(ratio * np.sqrt(m / (m + EPS)))) / (m + EPS)
    if scheme == "dyt":
        return config.dyt_alpha**2 * np.asarray(tanh_prime_square_moment(config.dyt_alpha * np.sqrt(m)))
    if scheme == "derf":
        return config.derf_alpha**2 * 4 / math.pi / np.sqrt(1 + 4 * config.derf_alpha**2 * m)
    raise ValueError(f"no closed-form slope for scheme {scheme!r}; supported: {MEAN_FIELD_GRADIENT_SCHEMES}")


def mean_field_gradient_gram(config: StackConfig, input_variance: float = InputSpec().std**2,
                             attention: str | np.ndarray = "uniform_causal") -> list[np.ndarray]:
    """The weight-free token Grams ``K_0 … K_L`` (``T × T``, per feature) of the gradient at initialisation.

    ``K_L = I`` (the projection R is iid) and, backwards, ``K_l = K_{l+1} + d d_full σ⁴ S_l Pᵀ K_{l+1} P S_l``
    (proofs/backward_pass.md, statement 3(b), attention branch, first order, the MLP term dropped),
    ``S_l = diag(sqrt(norm_slope_squared))`` at the per-position mean squares of the forward mean field
    (``meanfield.predict_per_position``; block l's input is the state after block l − 1's MLP), P
    uniform causal by default. ``E[g_{l,t} · g_{l,s}] / d ≈ K_l[t, s]`` for ``L = Σ R ⊙ h_L``.
    """
    if config.scheme not in MEAN_FIELD_GRADIENT_SCHEMES:
        raise ValueError(f"no closed-form slope for scheme {config.scheme!r}; supported: {MEAN_FIELD_GRADIENT_SCHEMES}")
    forward = predict_per_position(config, input_variance, attention)
    length = config.seq_len
    after_mlp = forward[forward.sublayer == "mlp"].pivot(index="layer", columns="position", values="mean_square")
    inputs = [np.full(length, input_variance)] + [after_mlp.loc[layer].to_numpy() for layer in range(config.depth - 1)]
    probabilities = attention_matrix(length, attention)
    gain = config.width * config.heads * config.head_dim * config.init_std**4
    grams = [np.eye(length)]
    for layer in range(config.depth - 1, -1, -1):
        slope = np.sqrt(norm_slope_squared(config, layer, inputs[layer]))
        gram = grams[-1]
        grams.append(gram + gain * slope[:, None] * (probabilities.T @ gram @ probabilities) * slope[None, :])
    return grams[::-1]


def mean_field_gradient_growth(config: StackConfig, input_variance: float = 0.02**2,
                               attention: str | np.ndarray = "uniform_causal") -> pd.DataFrame:
    """Weight-free prediction of ``‖∂L/∂h_l‖ / ‖∂L/∂h_L‖`` at initialisation (attention branch, first order).

    Returns
    -------
    DataFrame with ``layer`` (0 … L) and ``mean_field_growth = sqrt(tr K_l / tr K_L)``, the token
    Grams ``K_l`` of ``mean_field_gradient_gram``.
    """
    grams = mean_field_gradient_gram(config, input_variance, attention)
    traces = np.array([np.trace(gram) for gram in grams])
    return pd.DataFrame({"layer": np.arange(config.depth + 1), "mean_field_growth": np.sqrt(traces / traces[-1])})
