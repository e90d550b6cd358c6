"""The figures each claim's rule reads, and the evidence behind them, from the studies' tables.

One ``_measure_cN`` per claim of ``pipeline.claims``: it reads the tables it needs (a
missing table or column raises ``studies.ResultMissing``), returns the figures its
rule and explanation use, the ``evidence`` record (``pipeline.evidence``) and, for C3–C5,
the same figures at a second shape (``secondary``: figures and evidence, judged by
``claims.assess``). The trained claims read the ladder's tables (``ladder.csv``,
``ladder_summary.csv``; docs/claims.md §10) where present, else the small CPU runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..experiments.training.recipes import MINIMAL_CHANGES, SOURCE_RECIPES
from .evidence import (
    CONFIDENCE,
    LEVELS,
    PAIRED_SEEDS,
    PAPER_SHAPES,
    TUNING_RATES,
    TUNING_SPAN,
    Interval,
    count_text,
    interval_ends,
    interval_fields,
    ratio_interval,
    span,
    t_interval,
)
from .rules import VARIANT_ESTIMATE_CONFIRM
from .studies import STUDIES, ResultMissing, Study, StudyResult
from .tables import block_parameters

FIT_COLUMNS = ("source", "scheme", "form", "best", "law", "slope", "slope_ci_low", "slope_ci_high", "rms_first",
               "rms_last", "n_seeds", "n_layers")
SHAPE_COLUMNS = ("preset", "depth", "width", "seq_len", "parameters")
LADDER_COLUMNS = ("rung", "params", "tokens", "scheme", "lr", "seed", "eval_loss")
"""The columns of ``ladder.csv`` the trained claims read (``recipe`` and ``steps`` where present)."""
RUN_COLUMNS = ("label", "seed", "final_eval_loss", "diverged", "tokens_seen", "steps_done")
TRAINING_COLUMNS = ("label", "n_runs", "n_diverged", "eval_loss_mean", "eval_loss_sd", "mean_abs_baseline_ratio",
                    "variance_baseline_ratio", "last_mean_abs", "growth_mean_abs")
"""The columns of the training tables the claims read."""


def _level(results: Mapping[str, StudyResult], names: Sequence[str], preset: str = "") -> str:
    """``smoke`` if any of ``names`` ran at quick sizes, ``paper`` at a paper preset, else ``small``."""
    if any(results[name].quick for name in names if name in results):
        return "smoke"
    return "paper" if preset in PAPER_SHAPES else "small"


def _shape(depth, width, seq_len, heads: int = 4, **extra) -> dict:
    from ..numerics.model import StackConfig

    config = StackConfig(depth=int(depth), width=int(width), heads=heads, seq_len=int(seq_len))
    return {"depth": int(depth), "width": int(width), "seq_len": int(seq_len), "parameters": block_parameters(config),
            **extra}


def _init_evidence(level: str, seeds: int, **shape) -> dict:
    return {"regime": "init", "level": level, "preset": shape.pop("preset", "") or "", **shape, "tokens": None,
            "seeds": int(seeds), "steps": None}


def _paper_shape(table: pd.DataFrame) -> dict:
    row = table.iloc[0]
    preset = row["preset"] if isinstance(row["preset"], str) else ""
    return {"preset": preset, "depth": int(row["depth"]), "width": int(row["width"]), "seq_len": int(row["seq_len"]),
            "parameters": int(row["parameters"])}


def _growth_row(fits: pd.DataFrame, scheme: str, source: str = "monte carlo", form: str = "power") -> tuple[pd.Series, pd.Series]:
    """The fit of ``form`` for ``scheme`` from ``source`` and its best-fitting form."""
    fits = fits[(fits["source"] == source) & (fits["scheme"] == scheme)]
    return fits[fits["form"] == form].iloc[0], fits[fits["best"].astype(bool)].iloc[0]


def _exponent(power: pd.Series) -> dict:
    n = int(power["n_seeds"])
    return {"exponent": power["slope"], "exponent_ci_low": power["slope_ci_low"], "exponent_ci_high": power["slope_ci_high"],
            "exponent_n": n, "exponent_df": max(n - 1, 0)}


def measure_c1(results: Mapping[str, StudyResult]) -> dict:
    growth = results["growth"]
    power, best = _growth_row(growth.table("growth_fits", *FIT_COLUMNS), "rmsnorm")
    rms = growth.table("growth_rms", "depth", "width", "seq_len")
    depth = int(rms["depth"].iloc[0])
    return {**_exponent(power), "rms_first": power["rms_first"], "rms_last": power["rms_last"],
            "growth_factor": power["rms_last"] / power["rms_first"], "best_law": best["law"], "depth": depth,
            "evidence": _init_evidence(_level(results, ["growth"]), power["n_seeds"],
                                       **_shape(depth, rms["width"].iloc[0], rms["seq_len"].iloc[0]))}


def _growth_figures(fits: pd.DataFrame) -> dict:
    power, best = _growth_row(fits, "bhyt")
    reference, _ = _growth_row(fits, "rmsnorm")
    return {**_exponent(power), "rms_first": power["rms_first"], "rms_last": power["rms_last"],
            "growth_factor": power["rms_last"] / power["rms_first"], "best_law": best["law"],
            "scale_vs_rmsnorm": power["rms_last"] / reference["rms_last"], "rmsnorm_exponent": reference["slope"],
            "depth": int(power["n_layers"])}


def measure_c4(results: Mapping[str, StudyResult]) -> dict:
    fits = results["paper_init"].table("paper_growth_fits", *FIT_COLUMNS, *SHAPE_COLUMNS)
    measured = _growth_figures(fits)
    field_power, _ = _growth_row(fits, "bhyt", source="mean field")
    measured["meanfield_exponent"] = field_power["slope"]
    measured["evidence"] = _init_evidence(_level(results, ["paper_init"], _paper_shape(fits)["preset"]),
                                          measured["exponent_n"], **_paper_shape(fits))
    growth = results.get("growth")
    if growth is not None and not growth.unavailable:
        second = _growth_figures(growth.table("growth_fits", *FIT_COLUMNS))
        rms = growth.table("growth_rms", "depth", "width", "seq_len")
        measured["secondary"] = (second, _init_evidence(
            _level(results, ["growth"]), second["exponent_n"],
            **_shape(rms["depth"].iloc[0], rms["width"].iloc[0], rms["seq_len"].iloc[0])))
    return measured


def _saturation_figures(layers: pd.DataFrame, schemes: Sequence[str] = ("bhyt", "bhytstar")) -> dict:
    """Largest per-layer saturated fraction (|z| ≥ 1) and the largest ends of the per-layer intervals."""
    rows = layers[(layers["statistic"] == "saturated_fraction_1") & layers["scheme"].isin(schemes)]
    arg = layers[(layers["statistic"] == "arg_rms") & layers["scheme"].isin(schemes)]
    n = int(rows["n_seeds"].min())
    worst = rows.loc[rows["mean"].idxmax()]
    return {"saturated_fraction": float(rows["mean"].max()),
            "saturated_fraction_ci_low": float(rows["ci_low"].max()) if n > 1 else math.nan,
            "saturated_fraction_ci_high": float(rows["ci_high"].max()) if n > 1 else math.nan,
            "saturated_fraction_n": n, "saturated_fraction_df": max(n - 1, 0),
            "saturated_layer": int(worst["layer"]), "saturated_sublayer": str(worst["sublayer"]),
            "arg_rms_max": float(arg["mean"].max())}


def measure_c3(results: Mapping[str, StudyResult]) -> dict:
    bounds = results["bounds"].table("bounds_tightness", "bound", "ratio", "construction")
    saturation_bounds = bounds[bounds["bound"].astype(str).str.startswith("saturation")]
    bound = {"bound_max_ratio": float(saturation_bounds["ratio"].max()),
             "bound_max_construction": str(saturation_bounds.loc[saturation_bounds["ratio"].idxmax(), "construction"])}
    layers = results["paper_init"].table("paper_layers", "scheme", "layer", "sublayer", "statistic", "mean", "n_seeds",
                                         "ci_low", "ci_high", "meanfield", *SHAPE_COLUMNS)
    shape = _paper_shape(layers)
    measured = {**_saturation_figures(layers, ("bhyt",)), **bound}
    field_rows = layers[(layers["statistic"] == "saturated_fraction_1") & (layers["scheme"] == "bhyt")]
    measured["meanfield_saturated_fraction"] = float(field_rows["meanfield"].max())
    measured["evidence"] = _init_evidence(_level(results, ["paper_init", "bounds"], shape["preset"]),
                                          measured["saturated_fraction_n"], **shape)
    trace = results.get("trace")
    if trace is not None and not trace.unavailable:
        table = trace.table("trace", "scheme", "layer", "sublayer", "statistic", "mean", "n_seeds", "ci_low", "ci_high",
                            "depth", "width", "seq_len")
        second = {**_saturation_figures(table), **bound}
        measured["secondary"] = (second, _init_evidence(
            _level(results, ["trace", "bounds"]), second["saturated_fraction_n"],
            **_shape(table["depth"].iloc[0], table["width"].iloc[0], table["seq_len"].iloc[0])))
    return measured


def _estimate_figures(cells: pd.DataFrame) -> dict:
    """Worst |M₂/m − 1| over layer × position cells (``ratio``, ``ratio_sd``, ``n_seeds``) and the largest
    lower and upper ends of the cells' 95 % t intervals of |ratio − 1|."""
    n = cells["n_seeds"].to_numpy(float)
    quantile = np.where(n > 1, stats.t.ppf((1 + CONFIDENCE) / 2, np.maximum(n - 1, 1)), np.nan)
    half = quantile * cells["ratio_sd"].to_numpy(float) / np.sqrt(n)
    low, high = cells["ratio"].to_numpy(float) - half, cells["ratio"].to_numpy(float) + half
    error_low = np.where((low <= 1) & (high >= 1), 0.0, np.minimum(np.abs(low - 1), np.abs(high - 1)))
    error_high = np.maximum(np.abs(low - 1), np.abs(high - 1))
    error = (cells["ratio"] - 1).abs()
    worst = cells.loc[error.idxmax()]
    seeds = int(n.min())
    return {"max_abs_error": float(error.max()),
            "max_abs_error_ci_low": float(np.max(error_low)) if seeds > 1 else math.nan,
            "max_abs_error_ci_high": float(np.max(error_high)) if seeds > 1 else math.nan,
            "max_abs_error_n": seeds, "max_abs_error_df": max(seeds - 1, 0),
            "mean_abs_error": float(error.mean()), "median_ratio": float(cells["ratio"].median()),
            "min_ratio": float(cells["ratio"].min()), "worst_layer": int(worst["layer"]),
            "worst_position": int(worst["position"]), "worst_ratio": float(worst["ratio"]),
            "first_ratio": float(cells[(cells["layer"] == cells["layer"].min()) & (cells["position"] == 0)]["ratio"].iloc[0])}


def measure_c5(results: Mapping[str, StudyResult]) -> dict:
    cells = results["paper_init"].table("paper_estimate", "layer", "position", "ratio", "ratio_sd", "n_seeds",
                                        "meanfield_ratio", *SHAPE_COLUMNS)
    shape = _paper_shape(cells)
    measured = _estimate_figures(cells)
    agreement = (cells["meanfield_ratio"] / cells["ratio"] - 1).abs()
    measured.update({"meanfield_first_ratio": float(cells[(cells["layer"] == 0) & (cells["position"] == 0)]
                                                    ["meanfield_ratio"].iloc[0]),
                     "meanfield_median_ratio": float(cells["meanfield_ratio"].median()),
                     "meanfield_max_abs_error": float((cells["meanfield_ratio"] - 1).abs().max()),
                     "meanfield_agreement_median": float(agreement.median()),
                     "meanfield_agreement_p90": float(agreement.quantile(0.9)),
                     "evidence": _init_evidence(_level(results, ["paper_init"], shape["preset"]),
                                                int(cells["n_seeds"].min()), **shape)})
    variance = results.get("variance")
    if variance is not None and not variance.unavailable:
        table = variance.table("variance_estimators", "estimator", "layer", "position", "ratio", "ratio_se", "seeds",
                               "depth", "width", "seq_len")
        reference = table[table["estimator"] == "reference"]
        second = _estimate_figures(reference.assign(n_seeds=reference["seeds"],
                                                    ratio_sd=reference["ratio_se"] * np.sqrt(reference["seeds"])))
        best_other = (table[table["estimator"] != "reference"].assign(error=lambda t: (t["ratio"] - 1).abs())
                      .groupby("estimator")["error"].mean())
        second.update({"best_estimator": str(best_other.idxmin()) if len(best_other) else "none",
                       "best_estimator_mean_abs_error": float(best_other.min()) if len(best_other) else math.nan})
        measured["secondary"] = (second, _init_evidence(
            _level(results, ["variance"]), second["max_abs_error_n"],
            **_shape(table["depth"].iloc[0], table["width"].iloc[0], table["seq_len"].iloc[0])))
    return measured


def _timing(results: Mapping[str, StudyResult], scheme: str, measurement: str) -> pd.Series:
    table = results["efficiency"].table("efficiency_timings", "scheme", "measurement", "speedup_percent",
                                        "speedup_ci_low", "speedup_ci_high", "hardware", "device", "rounds", "width")
    return table[(table["scheme"] == scheme) & (table["measurement"] == measurement)].iloc[0]


def _cost_evidence(results: Mapping[str, StudyResult], row: pd.Series) -> dict:
    return {"regime": "cost", "level": _level(results, ["efficiency"]), "preset": "", "width": int(row["width"]),
            "seq_len": int(row["seq_len"]) if "seq_len" in row and pd.notna(row["seq_len"]) else None,
            "parameters": None, "tokens": None, "seeds": int(row["rounds"]), "steps": None,
            "device": str(row["device"]), "hardware": str(row["hardware"])}


def measure_c6(results: Mapping[str, StudyResult]) -> dict:
    training, decode = _timing(results, "bhyt", "block forward+backward"), _timing(results, "bhyt", "decode step")
    return {"training_speedup": training["speedup_percent"], "training_speedup_ci_low": training["speedup_ci_low"],
            "training_speedup_ci_high": training["speedup_ci_high"], "decode_speedup": decode["speedup_percent"],
            "decode_speedup_ci_low": decode["speedup_ci_low"], "decode_speedup_ci_high": decode["speedup_ci_high"],
            "hardware": training["hardware"], "device": str(training["device"]).split(":")[0],
            "rounds": int(training["rounds"]), "width": int(training["width"]),
            "evidence": _cost_evidence(results, training)}


def measure_c9(results: Mapping[str, StudyResult]) -> dict:
    import inspect

    from ..experiments.decode import decode_exactness

    table = results["decode"].table("decode_exactness", "dtype", "order", "norm_fraction_differing",
                                    "block_fraction_differing", "greedy_identical_fraction", "norm_max_ulps",
                                    "greedy_sequences")
    exact = (table["norm_fraction_differing"] == 0) & (table["block_fraction_differing"] == 0) & (
        table["greedy_identical_fraction"] == 1)
    greedy_changed = table[table["greedy_identical_fraction"] < 1]
    no_exact = [dtype for dtype, rows in table.groupby("dtype", sort=False)
                if not (rows["greedy_identical_fraction"] == 1).any()]
    batch = inspect.signature(decode_exactness).parameters["batch"].default
    return {"greedy_identical_min": float(table["greedy_identical_fraction"].min()),
            "inexact_settings": int((~exact).sum()), "settings": int(len(table)),
            "max_ulps": int(table["norm_max_ulps"].max()),
            "exact_list": ", ".join(f"{r.dtype}/{r.order}" for r in table[exact].itertuples()) or "none",
            "greedy_changed_list": ", ".join(f"{r.dtype}/{r.order}" for r in greedy_changed.itertuples()) or "none",
            "dtypes_without_exact_order": ", ".join(no_exact),
            "evidence": {"regime": "init", "level": _level(results, ["decode"]), "preset": "", "parameters": None,
                         "tokens": None, "seeds": int(table["greedy_sequences"].iloc[0]) // batch, "steps": None}}


# ------------------------------------------------------------ the trained regime: ladder tables, else the small runs

LADDER_FILES = {"ladder": "ladder.csv", "ladder_summary": "ladder_summary.csv"}
LADDER_STUDY = Study("ladder", "The trained regime across scale (ladder)", ("C2", "C7", "C8"),
                     produce=lambda sizes, log=None: {}, quick={}, full={}, seconds=(0, 0),
                     subcommand="bhyt-theory train --ladder", forward_only=False)
"""Where the ladder's tables come from when no study of that name is registered: ``ladder.csv`` (one row
per run: ``rung, params, tokens, scheme, recipe, lr, seed, eval_loss, last_mean_abs``, …) and
``ladder_summary.csv`` (one row per rung × scheme at its best rate) in the results folder, as
``bhyt-theory train --ladder --out FOLDER`` writes them."""


def load_ladder(folder: str | Path) -> StudyResult | None:
    """The ladder tables in ``folder`` (``LADDER_FILES``), or None when ``ladder.csv`` is absent."""
    import json

    folder = Path(folder)
    if not (folder / LADDER_FILES["ladder"]).exists():
        return None
    tables = {name: pd.read_csv(folder / file) for name, file in LADDER_FILES.items() if (folder / file).exists()}
    meta_path = folder / "ladder.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("command", f"bhyt-theory train --ladder --out {folder}")
    runs = tables["ladder"]
    if "rung" in runs and "sizes" not in meta:
        meta["sizes"] = f"{runs['rung'].nunique()} rungs, {len(runs)} runs ({folder / LADDER_FILES['ladder']})"
    return StudyResult(STUDIES.get("ladder", LADDER_STUDY), tables, meta)


def ladder_result(results: Mapping[str, StudyResult]) -> StudyResult | None:
    ladder = results.get("ladder")
    return ladder if ladder is not None and not ladder.unavailable and "ladder" in ladder.tables else None


@dataclass(frozen=True)
class TunedRuns:
    """One recipe of a scheme at one rung: the rate it was tuned to and its runs at that rate."""

    recipe: str
    lr: float
    tuned: bool
    runs: pd.DataFrame


def tuned_runs(runs: pd.DataFrame, summary: pd.DataFrame | None = None) -> dict[tuple, TunedRuns]:
    """Per (rung, scheme, recipe) the runs at that recipe's tuned rate: every recipe its own entry
    (the recipe as specified and its minimal change are never merged or swapped; ``scheme_recipe``
    says which one a claim reads).

    The tuned rate is ``ladder_summary``'s ``best_lr`` (or ``lr``) for that rung × scheme × recipe
    when the summary gives one, else the rate run with the most seeds (the sweep's winner, rerun
    with more seeds), ties broken by the lower mean eval loss. ``tuned``: the recipe was swept over
    ≥ ``TUNING_RATES`` rates spanning ≥ ``TUNING_SPAN``×. Runs marked ``diverged`` or with a
    non-finite eval loss are divergences.
    """
    runs = _mark_divergences(runs)
    runs = runs.assign(recipe=runs["recipe"].fillna("") if "recipe" in runs else "")
    rate = next((name for name in ("best_lr", "lr") if summary is not None and name in summary.columns), None)
    chosen = {}
    for (rung, scheme, recipe), rows in runs.groupby(["rung", "scheme", "recipe"], sort=False):
        rates = np.sort(rows["lr"].unique())
        lr = None
        if rate is not None and {"rung", "scheme"} <= set(summary.columns):
            match = summary[(summary["rung"] == rung) & (summary["scheme"] == scheme)]
            if "recipe" in match:
                match = match[match["recipe"].fillna("") == recipe]
            if len(match):
                lr = float(match[rate].iloc[0])
        if lr is None:
            per_rate = rows.groupby("lr").agg(seeds=("seed", "nunique"),
                                              loss=("eval_loss", lambda v: v[np.isfinite(v)].mean()))
            per_rate = per_rate[per_rate["seeds"] == per_rate["seeds"].max()].sort_values("loss", na_position="last")
            lr = float(per_rate.index[0])
        tuned = len(rates) >= TUNING_RATES and rates[-1] >= TUNING_SPAN * rates[0]
        chosen[(rung, scheme, str(recipe))] = TunedRuns(str(recipe), lr, bool(tuned), rows[np.isclose(rows["lr"], lr)])
    return chosen


def scheme_recipe(chosen: Mapping[tuple, TunedRuns], rung: str, scheme: str, recipe: str | None = None) -> str | None:
    """The recipe of ``scheme`` a claim reads at ``rung``: ``recipe`` if given, else the scheme's
    recipe as specified (``recipes.SOURCE_RECIPES``) where it was run, else the only recipe
    run; None when the scheme (or that recipe) was not run there. Several recipes and none of
    them the specified one: ``ResultMissing`` (no best-of choice)."""
    present = [key[2] for key in chosen if key[:2] == (rung, scheme)]
    if recipe is not None:
        return recipe if recipe in present else None
    if not present:
        return None
    specified = SOURCE_RECIPES.get(scheme)
    if specified in present:
        return specified
    if len(present) == 1:
        return present[0]
    raise ResultMissing(f"ladder rung {rung!r}: scheme {scheme!r} has recipes {sorted(present)} and not its "
                        f"recipe as specified ({specified!r}); name the recipe to compare")


def _mark_divergences(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the eval loss of every run marked ``diverged`` set to NaN (a divergence, not a loss)."""
    if "diverged" not in runs:
        return runs
    return runs.assign(eval_loss=runs["eval_loss"].astype(float).where(~runs["diverged"].astype(bool)))


def _diverged(chosen: TunedRuns) -> int:
    return int((~np.isfinite(chosen.runs["eval_loss"].astype(float))).sum())


def paired_rungs(runs: pd.DataFrame, summary: pd.DataFrame | None, scheme: str, baseline: str = "rmsnorm",
                 value: str = "eval_loss", ratio: bool = False, recipe: str | None = None,
                 baseline_recipe: str | None = None) -> pd.DataFrame:
    """Per rung (by parameters), ``scheme`` against ``baseline`` at their tuned rates over shared seeds:
    the paired differences ``scheme − baseline`` of ``value`` (or, ``ratio=True``, the ratios
    ``baseline / scheme`` with a log-scale interval), their t interval, the rates, recipes and divergences.
    Each side is one recipe (``scheme_recipe``: the one named, else the recipe as specified)."""
    runs = _mark_divergences(runs)
    chosen = tuned_runs(runs, summary)
    rows = []
    for rung, group in runs.groupby("rung", sort=False):
        ours, theirs = scheme_recipe(chosen, rung, scheme, recipe), scheme_recipe(chosen, rung, baseline, baseline_recipe)
        if ours is None or theirs is None:
            continue
        a, b = chosen[(rung, scheme, ours)], chosen[(rung, baseline, theirs)]
        columns = list(dict.fromkeys(["seed", "eval_loss", value]))
        pairs = a.runs[columns].merge(b.runs[columns], on="seed", suffixes=("", "_baseline"))
        finished = [c for c in pairs.columns if c != "seed"]
        pairs = pairs[np.isfinite(pairs[finished].astype(float)).all(axis=1)]
        interval = (ratio_interval((pairs[f"{value}_baseline"] / pairs[value]).tolist()) if ratio
                    else t_interval((pairs[value] - pairs[f"{value}_baseline"]).tolist()))
        rows.append({"rung": rung, "params": float(group["params"].max()), "tokens": float(group["tokens"].max()),
                     "steps": float(group["steps"].max()) if "steps" in group else math.nan,
                     "seeds": interval.n, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                     "df": interval.df, "lr": a.lr, "baseline_lr": b.lr, "recipe": a.recipe, "baseline_recipe": b.recipe,
                     "tuned": a.tuned and b.tuned, "diverged": _diverged(a), "baseline_diverged": _diverged(b),
                     "runs": len(a.runs), "baseline_runs": len(b.runs)})
    return pd.DataFrame(rows).sort_values("params", ignore_index=True) if rows else pd.DataFrame()


def _ladder_figures(results: Mapping[str, StudyResult], prefix: str, scheme: str, ratio: bool = False,
                    recipe: str | None = None) -> dict:
    """Figures of ``scheme`` (its recipe as specified, or ``recipe``) against RMSNorm at the largest
    rung run, the trend across rungs and the evidence."""
    ladder = ladder_result(results)
    runs = ladder.table("ladder", *LADDER_COLUMNS, *(("last_mean_abs",) if ratio else ()))
    summary = ladder.tables.get("ladder_summary")  # optional: names the tuned rates where present
    value = "last_mean_abs" if ratio else "eval_loss"
    table = paired_rungs(runs, summary, scheme, value=value, ratio=ratio, recipe=recipe)
    if table.empty:
        raise ResultMissing(f"study 'ladder', table 'ladder' has no rung with both {scheme!r}"
                            + (f" (recipe {recipe!r})" if recipe else "") + " and 'rmsnorm'")
    top = table.iloc[-1]
    interval = Interval(top["mean"], math.nan, int(top["seeds"]), top["ci_low"], top["ci_high"])
    unit = "×{:.2f}" if ratio else "{:+.4f}"
    trend = "; ".join(f"rung {r.rung} ({count_text(r.params)} params, {count_text(r.tokens)} tokens): "
                      + unit.format(r.mean) + f" {span(r.ci_low, r.ci_high, 2 if ratio else 4)}, {r.seeds} seeds"
                      for r in table.itertuples())
    recipes = (f"{scheme}: recipe {top['recipe'] or 'default'} at lr {top['lr']:g}; rmsnorm: recipe "
               f"{top['baseline_recipe'] or 'default'} at lr {top['baseline_lr']:g}")
    sufficient = table[(table["seeds"] >= PAIRED_SEEDS) & table["tuned"]]
    level = "smoke" if ladder.quick else ("paper" if top["params"] >= 3.7e8 and top["tokens"] >= 7.5e9 else "small")
    shape = runs[runs["rung"] == top["rung"]].iloc[0]
    evidence = {"regime": "trained", "level": level, "preset": "",
                **{key: int(shape[key]) for key in ("depth", "width", "seq_len") if key in shape and pd.notna(shape[key])},
                "parameters": float(top["params"]), "tokens": float(top["tokens"]), "seeds": int(top["seeds"]),
                "tuned": bool(top["tuned"]), "steps": None if pd.isna(top["steps"]) else int(top["steps"]),
                "rungs": len(sufficient), "rung": top["rung"], "source": "ladder"}
    return {**interval_fields(prefix, interval), f"{prefix}_trend": trend, f"{prefix}_recipes": recipes,
            f"{scheme}_diverged": int(top["diverged"]), "rmsnorm_diverged": int(top["baseline_diverged"]),
            f"{scheme}_finished": int(top["runs"] - top["diverged"]),
            "rmsnorm_finished": int(top["baseline_runs"] - top["baseline_diverged"]),
            "rung": str(top["rung"]), "evidence": evidence}


def _training_evidence(results: Mapping[str, StudyResult], seeds: int) -> dict:
    """Evidence of the small CPU training comparison (``training`` study): one shape, one shared rate."""
    from ..experiments.training.study import preset_config

    runs = results["training"].table("training_runs", *RUN_COLUMNS)
    stack = preset_config("quick" if results["training"].quick else "default").stack
    return {"regime": "trained", "level": _level(results, ["training"]), "preset": "", "depth": stack.depth,
            "width": stack.width, "seq_len": stack.seq_len, "parameters": block_parameters(stack),
            "tokens": float(runs["tokens_seen"].max()), "seeds": int(seeds), "steps": int(runs["steps_done"].max()),
            "rungs": 0, "source": "training (one shape, one shared learning rate)"}


def _training_rows(results: Mapping[str, StudyResult]) -> pd.DataFrame:
    """The training summary by label, checked to hold the rows of BHyT and RMSNorm (all C7 and C8 read)."""
    summary = results["training"].table("training_summary", *TRAINING_COLUMNS).set_index("label")
    absent = [label for label in ("bhyt", "rmsnorm") if label not in summary.index]
    if absent:
        raise ResultMissing(f"study 'training', table 'training_summary' has no row for label {absent[0]!r}")
    return summary


def _small_run_gap(results: Mapping[str, StudyResult], label: str, prefix: str) -> dict:
    """The paired eval-loss gap ``label − rmsnorm`` of the small CPU runs (no ladder): same seeds."""
    runs = results["training"].table("training_runs", *RUN_COLUMNS)
    finished = runs[~runs["diverged"].astype(bool)]
    a = finished[finished["label"] == label][["seed", "final_eval_loss"]]
    b = finished[finished["label"] == "rmsnorm"][["seed", "final_eval_loss"]]
    pairs = a.merge(b, on="seed", suffixes=("", "_baseline"))
    interval = t_interval((pairs["final_eval_loss"] - pairs["final_eval_loss_baseline"]).tolist())
    counts = runs.groupby("label")["diverged"].sum()
    return {**interval_fields(prefix, interval), f"{prefix}_trend": "one shape only (no ladder results)",
            f"{prefix}_recipes": "every scheme at one shared learning rate (no tuning)",
            f"{label}_diverged": int(counts.get(label, 0)), "rmsnorm_diverged": int(counts.get("rmsnorm", 0)),
            f"{label}_finished": len(a), "rmsnorm_finished": len(b), "rung": "none", "evidence": _training_evidence(results, interval.n)}


def _trained_gap(results: Mapping[str, StudyResult], label: str, prefix: str) -> dict:
    return (_ladder_figures(results, prefix, label) if ladder_result(results) is not None
            else _small_run_gap(results, label, prefix))


def measure_c2(results: Mapping[str, StudyResult]) -> dict:
    timing = _timing(results, "dyt", "block forward+backward")
    measured = _trained_gap(results, "dyt", "dyt_loss_gap")
    evidence = measured.pop("evidence")
    cost = _cost_evidence(results, timing)
    evidence = {**evidence, "regime": "trained, cost", "rounds": cost["seeds"],
                "level": LEVELS[min(LEVELS.index(evidence["level"]), LEVELS.index(cost["level"]))]}
    text = (f"{measured['dyt_diverged']} DyT runs diverged against {measured['rmsnorm_diverged']} RMSNorm runs, and "
            f"DyT's eval loss minus RMSNorm's (paired over seeds) is "
            + Interval(measured["dyt_loss_gap"], math.nan, measured["dyt_loss_gap_n"], measured["dyt_loss_gap_ci_low"],
                       measured["dyt_loss_gap_ci_high"]).text())
    return {"dyt_speedup": timing["speedup_percent"], "dyt_speedup_ci_low": timing["speedup_ci_low"],
            "dyt_speedup_ci_high": timing["speedup_ci_high"], "device": str(timing["device"]).split(":")[0],
            **measured, "dyt_fragility_text": text, **_minimal_change_figures(results, "dyt"),
            "evidence": evidence}


def _minimal_change_figures(results: Mapping[str, StudyResult], scheme: str) -> dict:
    """The scheme's minimal-change recipe (``recipes.MINIMAL_CHANGES`` of its recipe as specified)
    against RMSNorm at the largest rung it ran, as its own number beside the recipe as specified
    (``{scheme}_minimal_loss_gap…`` and ``{scheme}_minimal_change_text``); the text says so where
    it was not run. The verdict reads the recipe as specified only."""
    specified = SOURCE_RECIPES[scheme]
    change = MINIMAL_CHANGES.get(specified)
    prefix = f"{scheme}_minimal_loss_gap"
    if change is None or ladder_result(results) is None:
        return {f"{scheme}_minimal_change_text": "no minimal-change recipe run (no ladder results)"}
    try:
        figures = _ladder_figures(results, prefix, scheme, recipe=change)
    except ResultMissing:
        return {f"{scheme}_minimal_change_text": f"its minimal change {change} was not run"}
    interval = Interval(figures[prefix], math.nan, figures[f"{prefix}_n"], figures[f"{prefix}_ci_low"],
                        figures[f"{prefix}_ci_high"])
    return {**{key: value for key, value in figures.items() if key.startswith(prefix)},
            f"{scheme}_minimal_change_text": f"as its own row, the minimal change {change} (not the recipe as "
            f"specified, {specified}) minus RMSNorm at rung {figures['rung']}: {interval.text()}; "
            f"{figures[f'{prefix}_recipes']}"}


def measure_c7(results: Mapping[str, StudyResult]) -> dict:
    measured = _trained_gap(results, "bhyt", "loss_gap")
    measured["loss_gap_text"] = Interval(measured["loss_gap"], math.nan, measured["loss_gap_n"],
                                         measured["loss_gap_ci_low"], measured["loss_gap_ci_high"]).text()
    if ladder_result(results) is None:
        summary = _training_rows(results)
        measured.update({"bhyt_eval_loss": summary.loc["bhyt", "eval_loss_mean"],
                         "rmsnorm_eval_loss": summary.loc["rmsnorm", "eval_loss_mean"]})
    return measured


def measure_c8(results: Mapping[str, StudyResult]) -> dict:
    if ladder_result(results) is not None:
        measured = _ladder_figures(results, "mean_abs_ratio", "bhyt", ratio=True)
    else:
        summary = _training_rows(results)
        runs = results["training"].table("training_runs", *RUN_COLUMNS)
        seeds = int(runs[(runs["label"] == "bhyt") & ~runs["diverged"].astype(bool)]["seed"].nunique())
        measured = {"mean_abs_ratio": summary.loc["bhyt", "mean_abs_baseline_ratio"],
                    "mean_abs_ratio_ci_low": math.nan, "mean_abs_ratio_ci_high": math.nan,
                    "mean_abs_ratio_trend": f"one shape only (no ladder results); variance ratio "
                    f"×{summary.loc['bhyt', 'variance_baseline_ratio']:.2f}, growth across depth RMSNorm "
                    f"×{summary.loc['rmsnorm', 'growth_mean_abs']:.2f}, BHyT ×{summary.loc['bhyt', 'growth_mean_abs']:.2f}",
                    "mean_abs_ratio_recipes": "every scheme at one shared learning rate (no tuning)",
                    "rung": "none", "evidence": _training_evidence(results, seeds)}
    measured["mean_abs_ratio_text"] = (f"×{measured['mean_abs_ratio']:.2f} "
                                       f"{span(*interval_ends(measured, 'mean_abs_ratio'))}")
    return measured


def _paper_cells(measurement: pd.DataFrame) -> dict:
    """bhytc's estimate at the paper presets, cell by cell (layer × position ≥ 8): the worst
    |M₂/m − 1| and where; the largest *excess*, |M₂/m − 1| less its Monte Carlo allowance (the
    95 % two-sided Student-t quantile with n − 1 degrees of freedom times the standard error over
    the n seeds; none with one seed, which leaves the whole error); the share of cells within
    ``VARIANT_ESTIMATE_CONFIRM``; and the reference's worst for comparison. ``paper_excess`` is
    None where no preset was measured (quick runs)."""
    cells = measurement[(measurement["quantity"] == "ratio") & (measurement["shape"] != "study")
                        & (measurement["position"] >= 8)]
    if cells.empty:
        return {"paper_excess": None, "paper_cells": "not measured (quick)"}
    cells = cells.assign(error=(cells["measured"] - 1).abs())
    quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(cells["n_seeds"] - 1, 1))
    cells = cells.assign(excess=cells["error"] - quantile * cells["se"].fillna(0.0))
    texts, excess = [], 0.0
    for shape, table in cells.groupby("shape", sort=False):
        own = table[table["estimator"] == "correlation"]
        worst = own.loc[own["error"].idxmax()]
        reference = table.loc[table["estimator"] == "reference", "error"].max()
        within = float((own["error"] <= VARIANT_ESTIMATE_CONFIRM).mean())
        excess = max(excess, float(own["excess"].max()))
        texts.append(f"{shape} ({int(worst['n_seeds'])} seed{'s' if worst['n_seeds'] != 1 else ''}): worst "
                     f"{worst['error']:.1%} at layer {int(worst['layer'])}, t {int(worst['position'])}; "
                     f"{within:.0%} of cells within {VARIANT_ESTIMATE_CONFIRM:.0%}; reference's worst {reference:.1%}")
    return {"paper_excess": excess, "paper_cells": "; ".join(texts)}


def measure_v1(results: Mapping[str, StudyResult]) -> dict:
    columns = ("quantity", "shape", "scheme", "estimator", "layer", "position")
    prediction = results["bhytc"].table("bhytc_prediction", *columns, "predicted")
    measurement = results["bhytc"].table("bhytc_measurement", *columns, "measured", "se", "ci_low", "ci_high")
    keys = ["estimator", "layer"]
    late = lambda table: table[(table["quantity"] == "ratio") & (table["shape"] == "study")  # noqa: E731
                               & (table["position"] >= 8)]
    measured = late(measurement).groupby(keys)["measured"].mean()
    predicted = late(prediction).groupby(keys)["predicted"].mean()
    error = (measured - 1).abs()
    gap = (measured - predicted).abs() / predicted
    growth = measurement[measurement["quantity"] == "growth_exponent"].set_index("scheme")
    predicted_growth = prediction[prediction["quantity"] == "growth_exponent"].set_index(["shape", "scheme"])["predicted"]
    result = results["bhytc"]
    sizes = result.study.size(result.quick)
    return {
        "evidence": _init_evidence(_level(results, ["bhytc"]), sizes["seeds"],
                                   **_shape(sizes["depth"], sizes["width"], sizes["seq_len"])),
        "estimate_error": float(error["correlation"].max()),
        "worst_layer": int(error["correlation"].idxmax()),
        "reference_error": float(error["reference"].max()), "position_error": float(error["position"].max()),
        "prediction_gap": float(gap.max()),
        "exponent": float(growth.loc["bhytc", "measured"]), "exponent_ci_low": float(growth.loc["bhytc", "ci_low"]),
        "exponent_ci_high": float(growth.loc["bhytc", "ci_high"]),
        "predicted_exponent": float(predicted_growth[("study", "bhytc")]),
        "bhyt_exponent": float(growth.loc["bhyt", "measured"]),
        "paper_shape_exponents": ", ".join(f"{shape} {scheme} {value:.3f}" for (shape, scheme), value
                                           in predicted_growth.items() if shape != "study") or "not computed (quick)",
        **_paper_cells(measurement),
    }
