"""Identity-likeness of deep blocks: how far each block's Jacobian is from I.

A block maps the whole ``(T, d)`` state of a sequence (tokens interact through
attention). Its relative deviation from the identity at the state ``h_l`` it
actually receives is

    δ_l = ‖∂h_{l+1}/∂h_l − I‖_F / ‖I‖_F,   ‖I‖_F = sqrt(T d) per sequence.

δ_l → 0 is the "curse of depth" (Sun et al., arXiv 2502.05795): a block that
acts as the identity contributes nothing. The Jacobian statement of docs/statements.md §6,
``∂z/∂h = (λ/(κ sqrt(M+ε))) (I − h hᵀ/(d(M+ε)))``, says a normalised branch's
sensitivity falls like ``1/rms(h)`` — for RMSNorm and BHyT alike — so δ_l is
expected to track the branch gain over ``rms(h_l)``; ``deviation_times_rms``
shows how far that holds.

Estimator (Hutchinson): for ``A = J − I`` and probes ``v`` with
``E[v vᵀ] = I`` (Rademacher by default), ``E ‖A v‖² = ‖A‖_F²``. ``A v = J v − v``
comes from one forward-mode Jacobian-vector product (``torch.func.jvp``) of the
block's own ``forward``, in float64 so that ``J v − v`` does not lose the
deviation to cancellation. With a batch of B sequences and P probes the
estimate of ``δ²`` (the batch mean of ``‖A_b‖_F²/(T d)``) is the mean of the
P per-probe batch means; its standard error is their sample standard
deviation over ``√P``, and the delta method gives ``se(δ) = se(δ²)/(2δ)``.

References
----------
Byun et al., arXiv 2601.09719 (BHyT counters the curse of depth); Sun et al.,
arXiv 2502.05795 (curse of depth); Hutchinson, Comm. Stat. Simul. Comput. 18
(1989) (trace estimator).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..numerics.inputs import InputSpec
from ..numerics.model import SCHEMES, Stack, StackConfig, hidden_states
from ..numerics.norms import mean_square

__all__ = [
    "JACOBIAN_SCHEMES",
    "jacobian_layers",
    "JacobianDeviation",
    "jacobian_deviation",
    "exact_jacobian_deviation",
    "jacobian_study",
    "jacobian_comparison",
    "deviation_table",
]

JACOBIAN_SCHEMES = tuple(scheme for scheme in SCHEMES if scheme != "bhytline")  # bhytline computes bhyt's numbers
JACOBIAN_CONFIG = StackConfig(depth=32)
"""The default stack of ``jacobian_comparison`` (every layer of ``jacobian_layers`` exists)."""


def jacobian_layers(depth: int) -> tuple[int, ...]:
    """Layers 0, 1, 4, 16, L−1 of the closing note's table (those that exist)."""
    return tuple(sorted({layer for layer in (0, 1, 4, 16, depth - 1) if 0 <= layer < depth}))


@dataclass(frozen=True)
class JacobianDeviation:
    """``δ = ‖J − I‖_F/‖I‖_F`` (RMS over the batch's sequences) and its sampling error.

    ``squared`` is the unbiased Hutchinson estimate of ``δ²``, ``squared_se`` its
    standard error over probes; ``deviation = sqrt(squared)`` and
    ``standard_error = squared_se / (2 deviation)`` (delta method).
    """

    deviation: float
    standard_error: float
    squared: float
    squared_se: float
    probes: int


def _probes(shape: tuple[int, ...], distribution: str, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    if distribution == "rademacher":
        return torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1
    if distribution == "gaussian":
        return torch.randn(shape, generator=generator, dtype=dtype)
    raise ValueError(f"probe distribution must be 'rademacher' or 'gaussian', got {distribution!r}")


def jacobian_deviation(
    block: nn.Module,
    h: Tensor,
    probes: int = 8,
    seed: int = 0,
    distribution: str = "rademacher",
    chunk: int = 8,
) -> JacobianDeviation:
    """Hutchinson estimate of the block's relative Jacobian deviation from I at ``h``.

    Parameters
    ----------
    block : nn.Module
        Maps ``(B, T, d)`` to ``(B, T, d)``, each sequence on its own (a ``Block``).
        A float64 copy is differentiated; the block itself is untouched.
    h : Tensor, shape ``(B, T, d)``
        The states where the Jacobian is taken.
    probes : int, ≥ 2
        Probe vectors per sequence (each a ``(T, d)`` array, drawn from ``seed``).
    distribution : "rademacher" or "gaussian"
    chunk : int
        Probes pushed through one ``jvp`` call together (memory ∝ chunk · B).

    Returns
    -------
    JacobianDeviation

    Notes
    -----
    Per probe p the batch mean ``s_p = (1/B) Σ_b ‖(J_b − I) v_bp‖² / (T d)`` is
    an unbiased estimate of ``δ² = (1/B) Σ_b ‖J_b − I‖_F² / (T d)``; the P
    values are independent, so ``se(δ²) = std(s_p)/√P``. SDPA runs on its math
    backend, which supports forward-mode AD.
    """
    if probes < 2:
        raise ValueError(f"need at least 2 probes for a standard error, got {probes}")
    block64 = copy.deepcopy(block).to(torch.float64)
    h64 = h.detach().to(torch.float64)
    batch, length, width = h64.shape
    generator = torch.Generator().manual_seed(seed)
    per_probe = []
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        for start in range(0, probes, chunk):
            count = min(chunk, probes - start)
            v = _probes((count * batch, length, width), distribution, generator, torch.float64).to(h64.device)
            _, jv = torch.func.jvp(block64, (h64.repeat(count, 1, 1),), (v,))
            squares = (jv - v).square().sum((-2, -1)) / (length * width)
            per_probe.append(squares.reshape(count, batch).mean(1))
    samples = torch.cat(per_probe)
    squared = samples.mean().item()
    squared_se = samples.std(unbiased=True).item() / math.sqrt(probes)
    deviation = math.sqrt(max(squared, 0.0))
    # At δ = 0 every sample is 0 (they are non-negative), so the error is 0 too.
    standard_error = squared_se / (2 * deviation) if deviation > 0 else 0.0
    return JacobianDeviation(deviation, standard_error, squared, squared_se, probes)


def exact_jacobian_deviation(block: nn.Module, h: Tensor) -> float:
    """``δ`` from the full Jacobian (``torch.autograd.functional.jacobian``), float64.

    Costs ``T d`` backward passes per sequence: for small blocks and for checking
    ``jacobian_deviation``.
    """
    block64 = copy.deepcopy(block).to(torch.float64)
    h64 = h.detach().to(torch.float64)
    batch, length, width = h64.shape
    total = 0.0
    for sequence in h64:
        jacobian = torch.autograd.functional.jacobian(lambda x: block64(x[None])[0], sequence)
        jacobian = jacobian.reshape(length * width, length * width)
        total += (jacobian - torch.eye(length * width, dtype=torch.float64, device=h64.device)).square().sum().item()
    return math.sqrt(total / (batch * length * width))


def jacobian_study(
    stack: Stack, x: Tensor, layers: Sequence[int] | None = None, probes: int = 8, seed: int = 0
) -> pd.DataFrame:
    """``δ_l`` of the blocks of ``stack`` at the states ``x`` reaches, one row per layer.

    Any ``Stack`` (any scheme, initial or trained weights). The stack runs block
    by block; at each reported layer the Jacobian is taken at its actual input.

    Returns
    -------
    pandas.DataFrame
        ``scheme``, ``seed``, ``layer``, ``deviation``, ``standard_error``,
        ``rms_in`` (sqrt of the batch- and position-mean of m(h_l)),
        ``deviation_times_rms`` (constant across layers if ``δ ∝ 1/rms``),
        ``probes``, ``batch``.
    """
    wanted = set(range(stack.config.depth) if layers is None else layers)
    if not wanted or not wanted <= set(range(stack.config.depth)):
        raise ValueError(f"layers must be a non-empty subset of 0 … {stack.config.depth - 1}, got {sorted(wanted)}")
    h = hidden_states(x, stack.config)
    rows = []
    with torch.no_grad():
        for block in stack.blocks:
            if block.layer > max(wanted):
                break
            if block.layer in wanted:
                result = jacobian_deviation(block, h, probes=probes, seed=seed + block.layer)
                rms_in = math.sqrt(mean_square(h).mean().item())
                rows.append({
                    "scheme": stack.config.scheme, "seed": stack.seed, "layer": block.layer,
                    "deviation": result.deviation, "standard_error": result.standard_error,
                    "rms_in": rms_in, "deviation_times_rms": result.deviation * rms_in,
                    "probes": probes, "batch": h.shape[0],
                })
            h = block(h)
    return pd.DataFrame(rows)


def jacobian_comparison(
    config: StackConfig = JACOBIAN_CONFIG,
    schemes: Sequence[str] = JACOBIAN_SCHEMES,
    layers: Sequence[int] | None = None,
    seeds: Sequence[int] = (0,),
    inputs: InputSpec = InputSpec(batch=2),
    probes: int = 8,
) -> pd.DataFrame:
    """``jacobian_study`` per scheme and seed on ``inputs.hidden_states(config, seed)``
    (the seeding rule of ``numerics.inputs``); default layers 0, 1, 4, 16, L−1."""
    layers = jacobian_layers(config.depth) if layers is None else layers
    parts = []
    for scheme in schemes:
        scheme_config = config.replace(scheme=scheme)
        for seed in seeds:
            parts.append(jacobian_study(Stack(scheme_config, seed), inputs.hidden_states(config, seed), layers, probes, seed))
    return pd.concat(parts, ignore_index=True)


def input_rms_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """``jacobian_comparison``'s ``rms_in`` (rms of each block's input state) as scheme × layer, seed-averaged."""
    return comparison.pivot_table(index="scheme", columns="layer", values="rms_in", sort=False)


def deviation_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """``jacobian_comparison`` as a scheme × layer table of ``δ ± se`` strings (seed-averaged δ)."""
    grouped = comparison.groupby(["scheme", "layer"], sort=False)
    # Seeds are independent, so the probe error of their mean δ is sqrt(Σ se²)/n.
    summary = pd.DataFrame({
        "deviation": grouped["deviation"].mean(),
        "standard_error": grouped["standard_error"].apply(lambda se: math.sqrt((se**2).sum()) / len(se)),
    })
    cells = summary.apply(lambda row: f"{row.deviation:.4g} ± {row.standard_error:.1g}", axis=1)
    return cells.unstack("layer")
