"""Growth-law fits recover known laws from noisy synthetic per-layer data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bhyt_theory.experiments.growth import FORMS, fit_growth, per_layer_rms

DEPTH_INDEX = np.arange(1, 201)  # l = layer + 1
N_SEEDS = 4


def synthetic_sweep(rms_of_seed) -> pd.DataFrame:
    """A sweep-shaped table with one position, rms given per seed as a function of l."""
    rows = []
    for seed in range(N_SEEDS):
        rms = rms_of_seed(seed)
        for sublayer in ("attn", "mlp"):
            rows.append(pd.DataFrame({
                "scheme": "rmsnorm", "seed": seed, "layer": DEPTH_INDEX - 1, "sublayer": sublayer,
                "position": 0, "mean_square": rms**2, "rms": rms,
            }))
    return pd.concat(rows, ignore_index=True)


def fitted(fits: pd.DataFrame, form: str) -> pd.Series:
    return fits[fits["form"] == form].iloc[0]


def check_slope(row: pd.Series, true_slope: float) -> None:
    # The noise below is independent across layers and seeds, so the regression
    # standard error is valid: |error| ≤ 4 standard errors fails with
    # probability 6e-5 under the model. The across-seed interval is Student-t at
    # level 0.999 on independent per-seed slopes.
    assert abs(row["slope"] - true_slope) <= 4 * row["slope_stderr"]
    assert row["slope_ci_low"] <= true_slope <= row["slope_ci_high"]


def test_linear_law_is_recovered_and_chosen():
    rng = np.random.default_rng(0)
    a, b, noise = 0.5, 0.01, 0.02
    fits = fit_growth(synthetic_sweep(lambda seed: a + b * DEPTH_INDEX + rng.normal(0, noise, DEPTH_INDEX.size)),
                      level=0.999)
    row = fitted(fits, "linear")
    check_slope(row, b)
    assert row["best"] and fits["best"].sum() == 1


def test_exponential_law_is_recovered_and_chosen():
    rng = np.random.default_rng(1)
    amplitude, rate, noise = 0.02, 0.015, 0.02  # multiplicative log-normal noise
    fits = fit_growth(synthetic_sweep(
        lambda seed: amplitude * np.exp(rate * DEPTH_INDEX + rng.normal(0, noise, DEPTH_INDEX.size))), level=0.999)
    row = fitted(fits, "exponential")
    # Fitting log of the across-seed mean shifts the intercept by a constant
    # (≈ noise²/2), not the slope.
    check_slope(row, rate)
    assert row["best"]


def test_variance_linear_law_is_recovered_and_chosen():
    rng = np.random.default_rng(2)
    a, b, noise = 0.04, 0.001, 1e-3  # rms = sqrt(a + b l): Θ(L) variance growth
    fits = fit_growth(synthetic_sweep(
        lambda seed: np.sqrt(a + b * DEPTH_INDEX + rng.normal(0, noise, DEPTH_INDEX.size))), level=0.999)
    row = fitted(fits, "variance_linear")
    check_slope(row, b)
    assert row["best"]


def test_fits_one_row_per_form_and_only_the_requested_sublayer():
    table = synthetic_sweep(lambda seed: 1.0 + 0.1 * DEPTH_INDEX)
    table.loc[table["sublayer"] == "attn", ["rms", "mean_square"]] = 1e6  # must be ignored
    fits = fit_growth(table)
    assert list(fits["form"]) == [form.name for form in FORMS]
    assert fitted(fits, "linear")["slope"] == pytest.approx(0.1, rel=1e-9)  # exact data: rounding only
    assert per_layer_rms(table)["rms"].max() < 1e6
