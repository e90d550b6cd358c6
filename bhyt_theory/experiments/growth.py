"""Growth laws of the residual stream with depth (claims C1, C2, C4 of docs/claims.md).

For each scheme the per-layer rms of the residual stream (state after the MLP
residual add, position-averaged: ``sqrt`` of the position-mean of ``m(h)``) is
fitted against the number of blocks applied, ``l = layer + 1``, by four
two-parameter laws, each linear in a transformed space:

- ``linear``: rms ≈ a + b·l (rms against l);
- ``variance_linear``: rms² ≈ a + b·l (m = rms² against l): the Θ(L) variance
  growth of Pre-LN, rms ∝ √l at large l;
- ``exponential``: rms ≈ A·exp(c·l) (log rms against l): the Θ(exp L) end;
- ``power``: rms ≈ A·l^p (log rms against log l).

Slopes (b, b, c, p) come with two uncertainties: a Student-t interval across
seeds (each seed fitted on its own; seeds are independent stacks and inputs,
so this interval carries the correlation between layers), and the regression standard error of the fit to
the per-layer means (which assumes independent residuals across layers — a
residual stream's layers are strongly correlated, so it is optimistic and is
reported only for comparison).

The best form is the one whose fitted curve, mapped back to rms, has the
smallest residual sum of squares against the per-layer mean rms; every form has
two parameters, so this is also the smallest AIC ``n·log(RSS/n) + 2k`` and the
largest R² in rms space (reported as ``r2``).

References: Sun et al., arXiv 2502.05795 (Pre-LN variance between Θ(L) and
Θ(exp L)); Byun et al., arXiv 2601.09719 (BHyT, Fig. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..numerics.model import StackConfig
from ..numerics.probes import position_average
from ..theory.meanfield import predict
from .montecarlo import RUN_COLUMNS, confidence_interval

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GrowthForm:
    """A two-parameter law ``Y(rms) ≈ intercept + slope · X(l)`` and its inverse."""

    name: str
    law: str
    x: Transform
    y: Transform
    rms_from_y: Transform


FORMS = (
    GrowthForm("linear", "rms ≈ a + b·l", lambda l: l, lambda r: r, lambda y: y),
    GrowthForm("variance_linear", "rms² ≈ a + b·l", lambda l: l, np.square, lambda y: np.sqrt(np.clip(y, 0, None))),
    GrowthForm("exponential", "rms ≈ A·exp(c·l)", lambda l: l, np.log, np.exp),
    GrowthForm("power", "rms ≈ A·l^p", np.log, np.log, np.exp),
)
# The configuration `bhyt-theory growth` fits by default (with every scheme).
DEFAULT_GROWTH = {"depth": 256, "width": 256, "heads": 4, "seq_len": 64, "init_std": 0.02}


def per_layer_rms(table: pd.DataFrame, sublayer: str = "mlp") -> pd.DataFrame:
    """Position-averaged rms per run and layer, from a ``montecarlo.sweep`` table.

    Returns the configuration columns, ``seed``, ``layer``, ``depth_index``
    (``l = layer + 1``) and ``rms = sqrt(mean over positions of m(h))`` of the
    state after ``sublayer``'s residual add.
    """
    keys = [c for c in RUN_COLUMNS if c in table.columns] + ["seed", "layer", "sublayer"]
    averaged = position_average(table[table["sublayer"] == sublayer], keys)
    averaged["depth_index"] = averaged["layer"] + 1
    return averaged[keys + ["depth_index", "rms"]]


def _fit_one(form: GrowthForm, depth_index: np.ndarray, rms: np.ndarray):
    return stats.linregress(form.x(depth_index), form.y(rms))


def fit_growth(
    table: pd.DataFrame,
    sublayer: str = "mlp",
    first_layer: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Fit the four growth laws per configuration (``FORMS``; module docstring).

    Parameters
    ----------
    table : DataFrame
        A ``montecarlo.sweep`` table (any number of configurations and seeds).
    sublayer : str
        Which state is fitted ("mlp": the block output).
    first_layer : int
        Fit layers ``≥ first_layer`` (0-based) only, to leave out a transient.
    level : float
        Level of the across-seed confidence interval of the slope.

    Returns
    -------
    DataFrame
        One row per configuration × form: the configuration columns that
        vary, ``form``, ``law``, ``intercept``, ``slope`` (fit to the per-layer
        means), ``slope_seed_mean``, ``slope_ci_low``, ``slope_ci_high``
        (Student-t across seeds, NaN with one seed), ``slope_stderr`` (regression
        standard error), ``r2`` (rms space), ``aic``, ``best``, ``n_layers``,
        ``n_seeds``, ``rms_first``, ``rms_last`` (mean rms at the first and last
        fitted layer), ``level``.
    """
    data = per_layer_rms(table, sublayer)
    data = data[data["layer"] >= first_layer]
    config_columns = [c for c in RUN_COLUMNS if c in data.columns]
    varying = [c for c in config_columns if data[c].nunique(dropna=False) > 1] or ["scheme"]
    rows = []
    for config_values, group in data.groupby(config_columns, sort=False, dropna=False):
        described = {c: v for c, v in zip(config_columns, config_values) if c in varying}
        means = group.groupby("depth_index")["rms"].mean()
        depth_index, mean_rms = means.index.to_numpy(float), means.to_numpy()
        seeds = group["seed"].unique()
        for form in FORMS:
            fit = _fit_one(form, depth_index, mean_rms)
            predicted = form.rms_from_y(fit.intercept + fit.slope * form.x(depth_index))
            residual = np.sum((mean_rms - predicted) ** 2)
            n = len(mean_rms)
            per_seed = np.array([
                _fit_one(form, s["depth_index"].to_numpy(float), s["rms"].to_numpy()).slope
                for _, s in group.groupby("seed")
            ])
            low, high = confidence_interval(per_seed.mean(), per_seed.std(ddof=1) if len(seeds) > 1 else np.nan,
                                            len(seeds), level)
            rows.append({
                **described, "form": form.name, "law": form.law,
                "intercept": fit.intercept, "slope": fit.slope,
                "slope_seed_mean": per_seed.mean(), "slope_ci_low": float(low), "slope_ci_high": float(high),
                "slope_stderr": fit.stderr,
                "r2": 1 - residual / np.sum((mean_rms - mean_rms.mean()) ** 2),
                "aic": n * np.log(residual / n) + 2 * 2,
                "n_layers": n, "n_seeds": len(seeds),
                "rms_first": mean_rms[0], "rms_last": mean_rms[-1], "level": level,
            })
    fits = pd.DataFrame(rows)
    group_columns = list(varying)
    fits["best"] = fits["aic"] == fits.groupby(group_columns, sort=False, dropna=False)["aic"].transform("min")
    return fits


def meanfield_growth(table: pd.DataFrame, sublayer: str = "mlp", first_layer: int = 0) -> pd.DataFrame:
    """The growth laws of ``fit_growth`` fitted to ``meanfield.predict`` curves.

    For each configuration of the sweep ``table`` the mean-field per-layer mean
    square (inputs N(0, ``input_std``²), uniform causal attention) is put in the
    shape of a one-seed sweep and fitted like the Monte Carlo data, so the two
    fits can be set side by side (no across-seed interval: one curve).
    """
    columns = [c for c in RUN_COLUMNS if c in table.columns]
    parts = []
    for values in table[columns].drop_duplicates().itertuples(index=False):
        described = dict(zip(columns, values))
        config = StackConfig(**{k: v for k, v in described.items() if k not in ("batch", "length", "input_std")})
        curve = predict(config, described["input_std"] ** 2, length=described["length"])
        parts.append(curve[["layer", "sublayer", "mean_square", "rms"]].assign(**described, seed=0, position=0))
    return fit_growth(pd.concat(parts, ignore_index=True), sublayer, first_layer)
