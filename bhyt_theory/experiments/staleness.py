"""A stale ``c_attn``: how large its error term is after the weights move (claim C5).

The reference implementation refreshes ``c_attn = ‖W_V W_O‖_F²/(T d)`` about 50
times per training run, so between refreshes ``M₂`` is formed with the constant
of older weights. proofs/trained_parameters.md shows this adds exactly one term
to the decomposition of ``M₂ − m(h')``, ``(c_stale − c_fresh) λ₁²/κ²``
(``trained_bounds.staleness_error``), and scales the MLP-side saturation bound by
``(M₂^fresh + ε)/(M₂^stale + ε)`` (``trained_bounds.stale_saturation_factor_range``).
``staleness_study`` measures both under a controlled weight perturbation of
relative size δ applied after ``c_attn`` was computed:

- ``"random"``: every linear weight ``W ← W + δ · std(W) · N(0, 1)`` (independent noise,
  the diffusive part of optimiser updates);
- ``"scaling"``: ``W_V, W_O ← (1 + δ) W`` (a coherent drift of the value and output
  weights, the worst case for ``c_attn``, which moves by ``(1 + δ)⁴``).

What δ one 1/50 of a run corresponds to: Adam moves a weight by at most about the
learning rate per step. For a short run of 1000 steps at lr 3·10⁻⁴ with
init_std 0.02, 1/50 of it (20 steps) moves a weight by at most 20 · 3·10⁻⁴ = 6·10⁻³
(δ = 0.3 of init_std) if every step pushes the same way, and by about
√20 · 3·10⁻⁴ ≈ 1.3·10⁻³ (δ ≈ 0.07) if the steps are uncorrelated.

References
----------
Byun et al., arXiv 2601.09719 (BHyT; the refresh schedule of ``c_attn``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..numerics.inputs import InputSpec
from ..numerics.model import Stack, StackConfig
from ..numerics.norms import EPS, mean_square
from ..numerics.probes import RecordingProbe
from ..theory.trained_bounds import (
    stale_saturation_factor_range,
    staleness_error,
)

__all__ = ["PERTURBATIONS", "perturb", "staleness_study", "staleness_summary"]

PERTURBATIONS = ("random", "scaling")


@torch.no_grad()
def perturb(stack: Stack, kind: str, delta: float, seed: int) -> None:
    """Move ``stack``'s weights in place by relative size ``delta`` (``PERTURBATIONS``), leaving ``c_attn`` stale."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"kind must be one of {PERTURBATIONS}, got {kind!r}")
    if delta < 0:
        raise ValueError(f"delta must be ≥ 0, got {delta}")
    generator = torch.Generator().manual_seed(seed)
    for block in stack.blocks:
        if kind == "scaling":
            for weight in (block.attn.v_proj.weight, block.attn.o_proj.weight):
                weight.mul_(1.0 + delta)
            continue
        for module in block.modules():
            if isinstance(module, torch.nn.Linear):
                noise = torch.randn(module.weight.shape, generator=generator).to(module.weight)
                module.weight.add_(delta * module.weight.std() * noise)


def _estimates(stack: Stack, x: torch.Tensor) -> RecordingProbe:
    probe = RecordingProbe()
    stack.residual(x, probe)
    return probe


STALENESS_CONFIG = StackConfig(scheme="bhyt", depth=8, width=256, heads=4, seq_len=64, dtype="float64")
"""The default stack of ``staleness_study``."""


@torch.no_grad()
def staleness_study(
    config: StackConfig = STALENESS_CONFIG,
    deltas: Sequence[float] = (0.03, 0.07, 0.3),
    kinds: Sequence[str] = PERTURBATIONS,
    seeds: Sequence[int] = (0, 1, 2),
    inputs: InputSpec = InputSpec(batch=4),
) -> pd.DataFrame:
    """The stale-``c_attn`` error term per seed × perturbation × δ × layer.

    Parameters
    ----------
    config : StackConfig, default ``STALENESS_CONFIG`` (``bhyt``, depth 8, width 256, 4 heads, T 64, float64)
    deltas : relative perturbation sizes
    kinds : entries of ``PERTURBATIONS``
    seeds : weight seeds (inputs from seed + 10000; perturbation noise from seed + 1)
    inputs : the inputs of each seed, ``inputs.hidden_states(config, seed)``

    Returns
    -------
    DataFrame, one row per seed × kind × delta × layer: ``c_fresh``, ``c_stale``,
    ``relative_change`` = c_fresh/c_stale − 1, ``staleness_error`` =
    ``trained_bounds.staleness_error`` and ``error_over_exact`` = its size over the
    token-mean m(h'), the mean |M₂ − m(h')|/m(h') with the ``fresh`` and the
    ``stale`` constant, the token-mean saturation-bound factor
    ``(M₂^fresh + ε)/(M₂^stale + ε)`` and its proved range ``factor_low``, ``factor_high``.
    Both runs see the same perturbed weights and inputs; only the constant differs.
    """
    if config.scheme not in ("bhyt", "bhytline") or config.estimator != "reference":
        raise ValueError("the staleness study needs scheme bhyt/bhytline with the reference estimator")
    rows = []
    for seed in seeds:
        x = inputs.hidden_states(config, seed)
        for kind in kinds:
            for delta in deltas:
                stack = Stack(config, seed)
                stale = [float(block.c_attn) for block in stack.blocks]
                perturb(stack, kind, delta, seed + 1)
                stale_run = _estimates(stack, x)
                stack.refresh_variance_constants()
                fresh_run = _estimates(stack, x)
                for block, c_stale in zip(stack.blocks, stale):
                    c_fresh, layer = float(block.c_attn), block.layer
                    exact = mean_square(fresh_run.states[layer, "attn"])
                    m_stale, m_fresh = stale_run.estimates[layer].double(), fresh_run.estimates[layer].double()
                    lam = float(block.norm_attn.lam)
                    error = staleness_error(c_stale, c_fresh, lam, block.norm_attn.kappa)
                    low, high = stale_saturation_factor_range(c_stale, c_fresh)
                    rows.append({
                        "seed": seed, "kind": kind, "delta": delta, "layer": layer, "c_fresh": c_fresh,
                        "c_stale": c_stale, "relative_change": c_fresh / c_stale - 1.0, "staleness_error": error,
                        "error_over_exact": abs(error) / float(exact.mean()),
                        "fresh_relative_error": float(((m_fresh - exact).abs() / exact).mean()),
                        "stale_relative_error": float(((m_stale - exact).abs() / exact).mean()),
                        "saturation_factor": float(((m_fresh + EPS) / (m_stale + EPS)).mean()),
                        "factor_low": low, "factor_high": high,
                    })
    return pd.DataFrame(rows)


def staleness_summary(study: pd.DataFrame) -> pd.DataFrame:
    """Per kind × δ: mean and max over seeds and layers of the relative change of ``c_attn``,
    the error term over m(h'), the fresh and stale relative errors of M₂ and the saturation factor."""
    grouped = study.groupby(["kind", "delta"], sort=False)
    return pd.DataFrame({
        "relative_change_mean": grouped.relative_change.mean(),
        "relative_change_max_abs": grouped.relative_change.apply(lambda v: np.abs(v).max()),
        "error_over_exact_mean": grouped.error_over_exact.mean(),
        "error_over_exact_max": grouped.error_over_exact.max(),
        "fresh_relative_error": grouped.fresh_relative_error.mean(),
        "stale_relative_error": grouped.stale_relative_error.mean(),
        "saturation_factor_min": grouped.saturation_factor.min(),
        "saturation_factor_max": grouped.saturation_factor.max(),
    }).reset_index()
