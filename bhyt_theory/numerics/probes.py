"""Per-layer probes: stream per-token statistics of the residual stream and of
each norm's tanh argument while a ``Stack`` runs, holding no activations.

Every statistic is computed per token (over the feature dimension) and then
reduced over the batch, so memory is ``O(depth · T)`` numbers whatever the
width or batch. The result is one tidy table: a row per layer × sublayer ×
token position.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .norms import mean_square

SATURATION_THRESHOLDS = (1.0, 2.0, 3.0)

STATE_COLUMNS = ("mean_square", "rms", "mean_abs", "variance")
ESTIMATE_COLUMNS = ("mean_square_estimate", "estimate_ratio")
ARGUMENT_COLUMNS = ("arg_rms", "arg_max_abs") + tuple(
    f"saturated_fraction_{t:g}" for t in SATURATION_THRESHOLDS
)
STATISTICS = STATE_COLUMNS + ESTIMATE_COLUMNS + ARGUMENT_COLUMNS
TRACE_COLUMNS = ("layer", "sublayer", "position") + STATISTICS
# How a per-position statistic becomes a position-averaged one: root-mean-square
# statistics are re-formed from their averaged squares (so position-averaged rms
# is sqrt of the position-averaged mean square, as `bhyt-theory trace` prints),
# the worst-case |z| stays a maximum, the rest are plain means.
_ROOT_MEAN_SQUARE_STATISTICS = ("rms", "arg_rms")
_MAXIMUM_STATISTICS = ("arg_max_abs",)



def saturated_fraction(z: Tensor, threshold: float) -> Tensor:
    """Per token, the fraction of coordinates of a tanh/erf argument with ``|z_i| ≥ threshold``.

    ``#{i : |z_i| ≥ t} / d`` over the last dimension, shape ``z.shape[:-1]``: the
    quantity the saturation bound ``bounds.saturated_fraction_bound`` and the
    Gaussian typical case speak of (docs/statements.md). The count is an exact
    integer, compared in ``z``'s own dtype, and divided by ``d`` in float64, so the
    result is the float64 fraction nearest the exact one.

    Examples
    --------
    >>> saturated_fraction(torch.tensor([[0.5, -1.0, 2.0, 0.0]]), 1.0)
    tensor([0.5000], dtype=torch.float64)
    """
    return _count_at_least(z.abs(), threshold).double() / z.shape[-1]


def _count_at_least(magnitude: Tensor, threshold: float) -> Tensor:
    """Per token, ``#{i : magnitude_i ≥ threshold}`` (int64, exact)."""
    return (magnitude >= threshold).sum(-1)


@runtime_checkable
class Probe(Protocol):
    """What ``Block.forward`` reports to, at every sublayer of every layer.

    ``state(layer, sublayer, h, estimate)``: the residual state right after that
    sublayer's residual add (``sublayer`` is "attn" or "mlp"); ``estimate`` is the
    M₂ the MLP-side norm is fed on rows that estimate it, else ``None``.
    ``argument(layer, sublayer, norm, h, **statistic)``: the norm feeding that
    sublayer and its input (``statistic``: the ``mean_square`` it is fed, if any);
    a probe that wants the tanh/erf argument calls :func:`norm_argument`, so a probe
    that does not want it costs nothing.
    """

    def state(self, layer: int, sublayer: str, h: Tensor, estimate: Tensor | None = None) -> None: ...

    def argument(self, layer: int, sublayer: str, norm: nn.Module, h: Tensor, **statistic: Tensor) -> None: ...


class NullProbe:
    """The probe that records nothing (``Block.forward``'s default)."""

    def state(self, layer: int, sublayer: str, h: Tensor, estimate: Tensor | None = None) -> None:
        """Records nothing."""

    def argument(self, layer: int, sublayer: str, norm: nn.Module, h: Tensor, **statistic: Tensor) -> None:
        """Records nothing."""


NO_PROBE = NullProbe()


def norm_argument(norm: nn.Module, h: Tensor, **statistic: Tensor) -> Tensor | None:
    """The element-wise tanh/erf argument of ``norm`` on input ``h`` (``norm.argument``),
    or ``None`` for a normaliser without one (RMSNorm, LayerNorm)."""
    argument = getattr(norm, "argument", None)
    return None if argument is None else argument(h, **statistic)


def _batch_mean(per_token: Tensor) -> np.ndarray:
    """``(B, T)`` or ``(B, T, 1)`` → ``(T,)`` float64 batch mean."""
    return per_token.reshape(per_token.shape[0], per_token.shape[1]).double().mean(0).cpu().numpy()


def _statistics_dtype(h: Tensor) -> Tensor:
    """``h`` in float32, or float64 if it is float64 (the dtype of ``norms``' statistics)."""
    return h if h.dtype in (torch.float32, torch.float64) else h.float()


def state_statistics(h: Tensor, per_token_mean_square: Tensor | None = None) -> dict[str, np.ndarray]:
    """Per-position statistics of residual-stream states ``h`` of shape ``(B, T, d)``.

    ``mean_square`` is ``m(h)`` batch-averaged; ``rms`` its square root;
    ``mean_abs`` the mean ``|h_i|``; ``variance`` the (biased) variance over features.
    ``per_token_mean_square``: ``mean_square(h)`` when the caller already has it.

    Precision: each per-token statistic is reduced over the ``d`` features in
    float32 (float64 for float64 ``h``) and only the batch mean is taken in
    float64. ``m(h)`` is ``norms.mean_square`` (a float32 reduction of the scaled
    input, overflow-free). torch's CPU float32 sums are pairwise (cascade) sums, so
    ``mean_abs`` carries a relative error of at most about ``log2(d) · 2⁻²⁴``
    (≈ 6·10⁻⁷ at d = 1024); the variance is the two-pass
    ``mean_i (h_i − mean h)²`` (no cancellation, whatever the feature mean), the
    same bound to first order. Both are orders of magnitude below the
    seed-to-seed spread that ``montecarlo.summarise`` reports. (torch's Welford
    ``var`` took 40× a plain reduction here.)
    """
    ms = _batch_mean(mean_square(h) if per_token_mean_square is None else per_token_mean_square)
    hs = _statistics_dtype(h)
    return {
        "mean_square": ms,
        "rms": np.sqrt(ms),
        "mean_abs": _batch_mean(hs.abs().mean(-1)),
        "variance": _batch_mean((hs - hs.mean(-1, keepdim=True)).square_().mean(-1)),
    }


def argument_statistics(z: Tensor) -> dict[str, np.ndarray]:
    """Per-position statistics of a tanh/erf argument ``z`` of shape ``(B, T, d)``.

    ``arg_rms`` is ``sqrt`` of the batch-mean of ``mean_i z_i²``; ``arg_max_abs``
    the largest ``|z_i|`` over features *and* batch (the worst case, which is
    what the bounds speak of); ``saturated_fraction_t`` the batch-mean fraction of
    coordinates with ``|z_i| ≥ t``.

    Precision: ``z`` stays in its own dtype (float32 from the norms, float64 for
    float64 stacks). ``arg_max_abs`` and the saturation counts are exact in any
    dtype (a maximum and integer counts of comparisons); ``mean_i z_i²`` is a
    float32 pairwise sum, relative error at most about ``log2(d) · 2⁻²⁴``; batch
    means are float64.
    """
    zs = _statistics_dtype(z)
    magnitude = zs.abs()
    stats = {
        "arg_rms": np.sqrt(_batch_mean(zs.square().mean(-1))),
        "arg_max_abs": magnitude.amax(-1).amax(0).double().cpu().numpy(),
    }
    for t in SATURATION_THRESHOLDS:
        stats[f"saturated_fraction_{t:g}"] = _batch_mean(_count_at_least(magnitude, t).double() / z.shape[-1])
    return stats


class TraceProbe:
    """Collects the statistics a ``Stack`` reports through its hooks.

    A :class:`Probe`: the stack calls ``state`` after each residual add and
    ``argument`` with the norm feeding each sublayer, whose tanh/erf argument (if it
    has one) is summarised. ``frame()`` assembles the tidy table.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str], dict[str, np.ndarray]] = {}

    def _entry(self, layer: int, sublayer: str) -> dict[str, np.ndarray]:
        return self._rows.setdefault((layer, sublayer), {})

    @torch.no_grad()
    def state(self, layer: int, sublayer: str, h: Tensor, estimate: Tensor | None = None) -> None:
        entry = self._entry(layer, sublayer)
        exact = mean_square(h)
        entry.update(state_statistics(h, exact))
        if estimate is not None:
            entry["mean_square_estimate"] = _batch_mean(estimate.expand_as(exact))
            entry["estimate_ratio"] = _batch_mean(estimate.expand_as(exact) / exact)

    @torch.no_grad()
    def argument(self, layer: int, sublayer: str, norm: nn.Module, h: Tensor, **statistic: Tensor) -> None:
        z = norm_argument(norm, h, **statistic)
        if z is not None:
            self._entry(layer, sublayer).update(argument_statistics(z))

    def values(self) -> tuple[list[tuple[int, str]], int, np.ndarray]:
        """The statistics without pandas: the ``(layer, sublayer)`` pairs in the order
        recorded, the positions per pair, and a float64 array of one row per pair ×
        position and one column per ``STATISTICS`` entry (NaN where not measured):
        ``frame()``'s statistic columns, value for value."""
        pairs = list(self._rows)
        n_positions = len(self._rows[pairs[0]]["mean_square"])
        values = np.full((len(pairs) * n_positions, len(STATISTICS)), np.nan)
        for index, pair in enumerate(pairs):
            block = values[index * n_positions:(index + 1) * n_positions]
            for column, name in enumerate(STATISTICS):
                if name in self._rows[pair]:
                    block[:, column] = self._rows[pair][name]
        return pairs, n_positions, values

    def frame(self) -> pd.DataFrame:
        parts = []
        for (layer, sublayer), columns in self._rows.items():
            n_positions = len(columns["mean_square"])
            part = pd.DataFrame(columns)
            part.insert(0, "position", np.arange(n_positions))
            part.insert(0, "sublayer", sublayer)
            part.insert(0, "layer", layer)
            parts.append(part)
        table = pd.concat(parts, ignore_index=True)
        return table.reindex(columns=list(TRACE_COLUMNS))


def position_average(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Average every statistic over token positions within each group of ``keys``.

    Root-mean-square statistics (``rms``, ``arg_rms``) are re-formed from their
    position-averaged squares, ``arg_max_abs`` is maximised, the rest are means.
    ``keys`` should identify one run's layer × sublayer (e.g. the configuration
    columns, ``seed``, ``layer``, ``sublayer``).
    """
    present = [s for s in STATISTICS if s in table.columns]
    squared = table.assign(**{s: table[s] ** 2 for s in _ROOT_MEAN_SQUARE_STATISTICS if s in present})
    grouped = squared.groupby(keys, sort=False, dropna=False)
    averaged = grouped[[s for s in present if s not in _MAXIMUM_STATISTICS]].mean()
    for s in _MAXIMUM_STATISTICS:
        if s in present:
            averaged[s] = grouped[s].max()
    for s in _ROOT_MEAN_SQUARE_STATISTICS:
        if s in present:
            averaged[s] = np.sqrt(averaged[s])
    return averaged[present].reset_index()


class RecordingProbe:
    """A :class:`Probe` that keeps the tensors a ``Block.forward`` reports, for analyses that need more
    than statistics (bounds, tightness, the M₂ decomposition, tests).

    ``states[(layer, sublayer)]``: the residual state after that sublayer's add;
    ``estimates[layer]``: the M₂ the MLP-side BHyT of ``bhyt``/``bhytline`` used;
    ``arguments[(layer, sublayer)]``: the tanh/erf argument of the norm feeding that
    sublayer. Memory grows with depth: for small stacks only (use ``TraceProbe``
    otherwise).
    """

    def __init__(self) -> None:
        self.states: dict[tuple[int, str], Tensor] = {}
        self.estimates: dict[int, Tensor] = {}
        self.arguments: dict[tuple[int, str], Tensor] = {}

    def state(self, layer: int, sublayer: str, h: Tensor, estimate: Tensor | None = None) -> None:
        self.states[layer, sublayer] = h.detach()
        if estimate is not None:
            self.estimates[layer] = estimate.detach()

    def argument(self, layer: int, sublayer: str, norm: nn.Module, h: Tensor, **statistic: Tensor) -> None:
        z = norm_argument(norm, h, **statistic)
        if z is not None:
            self.arguments[layer, sublayer] = z.detach()

    def mean_square_ratio(self, layer: int) -> Tensor:
        """``m(h')/M₂`` per token (float64, shape ``(B, T)``) at ``layer``'s MLP-side BHyT."""
        exact = mean_square(self.states[layer, "attn"])
        return (exact / self.estimates[layer].double().expand_as(exact))[..., 0]
