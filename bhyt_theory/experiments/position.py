"""The position-aware M₂ estimator under peaked attention, against the reference (claim C5).

The "position" estimator (``numerics.estimators``) replaces the reference's
uniform-over-T attention by uniform *causal* attention, ``Σ_j P_tj² = 1/(t+1)``.
proofs/position_estimator.md proves it unbiased for the attention increment when
every head attends uniformly causally over uncorrelated isotropic tokens, and
that otherwise its increment is ``1/((t+1) S_t)`` of the expected one,
``S_t = Σ_j P_tj²`` (``trained_bounds.increment_ratio``). This module measures that on a
real block: the attention half is recomputed from the block's own value-output
maps (``norms.value_output_maps``) with *forced* probabilities — a row putting
mass ``p`` on the first token (an attention sink) and ``1 − p`` uniformly on
``0 … t`` (``trained_bounds.peaked_attention_sum_squares``) — so that attention is
independent of the tokens, as the statement assumes, and the tokens are iid
Gaussian (uncorrelated, isotropic).

References
----------
Byun et al., arXiv 2601.09719 (BHyT's estimate M₂).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..numerics.gaussian import tanh_square_moment
from ..numerics.inputs import InputSpec
from ..numerics.model import Block, StackConfig, build_block
from ..numerics.norms import mean_square, value_output_maps
from ..theory.trained_bounds import (
    increment_ratio,
    peaked_attention_sum_squares,
)

__all__ = ["peaked_probabilities", "forced_attention", "peaked_attention_study", "worst_peaked_error",
           "PEAKED_ESTIMATORS"]

PEAKED_ESTIMATORS = ("reference", "position", "position+tanh")


def peaked_probabilities(length: int, p: float) -> Tensor:
    """The ``(T, T)`` causal rows ``P_tj = p·[j = 0] + (1 − p)/(t + 1)`` for ``j ≤ t`` (float64)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    t = torch.arange(length, dtype=torch.float64)
    rows = torch.tril(torch.ones(length, length, dtype=torch.float64)) * ((1.0 - p) / (t + 1.0))[:, None]
    rows[:, 0] += p
    return rows


def forced_attention(block: Block, u: Tensor, probabilities: Tensor) -> Tensor:
    """``a_t = Σ_k Σ_j P^k_tj u_j W^k`` with the block's value-output maps ``W^k`` (float64).

    ``probabilities`` is ``(T, T)`` (every head) or ``(heads, T, T)``. With the
    model's own probabilities this is ``block.attn(u)`` (``Attention.forward``).
    """
    attention = block.attn
    maps = value_output_maps(attention.v_proj.weight, attention.o_proj.weight, attention.heads, attention.kv_heads)
    probabilities = probabilities.double().expand(attention.heads, -1, -1)
    values = torch.einsum("btd,kde->bkte", u.double(), maps)
    return torch.einsum("kts,bkse->bte", probabilities, values)


POSITION_CONFIG = StackConfig(scheme="bhyt", depth=1, width=128, heads=4, seq_len=32, dtype="float64")
"""The default block of ``peaked_attention_study`` (one layer)."""


@torch.no_grad()
def peaked_attention_study(
    config: StackConfig = POSITION_CONFIG,
    peaks: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 0.9, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    inputs: InputSpec = InputSpec(batch=256),
) -> pd.DataFrame:
    """Measured vs estimated M₂ under forced peaked attention, per seed × p × position.

    Parameters
    ----------
    config : StackConfig, default ``POSITION_CONFIG`` (``bhyt``, width 128, 4 heads, T 32, float64)
        Only layer 0 is built (``build_block``).
    peaks : the mass ``p`` on the first token
    seeds : weight seeds (inputs from seed + 10000)
    inputs : the iid Gaussian sequences of each seed, ``inputs.hidden_states(config, seed)``
        (its batch is the Monte Carlo sample; its length, by default ``seq_len``, sets the positions)

    Returns
    -------
    DataFrame, one row per seed × p × position × estimator: ``sum_squares`` (S_t),
    ``mean_square_in`` (batch-mean m₁), ``increment`` (batch-mean m(a_t)) and its
    ``increment_se``, ``exact`` (batch-mean m(h'_t)), ``estimate`` (batch-mean M₂),
    ``increment_ratio`` = (M₂ − m₁)/m(a_t) measured, ``predicted_ratio`` =
    ``trained_bounds.increment_ratio`` times, for the estimators without the tanh
    correction, ``a²/E tanh²(aZ)`` (a = λ₁/κ; their linear-tanh increment overstates
    m(u) by that factor for Gaussian tokens), and
    ``relative_error`` = (M₂ − m(h'))/m(h') of the batch means.
    """
    length = inputs.length_for(config.seq_len)
    batch = inputs.batch
    positions = np.arange(length)
    rows = []
    for seed in seeds:
        block = build_block(config, 0, seed)
        h = inputs.hidden_states(config, seed).double()
        m1 = mean_square(h)
        u = block.norm_attn(h, mean_square=m1)
        ratio = float(block.norm_attn.lam) / block.norm_attn.kappa
        curvature = ratio**2 / tanh_square_moment(ratio)
        for p in peaks:
            a = forced_attention(block, u, peaked_probabilities(length, p))
            h_after = h + a
            increments = mean_square(a)[..., 0]
            exact = mean_square(h_after)[..., 0].mean(0).numpy()
            sum_squares = np.asarray(peaked_attention_sum_squares(p, positions))
            for name in PEAKED_ESTIMATORS:
                estimate = block.estimate(h, m1, h_after, name).expand_as(m1)[..., 0].mean(0).numpy()
                predicted = increment_ratio(sum_squares, positions, config.seq_len, name.split("+")[0])
                if "tanh" not in name:  # the linear-tanh increment overstates m(u) = E tanh²(aZ) by a²/E tanh²
                    predicted = predicted * curvature
                increment = increments.mean(0).numpy()
                rows.append(pd.DataFrame({
                    "seed": seed, "p": p, "position": positions, "estimator": name, "sum_squares": sum_squares,
                    "mean_square_in": m1[..., 0].mean(0).numpy(), "increment": increment,
                    "increment_se": increments.std(0).numpy() / math.sqrt(batch), "exact": exact,
                    "estimate": estimate, "increment_ratio": (estimate - m1[..., 0].mean(0).numpy()) / increment,
                    "predicted_ratio": predicted, "relative_error": (estimate - exact) / exact,
                }))
    return pd.concat(rows, ignore_index=True)


def worst_peaked_error(study: pd.DataFrame) -> pd.DataFrame:
    """Per estimator × p: the worst (most negative and largest absolute) relative error of M₂
    over positions and seeds, the position where it occurs, and the worst increment ratio."""
    def summarise(group: pd.DataFrame) -> pd.Series:
        worst = group.loc[group.relative_error.abs().idxmax()]
        return pd.Series({"worst_relative_error": worst.relative_error, "at_position": int(worst.position),
                          "mean_abs_relative_error": group.relative_error.abs().mean(),
                          "min_increment_ratio": group.increment_ratio.min(),
                          "max_increment_ratio": group.increment_ratio.max()})

    return study.groupby(["estimator", "p"], sort=False).apply(summarise, include_groups=False).reset_index()
