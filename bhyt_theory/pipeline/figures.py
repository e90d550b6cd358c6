"""Figures and short tables of every study, drawn from the studies' tidy tables.

Each ``figure_<study>(tables, path)`` draws one PNG from the tables that
``bhyt_theory.pipeline.studies`` produced (study name → its tables by name), with the
drawing primitives of ``styles``; each ``table_<study>(tables)`` returns the short
table the report shows beside it.
They compute nothing but views of those tables, so a notebook can call them on
its own results; with ``path=None`` a figure function returns the matplotlib
figure instead of writing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .styles import SCHEME_STYLES, Tables, band, legend_right, ratio_heat_map, ratio_norm, save, style


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
            band(axis, rows["layer"], rows["ci_low"].clip(lower=rows["mean"].min() / 10), rows["ci_high"], scheme)
        axis.set(xlabel="layer", yscale="log")
    first = trace.iloc[0]
    left.set(ylabel="rms of h after the block (position-averaged)",
             title=f"Residual stream at init (width {first['width']}, T {first['seq_len']}, {first['n_seeds']} seeds)")
    right.set(ylabel="rms of the tanh argument before attention", title="Tanh input scale (tanh-type norms)")
    right.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                 frameon=False)
    figure.text(0.01, -0.03, "bhyt and bhytline compute identical numbers (wide pale line under the dashed one); "
                "dyt and derf nearly coincide at init. Bands: 95 % interval across seeds.", fontsize=8)
    return save(figure, path)


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
    # one log y range for every panel: a flat curve looks flat, and a ×1.3 growth is not drawn as tall as a ×6
    figure, axes = plt.subplots(rows_, columns, figsize=(13, 3.0 * rows_ + 0.8), sharex=True, sharey=True,
                                squeeze=False)
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
        axis.set_title(f"{scheme}: ×{power['rms_last'] / power['rms_first']:.2f} from block 1 to {int(l[-1])}\n"
                       f"best {best['law']}, power-law exponent {power['slope']:.2f}", fontsize=9)
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
                    f"{first['n_seeds']} seeds (one log y range for all panels)", fontsize=11)
    figure.tight_layout()
    return save(figure, path)


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
    return save(figure, path)


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
    norm = ratio_norm(table["ratio"])
    image = None
    for axis, estimator in zip(axes.flat, estimators):
        image = ratio_heat_map(axis, table[table["estimator"] == estimator], norm, estimator)
    for axis in axes.flat[len(estimators):]:
        axis.set_visible(False)
    first = table.iloc[0]
    figure.suptitle(f"M₂ / m(h′) per layer × position at init (width {first['width']}, T {first['seq_len']}, "
                    f"seeds: {first['seeds']}); < 1 (red): the second BHyT sees a larger argument than designed", fontsize=11)
    figure.tight_layout()
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="M₂ / m(h′)")
    return save(figure, path)


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
    legend_right(axes[0, -1])
    figure.suptitle("Where the paper's M₂ goes wrong: reference + Σ terms = m(h′) (seed mean)", fontsize=11)
    figure.tight_layout()
    return save(figure, path)


def table_variance_decomposition(tables: Tables) -> pd.DataFrame:
    from ..experiments.variance import ERROR_TERMS

    table = tables["variance_decomposition"]
    return table.groupby("layer")[["reference_ratio", *ERROR_TERMS]].mean().reset_index()


# ---------------------------------------------------------------- Jacobian

def figure_jacobian(tables: Tables, path: Path | None = None):
    """‖∂h_{l+1}/∂h_l − I‖_F/‖I‖_F per scheme and layer (± probe standard error, left), and against
    the block's input rms with a slope −1 reference (right)."""
    table = tables["jacobian"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    points = []
    for scheme, part in table.groupby("scheme", sort=False):
        means = part.groupby("layer").agg(deviation=("deviation", "mean"), rms_in=("rms_in", "mean"),
                                          se=("standard_error", lambda se: np.sqrt((se**2).sum()) / len(se)))
        kwargs = style(scheme)
        label = scheme
        if scheme == "bhyt" and "bhytline" not in set(table["scheme"]):
            label = "bhyt (= bhytline: the same scheme record, not recomputed)"
        left.errorbar(means.index, means["deviation"], yerr=means["se"], label=label, capsize=2, **kwargs)
        right.plot(means["rms_in"], means["deviation"], label=label, **{**kwargs, "marker": kwargs.get("marker") or "."})
        points.append(means[["rms_in", "deviation"]])
    # δ ∝ 1/rms through the points' geometric centre: a guide for the eye, not a fit
    points = pd.concat(points)
    points = points[(points["rms_in"] > 0) & (points["deviation"] > 0)]
    if len(points):
        centre_x, centre_y = np.exp(np.log(points).mean())
        x = np.geomspace(points["rms_in"].min(), points["rms_in"].max(), 50)
        right.plot(x, centre_y * centre_x / x, color="grey", linestyle="--", linewidth=1.2,
                   label="slope −1 (δ ∝ 1/rms), reference")
    left.set(xlabel="layer", ylabel="Jacobian deviation from I", yscale="log",
             title="Per layer (smaller = more identity-like)")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set(xlabel="rms of the block's input", ylabel="Jacobian deviation", xscale="log", yscale="log",
              title="Against the block's input rms (dashed: slope −1)")
    legend_right(right)
    first = table.iloc[0]
    figure.suptitle(f"Jacobian deviation at init: depth {first['depth']}, width {first['width']}, T {first['seq_len']}",
                    fontsize=11)
    figure.tight_layout()
    return save(figure, path)


def table_jacobian(tables: Tables) -> pd.DataFrame:
    from ..experiments.jacobian import deviation_table

    table = deviation_table(tables["jacobian"])
    table.columns = [f"layer {c}" for c in table.columns]
    return table.reset_index()


# ---------------------------------------------------------------- bounds

BOUND_SETTINGS = {"search": ("adversarial search", "o", "black"), "default_init": ("default initialisation", "s", "white")}


def figure_bounds(tables: Tables, path: Path | None = None):
    """Largest measured/bound of every bound, log scale: the depth bound per scheme and variant (left), the
    saturation bound per variant and threshold (right, the largest over the BHyT schemes); 1 = attained."""
    table = tables["bounds_tightness"].assign(kind=lambda t: np.where(t["bound"].astype(str) == "depth", "depth",
                                                                       "saturation"))
    table = table.assign(row=np.where(table["kind"] == "depth", table["scheme"] + " (" + table["variant"] + ")",
                                      table["bound"].astype(str).str.replace("saturation_", "", regex=False)))
    positive = table.loc[table["ratio"] > 0, "ratio"]
    floor = float(positive.min()) / 4 if len(positive) else 1e-3  # where a ratio of 0 (nothing saturated) is drawn
    panels = [(kind, table[table["kind"] == kind].groupby(["row", "setting"], sort=False)["ratio"].max().unstack())
              for kind in ("depth", "saturation")]
    heights = [max(len(part), 1) for _, part in panels]
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.32 * max(heights) + 1.8))
    for axis, (kind, part) in zip(axes, panels):
        position = np.arange(len(part))
        zero_rows = set()  # a ratio of 0 is labelled once per row, whichever settings reach it
        for setting in part.columns:
            name, marker, face = BOUND_SETTINGS.get(setting, (setting, "D", "grey"))
            values = part[setting].to_numpy(dtype=float)
            axis.plot(values[values > 0], position[values > 0], marker, markerfacecolor=face, markeredgecolor="black",
                      markersize=7, linestyle="none", label=name)
            axis.plot(np.full((values == 0).sum(), floor), position[values == 0], "<", markerfacecolor=face,
                      markeredgecolor="black", markersize=7, linestyle="none")
            for y, value in zip(position, values):
                if np.isfinite(value) and y not in zero_rows:
                    axis.annotate("0 (nothing reached the threshold)" if value == 0 else f"{value:.3g}",
                                  (max(value, floor), y), fontsize=7, xytext=(6, -3), textcoords="offset points")
                if value == 0:
                    zero_rows.add(y)
        axis.axvline(1.0, color="black", linestyle="--", linewidth=1)
        axis.axvspan(1.0, 10.0, color="#d62728", alpha=0.08, linewidth=0)
        axis.set(yticks=position, yticklabels=list(part.index), xscale="log", xlim=(floor / 2, 3.0),
                 ylim=(-0.7, len(part) - 0.3), xlabel="largest measured / bound (log; dashed 1 = attained, red = violated)",
                 title=f"{kind} bound" + (" (scheme, variant)" if kind == "depth" else
                                          " (variant, threshold; largest over the BHyT schemes)"))
        axis.invert_yaxis()
        axis.grid(axis="x", which="major", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.02))
    figure.suptitle("How close each bound comes to being attained (◀ at the left edge: a ratio of 0)", fontsize=11)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return save(figure, path)


def table_bounds(tables: Tables) -> pd.DataFrame:
    table = tables["bounds_tightness"]
    kind = np.where(table["bound"].astype(str) == "depth", "depth", "saturation")
    best = table.assign(kind=kind).sort_values("ratio", ascending=False).groupby(["kind", "setting"], sort=False).head(3)
    return best[["kind", "setting", "bound", "scheme", "ratio", "construction"]].reset_index(drop=True)


# ---------------------------------------------------------------- checks (a table only), decode

def table_checks(tables: Tables) -> pd.DataFrame:
    checks = tables["checks"]
    failed = checks[~checks["passed"].astype(bool)]
    summary = pd.DataFrame([{"checks": len(checks), "passed": int(checks["passed"].astype(bool).sum()),
                             "failed": ", ".join(failed["check"]) or "none", "proofs": len(tables["proofs"])}])
    return summary


def figure_decode(tables: Tables, path: Path | None = None):
    """Per dtype × order of operations: the fraction of normaliser outputs that differ from the
    reference (left; the cell says the largest difference in ulps) and the fraction of greedy sequences
    left identical (right)."""
    table = tables["decode_exactness"]
    dtypes, orders = list(dict.fromkeys(table["dtype"])), list(dict.fromkeys(table["order"]))
    grid = table.set_index(["dtype", "order"])
    figure, axes = plt.subplots(1, 2, figsize=(12, 1.0 * len(dtypes) + 1.8))
    # colour: how far each cell is from the exact value (0 differing, 1 identical); red = further
    panels = (("norm_fraction_differing", "fraction of normaliser outputs differing", 0.0, "(bit-exact)"),
              ("greedy_identical_fraction", "fraction of greedy sequences identical", 1.0, "(all identical)"))
    for axis, (column, title, exact, exact_text) in zip(axes, panels):
        values = grid[column].unstack("order").reindex(index=dtypes, columns=orders).to_numpy(dtype=float)
        axis.imshow(np.abs(values - exact), cmap="Reds", vmin=0, vmax=1, aspect="auto")
        for i, dtype in enumerate(dtypes):
            for j, order in enumerate(orders):
                if (dtype, order) not in grid.index:
                    continue
                row = grid.loc[(dtype, order)]
                text = f"{row[column]:.3g}"
                if column == "norm_fraction_differing":
                    text += f"\nmax {int(row['norm_max_ulps'])} ulps"
                text += f"\n{exact_text}" if row[column] == exact else ""
                axis.text(j, i, text, ha="center", va="center", fontsize=8)
        axis.set(xticks=range(len(orders)), xticklabels=orders, yticks=range(len(dtypes)), yticklabels=dtypes,
                 xlabel="order of operations of the decode fast path", title=title)
    figure.suptitle(f"Decode fast path against the unfused Block.forward ({int(table['norm_outputs'].iloc[0])} normaliser "
                    f"outputs, {int(table['greedy_sequences'].iloc[0])} greedy sequences per cell)", fontsize=11)
    figure.tight_layout()
    return save(figure, path)


def table_decode(tables: Tables) -> pd.DataFrame:
    table = tables["decode_exactness"]
    return pd.DataFrame({
        "dtype": table["dtype"], "order": table["order"],
        "norm outputs differing": table["norm_fraction_differing"], "max ulps": table["norm_max_ulps"],
        "block outputs differing": table["block_fraction_differing"],
        "block max rel. diff.": table["block_max_relative_difference"],
        "greedy identical": table["greedy_identical_fraction"], "greedy tokens agreeing": table["greedy_token_agreement"],
    })


# ---------------------------------------------------------------- efficiency

PAPER_SPEEDUPS_V3 = {"block forward+backward": 1.6, "decode step": 1.77}
"""BHyT's speed-up over RMSNorm in v3 of the paper, per cent (GPU; claim C6)."""


def figure_efficiency(tables: Tables, path: Path | None = None):
    """Counted cost per block (left) and measured time / RMSNorm on a log axis with its interval (right);
    contended measurements are drawn hollow and labelled."""
    costs, timings = tables["efficiency_costs"], tables["efficiency_timings"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4))
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
    offsets = (np.arange(len(measurements)) - (len(measurements) - 1) / 2) * 0.25
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
    for index, measurement in enumerate(measurements):
        part = timings[timings["measurement"] == measurement].set_index("scheme").reindex(schemes)
        y = position + offsets[index]
        colour = colours[index % len(colours)]
        for row_y, (scheme, row) in zip(y, part.iterrows()):
            if pd.isna(row["ratio"]):
                continue
            contended = bool(row["contended"])
            right.plot([row["ratio_ci_low"], row["ratio_ci_high"]], [row_y, row_y], color=colour, linewidth=2,
                       linestyle=":" if contended else "-")
            right.plot(row["ratio"], row_y, "o", markersize=7, color=colour,
                       markerfacecolor="white" if contended else colour)
            right.annotate(f"{row['ratio']:.3g}" + (" contended" if contended else ""),
                           (row["ratio_ci_high"], row_y), xytext=(4, -3), textcoords="offset points", fontsize=7)
        right.plot([], [], "o-", color=colour, label=measurement)
        if "bhyt" in schemes and measurement in PAPER_SPEEDUPS_V3:
            right.plot(1 / (1 + PAPER_SPEEDUPS_V3[measurement] / 100), schemes.index("bhyt") + offsets[index], "*",
                       color="black", markersize=11)
    right.plot([], [], "*", color="black", markersize=11, label="paper v3, GPU: +1.6 % / +1.77 %")
    right.plot([], [], "o:", color="grey", markerfacecolor="white",
               label="contended rounds: interval widened to the rounds' range")
    right.axvline(1.0, color="black", linewidth=0.8)
    right.set_xscale("log")
    low, high = timings["ratio_ci_low"].min(), timings["ratio_ci_high"].max()
    right.set_xlim(min(low, 0.9) / 1.15, max(high, 1.1) * 1.6)
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # ratios read as 0.8, 1, 2 rather than 8×10⁻¹
    right.xaxis.set_major_formatter(plain)
    right.xaxis.set_minor_formatter(plain)
    right.tick_params(axis="x", which="minor", labelsize=7)
    right.set(yticks=position, yticklabels=schemes, ylim=(len(schemes) - 0.5, -0.5),
              xlabel="time / RMSNorm (log scale; < 1 faster), geometric mean and 95 % interval over rounds")
    first = timings.iloc[0]
    right.set_title(f"Measured on {first['hardware']}"[:80] + f"\n{int(first['rounds'])} interleaved rounds; evidence "
                    f"for {first['evidence_for']} only",
                    fontsize=9)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    right.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    return save(figure, path)


def table_efficiency(tables: Tables) -> pd.DataFrame:
    timings = tables["efficiency_timings"]
    return pd.DataFrame({
        "measurement": timings["measurement"], "scheme": timings["scheme"],
        "time / RMSNorm [95 % CI]": timings["ratio"].map("{:.3g}".format) + " [" + timings["ratio_ci_low"].map(
            "{:.3g}".format) + ", " + timings["ratio_ci_high"].map("{:.3g}".format) + "]",
        "speed-up % [95 % CI]": timings["speedup_percent"].map("{:+.1f}".format) + " [" + timings["speedup_ci_low"].map(
            "{:+.1f}".format) + ", " + timings["speedup_ci_high"].map("{:+.1f}".format) + "]",
        "rounds (dof)": timings["rounds"].astype(str) + " (" + timings["dof"].astype(str) + ")",
        "contended": np.where(timings["contended"], "yes: sd of log ratio " + timings["log_ratio_sd"].map(
            "{:.2f}".format) + ", interval widened", "no"),
        "hardware": timings["hardware"] + " (" + timings["device"] + ")",
        "evidence for": timings["evidence_for"],
    })


# ---------------------------------------------------------------- trained regime

def _statistics_steps(log: pd.DataFrame) -> pd.DataFrame:
    """Per-layer statistics rows at each run's first (``init``) and last (``trained``) statistics step."""
    stats = log[log["quantity"].isin(["mean_abs", "variance"]) & log["sublayer"].isin(["embedding", "mlp"])]
    first = stats.groupby("run_id")["step"].transform("min")
    last = stats.groupby("run_id")["step"].transform("max")
    return pd.concat([stats[stats["step"] == first].assign(when="init"),
                      stats[stats["step"] == last].assign(when="trained")], ignore_index=True)


def training_sizes(tables: Tables) -> str:
    """The sizes of a training comparison, read off its tables: layers, steps, seeds per scheme, tokens per run."""
    log, runs = tables["training_log"], tables["training_runs"]
    layers = int(log.loc[log["layer"] >= 0, "layer"].max()) + 1
    seeds = int(runs.groupby("label")["seed"].nunique().max())
    return (f"{layers} layers, {int(runs['steps_done'].max())} steps, {seeds} seeds per scheme, "
            f"{int(runs['tokens_seen'].max()):,} tokens per run")


def figure_training(tables: Tables, path: Path | None = None):
    """Loss curves (left; training loss of each step's batch and held-out loss, both seed means and
    unsmoothed) and the Fig. 3 analogue: per-layer mean |h| and variance of the residual stream at init
    (dotted) and after training (solid), seed means; layer −1 is the embedding output. One legend."""
    log = tables["training_log"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    labels = list(dict.fromkeys(log["label"]))
    handles = {}
    for label in labels:
        scheme = log.loc[log["label"] == label, "scheme"].iloc[0]
        chosen = {k: v for k, v in style(scheme).items() if k not in ("marker", "markersize")}
        train = log[(log["label"] == label) & (log["quantity"] == "train_loss")].groupby("step")["value"].mean()
        # solid for every scheme: the per-layer panels use dotted for "at init"
        (line,) = axes[0].plot(train.index, train.values, **{**chosen, "linestyle": "-", "linewidth": 1.0, "alpha": 0.8})
        handles[label] = line
        held_out = log[(log["label"] == label) & (log["quantity"] == "eval_loss")].groupby("step")["value"].mean()
        axes[0].plot(held_out.index, held_out.values, "o", color=chosen.get("color"), markersize=6,
                     markeredgecolor="black")
    axes[0].set(xlabel="step", ylabel="loss (nats per byte)",
                title="Training loss (line, each step's batch) and held-out loss (o)")
    rows = _statistics_steps(log)
    for axis, statistic in zip(axes[1:], ("mean_abs", "variance")):
        for label in labels:
            scheme = log.loc[log["label"] == label, "scheme"].iloc[0]
            for when, line in (("init", ":"), ("trained", "-")):
                curve = rows[(rows["label"] == label) & (rows["quantity"] == statistic) & (rows["when"] == when)]
                curve = curve.groupby("layer")["value"].mean()
                axis.plot(curve.index, curve.values, color=SCHEME_STYLES.get(scheme, {}).get("color"), linestyle=line,
                          marker=SCHEME_STYLES.get(scheme, {}).get("marker") or ".", markersize=4)
        axis.set(xlabel="layer (−1: embedding output)", ylabel=statistic, yscale="log",
                 title=f"{statistic} per layer: init (dotted), trained (solid)")
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles["at init (per-layer panels)"] = plt.Line2D([], [], color="grey", linestyle=":", marker=".")
    handles["after training"] = plt.Line2D([], [], color="grey", linestyle="-", marker=".")
    figure.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), fontsize=9,
                  frameon=False, bbox_to_anchor=(0.5, -0.01))
    figure.suptitle(f"Pretraining on CPU, every scheme on the same data: {training_sizes(tables)} (seed means)",
                    fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return save(figure, path)


def table_training(tables: Tables) -> pd.DataFrame:
    summary = tables["training_summary"]
    columns = [c for c in ("label", "n_runs", "n_diverged", "eval_loss_mean", "eval_loss_sd", "last_mean_abs",
                           "last_variance", "growth_mean_abs", "mean_abs_baseline_ratio", "variance_baseline_ratio")
               if c in summary.columns]
    return summary[columns]




def figure_bhytc(tables: Tables, path: Path | None = None):
    """Measured M₂/m(h′) per layer × position: one row of panels per shape (the study's and each paper
    preset measured), one column per estimator; bhytc's "correlation" should be white everywhere."""
    measurement = tables["bhytc_measurement"]
    ratios = measurement[measurement["quantity"] == "ratio"].rename(columns={"measured": "ratio"})
    shapes = list(dict.fromkeys(ratios["shape"]))
    estimators = list(dict.fromkeys(ratios["estimator"]))
    figure, axes = plt.subplots(len(shapes), len(estimators), figsize=(4.6 * len(estimators), 2.8 * len(shapes) + 0.6),
                                squeeze=False)
    norm = ratio_norm(ratios["ratio"])
    image = None
    for row, shape in zip(axes, shapes):
        for axis, estimator in zip(row, estimators):
            cells = ratios[(ratios["shape"] == shape) & (ratios["estimator"] == estimator)]
            seeds = int(cells["n_seeds"].iloc[0]) if "n_seeds" in cells else 0
            image = ratio_heat_map(axis, cells, norm, f"{shape}: {estimator} ({seeds} seed{'s' if seeds != 1 else ''})")
    figure.suptitle("bhytc's correlation estimator against the reference and position-aware ones: M₂ / m(h′) at init "
                    "(1 = exact; red: undercount)", fontsize=11)
    figure.tight_layout()
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="M₂ / m(h′)")
    return save(figure, path)


def table_bhytc(tables: Tables) -> pd.DataFrame:
    """The bhytc study: predicted and measured layer means of M₂/m(h′) past position 8, per shape and
    estimator (four layers shown), the worst cell past position 8 at each shape, and the growth
    exponents (predicted, measured with their 95 % interval)."""
    prediction, measurement = tables["bhytc_prediction"], tables["bhytc_measurement"]
    late = lambda table: table[(table["quantity"] == "ratio") & (table["position"] >= 8)]  # noqa: E731
    keys = ["shape", "estimator", "layer"]
    ratios = late(prediction).groupby(keys)["predicted"].mean().to_frame().join(
        late(measurement).groupby(keys)["measured"].mean(), how="inner").reset_index()
    shown = []
    for _, group in ratios.groupby(["shape", "estimator"], sort=False):
        layers = sorted(group["layer"].unique())
        shown.append(group[group["layer"].isin({layers[0], layers[len(layers) // 4], layers[len(layers) // 2],
                                                 layers[-1]})])
    ratios = pd.concat(shown, ignore_index=True).assign(quantity="M₂/m(h′), layer mean over positions ≥ 8")
    cells = late(measurement).assign(error=lambda t: (t["measured"] - 1).abs())
    worst = cells.loc[cells.groupby(["shape", "estimator"], sort=False)["error"].idxmax()]
    worst = worst.assign(quantity=[f"worst cell past t 8 (t {int(t)})" for t in worst["position"]],
                         predicted=worst.merge(late(prediction), on=keys + ["position"], how="left")["predicted"].to_numpy())
    growth = prediction[prediction["quantity"] == "growth_exponent"].merge(
        measurement[measurement["quantity"] == "growth_exponent"][["shape", "scheme", "measured", "ci_low", "ci_high"]],
        on=["shape", "scheme"], how="left")
    growth = growth.assign(estimator=growth["scheme"], quantity="growth exponent", layer=-1)
    columns = ["quantity", "shape", "estimator", "layer", "predicted", "measured", "ci_low", "ci_high"]
    return pd.concat([ratios, worst, growth], ignore_index=True).reindex(columns=columns)


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
    "decode": (figure_decode, table_decode),
    "bhytc": (figure_bhytc, table_bhytc),
}
"""Study name → (figure function or None, short-table function)."""
