"""Gradient norms through depth at initialisation, measured and predicted, per scheme.

The loss is a fixed random projection of the last residual state,
``L = Σ R ⊙ h_L`` with ``R`` iid N(0, 1) (drawn from ``projection_seed``), so
``∂L/∂h_L = R`` exactly and ``grad_rms_l = ‖∂L/∂h_l‖_F / sqrt(B T d)`` starts at
≈ 1 at the top. Backpropagation multiplies by the transposed block Jacobians,
``g_l = J_lᵀ g_{l+1}``; proofs/backward_pass.md, statement 3, shows that when
``g_{l+1}`` is isotropic and independent of ``J_l`` (the gradient-independence
assumption of mean-field theory),

    E ‖J_lᵀ g‖² = ‖g‖² · ‖J_l‖_F² / (T d) = ‖g‖² (1 + 2 τ_l + δ_l²),

``τ_l = tr(J_l − I)/(T d)``, ``δ_l = ‖J_l − I‖_F/‖I‖_F`` (the identity-likeness
of experiments/block_jacobian.py). The prediction ``Π_{k ≥ l} ‖J_k‖_F²/(T d)``
uses *forward* Jacobian-vector products only (Hutchinson: ``E‖J v‖² = ‖J‖_F²`` for
Rademacher ``v``), at the states each block actually receives; the measurement
is ordinary backpropagation. Their agreement tests the assumption; the closed
form of the per-layer factor at initialisation is in the proof.

References
----------
Byun et al., arXiv 2601.09719 (BHyT); Sun et al., arXiv 2502.05795 (curse of
depth); Schoenholz et al., arXiv 1611.01232, and Yang, arXiv 1902.04760
(gradient independence in mean-field backpropagation); Hutchinson (1989).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from ..numerics.inputs import InputSpec
from ..numerics.model import Stack, StackConfig, hidden_states
from ..theory.backward import MEAN_FIELD_GRADIENT_SCHEMES, mean_field_gradient_growth
from .montecarlo import confidence_interval

__all__ = ["GRADIENT_SCHEMES", "gradient_norms", "jacobian_gain", "correlated_gains", "gradient_study",
           "gradient_table", "gradient_growth"]

GRADIENT_SCHEMES = ("rmsnorm", "periln", "lns", "dyt", "derf", "bhyt", "bhytstar")


def _projection(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gradient_norms(stack: Stack, x: torch.Tensor, projection_seed: int = 0) -> tuple[np.ndarray, list[torch.Tensor]]:
    """``grad_rms_l = ‖∂L/∂h_l‖_F / sqrt(B T d)`` for ``l = 0 … L`` and the states ``h_0 … h_{L−1}``.

    ``L = Σ R ⊙ h_L``, ``R`` iid N(0, 1) from ``projection_seed`` (the same for every
    scheme of the same shape). ``h_l`` is the input of block ``l`` (``h_0 = x``).
    """
    h = hidden_states(x, stack.config).detach().requires_grad_()
    states = [h]
    for block in stack.blocks:
        states[-1].retain_grad()
        states.append(block(states[-1]))
    states[-1].retain_grad()
    projection = _projection(tuple(states[-1].shape), projection_seed).to(states[-1])
    (states[-1] * projection).sum().backward()
    size = states[-1].numel()
    norms = np.array([float(state.grad.double().norm()) / math.sqrt(size) for state in states])
    return norms, [state.detach() for state in states[:-1]]


def jacobian_gain(block: torch.nn.Module, h: torch.Tensor, probes: int = 4, seed: int = 0) -> tuple[float, float]:
    """Hutchinson estimate of ``‖J‖_F²/(T d)`` per sequence (batch mean) of ``block`` at ``h``, and its
    standard error over probes; ``J`` is the block's Jacobian, from forward-mode products in float64."""
    if probes < 2:
        raise ValueError(f"need at least 2 probes for a standard error, got {probes}")
    block64 = copy.deepcopy(block).to(torch.float64)
    h64 = h.detach().to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    samples = []
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        for _ in range(probes):
            v = (torch.randint(0, 2, h64.shape, generator=generator) * 2 - 1).to(h64)
            _, jv = torch.func.jvp(block64, (h64,), (v,))
            samples.append(float(jv.square().sum() / v.square().sum()))
    samples = np.array(samples)
    return float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(probes))


def correlated_gains(blocks: Sequence[torch.nn.Module], states: Sequence[torch.Tensor], probes: int = 4,
                     seed: int = 0) -> np.ndarray:
    """The backward token-Gram recursion, layer by layer: ``‖g_l‖²/‖g_{l+1}‖²`` predicted for a cotangent
    that is independent of block l's weights but keeps the token correlations of the gradient.

    From the top (``K = I``: the projection R is iid) down, block ``l`` receives probes
    ``v = C ξ`` with ``C Cᵀ = K`` over tokens and ξ iid N(0, 1) (so ``E v_t v_sᵀ = K_ts I``),
    returns ``w = J_lᵀ v`` (a vector-Jacobian product at its actual input, float64), and
    ``K`` becomes the probe- and batch-mean token Gram ``w wᵀ/d``, rescaled to unit trace;
    the gain is ``E‖w‖²/E‖v‖²``. Returns the gains of blocks 0 … L−1.
    """
    generator = torch.Generator().manual_seed(seed)
    gram = None
    gains = np.empty(len(blocks))
    for index in range(len(blocks) - 1, -1, -1):
        block64 = copy.deepcopy(blocks[index]).to(torch.float64)
        h64 = states[index].detach().to(torch.float64).requires_grad_()
        batch, length, width = h64.shape
        gram = torch.eye(length, dtype=torch.float64) if gram is None else gram
        factor = torch.linalg.cholesky(gram + 1e-12 * torch.eye(length, dtype=torch.float64))
        with torch.enable_grad():
            out = block64(h64)
        new_gram, inflow, outflow = torch.zeros_like(gram), 0.0, 0.0
        for probe in range(probes):
            v = factor @ torch.randn(batch, length, width, generator=generator, dtype=torch.float64)
            (w,) = torch.autograd.grad(out, h64, v, retain_graph=probe < probes - 1)
            new_gram += torch.einsum("btd,bsd->ts", w, w) / (width * batch * probes)
            inflow, outflow = inflow + float(v.square().sum()), outflow + float(w.square().sum())
        gains[index] = outflow / inflow
        gram = new_gram * length / new_gram.trace()
    return gains


GRADIENT_CONFIG = StackConfig(depth=64, width=64, heads=4, seq_len=32, dtype="float64")
"""The default stack of ``gradient_study`` (deep and narrow, float64 so that products of 64 gains stay exact)."""


def gradient_study(
    config: StackConfig = GRADIENT_CONFIG,
    schemes: Sequence[str] = GRADIENT_SCHEMES,
    seeds: Sequence[int] = (0, 1, 2),
    inputs: InputSpec = InputSpec(batch=2),
    probes: int = 4,
    progress: bool = True,
) -> pd.DataFrame:
    """Measured and predicted gradient norms, one row per scheme × seed × layer (0 … L).

    Parameters
    ----------
    config : StackConfig, default ``GRADIENT_CONFIG``
        ``scheme`` is replaced by each entry of ``schemes``.
    seeds : weight seeds; inputs ``inputs.hidden_states(config, seed)``, projection R from seed
    inputs : InputSpec, default batch 2 (sequences per seed), std ``InputSpec().std``
    probes : Hutchinson probes per layer for the prediction

    Returns
    -------
    DataFrame with ``scheme``, ``seed``, ``layer`` (the residual state h_l; L is the top),
    ``grad_rms`` (measured), ``gain`` (``‖J_l‖_F²/(T d)`` of block l; NaN at l = L) and
    its ``gain_se``, ``predicted`` (``sqrt(Π_{k ≥ l} gain_k)`` times the top's ``grad_rms``),
    ``growth`` (``grad_rms_l / grad_rms_L``), ``predicted_growth`` (isotropic cotangent),
    ``correlated_gain`` and ``correlated_growth`` (the token-Gram recursion of
    ``correlated_gains``, through the blocks' own vector-Jacobian products), and
    ``mean_field_growth`` (``theory.backward.mean_field_gradient_growth``: weight-free, closed
    form on the forward mean field; NaN for Peri-LN).
    """
    rows = []
    runs = [(scheme, seed) for scheme in schemes for seed in seeds]
    for scheme, seed in tqdm(runs, desc="gradients", disable=not progress):
        stack = Stack(config.replace(scheme=scheme), seed)
        x = inputs.hidden_states(config, seed)
        norms, states = gradient_norms(stack, x, projection_seed=seed)
        gains = [jacobian_gain(block, state, probes, seed + block.layer) for block, state in zip(stack.blocks, states)]
        gain = np.array([g for g, _ in gains] + [np.nan])
        gain_se = np.array([se for _, se in gains] + [np.nan])
        cumulative = np.sqrt(np.concatenate([np.cumprod(gain[:-1][::-1])[::-1], [1.0]]))
        correlated = np.concatenate([correlated_gains(stack.blocks, states, probes, seed), [np.nan]])
        correlated_cumulative = np.sqrt(np.concatenate([np.cumprod(correlated[:-1][::-1])[::-1], [1.0]]))
        mean_field = (mean_field_gradient_growth(stack.config, inputs.std**2).mean_field_growth.to_numpy()
                      if scheme in MEAN_FIELD_GRADIENT_SCHEMES else np.full(config.depth + 1, np.nan))
        rows.append(pd.DataFrame({
            "scheme": scheme, "seed": seed, "layer": np.arange(config.depth + 1), "grad_rms": norms,
            "gain": gain, "gain_se": gain_se, "predicted": cumulative * norms[-1],
            "growth": norms / norms[-1], "predicted_growth": cumulative, "correlated_gain": correlated,
            "correlated_growth": correlated_cumulative, "mean_field_growth": mean_field,
        }))
    return pd.concat(rows, ignore_index=True)


def gradient_table(study: pd.DataFrame, layers: Sequence[int] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Per scheme × layer: the mean over seeds of the measured and predicted growth
    ``grad_rms_l / grad_rms_L`` (isotropic: ``predicted_growth`` with intervals; token-correlated:
    ``correlated_growth``) with Student-t intervals (seeds are the replicates)."""
    if layers is not None:
        study = study[study.layer.isin(layers)]
    grouped = study.groupby(["scheme", "layer"], sort=False)
    table = grouped.agg(growth=("growth", "mean"), growth_std=("growth", "std"),
                        predicted_growth=("predicted_growth", "mean"), predicted_std=("predicted_growth", "std"),
                        correlated_growth=("correlated_growth", "mean"),
                        mean_field_growth=("mean_field_growth", "mean"), n_seeds=("seed", "count")).reset_index()
    table["ci_low"], table["ci_high"] = confidence_interval(table.growth, table.growth_std, table.n_seeds, level)
    table["predicted_ci_low"], table["predicted_ci_high"] = confidence_interval(
        table.predicted_growth, table.predicted_std, table.n_seeds, level)
    return table.drop(columns=["growth_std", "predicted_std"])


def gradient_growth(study: pd.DataFrame) -> pd.DataFrame:
    """Per scheme: the growth ``grad_rms_0 / grad_rms_L`` from the top to the input, measured and
    predicted (mean over seeds, 95 % Student-t interval), and the ratio measured/predicted."""
    bottom = gradient_table(study, layers=[0])
    bottom["measured_over_predicted"] = bottom.growth / bottom.predicted_growth
    bottom["measured_over_correlated"] = bottom.growth / bottom.correlated_growth
    bottom["measured_over_mean_field"] = bottom.growth / bottom.mean_field_growth
    return bottom.drop(columns=["layer"])
