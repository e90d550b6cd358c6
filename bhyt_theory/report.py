"""``bhyt-theory reproduce``: every section of the report, its tables, figures and numbers.

Each section is a function ``(out_dir, quick) -> Section``: it computes a tidy
table, writes it as CSV (and a figure where a table is hard to read) under
``out_dir``, and returns the text to print. ``reproduce`` runs them in order and
writes ``report.md`` next to the data, so every number printed is traceable to
the command and the file that produced it.
"""

from __future__ import annotations

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
from scipy import stats  # noqa: E402

from .model import SCHEMES, Stack, StackConfig, gaussian_inputs  # noqa: E402


@dataclass
class Section:
    title: str
    text: str
    files: list[Path] = field(default_factory=list)


def per_layer_rms(table: pd.DataFrame) -> pd.DataFrame:
    """Position-averaged rms of the state after each block (the "mlp" rows):
    ``sqrt(mean_position m)`` per layer, scheme and seed."""
    blocks = table[table.sublayer == "mlp"]
    grouped = blocks.groupby(["scheme", "seed", "layer"], sort=False)["mean_square"].mean()
    return np.sqrt(grouped).rename("rms").reset_index()


def depth_traces(
    schemes=SCHEMES, seeds=range(4), batch: int = 4, input_std: float = 0.02, progress=print, **config
) -> pd.DataFrame:
    """Trace every scheme for every seed; one tidy table (scheme × seed × layer × sublayer × position)."""
    parts = []
    for scheme in schemes:
        started = time.perf_counter()
        stack_config = StackConfig(scheme=scheme, **config)
        for seed in seeds:
            x = gaussian_inputs(stack_config.width, batch, stack_config.seq_len, input_std, seed + 10_000)
            parts.append(Stack(stack_config, seed=seed).trace(x))
        progress(f"  traced {scheme:9s} × {len(seeds)} seeds in {time.perf_counter() - started:.1f} s")
    return pd.concat(parts, ignore_index=True)


def summarise_across_seeds(values: pd.DataFrame, by: list[str], column: str, level: float = 0.95) -> pd.DataFrame:
    """Mean, standard error and a Student-t confidence interval across seeds."""
    grouped = values.groupby(by, sort=False)[column]
    summary = grouped.agg(mean="mean", sem="sem", n="count").reset_index()
    half = stats.t.ppf(0.5 + level / 2, np.maximum(summary["n"] - 1, 1)) * summary["sem"].fillna(0)
    summary["ci_low"], summary["ci_high"] = summary["mean"] - half, summary["mean"] + half
    return summary


def section_depth_trace(out_dir: Path, quick: bool) -> Section:
    """Per-layer rms of the residual stream for every scheme at initialisation (claims C1, C4)."""
    config = dict(depth=8 if quick else 32, width=64 if quick else 256, heads=4, seq_len=32 if quick else 128)
    seeds = range(2 if quick else 4)
    table = depth_traces(seeds=seeds, **config)
    table.to_csv(out_dir / "depth_trace.csv", index=False)
    rms = per_layer_rms(table)
    summary = summarise_across_seeds(rms, ["scheme", "layer"], "rms")
    wide = summary.pivot(index="layer", columns="scheme", values="mean")[list(SCHEMES)]
    depth = config["depth"]
    picks = [0, depth // 2, depth - 1]
    at = summary[summary.layer.isin(picks)].assign(
        value=lambda s: s["mean"].map("{:.4g}".format) + " ± " + s["sem"].map("{:.1g}".format)
    )
    short = at.pivot(index="scheme", columns="layer", values="value").loc[list(SCHEMES)]
    short.columns = [f"layer {c}" for c in short.columns]

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for scheme in SCHEMES:
        axis.plot(wide.index, wide[scheme], label=scheme, marker=".")
    axis.set(xlabel="layer", ylabel="rms of residual stream (position-averaged)", yscale="log",
             title=f"Depth trace at init: width {config['width']}, T {config['seq_len']}, "
             f"init std 0.02, inputs N(0, 0.02²), {len(seeds)} seeds")
    axis.legend(ncol=2, fontsize=8)
    figure.tight_layout()
    figure.savefig(out_dir / "depth_trace.png", dpi=120)
    plt.close(figure)

    with pd.option_context("display.width", 250, "display.max_columns", None, "display.float_format", "{:.4g}".format):
        text = (
            f"Config: {config}, init_std 0.02, inputs N(0, 0.02²), batch 4, seeds {list(seeds)}.\n"
            f"rms after each layer (position-averaged, mean over seeds):\n{wide}\n\n"
            f"rms at layers {picks} (mean ± standard error over seeds):\n{short}"
        )
    return Section("Depth trace of every scheme", text, [out_dir / "depth_trace.csv", out_dir / "depth_trace.png"])


SECTIONS: list[Callable[[Path, bool], Section]] = [section_depth_trace]


def reproduce(out_dir: Path, quick: bool = False, echo: Callable[[str], None] = print) -> list[Section]:
    """Run every section, print it, and write ``out_dir/report.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    sections = []
    for make in SECTIONS:
        echo(f"== {make.__doc__.splitlines()[0]}")
        section = make(out_dir, quick)
        echo(section.text + "\n")
        sections.append(section)
    lines = ["# bhyt-theory report", "", f"Produced by `bhyt-theory reproduce --out {out_dir}`" + (" --quick" if quick else "") + "."]
    for section in sections:
        lines += ["", f"## {section.title}", "", "```", section.text, "```"]
        lines += [f"- `{path.name}`" for path in section.files]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    echo(f"wrote {out_dir / 'report.md'}")
    return sections
