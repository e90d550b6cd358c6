"""Figures and short tables of every study, drawn from the studies' tidy tables.

Each ``figure_<study>(tables, path)`` draws one PNG from the tables that
``bhyt_theory.pipeline.studies`` produced (study name → its tables by name); each
``table_<study>(tables)`` returns the short table the report shows beside it.
They compute nothing but views of those tables, so a notebook can call them on
its own results; with ``path=None`` a figure function returns the matplotlib
figure instead of writing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

Tables = Mapping[str, pd.DataFrame]

# Schemes that compute (nearly) the same numbers at initialisation get the same
# colour family but different line styles and markers, so coinciding curves stay
# distinguishable: dyt/derf, and bhyt/bhytline (identical by construction)/bhytstar.
SCHEME_STYLES = {
    "rmsnorm": dict(color="#1f77b4", linestyle="-", marker=None, linewidth=2.0),
    "periln": dict(color="#ff7f0e", linestyle="-", marker=None, linewidth=1.6),
    "lns": dict(color="#2ca02c", linestyle="-", marker=None, linewidth=1.6),
    "dyt": dict(color="#d62728", linestyle="-", marker=None, linewidth=3.0, alpha=0.6),
    "derf": dict(color="#8c1515", linestyle="--", marker="s", markersize=4, linewidth=1.2),
    "bhyt": dict(color="#9467bd", linestyle="-", marker=None, linewidth=4.0, alpha=0.45),
    "bhytline": dict(color="#4b2a7b", linestyle="--", marker="o", markersize=4, linewidth=1.4),
    "bhytstar": dict(color="#e377c2", linestyle=":", marker="x", markersize=5, linewidth=1.8),
}
DPI = 110


def style(scheme: str, n_points: int = 0) -> dict:
    """Line style of ``scheme``; markers thinned to about 12 per curve."""
    chosen = dict(SCHEME_STYLES.get(scheme, {}))
    if chosen.get("marker") and n_points:
        chosen["markevery"] = max(1, n_points // 12)
    return chosen


def _save(figure, path: Path | None):
    """Write ``figure`` to ``path`` and close it; with ``path=None`` return it (for a notebook)."""
    if path is None:
        return figure
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return None


def _band(axis, x, low, high, scheme: str) -> None:
    axis.fill_between(x, low, high, color=SCHEME_STYLES.get(scheme, {}).get("color"), alpha=0.15, linewidth=0)


def _legend_right(axis, **kwargs) -> None:
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


# ---------------------------------------------------------------- depth trace

def figure_trace(tables: Tables, path: Path | None = None):
    """rms of the residual stream per layer (left) and the tanh argument's rms (right), seed bands (95 % CI)."""
    trace = tables["trace"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    handles = {}
    for axis, statistic, sublayer in ((left, "rms", "mlp"), (right, "arg_rms", "attn")):
        part = trace[(trace["statistic"] == statistic) & (trace["sublayer"] == sublayer)]
        for scheme, rows in part.groupby("scheme", sort=False):
            if rows["mean"].isna().all():
                continue
            (line,) = axis.plot(rows["layer"], rows["mean"], label=scheme, **style(scheme, len(rows)))
            handles.setdefault(scheme, line)
            _band(axis, rows["layer"], rows["ci_low"].clip(lower=rows["mean"].min() / 10), rows["ci_high"], scheme)
        axis.set(xlabel="layer", yscale="log")
    first = trace.iloc[0]
    left.set(ylabel="rms of h after the block (position-averaged)",
             title=f"Residual stream at init (width {first['width']}, T {first['seq_len']}, {first['n_seeds']} seeds)")
    right.set(ylabel="rms of the tanh argument before attention", title="Tanh input scale (tanh-type norms)")
    right.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                 frameon=False)
    figure.text(0.01, -0.03, "bhyt and bhytline compute identical numbers (wide pale line under the dashed one); "
                "dyt and derf nearly coincide at init. Bands: 95 % interval across seeds.", fontsize=8)
    return _save(figure, path)


def table_trace(tables: Tables) -> pd.DataFrame:
    trace = tables["trace"]
    rms = trace[(trace["statistic"] == "rms") & (trace["sublayer"] == "mlp")]
    last = int(rms["layer"].max())
    picks = sorted({0, last // 2, last})
    cells = rms[rms["layer"].isin(picks)].assign(
        value=lambda t: t["mean"].map("{:.4g}".format) + " ± " + ((t["ci_high"] - t["ci_low"]) / 2).map("{:.1g}".format))
    table = cells.pivot(index="scheme", columns="layer", values="value")
    table.columns = [f"rms after layer {c}" for c in table.columns]
    return table.reindex(list(dict.fromkeys(rms["scheme"]))).reset_index()


# ---------------------------------------------------------------- growth

def _fitted_curve(fit: pd.Series, l: np.ndarray) -> np.ndarray:
    from ..experiments.growth import FORMS

    form = next(f for f in FORMS if f.name == fit["form"])
    curve = form.rms_from_y(fit["intercept"] + fit["slope"] * form.x(l))
    return np.where(curve > 0, curve, np.nan)  # a law clipped at 0 (rms² ≈ a + b·l, a < 0) is undefined there


def figure_growth(tables: Tables, path: Path | None = None):
    """Per scheme: Monte Carlo rms vs l (band: 95 % CI), the best fitted law, and the mean-field curve."""
    rms, fits, meanfield = tables["growth_rms"], tables["growth_fits"], tables["growth_meanfield"]
    schemes = list(dict.fromkeys(rms["scheme"]))
    columns = 4
    rows_ = int(np.ceil(len(schemes) / columns))
    figure, axes = plt.subplots(rows_, columns, figsize=(13, 3.0 * rows_ + 0.8), sharex=True, squeeze=False)
    for axis, scheme in zip(axes.flat, schemes):
        mc = rms[rms["scheme"] == scheme]
        l = mc["layer"].to_numpy() + 1
        axis.plot(l, mc["mean"], color="black", linewidth=1.5, label="Monte Carlo (band: 95 % CI over seeds)")
        axis.fill_between(l, mc["ci_low"].clip(lower=mc["mean"].min() / 2), mc["ci_high"], color="black", alpha=0.15,
                          linewidth=0)
        best = fits[(fits["scheme"] == scheme) & (fits["source"] == "monte carlo") & fits["best"].astype(bool)].iloc[0]
        axis.plot(l, _fitted_curve(best, l.astype(float)), color="#d62728", linestyle="--", linewidth=1.3,
                  label="best fitted law (in title)")
        mf = meanfield[meanfield["scheme"] == scheme]
        axis.plot(mf["layer"] + 1, mf["rms"], color="#1f77b4", linestyle=":", linewidth=2.2, label="mean field")
        power = fits[(fits["scheme"] == scheme) & (fits["source"] == "monte carlo") & (fits["form"] == "power")].iloc[0]
        axis.set_title(f"{scheme}: best {best['law']}\npower-law exponent {power['slope']:.2f}", fontsize=9)
        axis.set(xscale="log", yscale="log")
    for axis in axes.flat[len(schemes):]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("blocks applied l")
    for axis in axes[:, 0]:
        axis.set_ylabel("rms (position-averaged)")
    first = rms.iloc[0]
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.04))
    figure.suptitle(f"Growth with depth at init: width {first['width']}, T {first['seq_len']}, depth {first['depth']}, "
                    f"{first['n_seeds']} seeds (each panel its own y range)", fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def table_growth(tables: Tables) -> pd.DataFrame:
    fits = tables["growth_fits"]
    power = fits[fits["form"] == "power"].set_index(["scheme", "source"])
    best = fits[fits["best"].astype(bool)].set_index(["scheme", "source"])["law"]
    out = pd.DataFrame({
        "best law": best,
        "power exponent p": power["slope"].map("{:.3f}".format)
        + power["slope_ci_low"].map(lambda v: "" if pd.isna(v) else f" [{v:.3f}, ")
        + power["slope_ci_high"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}]"),
        "rms first": power["rms_first"].map("{:.4g}".format),
        "rms last": power["rms_last"].map("{:.4g}".format),
    })
    return out.reset_index()


# ---------------------------------------------------------------- mean field vs Monte Carlo

def figure_meanfield(tables: Tables, path: Path | None = None):
    """Per scheme: mean square after each block, Monte Carlo (± 2 SE) and the mean-field recursion."""
    table = tables["meanfield_vs_montecarlo"]
    table = table[(table["statistic"] == "mean_square") & (table["sublayer"] == "mlp")]
    schemes = list(dict.fromkeys(table["scheme"]))
    columns = 4
    figure, axes = plt.subplots(int(np.ceil(len(schemes) / columns)), columns, figsize=(13, 6.2), sharex=True,
                                squeeze=False)
    for axis, scheme in zip(axes.flat, schemes):
        part = table[table["scheme"] == scheme]
        axis.errorbar(part["layer"], part["monte_carlo"], yerr=2 * part["standard_error"].fillna(0), fmt="o",
                      markersize=3, color="black", label="Monte Carlo ± 2 SE")
        axis.plot(part["layer"], part["mean_field"], color="#1f77b4", linewidth=1.6, label="mean field")
        worst = part["relative_error"].abs().max()
        axis.set_title(f"{scheme}: max |MF/MC − 1| = {worst:.1%}", fontsize=9)
        axis.set(yscale="log")
        axis.legend(fontsize=7, loc="lower right")
    for axis in axes.flat[len(schemes):]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("layer")
    for axis in axes[:, 0]:
        axis.set_ylabel("mean square m(h)")
    first = table.iloc[0]
    figure.suptitle(f"Mean field (token Gram recursion) vs Monte Carlo: width {first['width']}, T {first['seq_len']}",
                    fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def table_meanfield(tables: Tables) -> pd.DataFrame:
    from ..experiments.meanfield import comparison_summary

    table = tables["meanfield_vs_montecarlo"]
    summary = comparison_summary(table, "mean_square")
    return pd.DataFrame({
        "last layer MF/MC − 1": summary["last_relative_error"].map("{:+.2%}".format),
        "(MF − MC)/SE": summary["last_z"].map("{:+.1f}".format),
        "largest |MF/MC − 1|": summary["worst_relative_error"].map("{:+.2%}".format),
        "at layer, sublayer": summary["worst_layer"].astype(str) + ", " + summary["worst_sublayer"],
    }).reset_index()


# ---------------------------------------------------------------- variance approximation

def figure_variance(tables: Tables, path: Path | None = None):
    """M₂/m(h′) as a layer × position heat map, one panel per estimator (1 = exact; red: undercount)."""
    table = tables["variance_estimators"]
    estimators = list(dict.fromkeys(table["estimator"]))
    columns = 4
    rows_ = int(np.ceil(len(estimators) / columns))
    figure, axes = plt.subplots(rows_, columns, figsize=(14, 2.6 * rows_ + 0.6), squeeze=False)
    # symmetric colour range around 1, wide enough for the largest error (at least ±5 %)
    spread = max(0.05, float((table["ratio"] - 1).abs().max()))
    norm = TwoSlopeNorm(vmin=1 - spread, vcenter=1.0, vmax=1 + spread)
    image = None
    for axis, estimator in zip(axes.flat, estimators):
        grid = table[table["estimator"] == estimator].pivot(index="layer", columns="position", values="ratio")
        image = axis.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu", norm=norm, interpolation="nearest",
                            extent=(-0.5, grid.shape[1] - 0.5, grid.shape[0] - 0.5, -0.5))
        axis.set_yticks(range(len(grid.index)), [str(v) for v in grid.index])
        error = (grid - 1).abs()
        axis.set_title(f"{estimator}\nmean |r−1| {error.to_numpy().mean():.3f}, max {error.to_numpy().max():.3f}",
                       fontsize=9)
        axis.set_xlabel("position t")
        axis.set_ylabel("layer")
    for axis in axes.flat[len(estimators):]:
        axis.set_visible(False)
    first = table.iloc[0]
    figure.suptitle(f"M₂ / m(h′) per layer × position at init (width {first['width']}, T {first['seq_len']}, "
                    f"seeds: {first['seeds']}); < 1 (red): the second BHyT sees a larger argument than designed", fontsize=11)
    figure.tight_layout()
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="M₂ / m(h′)")
    return _save(figure, path)


def table_variance(tables: Tables) -> pd.DataFrame:
    from ..experiments.variance import estimator_errors

    table = tables["variance_estimators"]
    errors = estimator_errors(table).rename(columns={"mean": "mean |ratio − 1|", "max": "max |ratio − 1|"})
    ratios = table.groupby("estimator", sort=False)["ratio"].agg(min_ratio="min", max_ratio="max")
    return errors.join(ratios).reset_index()


def figure_variance_decomposition(tables: Tables, path: Path | None = None):
    """The error terms of the paper's M₂ (relative to m(h′)) against position, one panel per layer."""
    from ..experiments.variance import ERROR_TERMS

    table = tables["variance_decomposition"]
    means = table.groupby(["layer", "position"])[[*ERROR_TERMS, "reference_ratio"]].mean().reset_index()
    layers = list(dict.fromkeys(means["layer"]))
    figure, axes = plt.subplots(1, len(layers), figsize=(3.3 * len(layers), 3.6), sharey=True, squeeze=False)
    term_styles = dict(zip(ERROR_TERMS, ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))))
    for axis, layer in zip(axes[0], layers):
        part = means[means["layer"] == layer]
        position = part["position"] + 1
        for term in ERROR_TERMS:
            axis.plot(position, part[term], linestyle=term_styles[term], linewidth=1.5, label=term)
        axis.plot(position, 1 - part["reference_ratio"], color="black", linewidth=2.2, label="total: 1 − M₂/m")
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.set(xscale="log", title=f"layer {layer}", xlabel="position t + 1")
    axes[0, 0].set_ylabel("term / m(h′)")
    _legend_right(axes[0, -1])
    figure.suptitle("Where the paper's M₂ goes wrong: reference + Σ terms = m(h′) (seed mean)", fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def table_variance_decomposition(tables: Tables) -> pd.DataFrame:
    from ..experiments.variance import ERROR_TERMS

    table = tables["variance_decomposition"]
    return table.groupby("layer")[["reference_ratio", *ERROR_TERMS]].mean().reset_index()


# ---------------------------------------------------------------- Jacobian

def figure_jacobian(tables: Tables, path: Path | None = None):
    """‖∂h_{l+1}/∂h_l − I‖_F/‖I‖_F per scheme and layer (± probe standard error)."""
    table = tables["jacobian"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for scheme, part in table.groupby("scheme", sort=False):
        means = part.groupby("layer").agg(deviation=("deviation", "mean"), rms_in=("rms_in", "mean"),
                                          se=("standard_error", lambda se: np.sqrt((se**2).sum()) / len(se)))
        kwargs = style(scheme)
        left.errorbar(means.index, means["deviation"], yerr=means["se"], label=scheme, capsize=2, **kwargs)
        right.plot(means["rms_in"], means["deviation"], label=scheme, **{**kwargs, "marker": kwargs.get("marker") or "."})
    left.set(xlabel="layer", ylabel="Jacobian deviation from I", yscale="log",
             title="Identity-likeness of each block at init (smaller = more identity-like)")
    right.set(xlabel="rms of the block's input", ylabel="Jacobian deviation", xscale="log", yscale="log",
              title="Deviation against input scale (δ ∝ 1/rms: slope −1)")
    _legend_right(right)
    return _save(figure, path)


def table_jacobian(tables: Tables) -> pd.DataFrame:
    from ..experiments.jacobian import deviation_table

    table = deviation_table(tables["jacobian"])
    table.columns = [f"layer {c}" for c in table.columns]
    return table.reset_index()


# ---------------------------------------------------------------- bounds

def figure_bounds(tables: Tables, path: Path | None = None):
    """Tightest measured/bound per scheme: depth bound (left), saturation bound (right); 1 = attained."""
    table = tables["bounds_tightness"].assign(kind=lambda t: np.where(t["bound"].astype(str) == "depth", "depth",
                                                                       "saturation"))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.0))
    for axis, kind in zip(axes, ("depth", "saturation")):
        part = table[table["kind"] == kind].groupby(["scheme", "setting"])["ratio"].max().unstack("setting")
        part = part.reindex(columns=[c for c in ("search", "default_init") if c in part.columns])
        position = np.arange(len(part))
        for index, setting in enumerate(part.columns):
            axis.barh(position + (index - 0.5) * 0.4, part[setting].to_numpy(), 0.4, label=setting,
                      hatch=("", "//")[index], edgecolor="black", linewidth=0.5)
        axis.axvline(1.0, color="black", linestyle="--", linewidth=1)
        low, high = float(np.nanmin(part.to_numpy())), float(np.nanmax(part.to_numpy()))
        logarithmic = low < 0.05  # ratios spanning decades (default init vs search) need a log axis
        axis.set(yticks=position, yticklabels=list(part.index), xscale="log" if logarithmic else "linear",
                 xlim=(low / 2, max(1.5, 1.2 * high)) if logarithmic else (0, max(1.05, 1.05 * high)),
                 xlabel="largest measured / bound (1 = attained, > 1 = violated)",
                 title=f"{kind} bound" + (" (log scale)" if logarithmic else ""))
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, ["adversarial search" if l == "search" else "default initialisation" for l in labels],
                  loc="lower center", ncol=2, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.06))
    figure.tight_layout()
    return _save(figure, path)


def table_bounds(tables: Tables) -> pd.DataFrame:
    table = tables["bounds_tightness"]
    kind = np.where(table["bound"].astype(str) == "depth", "depth", "saturation")
    best = table.assign(kind=kind).sort_values("ratio", ascending=False).groupby(["kind", "setting"], sort=False).head(3)
    return best[["kind", "setting", "bound", "scheme", "ratio", "construction"]].reset_index(drop=True)


# ---------------------------------------------------------------- checks, decode (tables only)

def table_checks(tables: Tables) -> pd.DataFrame:
    checks = tables["checks"]
    failed = checks[~checks["passed"].astype(bool)]
    summary = pd.DataFrame([{"checks": len(checks), "passed": int(checks["passed"].astype(bool).sum()),
                             "failed": ", ".join(failed["check"]) or "none", "proofs": len(tables["proofs"])}])
    return summary


def table_decode(tables: Tables) -> pd.DataFrame:
    return tables["decode_exactness"]


# ---------------------------------------------------------------- efficiency

def figure_efficiency(tables: Tables, path: Path | None = None):
    """Counted cost per block (left) and measured speed-up over RMSNorm with 95 % CI (right)."""
    costs, timings = tables["efficiency_costs"], tables["efficiency_timings"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    forward = costs[costs["pass"] == "forward"].set_index("scheme")
    backward = costs[costs["pass"] == "backward"].set_index("scheme")
    schemes = list(forward.index)
    position = np.arange(len(schemes))
    total_bytes = forward["activation_bytes"] + backward["activation_bytes"]
    bars = {
        "row reductions, forward": forward["row_reductions"],
        "row reductions, backward": backward["row_reductions"],
        "tanh per element, fwd + bwd": (forward["transcendental_elementwise"] + backward["transcendental_elementwise"])
        / forward["width"],
        "bytes vs RMSNorm, fwd + bwd": total_bytes / total_bytes.get("rmsnorm", total_bytes.iloc[0]),
    }
    width = 0.8 / len(bars)
    for index, (label, values) in enumerate(bars.items()):
        left.bar(position + (index - (len(bars) - 1) / 2) * width, values.to_numpy(), width, label=label,
                 hatch=("", "//", "..", "xx")[index % 4], edgecolor="black", linewidth=0.5)
    left.set(xticks=position, xticklabels=schemes, ylabel="per token, both norm sites of a block",
             title=f"Counted cost (width {int(forward['width'].iloc[0])})")
    left.legend(fontsize=8, loc="upper left")
    measurements = list(dict.fromkeys(timings["measurement"]))
    width = 0.8 / max(len(measurements), 1)
    for index, measurement in enumerate(measurements):
        part = timings[timings["measurement"] == measurement].set_index("scheme").reindex(schemes)
        mean = part["speedup_percent"].to_numpy()
        error = np.vstack([mean - part["speedup_ci_low"].to_numpy(), part["speedup_ci_high"].to_numpy() - mean])
        error = np.where(np.isfinite(error), error, np.nan)  # an unbounded interval (very noisy rounds) gets no bar
        right.bar(position + (index - (len(measurements) - 1) / 2) * width, mean, width, yerr=error,
                  capsize=3, label=measurement, hatch=("", "//")[index % 2], edgecolor="black", linewidth=0.5)
    right.axhline(0, color="black", linewidth=0.8)
    for version, marker in (("v3", "*"),):
        right.plot([], [], marker=marker, linestyle="none", color="black", label=f"paper {version}: +1.6 % / +1.77 %")
    if "bhyt" in schemes:
        right.plot(schemes.index("bhyt") + np.array([-0.2, 0.2]), [1.6, 1.77], marker="*", linestyle="none",
                   color="black", markersize=10)
    hardware = timings["hardware"].iloc[0]
    right.set(xticks=position, xticklabels=schemes, ylabel="speed-up over RMSNorm, % (95 % CI)",
              title=f"Measured on {hardware}"[:70])
    right.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def table_efficiency(tables: Tables) -> pd.DataFrame:
    timings = tables["efficiency_timings"]
    return pd.DataFrame({
        "measurement": timings["measurement"], "scheme": timings["scheme"],
        "time / RMSNorm": timings["ratio"].map("{:.3f}".format) + " [" + timings["ratio_ci_low"].map("{:.3f}".format)
        + ", " + timings["ratio_ci_high"].map("{:.3f}".format) + "]",
        "speed-up %": timings["speedup_percent"].map("{:+.1f}".format),
        "hardware": timings["hardware"] + " (" + timings["device"] + ")",
    })


# ---------------------------------------------------------------- trained regime

def _statistics_steps(log: pd.DataFrame) -> pd.DataFrame:
    """Per-layer statistics rows at each run's first (``init``) and last (``trained``) statistics step."""
    stats = log[log["quantity"].isin(["mean_abs", "variance"]) & log["sublayer"].isin(["embedding", "mlp"])]
    first = stats.groupby("run_id")["step"].transform("min")
    last = stats.groupby("run_id")["step"].transform("max")
    return pd.concat([stats[stats["step"] == first].assign(when="init"),
                      stats[stats["step"] == last].assign(when="trained")], ignore_index=True)


def figure_training(tables: Tables, path: Path | None = None):
    """Loss curves (left) and the Fig. 3 analogue: per-layer mean |h| and variance of the residual
    stream at init (dotted) and after training (solid), seed means; layer −1 is the embedding output."""
    log = tables["training_log"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    labels = list(dict.fromkeys(log["label"]))
    for label in labels:
        scheme = log.loc[log["label"] == label, "scheme"].iloc[0]
        chosen = {k: v for k, v in style(scheme).items() if k not in ("marker", "markersize")}
        train = log[(log["label"] == label) & (log["quantity"] == "train_loss")].groupby("step")["value"].mean()
        axes[0].plot(train.index, train.rolling(10, min_periods=1).mean(), label=label, **chosen)
        held_out = log[(log["label"] == label) & (log["quantity"] == "eval_loss")].groupby("step")["value"].mean()
        axes[0].plot(held_out.index, held_out.values, "o", color=chosen.get("color"), markersize=3)
    axes[0].set(xlabel="step", ylabel="loss (nats per byte)", title="Training (10-step mean) and held-out (o) loss")
    rows = _statistics_steps(log)
    for axis, statistic in zip(axes[1:], ("mean_abs", "variance")):
        for label in labels:
            scheme = log.loc[log["label"] == label, "scheme"].iloc[0]
            for when, line in (("init", ":"), ("trained", "-")):
                curve = rows[(rows["label"] == label) & (rows["quantity"] == statistic) & (rows["when"] == when)]
                curve = curve.groupby("layer")["value"].mean()
                axis.plot(curve.index, curve.values, color=SCHEME_STYLES.get(scheme, {}).get("color"), linestyle=line,
                          marker=SCHEME_STYLES.get(scheme, {}).get("marker") or ".", markersize=4,
                          label=f"{label}" if when == "trained" else None)
        axis.set(xlabel="layer (−1: embedding output)", ylabel=statistic, yscale="log",
                 title=f"{statistic} per layer: init (dotted), trained (solid)")
    _legend_right(axes[2])
    figure.tight_layout()
    return _save(figure, path)


def table_training(tables: Tables) -> pd.DataFrame:
    summary = tables["training_summary"]
    columns = [c for c in ("label", "n_runs", "n_diverged", "eval_loss_mean", "eval_loss_sd", "last_mean_abs",
                           "last_variance", "growth_mean_abs", "mean_abs_baseline_ratio", "variance_baseline_ratio")
               if c in summary.columns]
    return summary[columns]


VIEWS: dict[str, tuple[Callable[[Tables, Path], None] | None, Callable[[Tables], pd.DataFrame]]] = {
    "trace": (figure_trace, table_trace),
    "growth": (figure_growth, table_growth),
    "meanfield": (figure_meanfield, table_meanfield),
    "variance": (figure_variance, table_variance),
    "variance_decomposition": (figure_variance_decomposition, table_variance_decomposition),
    "jacobian": (figure_jacobian, table_jacobian),
    "bounds": (figure_bounds, table_bounds),
    "checks": (None, table_checks),
    "efficiency": (figure_efficiency, table_efficiency),
    "training": (figure_training, table_training),
    "decode": (None, table_decode),
}
"""Study name → (figure function or None, short-table function)."""
