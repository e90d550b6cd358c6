"""The instruments used at initialisation, applied to trained models, and the summary.

After ``training.train`` (claims C1, C4, C5, C7, C8 of docs/claims.md):

- ``layer_skip_profile``: held-out loss increase when block l alone is skipped
  (its input passed on unchanged) — Sun et al.'s test of whether deep layers are
  useful (arXiv 2502.05795, "curse of depth");
- ``angular_distances``: ``arccos(cos(h_l, h_{l+1}))/π`` between each block's
  input and output, token-wise, averaged (0: the block is the identity direction-wise);
- ``depth_bound_tightness``: ``theory.bounds.depth_bound`` on the trained
  weights, and measured rms / bound per layer (max and mean over tokens);
- the growth-law fit (``growth.fit_growth``) and the per-layer Jacobian deviation
  (``experiments.jacobian.jacobian_study``) on the trained stack;
- ``magnitude_split``: Fig. 3's last-layer magnitude split into the scale of the
  stream entering layer 0 (the embedding output) × growth across depth (last
  layer / layer 0), per run, before and after training.

``training_summary`` reduces the tables to one row per run label (the form the
claims registry reads for C2, C7, C8), and ``training_figures`` draws the loss
curves, the Fig. 3 analogue and the layer-skip profile from the tables
(matplotlib, Agg backend).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from ...numerics.norms import root_mean_square
from ...numerics.probes import RecordingProbe
from ...theory.bounds import depth_bound
from ..jacobian import jacobian_layers, jacobian_study
from ..growth import fit_growth
from .trainer import EMBEDDING_LAYER, LanguageModel, TrainingRun, trace_language_model

RUN_KEYS = ["run_id", "label", "scheme", "seed"]


@torch.no_grad()
def _skipping_loss(model: LanguageModel, batches: list[tuple[Tensor, Tensor]], skip: int | None) -> float:
    losses = []
    for tokens, targets in batches:
        h = model.embed(tokens)
        for block in model.stack.blocks:
            if block.layer != skip:
                h = block(h)
        logits = model.head(model.stack.final_norm(h))
        losses.append(torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten()).item())
    return float(np.mean(losses))


def layer_skip_profile(model: LanguageModel, batches: list[tuple[Tensor, Tensor]]) -> pd.DataFrame:
    """Held-out loss with each single block skipped: ``layer``, ``loss``, ``loss_full``,
    ``loss_increase`` (= loss − loss_full; large means the layer matters)."""
    full = _skipping_loss(model, batches, None)
    rows = [{"layer": block.layer, "loss": (loss := _skipping_loss(model, batches, block.layer)),
             "loss_full": full, "loss_increase": loss - full} for block in model.stack.blocks]
    return pd.DataFrame(rows)


@torch.no_grad()
def _recorded(model: LanguageModel, tokens: Tensor) -> tuple[Tensor, RecordingProbe]:
    x = model.embed(tokens)
    probe = RecordingProbe()
    model.stack.residual(x, probe)
    return x, probe


def angular_distances(model: LanguageModel, tokens: Tensor) -> pd.DataFrame:
    """``layer``, ``angular_distance``: the mean over tokens of ``arccos(cos(h_l, h_{l+1}))/π``,
    h_l the block's input and h_{l+1} its output (Gromov et al., arXiv 2403.17887;
    Sun et al., arXiv 2502.05795)."""
    x, probe = _recorded(model, tokens)
    rows, h_in = [], x
    for block in model.stack.blocks:
        h_out = probe.states[block.layer, "mlp"]
        cosine = torch.nn.functional.cosine_similarity(h_in.double(), h_out.double(), dim=-1).clamp(-1, 1)
        rows.append({"layer": block.layer, "angular_distance": float((torch.arccos(cosine) / math.pi).mean())})
        h_in = h_out
    return pd.DataFrame(rows)


def depth_bound_tightness(model: LanguageModel, tokens: Tensor) -> pd.DataFrame:
    """Per variant × layer: the mean ``bound`` on rms(h_{l+1}) over tokens, the measured
    mean rms, and measured/bound (``ratio_max`` over tokens, ``ratio_mean``)."""
    x, probe = _recorded(model, tokens)
    bounds = depth_bound(model.stack, x)
    rows = []
    for (variant, layer), group in bounds.groupby(["variant", "layer"], sort=False):
        measured = root_mean_square(probe.states[layer, "mlp"])[..., 0].double().cpu().numpy().ravel()
        ratio = measured / group["bound"].to_numpy()
        rows.append({"variant": variant, "layer": int(layer), "bound": group["bound"].mean(),
                     "measured_rms": measured.mean(), "ratio_max": ratio.max(), "ratio_mean": ratio.mean()})
    return pd.DataFrame(rows)


def trained_growth(model: LanguageModel, tokens: Tensor, first_layer: int = 0) -> pd.DataFrame:
    """``growth.fit_growth`` of the trained stack's per-layer rms on held-out ``tokens``
    (empty below 3 fitted layers, where every two-parameter law fits exactly)."""
    if model.stack.config.depth - first_layer < 3:
        return pd.DataFrame()
    table = trace_language_model(model, tokens)[0]
    table.insert(0, "seed", 0)
    table.insert(0, "scheme", model.stack.config.scheme)
    return fit_growth(table, first_layer=first_layer)


def analyse(run: TrainingRun, batches: list[tuple[Tensor, Tensor]], stats_batch: int = 4,
            jacobian_probes: int = 4) -> dict[str, pd.DataFrame]:
    """Every post-training table of the module docstring for one finished run, each
    with the run's keys (``run_id``, ``label``, ``scheme``, ``seed``) in front.

    ``batches``: the held-out batches (layer skip); the first ``stats_batch`` of
    their sequences feed the other instruments. Returns ``{}`` for a diverged run.
    """
    if run.record.get("diverged"):
        return {}
    model, tokens = run.model, batches[0][0][:stats_batch]
    with torch.no_grad():
        x = model.embed(tokens)
    tables = {
        "layer_skip": layer_skip_profile(model, batches),
        "angular": angular_distances(model, tokens),
        "bound": depth_bound_tightness(model, tokens),
        "growth": trained_growth(model, tokens),
        "jacobian": jacobian_study(model.stack, x, jacobian_layers(model.stack.config.depth), jacobian_probes)
        .drop(columns=["scheme", "seed"]),
    }
    keys = {key: run.record[key] for key in RUN_KEYS}
    return {name: table.assign(**keys)[RUN_KEYS + [c for c in table.columns if c not in keys]]
            for name, table in tables.items()}


def _at_step(log: pd.DataFrame, which: str) -> pd.DataFrame:
    """Rows of each run's first (``which="first"``) or last statistics step."""
    stats = log[log["quantity"] == "mean_abs"]
    steps = stats.groupby("run_id")["step"].agg("min" if which == "first" else "max").rename("chosen")
    chosen = log.merge(steps, left_on="run_id", right_index=True)
    return chosen[chosen["step"] == chosen["chosen"]].drop(columns="chosen")


def magnitude_split(log: pd.DataFrame) -> pd.DataFrame:
    """Fig. 3's magnitude as entering scale × growth across depth, per run, at the
    first (``when="init"``) and last (``"trained"``) statistics step.

    Columns: run keys, ``when``, ``step``, and for ``statistic`` in {mean_abs,
    variance}: ``embedding_*`` (the stream entering layer 0), ``first_*`` (after
    block 0), ``last_*`` (after the last block), ``growth_*`` = last / first
    (growth across depth) and ``entry_growth_*`` = first / embedding.
    """
    parts = []
    for when, which in (("init", "first"), ("trained", "last")):
        rows = _at_step(log, which)
        rows = rows[rows["sublayer"].isin(["embedding", "mlp"])]
        for keys, group in rows.groupby(RUN_KEYS, sort=False):
            depth = group["layer"].max() + 1
            record = dict(zip(RUN_KEYS, keys), when=when, step=int(group["step"].iloc[0]))
            for statistic in ("mean_abs", "variance"):
                values = group[group["quantity"] == statistic].set_index("layer")["value"]
                record[f"embedding_{statistic}"] = values.get(EMBEDDING_LAYER, np.nan)
                record[f"first_{statistic}"] = values.get(0, np.nan)
                record[f"last_{statistic}"] = values.get(depth - 1, np.nan)
                record[f"growth_{statistic}"] = record[f"last_{statistic}"] / record[f"first_{statistic}"]
                record[f"entry_growth_{statistic}"] = record[f"first_{statistic}"] / record[f"embedding_{statistic}"]
            parts.append(record)
    return pd.DataFrame(parts)


def estimate_errors(log: pd.DataFrame) -> pd.DataFrame:
    """BHyT's M₂/m(h') at each statistics step, per run × layer × band, with the
    stale-``c_attn`` share of its error.

    Columns: run keys, ``step``, ``layer``, ``band``, ``estimate_ratio`` (stored
    c_attn), ``estimate_ratio_fresh`` (fresh c_attn), ``log_error`` = log ratio,
    ``stale_term`` = log ratio − log ratio_fresh, ``stale_share`` =
    |stale_term| / (|stale_term| + |log ratio_fresh|) (0: staleness explains none
    of the error; 1: all of it).
    """
    rows = log[log["quantity"].isin(["estimate_ratio", "estimate_ratio_fresh"])]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index=RUN_KEYS + ["step", "layer", "band"], columns="quantity", values="value").reset_index()
    table.columns.name = None
    table["log_error"] = np.log(table["estimate_ratio"])
    table["stale_term"] = table["log_error"] - np.log(table["estimate_ratio_fresh"])
    fresh = np.abs(np.log(table["estimate_ratio_fresh"]))
    table["stale_share"] = np.abs(table["stale_term"]) / (np.abs(table["stale_term"]) + fresh)
    return table


def training_summary(runs: pd.DataFrame, log: pd.DataFrame, analysis: dict[str, pd.DataFrame] | None = None,
                     baseline: str = "rmsnorm") -> pd.DataFrame:
    """One row per run label (scheme or variant), over its seeds — what the claims
    registry reads for C2 (stability), C7 (pretraining quality) and C8 (Fig. 3).

    Parameters
    ----------
    runs : DataFrame
        The ``TrainingRun.record`` rows (``runs.csv``).
    log : DataFrame
        The concatenated ``TrainingRun.log`` tables (``log.csv``).
    analysis : dict, optional
        Concatenated ``analyse`` tables; adds the layer-skip columns.
    baseline : str
        Label the ``*_baseline_ratio`` columns divide (RMSNorm, as in the paper).

    Returns
    -------
    DataFrame with columns
        ``label``, ``scheme``; ``n_runs``, ``n_diverged`` (C2); ``eval_loss_mean``,
        ``eval_loss_sd`` (sample sd over non-diverged seeds; C7);
        ``last_mean_abs``, ``last_variance`` (after the last block, trained, seed
        mean; C8), ``embedding_mean_abs``, ``first_mean_abs`` (entering layer 0,
        after block 0), ``growth_mean_abs``, ``growth_variance`` (last / layer 0);
        ``mean_abs_baseline_ratio``, ``variance_baseline_ratio`` (baseline's last-
        layer value over this label's: the paper's RMSNorm/BHyT ≈ 5.7 and ≈ 30);
        ``estimate_ratio_min``, ``estimate_ratio_max`` (BHyT's M₂/m(h') over
        layers × bands × seeds at the last step), ``stale_share_median`` (there) and
        ``stale_share_max`` (over every statistics step) (C5);
        ``skip_increase_last_half`` (mean loss increase from skipping a block of
        the deeper half; present with ``analysis``); ``tokens_per_second`` (seed mean,
        this machine, not a ratio).
    """
    finished = runs[~runs["diverged"]]
    summary = runs.groupby("label", sort=False).agg(
        scheme=("scheme", "first"), n_runs=("run_id", "size"), n_diverged=("diverged", "sum"))
    summary["eval_loss_mean"] = finished.groupby("label")["final_eval_loss"].mean()
    summary["eval_loss_sd"] = finished.groupby("label")["final_eval_loss"].std(ddof=1)
    summary["tokens_per_second"] = finished.groupby("label")["tokens_per_second"].mean()
    split = magnitude_split(log[log["run_id"].isin(finished["run_id"])])
    if not split.empty:
        trained = split[split["when"] == "trained"].groupby("label")
        for column in ("last_mean_abs", "last_variance", "embedding_mean_abs", "first_mean_abs",
                       "growth_mean_abs", "growth_variance"):
            summary[column] = trained[column].mean()
        if baseline in summary.index:
            for statistic in ("mean_abs", "variance"):
                summary[f"{statistic}_baseline_ratio"] = summary.loc[baseline, f"last_{statistic}"] / summary[f"last_{statistic}"]
    errors = estimate_errors(log[log["run_id"].isin(finished["run_id"])])
    if not errors.empty:
        last = errors[errors["step"] == errors.groupby("run_id")["step"].transform("max")]
        summary["estimate_ratio_min"] = last.groupby("label")["estimate_ratio"].min()
        summary["estimate_ratio_max"] = last.groupby("label")["estimate_ratio"].max()
        summary["stale_share_median"] = last.groupby("label")["stale_share"].median()
        summary["stale_share_max"] = errors.groupby("label")["stale_share"].max()
    if analysis and "layer_skip" in analysis:
        skip = analysis["layer_skip"]
        depth = skip.groupby("run_id")["layer"].transform("max") + 1
        summary["skip_increase_last_half"] = skip[skip["layer"] >= depth / 2].groupby("label")["loss_increase"].mean()
    return summary.reset_index()


def training_figures(log: pd.DataFrame, analysis: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Draw from the tables: ``loss_curves.png`` (training and held-out loss per label,
    seed-mean), ``fig3_magnitudes.png`` (per-layer mean |h| and variance, init vs
    trained, seed-mean, log scale; layer −1 is the embedding output) and
    ``layer_skip.png`` (loss increase per skipped layer). Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    labels = list(dict.fromkeys(log["label"]))

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, label in enumerate(labels):
        colour = f"C{index % 10}"
        for quantity, style in (("train_loss", "-"), ("eval_loss", "o--")):
            rows = log[(log["label"] == label) & (log["quantity"] == quantity)]
            curve = rows.groupby("step")["value"].mean()
            if quantity == "train_loss":
                curve = curve.rolling(10, min_periods=1).mean()
            axis.plot(curve.index, curve.values, style, color=colour, ms=3,
                      label=label if quantity == "train_loss" else None)
    axis.set(xlabel="step", ylabel="loss (nats/byte)", title="training (—, 10-step mean) and held-out (o) loss")
    axis.legend(fontsize=8)
    paths.append(out_dir / "loss_curves.png")
    figure.tight_layout()
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for when, which, style in (("init", "first", ":"), ("trained", "last", "-")):
        rows = _at_step(log, which)
        rows = rows[rows["sublayer"].isin(["embedding", "mlp"])]
        for axis, statistic in zip(axes, ("mean_abs", "variance")):
            for index, label in enumerate(labels):
                curve = rows[(rows["label"] == label) & (rows["quantity"] == statistic)].groupby("layer")["value"].mean()
                axis.plot(curve.index, curve.values, style, color=f"C{index % 10}",
                          label=f"{label} ({when})" if statistic == "mean_abs" else None)
            axis.set(xlabel="layer (−1: embedding output)", ylabel=statistic, yscale="log",
                     title=f"per-layer {statistic} of the residual stream")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7, ncol=2)
    paths.append(out_dir / "fig3_magnitudes.png")
    figure.tight_layout()
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)

    if analysis.get("layer_skip") is not None and not analysis["layer_skip"].empty:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        skip = analysis["layer_skip"]
        for index, label in enumerate(dict.fromkeys(skip["label"])):
            curve = skip[skip["label"] == label].groupby("layer")["loss_increase"].mean()
            axis.plot(curve.index, curve.values, "o-", color=f"C{labels.index(label) % 10}", label=label)
        axis.axhline(0.0, color="grey", lw=0.8)
        axis.set(xlabel="skipped layer", ylabel="held-out loss increase (nats/byte)",
                 title="loss increase when one layer is skipped (seed mean)")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(fontsize=8)
        paths.append(out_dir / "layer_skip.png")
        figure.tight_layout()
        figure.savefig(paths[-1], dpi=120)
        plt.close(figure)
    return paths
