"""Every study's tables from a configuration, as a notebook calls them: each function runs one
experiment of ``bhyt_theory.experiments`` (or the mean field) at the sizes it is given and returns
tidy tables by name. ``studies`` sizes them for the report and stores them."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import pandas as pd

from ..experiments.montecarlo import summarise, sweep
from ..numerics.inputs import InputSpec
from ..numerics.model import SCHEMES, StackConfig
from ..numerics.probes import position_average


TRACE_STATISTICS = ("rms", "mean_abs", "variance", "arg_rms", "saturated_fraction_1")


Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress sink of the table functions: discard."""


def _every_scheme(config: StackConfig, seeds: Sequence[int], batch: int, log: Log) -> pd.DataFrame:
    """``sweep`` of every scheme at ``config``'s sizes, in one sweep (every scheme of a
    seed runs on the same weight draws, in one pass over the blocks) with a progress
    line per seed."""
    base = {k: v for k, v in config.as_dict().items() if k != "scheme"}
    seeds, finished, started = list(seeds), [], time.perf_counter()

    def on_run(run_config: StackConfig, seed: int, options: dict) -> None:
        finished.append(seed)
        if len(finished) % len(SCHEMES) == 0:
            log(f"  seed {seed} ({len(finished) // len(SCHEMES)}/{len(seeds)}): {len(SCHEMES)} schemes, "
                f"{time.perf_counter() - started:.0f} s so far")

    return sweep({"scheme": list(SCHEMES)}, seeds, InputSpec(batch=batch), base=base, cache_dir=None,
                 progress=False, on_run=on_run)


def trace_tables(config: StackConfig, seeds: Sequence[int], batch: int = 4,
                       log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """Every scheme at ``config``'s sizes: per layer × sublayer statistics (``TRACE_STATISTICS``)
    with 95 % intervals across seeds, inputs ``InputSpec(batch)``."""
    table = _every_scheme(config, seeds, batch, log)
    summary = summarise(table, statistics=TRACE_STATISTICS)
    return {"trace": summary[["scheme", "layer", "sublayer", "statistic", "mean", "std", "n_seeds", "ci_low",
                                    "ci_high", "depth", "width", "seq_len"]]}


def growth_tables(config: StackConfig, seeds: Sequence[int], batch: int = 4,
                  log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """Every scheme at ``config``'s sizes: growth-law fits (Monte Carlo and mean field), the per-layer
    rms with 95 % intervals, and the mean-field rms curve."""
    from ..experiments.growth import fit_growth, meanfield_growth
    from ..theory.meanfield import predict

    table = _every_scheme(config, seeds, batch, log)
    fits = pd.concat([fit_growth(table).assign(source="monte carlo"), meanfield_growth(table).assign(source="mean field")],
                     ignore_index=True)
    curves = summarise(table[table["sublayer"] == "mlp"], statistics=("rms",))
    meanfield = pd.concat([predict(config.replace(scheme=scheme), InputSpec().std**2)[["layer", "sublayer", "rms"]]
                           .assign(scheme=scheme) for scheme in SCHEMES], ignore_index=True)
    return {
        "growth_fits": fits,
        "growth_rms": curves[["scheme", "layer", "mean", "ci_low", "ci_high", "n_seeds", "depth", "width", "seq_len"]],
        "growth_meanfield": meanfield[meanfield["sublayer"] == "mlp"].drop(columns="sublayer"),
    }


def meanfield_tables(config: StackConfig, seeds: Sequence[int], batch: int = 2,
                     log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """Mean field vs Monte Carlo of the per-layer mean square, every scheme at ``config``'s sizes."""
    from ..experiments.meanfield import compare_with_monte_carlo

    parts = []
    for index, scheme in enumerate(SCHEMES, 1):
        parts.append(compare_with_monte_carlo(config.replace(scheme=scheme), list(seeds), InputSpec(batch=batch))
                     .assign(depth=config.depth, width=config.width, seq_len=config.seq_len))
        log(f"  {scheme} ({index}/{len(SCHEMES)})")
    return {"meanfield_vs_montecarlo": pd.concat(parts, ignore_index=True)}


def variance_tables(config: StackConfig, layers: Sequence[int], seeds: Sequence[int],
                    batch: int = 4) -> dict[str, pd.DataFrame]:
    """M₂/m(h′) of every estimator at every position of ``layers`` (``estimator_comparison``)."""
    from ..experiments.variance import estimator_comparison

    table = estimator_comparison(config, seeds=tuple(seeds), inputs=InputSpec(batch=batch), layers=tuple(layers),
                                 positions=range(config.seq_len))
    return {"variance_estimators": table.assign(width=config.width, seq_len=config.seq_len, depth=config.depth)}


def variance_decomposition_tables(config: StackConfig, layers: Sequence[int], seeds: Sequence[int],
                                  batch: int = 4) -> dict[str, pd.DataFrame]:
    """The error terms of the paper's M₂ per layer × position × seed (``decomposition_table``)."""
    from ..experiments.variance import decomposition_table

    table = decomposition_table(config, tuple(seeds), InputSpec(batch=batch), layers, positions=range(config.seq_len))
    return {"variance_decomposition": table}


def jacobian_tables(config: StackConfig, seeds: Sequence[int], probes: int) -> dict[str, pd.DataFrame]:
    """Jacobian deviation from I per scheme at layers 0, 1, 4, 16, L−1 (``jacobian_comparison``)."""
    from ..experiments.jacobian import jacobian_comparison, jacobian_layers

    table = jacobian_comparison(config, layers=jacobian_layers(config.depth), seeds=tuple(seeds), probes=probes)
    return {"jacobian": table.assign(depth=config.depth, width=config.width, seq_len=config.seq_len)}


PAPER_PRESET = "llama-374m"
"""The paper's smaller model shape (``numerics.model.PRESETS``): the primary evidence of C3, C4 and C5."""


PAPER_SCHEMES = ("bhyt", "rmsnorm")


PAPER_SEEDS = (0, 1, 2)
"""Weight seeds of the paper-shape Monte Carlo (batch 1): three give a Student-t interval with 2 degrees
of freedom. One llama-374m forward at T 1024 takes about 10 s on one core (BHyT; 7 s RMSNorm) and the
softmax-attention mean field about 30 s per scheme, so the study costs about 2 min on an idle core."""


def block_parameters(config: StackConfig) -> int:
    """Weights of ``config``'s blocks (attention and SwiGLU matrices; embeddings and norm gains left out)."""
    kv_width = config.kv_heads * (config.width // config.heads)
    attention = 2 * config.width * config.width + 2 * config.width * kv_width
    return config.depth * (attention + 3 * config.width * config.mlp_width)


def paper_init_tables(config: StackConfig, seeds: Sequence[int], batch: int = 1,
                      log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """BHyT and RMSNorm at ``config`` (``batch`` samples per seed, inputs ``InputSpec``), beside the
    softmax-attention mean field: growth-law fits, per-layer statistics, and BHyT's M₂/m(h′)
    at every layer × position.

    The mean field with ``attention="softmax"`` is the model that stays within the Monte Carlo
    error at the paper's widths (``theory.meanfield``); both are tabled so each checks the other.
    """
    from ..experiments.growth import fit_growth
    from ..theory.meanfield import predict_per_position

    base = {k: v for k, v in config.as_dict().items() if k != "scheme"}
    shape = dict(preset=PAPER_PRESET if config == StackConfig.from_preset(PAPER_PRESET, scheme=config.scheme)
                 else "", depth=config.depth, width=config.width, seq_len=config.seq_len,
                 parameters=block_parameters(config))
    fits, layers, estimate = [], [], None
    for scheme in PAPER_SCHEMES:
        started = time.perf_counter()
        table = sweep({"scheme": [scheme]}, list(seeds), InputSpec(batch=batch), base=base, cache_dir=None,
                      progress=False)
        log(f"  {scheme} Monte Carlo: {len(list(seeds))} seeds in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        field_config = config.replace(scheme=scheme)
        per_position = predict_per_position(field_config, InputSpec().std**2, attention="softmax")
        averaged = position_average(per_position.drop(columns="position"), ["layer", "sublayer"])  # as ``predict``
        log(f"  {scheme} mean field (softmax attention) in {time.perf_counter() - started:.0f} s")
        run_columns = table[list(base) + ["scheme", "batch", "length", "input_std"]].iloc[0].to_dict()
        curve = averaged[["layer", "sublayer", "mean_square", "rms"]].assign(**run_columns, seed=0, position=0)
        fits += [fit_growth(table).assign(source="monte carlo"), fit_growth(curve).assign(source="mean field")]
        statistics = ("rms", "arg_rms", "saturated_fraction_1") if scheme == "bhyt" else ("rms",)
        summary = summarise(table, statistics=statistics)
        field = averaged.melt(id_vars=["layer", "sublayer"], value_vars=list(statistics), var_name="statistic",
                              value_name="meanfield")
        layers.append(summary[["scheme", "layer", "sublayer", "statistic", "mean", "std", "n_seeds", "ci_low",
                               "ci_high"]].merge(field, on=["layer", "sublayer", "statistic"], how="left"))
        if scheme == "bhyt":
            attn = table[table["sublayer"] == "attn"]
            grouped = attn.groupby(["layer", "position"])["estimate_ratio"]
            estimate = grouped.agg(ratio="mean", ratio_sd="std", n_seeds="count").reset_index().merge(
                per_position[per_position["sublayer"] == "attn"][["layer", "position", "estimate_ratio"]]
                .rename(columns={"estimate_ratio": "meanfield_ratio"}), on=["layer", "position"], how="left")
    return {"paper_growth_fits": pd.concat(fits, ignore_index=True).assign(**shape),
            "paper_layers": pd.concat(layers, ignore_index=True).assign(**shape),
            "paper_estimate": estimate.assign(**shape)}


BHYTC_ESTIMATORS = ("reference", "position", "correlation")


BHYTC_PRESETS = ("llama-374m", "llama-1b")


def bhytc_prediction(config: StackConfig, presets: Sequence[str] = BHYTC_PRESETS) -> pd.DataFrame:
    """What the mean field predicts for ``bhytc`` before any Monte Carlo is run.

    Rows ``quantity = "ratio"``: M₂/m(h′) per estimator × layer × position at ``config``'s
    shape (``shape = "study"``) and at each of ``presets`` (``shape`` = the preset's name;
    inputs ``InputSpec``); the "correlation" estimator carries the mean field's own factors,
    so its predicted ratio is 1. Rows ``quantity = "growth_exponent"``: the power-law
    exponent of the rms over the layers (``growth.fit_growth`` on the mean-field curve) for
    ``bhyt`` and ``bhytc`` at the same shapes. Takes no Monte Carlo input: the prediction
    cannot depend on the measurement.
    """
    import numpy as np
    from scipy import stats

    from ..theory.meanfield import predict, predict_per_position

    rows = []
    shapes = [("study", config)] + [(preset, StackConfig.from_preset(preset, scheme="bhyt")) for preset in presets]
    for shape, base in shapes:
        for estimator in BHYTC_ESTIMATORS:
            table = predict_per_position(base.replace(estimator=estimator), InputSpec().std**2)
            table = table[table["sublayer"] == "attn"]
            rows.append(pd.DataFrame({"quantity": "ratio", "shape": shape, "scheme": "bhyt", "estimator": estimator,
                                      "layer": table["layer"], "position": table["position"],
                                      "predicted": table["estimate_ratio"]}))
        for scheme in ("bhyt", "bhytc"):
            # the estimator and κ schedule at their defaults: bhytc's row puts in its own
            fields = {**base.as_dict(), "scheme": scheme, "estimator": "reference", "kappa_schedule": "constant"}
            curve = predict(StackConfig(**fields), InputSpec().std**2)
            rms = curve.loc[curve["sublayer"] == "mlp", "rms"].to_numpy()
            fit = stats.linregress(np.log(np.arange(1, len(rms) + 1)), np.log(rms))
            rows.append(pd.DataFrame([{"quantity": "growth_exponent", "shape": shape, "scheme": scheme,
                                       "estimator": "", "layer": -1, "position": -1, "predicted": fit.slope}]))
    return pd.concat(rows, ignore_index=True)


def bhytc_measurement(config: StackConfig, seeds: Sequence[int], batch: int = 2,
                      layers: Sequence[int] | None = None, presets: Sequence[str] = (),
                      preset_seeds: Sequence[int] = (0,), log: Log = _quiet) -> pd.DataFrame:
    """The Monte Carlo that ``bhytc_prediction`` is compared with.

    Rows ``quantity = "ratio"``: M₂/m(h′) per estimator × layer × position, mean and
    standard error over seeds (``variance.estimator_comparison``), at ``config``'s shape
    (``shape = "study"``; ``seeds``, ``batch``, ``layers``) and at each of ``presets``
    (every layer and position, ``preset_seeds``, one sequence per seed: a preset's T is
    1024). Rows ``quantity = "growth_exponent"``: the Monte Carlo power-law exponent of the
    rms for ``bhyt`` and ``bhytc`` at ``config``'s shape with its 95 % interval across
    seeds (``growth.fit_growth``).
    """
    from ..experiments.growth import fit_growth
    from ..experiments.variance import estimator_comparison

    def ratios(shape: str, stack: StackConfig, shape_seeds: Sequence[int], inputs: InputSpec,
               shape_layers: Sequence[int]) -> pd.DataFrame:
        started = time.perf_counter()
        comparison = estimator_comparison(stack, BHYTC_ESTIMATORS, seeds=tuple(shape_seeds), inputs=inputs,
                                          layers=tuple(shape_layers), positions=range(stack.seq_len))
        log(f"  bhytc: M₂/m(h′) at {shape}, {len(shape_seeds)} seed(s), in {time.perf_counter() - started:.0f} s")
        return pd.DataFrame({"quantity": "ratio", "shape": shape, "scheme": "bhyt",
                             "estimator": comparison["estimator"], "layer": comparison["layer"],
                             "position": comparison["position"], "measured": comparison["ratio"],
                             "se": comparison["ratio_se"], "n_seeds": len(shape_seeds)})

    inputs = InputSpec(batch=batch)
    rows = [ratios("study", config, seeds, inputs, range(config.depth) if layers is None else layers)]
    for preset in presets:
        stack = StackConfig.from_preset(preset, scheme="bhyt")
        rows.append(ratios(preset, stack, preset_seeds, InputSpec(batch=1), range(stack.depth)))
    base = {k: v for k, v in config.as_dict().items() if k not in ("scheme", "estimator", "kappa_schedule")}
    table = sweep({"scheme": ["bhyt", "bhytc"]}, list(seeds), inputs=inputs, base=base, cache_dir=None,
                  progress=False)
    fits = fit_growth(table)
    power = fits[fits["form"] == "power"]
    rows.append(pd.DataFrame({"quantity": "growth_exponent", "shape": "study", "scheme": power["scheme"],
                              "estimator": "", "layer": -1, "position": -1, "measured": power["slope"],
                              "se": float("nan"), "n_seeds": len(seeds), "ci_low": power["slope_ci_low"],
                              "ci_high": power["slope_ci_high"]}))
    return pd.concat(rows, ignore_index=True)
