"""The variance-approximation study (claim C5): how wrong BHyT's second-norm
estimate ``M₂`` is, where, and why.

BHyT replaces the second reduction ``m(h')`` by ``M₂ = m₁ + c_attn λ₁²/κ²``
(docs/estimators.md §2). Writing ``a = Attn(u)``, ``u = BHyT_λ₁(h; m₁)``, ``h' = h + a``,

    m(h') = m₁ + (2/d)⟨h, a⟩ + m(a),

and the reference estimate follows from four assumptions, each of which leaves
an error term. This module measures them on a real ``Stack`` by swapping in the
exact quantity one at a time, in this order (per token t, ``F = ‖W_V W_O‖_F²/d
= c_attn·T``, ``W^k = W_V^k W_O^k`` the value-output map of head k):

(iv) tanh curvature and γ:  ``c_attn · (mean_j m(u_j) − λ₁²/κ²)`` — the actual
     ``m(u)`` (averaged over the sequence, as uniform attention over all T
     tokens would average it) in place of ``λ₁²/κ²``;
(iii) attention concentration:  ``V_t − c_attn · mean_j m(u_j)`` with the
     uncorrelated-token prediction under the model's actual probabilities
     ``V_t = (1/d) Σ_{k,k'} Σ_j P^k_tj P^k'_tj m(u_j) ⟨W^k, W^k'⟩_F``; it is
     split into the part uniform *causal* attention already explains
     (``F Σ_{j≤t} m(u_j)/(t+1)² − c_attn mean_j m(u_j)``) and the rest;
(ii) token correlation:  ``m(a_t) − V_t``;
(i) cross term:  ``(2/d)⟨h_t, a_t⟩``.

They telescope: reference + (iv) + (iii) + (ii) + (i) = ``m(h')``, an identity
that the tests check to float rounding. With a single head ``V_t`` is
docs/estimators.md §3's ``Σ_j P_tj² ‖W_V W_O‖_F²/d · m(u)``; with several heads the cross-head
products are kept, because heads attend differently.

The study also reports the effective λ the second BHyT sees,
``λ₂_eff = λ₂ sqrt(m(h')/(M₂+ε))`` (its tanh argument has RMS ``λ₂_eff/κ``), and
the distribution-free saturation bound under the estimate,
``min(1, (λ₂/(κt))² · m(h')/(M₂+ε))`` (``bounds.saturated_fraction_bound``),
next to the measured saturated fraction.

References
----------
Byun et al., arXiv 2601.09719 (BHyT, the estimate ``M₂``). docs/estimators.md §3 (the four
assumptions), docs/statements.md §8 (token correlations).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..numerics.estimators import ESTIMATORS, TRAINING_ESTIMATORS, causal_key_counts
from ..numerics.inputs import InputSpec
from ..numerics.model import (
    Block,
    Stack,
    StackConfig,
    hidden_states,
)
from ..numerics.norms import (
    EPS,
    estimate_post_attention_mean_square,
    mean_square,
    value_output_maps,
)
from ..numerics.probes import SATURATION_THRESHOLDS, RecordingProbe, saturated_fraction
from ..numerics.schemes import estimating_schemes, scheme_row
from ..theory.bounds import saturated_fraction_bound

__all__ = [
    "ERROR_TERMS",
    "table_positions",
    "TABLE_LAYERS",
    "head_value_output_gram",
    "decompose_block",
    "variance_study",
    "variance_grid",
    "estimator_comparison",
    "ratio_table",
]

ERROR_TERMS = ("tanh_gamma", "concentration_causal", "concentration_beyond_causal", "correlation", "cross")
ERROR_TERM_GROUPS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("cross",): ("cross",),
    ("correlation",): ("correlation", "anisotropy"),
    ("tanh_gamma", "concentration_causal", "concentration_beyond_causal"): (
        "concentration", "gamma", "curvature", "epsilon",
    ),
}
"""How the ``ERROR_TERMS`` regroup the terms of the one M₂ decomposition,
``theory.symbolic.variance_decomposition`` (evaluated by
``theory.symbolic.post_attention_error_terms``): per token, each group of columns
here sums to its group of terms there. The study's "correlation" is the
derivation's token correlation plus anisotropy (both are ``m(a_t) − V_t``); its
three attention/tanh columns split ``V_t − c_attn λ₁²/κ²`` at the *uniform*
average of ``m(u_j)`` over the sequence (then the uniform causal one), where the
derivation splits it at the attention-weighted average ``m̄_t``."""
TABLE_LAYERS = (0, 1, 4, 16, 64)
VARIANCE_CONFIG = StackConfig(scheme="bhyt", depth=65)
"""The default stack of ``estimator_comparison``: deep enough for every layer of ``TABLE_LAYERS``."""
# The default grid of ``variance_grid`` (and of ``bhyt-theory variance --grid``).
GRID_SEQ_LENS = (32, 128)
GRID_LAMS = ((2.0, 1.0), (3.0, 3.0))
GRID_WIDTHS = (128, 256)
GRID_INPUT_STDS = (InputSpec().std, 1.0)
GRID_KEYS = ("seq_len", "lam_in", "lam_post", "width", "input_std")
DECOMPOSITION_SUMMARY_COLUMNS = ("estimate_ratio", "reference_ratio", *ERROR_TERMS, "lam_post_effective",
                                 "saturation_bound_1")


def table_positions(length: int) -> tuple[int, ...]:
    """Positions 0, 1, 7, T/2, T−1 of the closing note's table (those that exist)."""
    return tuple(sorted({p for p in (0, 1, 7, length // 2, length - 1) if 0 <= p < length}))


def head_value_output_gram(block: Block) -> Tensor:
    """``G_kk' = ⟨W^k, W^k'⟩_F`` for the value-output maps ``W^k = W_V^k W_O^k`` of the heads.

    Returns
    -------
    float64 Tensor of shape ``(heads, heads)``.

    Notes
    -----
    In the orientation ``h ↦ h W``, head k reads KV head ``k // g`` (``g`` the
    GQA group size, as attention repeats them): ``W_V^k`` is that KV head's
    ``d × head_dim`` slice and ``W_O^k`` the ``head_dim × d`` slice of ``W_O``.
    ``Σ_{k,k'} G_kk' = ‖W_V W_O‖_F² = c_attn · T · d``.
    """
    attn = block.attn
    maps = value_output_maps(attn.v_proj.weight, attn.o_proj.weight, attn.heads, attn.kv_heads)
    return torch.einsum("kab,lab->kl", maps, maps)


@torch.no_grad()
def decompose_block(block: Block, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Run one ``bhyt``/``bhytline`` block on ``h`` and decompose its M₂ error per token.

    Parameters
    ----------
    block : Block
        A block of a ``bhyt`` or ``bhytline`` stack (any estimator, any weights).
    h : Tensor, shape ``(B, T, d)``
        The block's input state.

    Returns
    -------
    h_next : Tensor
        The block's output, from ``block.forward`` itself.
    quantities : dict of float64 Tensors of shape ``(B, T)``
        ``mean_square_in`` (m₁), ``exact`` (m(h') of the block's own h'),
        ``estimate`` (the M₂ the block used, under its configured estimator),
        ``reference`` (the paper's M₂), ``mean_square_u`` (m(u)), ``mean_square_a``
        (m(a)), the five ``ERROR_TERMS`` (module docstring), ``argument_rms``
        (RMS of the MLP-side tanh argument) and ``saturated_fraction_{t}``.

    Notes
    -----
    ``u``, ``a`` and ``P`` come from the block's own modules (``norm_attn``,
    ``attn``, ``attn.probabilities``); ``h'`` and ``M₂`` from a probe on
    ``block.forward``, so ``reference + Σ terms = exact`` holds only if the two
    agree — the identity the tests check.
    """
    if not block.row.estimates_m2:
        raise ValueError(f"the M₂ decomposition needs a block that estimates M₂ {estimating_schemes()}, got {block.scheme!r}")
    recorder = RecordingProbe()
    h_next = block(h, recorder)
    m1 = mean_square(h)
    u = block.norm_attn(h, mean_square=m1)
    a = block.attn(u)
    probabilities = block.attn.probabilities(u).double()

    length, d = h.shape[-2], h.shape[-1]
    c_attn = block.c_attn
    lam, kappa = block.norm_attn.lam.detach(), block.norm_attn.kappa

    def squeeze(per_token: Tensor) -> Tensor:
        return per_token.reshape(per_token.shape[0], length)

    reference = squeeze(estimate_post_attention_mean_square(m1, c_attn, lam, kappa))
    m1, m_u, m_a = squeeze(m1), squeeze(mean_square(u)), squeeze(mean_square(a))
    uniform = c_attn * m_u.mean(-1, keepdim=True)
    counts = causal_key_counts(torch.arange(length, dtype=torch.float64, device=h.device))
    uniform_causal = c_attn * block.config.seq_len * m_u.cumsum(-1) / counts**2
    gram = head_value_output_gram(block).to(h.device)
    uncorrelated = torch.einsum("bktj,bltj,bj,kl->bt", probabilities, probabilities, m_u, gram) / d

    exact = squeeze(mean_square(recorder.states[block.layer, "attn"]))
    z = recorder.arguments[block.layer, "mlp"].double()
    quantities = {
        "mean_square_in": m1,
        "exact": exact,
        "estimate": squeeze(recorder.estimates[block.layer].double().expand(-1, length, 1)),
        "reference": reference,
        "mean_square_u": m_u,
        "mean_square_a": m_a,
        "tanh_gamma": (uniform - c_attn * (lam.double() / kappa) ** 2).expand(-1, length),
        "concentration_causal": uniform_causal - uniform,
        "concentration_beyond_causal": uncorrelated - uniform_causal,
        "correlation": m_a - uncorrelated,
        "cross": 2.0 * (h.double() * a.double()).mean(-1),
        "argument_rms": z.square().mean(-1).sqrt(),
    }
    for t in SATURATION_THRESHOLDS:
        quantities[f"saturated_fraction_{t:g}"] = saturated_fraction(z, t)
    return h_next, quantities


def _second_norm_columns(lam_post: float, kappa: float, exact: np.ndarray, estimate: np.ndarray) -> dict:
    """λ₂_eff and the saturation bound of the MLP-side BHyT under the estimate ``M₂``."""
    ratio = exact / (estimate + EPS)
    columns = {"lam_post_effective": lam_post * np.sqrt(ratio)}
    for t in SATURATION_THRESHOLDS:
        columns[f"saturation_bound_{t:g}"] = saturated_fraction_bound(lam_post, kappa, t, mean_square_ratio=ratio)
    return columns


@torch.no_grad()
def variance_study(stack: Stack, x: Tensor, layers: Iterable[int] | None = None) -> pd.DataFrame:
    """The M₂ error of a ``bhyt``/``bhytline`` stack, per layer × token position (claim C5).

    Parameters
    ----------
    stack : Stack
        Any ``bhyt``/``bhytline`` stack: any estimator, initial or trained weights.
    x : Tensor, shape ``(B, T, d)``
        Input states.
    layers : iterable of int, optional
        Layers to report (default all); every block still runs, one at a time,
        so memory does not grow with depth.

    Returns
    -------
    pandas.DataFrame
        One row per reported layer × position: ``scheme``, ``estimator``,
        ``seed``, ``seq_len``, ``width``, ``lam_in``, ``lam_post``, ``layer``,
        ``position``; ``exact`` and ``mean_square_in`` (batch means);
        ``estimate_ratio`` (M₂/m(h') of the stack's own estimator) and
        ``reference_ratio`` (the paper's M₂/m(h') on the same states), batch
        means of per-token ratios; the ``ERROR_TERMS`` as batch means of
        ``term / m(h')``, so that ``reference_ratio + Σ terms = 1``;
        ``lam_post_effective``, ``saturation_bound_{t}`` (per token, then
        batch-averaged), and the measured ``argument_rms`` and
        ``saturated_fraction_{t}`` of the MLP-side BHyT.
    """
    config = stack.config
    wanted = set(range(config.depth) if layers is None else layers)
    h = hidden_states(x, stack.config)
    parts = []
    for block in stack.blocks:
        if block.layer > max(wanted):
            break
        if block.layer not in wanted:
            h = block(h)
            continue
        h_next, q = decompose_block(block, h)
        exact, estimate = q["exact"].cpu().numpy(), q["estimate"].cpu().numpy()
        per_token = {
            "exact": exact,
            "mean_square_in": q["mean_square_in"].cpu().numpy(),
            "estimate_ratio": estimate / exact,
            "reference_ratio": q["reference"].cpu().numpy() / exact,
        }
        per_token.update({term: q[term].cpu().numpy() / exact for term in ERROR_TERMS})
        lam_post = float(block.norm_mlp.lam.detach())  # the learned λ₂, not its initial value
        per_token.update(_second_norm_columns(lam_post, block.norm_mlp.kappa, exact, estimate))
        per_token["argument_rms"] = q["argument_rms"].cpu().numpy()
        for t in SATURATION_THRESHOLDS:
            per_token[f"saturated_fraction_{t:g}"] = q[f"saturated_fraction_{t:g}"].cpu().numpy()
        part = pd.DataFrame({name: values.mean(0) for name, values in per_token.items()})
        part.insert(0, "position", np.arange(h.shape[1]))
        part.insert(0, "layer", block.layer)
        parts.append(part)
        h = h_next
    table = pd.concat(parts, ignore_index=True)
    described = {
        "scheme": config.scheme, "estimator": config.estimator, "seed": stack.seed, "seq_len": config.seq_len,
        "width": config.width, "lam_in": config.lam_in, "lam_post": config.lam_post,
    }
    for position, (name, value) in enumerate(described.items()):
        table.insert(position, name, value)
    return table


def variance_grid(
    base: StackConfig,
    seq_lens: Sequence[int] = GRID_SEQ_LENS,
    lams: Sequence[tuple[float, float]] = GRID_LAMS,
    widths: Sequence[int] = GRID_WIDTHS,
    input_stds: Sequence[float] = GRID_INPUT_STDS,
    seeds: Sequence[int] = (0,),
    inputs: InputSpec = InputSpec(),
    layers: Iterable[int] | None = None,
) -> pd.DataFrame:
    """``variance_study`` over T × (λ₁, λ₂) × width × input scale × seed, one tidy table.

    At each grid point the inputs are ``inputs`` with ``std`` set to the point's
    input scale and, when ``inputs.length`` is None, of length T, drawn by the
    seeding rule of ``numerics.inputs``; the input scale is a column
    (``input_std``). A derived ``mlp_width`` follows the width
    (``StackConfig.replace``); one set by hand is kept.
    """
    parts = []
    for seq_len in seq_lens:
        for lam_in, lam_post in lams:
            for width in widths:
                config = base.replace(seq_len=seq_len, lam_in=lam_in, lam_post=lam_post, width=width)
                for std in input_stds:
                    for seed in seeds:
                        x = dataclasses.replace(inputs, std=std).hidden_states(config, seed)
                        part = variance_study(Stack(config, seed), x, layers)
                        part.insert(7, "input_std", std)
                        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def grid_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The worst token of each grid point of a ``variance_grid`` table, and why.

    One row per (``GRID_KEYS``) point: ``min_reference_ratio`` (the smallest
    paper's M₂/m(h') over seeds × layers × positions), the ``seed``, ``layer`` and
    ``position`` where it occurs, and the error term of largest magnitude there
    (``largest_term``, ``largest_term_value``, relative to m(h')): the assumption
    that failed most where the estimate is worst.
    """
    keys = list(GRID_KEYS)
    worst = table.loc[table.groupby(keys, sort=False)["reference_ratio"].idxmin()]
    largest = worst[list(ERROR_TERMS)].abs().idxmax(axis=1)
    summary = worst[[*keys, "reference_ratio", "seed", "layer", "position"]].rename(
        columns={"reference_ratio": "min_reference_ratio"})
    summary["largest_term"] = largest.to_numpy()
    summary["largest_term_value"] = [row[name] for (_, row), name in zip(worst.iterrows(), largest)]
    return summary


def decomposition_table(
    config: StackConfig,
    seeds: Sequence[int] = (0, 1, 2),
    inputs: InputSpec = InputSpec(),
    layers: Iterable[int] | None = None,
    positions: Sequence[int] | None = None,
) -> pd.DataFrame:
    """``variance_study`` per seed on ``inputs.hidden_states(config, seed)``, stacked,
    restricted to ``positions`` (default ``table_positions(T)`` of the inputs)."""
    parts = [variance_study(Stack(config, seed), inputs.hidden_states(config, seed), layers) for seed in seeds]
    table = pd.concat(parts, ignore_index=True)
    length = inputs.length_for(config.seq_len)
    positions = table_positions(length) if positions is None else tuple(positions)
    return table[table["position"].isin(positions)]


def decomposition_summary(table: pd.DataFrame) -> pd.DataFrame:
    """A ``decomposition_table`` averaged over seeds: ``DECOMPOSITION_SUMMARY_COLUMNS`` per layer × position."""
    return table.groupby(["layer", "position"])[list(DECOMPOSITION_SUMMARY_COLUMNS)].mean()


def estimator_comparison(
    config: StackConfig = VARIANCE_CONFIG,
    estimators: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    inputs: InputSpec = InputSpec(),
    layers: Sequence[int] = TABLE_LAYERS,
    positions: Sequence[int] | None = None,
) -> pd.DataFrame:
    """The ratio M₂/m(h') of each estimator, per layer × position, mean and spread over seeds.

    ``estimators`` defaults to every entry of ``ESTIMATORS`` but "exact" (whose
    ratio is 1 by definition) and the ``TRAINING_ESTIMATORS``. One ``Stack`` runs per estimator and seed (an estimator changes every later
    layer's forward pass, through the MLP-side norm), on the same inputs
    ``inputs.hidden_states(config, seed)`` (the seeding rule of ``numerics.inputs``)
    and the same weights (seed). The ratio is ``Stack.trace``'s ``estimate_ratio``: per
    token, then batch-averaged.

    Returns
    -------
    pandas.DataFrame
        One row per estimator × layer × position: ``ratio`` (mean over seeds),
        ``ratio_se`` (standard error over seeds, ``std/√n``; NaN for one seed),
        ``ratio_min``/``ratio_max`` over seeds, ``seeds``, ``batch``.
    """
    if not scheme_row(config.scheme).estimates_m2:
        raise ValueError(f"estimators apply to schemes that estimate M₂ {estimating_schemes()}, not {config.scheme!r}")
    positions = table_positions(config.seq_len) if positions is None else tuple(positions)
    if estimators is None:
        estimators = tuple(name for name in ESTIMATORS if name != "exact" and name not in TRAINING_ESTIMATORS)
    layers = tuple(layer for layer in layers if layer < config.depth)
    rows = []
    for estimator in estimators:
        stack_config = config.replace(estimator=estimator)
        for seed in seeds:
            trace = Stack(stack_config, seed).trace(inputs.hidden_states(config, seed))
            trace = trace[(trace["sublayer"] == "attn") & trace["layer"].isin(layers) & trace["position"].isin(positions)]
            rows.append(trace.assign(estimator=estimator)[["estimator", "seed", "layer", "position", "estimate_ratio"]])
    per_seed = pd.concat(rows, ignore_index=True)
    grouped = per_seed.groupby(["estimator", "layer", "position"], sort=False)["estimate_ratio"]
    table = grouped.agg(ratio="mean", ratio_min="min", ratio_max="max", seeds="count").reset_index()
    table["ratio_se"] = grouped.std(ddof=1).to_numpy() / np.sqrt(table["seeds"].to_numpy())
    table["batch"] = inputs.batch
    return table


def estimator_errors(comparison: pd.DataFrame) -> pd.DataFrame:
    """``|ratio − 1|`` of an ``estimator_comparison`` per estimator: ``mean`` and ``max`` over its cells."""
    error = comparison.assign(error=(comparison["ratio"] - 1).abs())
    return error.groupby("estimator", sort=False)["error"].agg(["mean", "max"])


def ratio_table(comparison: pd.DataFrame, value: str = "ratio") -> pd.DataFrame:
    """``estimator_comparison`` pivoted for reading: rows estimator × layer, columns positions."""
    table = comparison.pivot_table(index=["estimator", "layer"], columns="position", values=value, sort=False)
    table.columns = [f"t={position}" for position in table.columns]
    return table
