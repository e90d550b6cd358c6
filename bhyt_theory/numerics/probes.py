"""Per-layer probes: stream per-token statistics of the residual stream and of
each norm's tanh argument while a ``Stack`` runs, holding no activations.

Every statistic is computed per token (over the feature dimension) and then
reduced over the batch, so memory is ``O(depth · T)`` numbers whatever the
width or batch. The result is one tidy table: a row per layer × sublayer ×
token position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

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



def _batch_mean(per_token: Tensor) -> np.ndarray:
    """``(B, T)`` or ``(B, T, 1)`` → ``(T,)`` float64 batch mean."""
    return per_token.reshape(per_token.shape[0], per_token.shape[1]).double().mean(0).cpu().numpy()


def state_statistics(h: Tensor) -> dict[str, np.ndarray]:
    """Per-position statistics of residual-stream states ``h`` of shape ``(B, T, d)``.

    ``mean_square`` is ``m(h)`` batch-averaged; ``rms`` its square root;
    ``mean_abs`` the mean ``|h_i|``; ``variance`` the (biased) variance over features.
    """
    ms = _batch_mean(mean_square(h))
    h64 = h.double()
    # Two-pass variance (centre, then square): as accurate as torch's Welford
    # ``var`` and several times faster on the CPU.
    centred = h64 - h64.mean(-1, keepdim=True)
    return {
        "mean_square": ms,
        "rms": np.sqrt(ms),
        "mean_abs": _batch_mean(h64.abs().mean(-1)),
        "variance": _batch_mean(centred.square_().mean(-1)),
    }


def argument_statistics(z: Tensor) -> dict[str, np.ndarray]:
    """Per-position statistics of a tanh/erf argument ``z`` of shape ``(B, T, d)``.

    ``arg_rms`` is ``sqrt`` of the batch-mean of ``mean_i z_i²``; ``arg_max_abs``
    the largest ``|z_i|`` over features *and* batch (the worst case, which is
    what the bounds speak of); ``saturated_fraction_t`` the batch-mean fraction of
    coordinates with ``|z_i| ≥ t``.
    """
    magnitude = z.abs()  # exact in z's dtype: the comparisons and the maximum need no float64 copy
    stats = {
        "arg_rms": np.sqrt(_batch_mean(z.double().square_().mean(-1))),
        "arg_max_abs": magnitude.amax(-1).amax(0).double().cpu().numpy(),
    }
    for t in SATURATION_THRESHOLDS:
        stats[f"saturated_fraction_{t:g}"] = _batch_mean((magnitude >= t).sum(-1).double() / z.shape[-1])
    return stats


class TraceProbe:
    """Collects the statistics a ``Stack`` reports through its hooks.

    The stack calls ``state`` after each residual add and ``argument`` with the
    tanh/erf argument of the norm feeding each sublayer (tanh-based schemes only).
    ``frame()`` assembles the tidy table.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str], dict[str, np.ndarray]] = {}

    def _entry(self, layer: int, sublayer: str) -> dict[str, np.ndarray]:
        return self._rows.setdefault((layer, sublayer), {})

    @torch.no_grad()
    def state(self, layer: int, sublayer: str, h: Tensor, estimate: Tensor | None = None) -> None:
        entry = self._entry(layer, sublayer)
        entry.update(state_statistics(h))
        if estimate is not None:
            exact = mean_square(h)
            entry["mean_square_estimate"] = _batch_mean(estimate.expand_as(exact))
            entry["estimate_ratio"] = _batch_mean(estimate.expand_as(exact) / exact)

    @torch.no_grad()
    def argument(self, layer: int, sublayer: str, z: Tensor) -> None:
        self._entry(layer, sublayer).update(argument_statistics(z))

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
    """Keeps the tensors a ``Block.forward`` reports, for analyses that need more
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

    def argument(self, layer: int, sublayer: str, z: Tensor) -> None:
        self.arguments[layer, sublayer] = z.detach()

    def mean_square_ratio(self, layer: int) -> Tensor:
        """``m(h')/M₂`` per token (float64, shape ``(B, T)``) at ``layer``'s MLP-side BHyT."""
        exact = mean_square(self.states[layer, "attn"])
        return (exact / self.estimates[layer].double().expand_as(exact))[..., 0]
