"""Mean field against Monte Carlo: the predictions of ``theory.meanfield`` next to finite stacks.

``compare_with_monte_carlo`` runs ``Stack(config, seed).trace`` over weight seeds (the
seeding rule of ``numerics.inputs``) and sets each statistic beside the mean-field
prediction at the same input variance and length; ``comparison_summary`` reduces one
or more such tables (schemes side by side) to the last layer's and the worst error.
The theory layer predicts; this module is where the prediction meets a sampled stack.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..numerics.inputs import InputSpec
from ..numerics.model import Stack, StackConfig
from ..numerics.probes import position_average
from ..theory.meanfield import predict, predict_per_position

__all__ = ["compare_with_monte_carlo", "comparison_summary"]


def comparison_summary(comparison: pd.DataFrame, statistic: str = "mean_square") -> pd.DataFrame:
    """Per scheme, the last layer's and the worst relative error of ``compare_with_monte_carlo`` tables.

    ``comparison`` is one or more (concatenated) tables of ``compare_with_monte_carlo``,
    position-averaged; only the rows of ``statistic`` are summarised. Returns one row per
    scheme: ``last_relative_error`` and ``last_z`` (``(mean_field − monte_carlo)/standard_error``)
    at the last layer's MLP sublayer, and ``worst_relative_error``, ``worst_layer``,
    ``worst_sublayer``, ``worst_z`` where ``|relative_error|`` is largest.
    """
    if "position" in comparison.columns:
        raise ValueError("comparison_summary takes position-averaged comparisons (per_position=False)")
    comparison = comparison[comparison["statistic"] == statistic]
    if comparison.empty:
        raise ValueError(f"the comparison has no rows of statistic {statistic!r}")
    table = comparison.assign(z=(comparison["mean_field"] - comparison["monte_carlo"]) / comparison["standard_error"])
    depth = table.groupby("scheme", sort=False)["layer"].transform("max")
    last = table[(table.layer == depth) & (table.sublayer == "mlp")].set_index("scheme")
    worst = table.loc[table.groupby("scheme", sort=False)["relative_error"].apply(lambda e: e.abs().idxmax())]
    worst = worst.set_index("scheme")
    return pd.DataFrame({
        "last_relative_error": last["relative_error"], "last_z": last["z"],
        "worst_relative_error": worst["relative_error"], "worst_layer": worst["layer"],
        "worst_sublayer": worst["sublayer"], "worst_z": worst["z"],
    })


def compare_with_monte_carlo(
    config: StackConfig,
    seeds: range | list[int],
    inputs: InputSpec = InputSpec(batch=2),
    statistics: tuple[str, ...] = ("mean_square",),
    attention: str | np.ndarray = "uniform_causal",
    per_position: bool = False,
) -> pd.DataFrame:
    """Statistics per layer × sublayer, mean field vs Monte Carlo over weight seeds.

    Runs ``Stack(config, seed).trace(inputs.hidden_states(config, seed))`` (the
    seeding rule of ``numerics.inputs``) and compares each of ``statistics``
    (columns shared by ``Stack.trace`` and ``PREDICTION_COLUMNS``) with
    ``predict`` under the ``attention`` model, at input variance ``inputs.std²``
    and the same length; ``per_position=True`` compares every position
    (``predict_per_position``) instead of position averages.

    Returns
    -------
    DataFrame, one row per statistic × layer × sublayer (× position): ``scheme``, ``statistic``,
    ``layer``, ``sublayer``, (``position``), ``mean_field``, ``monte_carlo`` (mean over seeds of
    the position average), ``standard_error`` (sample standard deviation across
    seeds / √n_seeds), ``relative_error`` (mean_field / monte_carlo − 1) and
    ``relative_standard_error``. Rows are NaN where the scheme has no such
    statistic (e.g. ``arg_rms`` of RMSNorm).
    """
    length = inputs.length_for(config.seq_len)
    keys = ["layer", "sublayer", "position"] if per_position else ["layer", "sublayer"]
    per_seed = []
    for seed in seeds:
        trace = Stack(config, seed).trace(inputs.hidden_states(config, seed))
        per_seed.append((trace if per_position else position_average(trace, keys))[list(statistics)])
    predictor = predict_per_position if per_position else predict
    prediction = predictor(config, inputs.std**2, attention, length=length)
    parts = []
    for statistic in statistics:
        samples = np.array([frame[statistic].to_numpy() for frame in per_seed])
        part = prediction[keys].copy()
        part.insert(0, "statistic", statistic)
        part.insert(0, "scheme", config.scheme)
        part["mean_field"] = prediction[statistic]
        part["monte_carlo"] = samples.mean(0)
        part["standard_error"] = samples.std(0, ddof=1) / math.sqrt(len(samples)) if len(samples) > 1 else np.nan
        part["relative_error"] = part["mean_field"] / part["monte_carlo"] - 1
        part["relative_standard_error"] = part["standard_error"] / part["monte_carlo"]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
