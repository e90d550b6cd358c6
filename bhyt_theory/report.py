"""``bhyt-theory reproduce``: every section of the report, its tables, figures and numbers.

Each section is a function ``(out_dir, quick) -> Section``: it computes a tidy
table, writes it as CSV (and a figure where a table is hard to read) under
``out_dir``, and returns the text to print. ``reproduce`` runs them in order and
writes ``report.md`` next to the data, so every number printed is traceable to
the command and the file that produced it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .experiments.montecarlo import source_fingerprint, summarise, sweep  # noqa: E402
from .numerics.inputs import InputSpec  # noqa: E402
from .numerics.model import SCHEMES  # noqa: E402
from .numerics.probes import position_average  # noqa: E402


@dataclass
class Section:
    title: str
    text: str
    files: list[Path] = field(default_factory=list)


def plot_rms_per_scheme(summary: pd.DataFrame, path: Path, x_offset: int, **axis_settings) -> None:
    """One line per scheme of a ``montecarlo.summarise`` table (mean across seeds vs layer), log rms."""
    figure, axis = plt.subplots(figsize=(7, 4.8))
    for scheme, part in summary.groupby("scheme", sort=False):
        axis.plot(part["layer"] + x_offset, part["mean"], label=scheme, marker="." if len(part) <= 64 else None)
    axis.set(ylabel="rms of residual stream (position-averaged)", yscale="log", **axis_settings)
    axis.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def section_depth_trace(out_dir: Path, quick: bool) -> Section:
    """Per-layer rms of the residual stream for every scheme at initialisation (claims C1, C4)."""
    config = dict(depth=8 if quick else 32, width=64 if quick else 256, heads=4, seq_len=32 if quick else 128)
    seeds = list(range(2 if quick else 4))
    table = sweep({"scheme": list(SCHEMES)}, seeds, InputSpec(batch=4, std=0.02), base=config, cache_dir=out_dir / "cache")
    # The section reads position-averaged statistics only; the per-position detail stays in the cache.
    keys = ["scheme", "seed", "layer", "sublayer"]
    position_average(table, keys).to_csv(out_dir / "depth_trace.csv", index=False)
    summary = summarise(table[table.sublayer == "mlp"], statistics=("rms",))
    wide = summary.pivot(index="layer", columns="scheme", values="mean")[list(SCHEMES)]
    depth = config["depth"]
    picks = [0, depth // 2, depth - 1]
    at = summary[summary.layer.isin(picks)].assign(
        value=lambda s: s["mean"].map("{:.4g}".format) + " ± " + (s["std"] / np.sqrt(s["n_seeds"])).map("{:.1g}".format)
    )
    short = at.pivot(index="scheme", columns="layer", values="value").loc[list(SCHEMES)]
    short.columns = [f"layer {c}" for c in short.columns]

    plot_rms_per_scheme(
        summary, out_dir / "depth_trace.png", x_offset=0, xlabel="layer",
        title=f"Depth trace at init: width {config['width']}, T {config['seq_len']},\n"
        f"init std 0.02, inputs N(0, 0.02²), mean of {len(seeds)} seeds",
    )

    with pd.option_context("display.width", 250, "display.max_columns", None, "display.float_format", "{:.4g}".format):
        text = (
            f"Config: {config}, init_std 0.02, inputs N(0, 0.02²), batch 4, seeds {list(seeds)}; "
            "depth_trace.csv: position-averaged statistics per scheme × seed × layer × sublayer.\n"
            f"rms after each layer (position-averaged, mean over seeds):\n{wide}\n\n"
            f"rms at layers {picks} (mean ± standard error over seeds):\n{short}"
        )
    return Section("Depth trace of every scheme", text, [out_dir / "depth_trace.csv", out_dir / "depth_trace.png"])


def _frame_text(table: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_rows", None):
        return table.to_string(float_format=float_format.format)


def section_checks(out_dir: Path, quick: bool) -> Section:
    """Every symbolic/numeric check of the written proofs (issue 3; `bhyt-theory checks`)."""
    from .theory.checks import PROOFS_DIR, run_checks

    table = run_checks()
    table.to_csv(out_dir / "checks.csv", index=False)
    failed = table[~table.passed]
    text = f"{int(table.passed.sum())}/{len(table)} checks pass, cited by {len(list(PROOFS_DIR.glob('*.md')))} proofs in proofs/."
    if len(failed):
        text += "\nFAILED:\n" + _frame_text(failed[["check", "message"]])
    return Section("Proof checks", text, [out_dir / "checks.csv"])


def section_bounds(out_dir: Path, quick: bool) -> Section:
    """Tightest measured/bound ratios of the saturation and depth bounds (C3, C4; `bhyt-theory bounds`)."""
    from .experiments.tightness import tightness_table

    table = tightness_table(seed=0, random_trials=2 if quick else 6, hill_climb_steps=5 if quick else 40)
    table.to_csv(out_dir / "bounds_tightness.csv", index=False)
    text = (
        "depth: growth ratio (rms(h_l) − rms(h_0)) / Σ(A + F); saturation: fraction(|z| ≥ t) / bound.\n"
        "A ratio ≤ 1 everywhere means no violation was found; close to 1 in the search means the bound is attained.\n"
        + _frame_text(table, "{:.6g}")
    )
    return Section("Bound tightness", text, [out_dir / "bounds_tightness.csv"])


def section_variance(out_dir: Path, quick: bool) -> Section:
    """BHyT's M₂ estimate/exact ratio per estimator × layer × position (C5; `bhyt-theory variance`)."""
    from .experiments.variance_study import (
        estimator_comparison,
        estimator_errors,
        ratio_table,
        table_positions,
    )
    from .numerics.model import StackConfig

    config = StackConfig(scheme="bhyt", depth=17 if quick else 65, width=64 if quick else 256, heads=4, seq_len=32 if quick else 128)
    layers = (0, 1, 4, 16) if quick else (0, 1, 4, 16, 64)
    comparison = estimator_comparison(config, seeds=(0,) if quick else (0, 1, 2), layers=layers, positions=table_positions(config.seq_len))
    comparison.to_csv(out_dir / "variance_estimators.csv", index=False)
    error = estimator_errors(comparison)
    text = (
        f"M₂ / m(h') at init: width {config.width}, T {config.seq_len}, depth {config.depth}, inputs N(0, 0.02²); "
        "1 = exact, < 1 = the second BHyT sees a larger argument than designed.\n"
        + _frame_text(ratio_table(comparison), "{:.3f}")
        + "\n\n|ratio − 1| over the cells above, per estimator:\n" + _frame_text(error, "{:.3f}")
    )
    return Section("Variance approximation (C5)", text, [out_dir / "variance_estimators.csv"])


def section_jacobian(out_dir: Path, quick: bool) -> Section:
    """Identity-likeness of blocks: ‖∂h_{l+1}/∂h_l − I‖_F/‖I‖_F per scheme × layer (C1, C4; `bhyt-theory jacobian`)."""
    from .experiments.block_jacobian import (
        deviation_table,
        input_rms_table,
        jacobian_comparison,
        jacobian_layers,
    )
    from .numerics.model import StackConfig

    config = StackConfig(depth=8 if quick else 32, width=64 if quick else 256, heads=4, seq_len=32 if quick else 128)
    table = jacobian_comparison(config, layers=jacobian_layers(config.depth), seeds=(0,) if quick else (0, 1), probes=4 if quick else 16)
    table.to_csv(out_dir / "jacobian.csv", index=False)
    rms = input_rms_table(table)
    text = (
        f"Deviation from the identity at init (depth {config.depth}, width {config.width}, T {config.seq_len}), "
        "± the Hutchinson probes' standard error; smaller = more identity-like.\n"
        + _frame_text(deviation_table(table)) + "\n\nrms of each block's input state:\n" + _frame_text(rms)
    )
    return Section("Identity-likeness of deep blocks", text, [out_dir / "jacobian.csv"])


def section_meanfield(out_dir: Path, quick: bool) -> Section:
    """Mean-field prediction vs Monte Carlo of the per-layer mean square, every scheme (`bhyt-theory predict --compare-seeds`)."""
    from .numerics.model import StackConfig
    from .theory.meanfield import compare_with_monte_carlo, comparison_summary

    depth, width, seq_len, seeds = (8, 64, 16, range(2)) if quick else (64, 256, 64, range(8))
    parts = []
    for scheme in SCHEMES:
        config = StackConfig(scheme=scheme, depth=depth, width=width, heads=4, seq_len=seq_len)
        parts.append(compare_with_monte_carlo(config, seeds, InputSpec(batch=2)).assign(scheme=scheme))
    table = pd.concat(parts, ignore_index=True)
    table.to_csv(out_dir / "meanfield_vs_montecarlo.csv", index=False)
    numbers = comparison_summary(table)
    summary = pd.DataFrame({
        "last layer MF/MC − 1": numbers["last_relative_error"].map("{:+.2%}".format),
        "(MF − MC)/SE": numbers["last_z"].map("{:+.1f}".format),
        "largest |MF/MC − 1|": numbers["worst_relative_error"].map("{:+.2%}".format),
        "at layer, sublayer": numbers["worst_layer"].astype(str) + ", " + numbers["worst_sublayer"],
        "(MF − MC)/SE there": numbers["worst_z"].map("{:+.1f}".format),
    })
    text = (
        f"Position-averaged mean square, width {width}, depth {depth}, T {seq_len}, {len(seeds)} seeds × batch 2, "
        "init std 0.02, inputs N(0, 0.02²); Gram-matrix recursion with uniform causal attention. "
        "SE: standard error of the Monte Carlo mean across seeds.\n" + _frame_text(summary)
    )
    return Section("Mean field vs Monte Carlo", text, [out_dir / "meanfield_vs_montecarlo.csv"])


def section_growth(out_dir: Path, quick: bool) -> Section:
    """Growth laws of the residual rms with depth per scheme, Monte Carlo and mean field (C1, C2, C4; `bhyt-theory growth`)."""
    from .experiments.growth import DEFAULT_GROWTH, fit_growth, meanfield_growth

    base = {**DEFAULT_GROWTH, **({"depth": 32, "width": 64, "seq_len": 16} if quick else {})}
    table = sweep({"scheme": list(SCHEMES)}, [0, 1] if quick else [0, 1, 2], InputSpec(batch=4), base=base,
                  cache_dir=out_dir / "cache")
    fits = pd.concat([fit_growth(table).assign(source="monte carlo"), meanfield_growth(table).assign(source="mean field")])
    fits.to_csv(out_dir / "growth_fits.csv", index=False)
    best = fits[fits["best"]][["scheme", "source", "form", "law", "slope", "slope_ci_low", "slope_ci_high", "r2", "rms_first", "rms_last"]]

    summary = summarise(table[table.sublayer == "mlp"], statistics=("rms",))
    plot_rms_per_scheme(
        summary, out_dir / "growth.png", x_offset=1, xlabel="layer l (1-based)", xscale="log",
        title=f"Growth with depth at init (width {base['width']}, T {base['seq_len']})",
    )
    text = f"Config: {base}; best form per scheme (least rms-space residual), slope with a 95% interval across seeds.\n" + _frame_text(best)
    return Section("Growth laws", text, [out_dir / "growth_fits.csv", out_dir / "growth.png"])


SECTIONS: list[Callable[[Path, bool], Section]] = [
    section_depth_trace,
    section_checks,
    section_bounds,
    section_meanfield,
    section_variance,
    section_jacobian,
    section_growth,
]


def reproduce(out_dir: Path, quick: bool = False, echo: Callable[[str], None] = print) -> list[Section]:
    """Run every section, print it, and write ``out_dir/report.md``.

    Each finished section is saved (``out_dir/sections/<name>.json``) and read back
    on a rerun with the same settings and the same package source (a fingerprint of
    every module), so an interrupted reproduction resumes where it stopped; Monte Carlo runs are cached one by one under ``out_dir/cache``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / "sections"
    saved.mkdir(exist_ok=True)
    key = {"sources": source_fingerprint(*sorted(Path(__file__).parent.rglob("*.py"))), "quick": quick}
    sections = []
    for make in SECTIONS:
        echo(f"== {make.__doc__.splitlines()[0]}")
        path = saved / f"{make.__name__}{'_quick' if quick else ''}.json"
        stored = json.loads(path.read_text()) if path.exists() else None
        if stored and stored["key"] == key and all(Path(f).exists() for f in stored["files"]):
            section = Section(stored["title"], stored["text"], [Path(f) for f in stored["files"]])
            echo("(saved result of an earlier run)")
        else:
            started = time.perf_counter()
            with torch.no_grad():
                section = make(out_dir, quick)
            section.text += f"\n[{time.perf_counter() - started:.0f} s]"
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"key": key, "title": section.title, "text": section.text, "files": [str(f) for f in section.files]}))
            os.replace(temporary, path)
        echo(section.text + "\n")
        sections.append(section)
    lines = ["# bhyt-theory report", "", f"Produced by `bhyt-theory reproduce --out {out_dir}`" + (" --quick" if quick else "") + "."]
    for section in sections:
        lines += ["", f"## {section.title}", "", "```", section.text, "```"]
        lines += [f"- `{path.name}`" for path in section.files]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    echo(f"wrote {out_dir / 'report.md'}")
    return sections
