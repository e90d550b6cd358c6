"""The trained regime across scale: per-recipe learning-rate tuning on a ladder of shapes.

A *ladder* is a list of rungs (depth, width, steps, …). At every rung each recipe
(``recipes.RECIPES``) is trained at every rate of the rung's sweep with seed 0,
then at its best rate (lowest held-out loss among runs that did not diverge)
with the further seeds, so every recipe is compared at its own best rate over
``seeds`` seeds. Seeds are paired: a seed fixes the initial weights and the
batch order whatever the scheme or recipe (``trainer.LanguageModel``), so the
BHyT − RMSNorm gap is a paired difference per seed.

Tables (``run_ladder``; written to the output folder as CSV):

- ``ladder``: one row per run — ``rung``, ``params``, ``tokens``, ``scheme``,
  ``recipe``, ``lr``, ``seed``, ``eval_loss``, ``last_mean_abs`` and the full
  configuration (shape, steps, batch, warm-up, corpus and its digest, tokens per
  epoch and epochs, Python version), the C8 split (``embedding_mean_abs``,
  ``first_mean_abs`` = after block 0, ``growth_mean_abs`` = last / block 0,
  ``last_variance``) and the saturated fraction (``|z| ≥ 2``) at every norm
  position: the largest over layers before attention and before the MLP, and the
  final norm's;
- ``ladder_norms``: the saturated fractions (thresholds 1, 2, 3) and tanh-argument
  rms of every norm of every run, trained;
- ``ladder_summary``: one row per rung × recipe at its best rate: loss mean ± sd
  over seeds, the paired gap to ``recipes.BASELINE_RECIPE`` with a Student-t
  interval (``paired_gap``; columns ``gap…``) and the same to ``recipes.METHOD_RECIPE``
  (``gap_vs_bhyt-ref…``; any recipe can be a reference, ``reference_gap``), the single-seed gap at the baseline's best rate (the
  shared-rate comparison), whether the best rate is at an end of the sweep, and
  the C8 ratio baseline / recipe of last-layer mean |h| split into block-0 scale
  × growth across depth (ratios of geometric means over seeds, so the split multiplies);
- ``ladder_trend``: the BHyT − RMSNorm gap (and every other recipe's gap to RMSNorm
  and to BHyT, ``ladder_trends``) fitted against log₁₀ parameters and,
  separately, log₁₀ tokens (the ladder moves both together), slope with its
  Student-t interval, and the fit's prediction at the paper's Llama-374M, 7.5 B
  tokens with its prediction interval — an extrapolation.

Every run keeps its checkpoint under ``checkpoints/``, its result under
``runs/`` (``run_id.pkl``, resumable) and a ``runs/run_id.meta.json``; runs go
serially, in local processes or on Dask (``study.run_all``).

Cost: ``measure_step_seconds`` times a few training steps of a rung;
``ladder_cost`` turns those into CPU-hours for the whole ladder and a wall time
on N workers (each phase's runs packed longest-first onto the workers, plus
``TASK_OVERHEAD_S`` per task).
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .analysis import magnitude_split
from .corpus import build_corpus
from .recipes import BASELINE_RECIPE, LADDER_RECIPES, METHOD_RECIPE, recipe_changes
from .study import run_all, write_tables
from .trainer import LanguageModel, TrainConfig, parameter_groups, timed_step

SATURATION = "saturated_fraction_2"
"""The ladder's saturation measure: the fraction of tanh arguments with |z| ≥ 2 (tanh' < 0.071)."""
TASK_OVERHEAD_S = 2.0
"""Seconds per run beyond its steps in the cost model (model build, corpus, statistics, writing)."""
PAPER_SCALE = {"params": 374e6, "tokens": 7.5e9}
"""Llama-374M trained on 7.5 B tokens (arXiv 2601.09719, Table 1): where the trend is extrapolated to."""


@dataclass(frozen=True)
class Rung:
    """One shape of the ladder and its learning-rate sweep; ``extra``: further
    ``TrainConfig``/``StackConfig`` fields (e.g. GQA, MLP width, device, autocast)."""

    name: str
    depth: int
    width: int
    heads: int
    steps: int
    lrs: tuple[float, ...]
    seq_len: int = 128
    batch_size: int = 16
    extra: tuple[tuple[str, object], ...] = ()

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_size * self.seq_len

    def config(self, corpus: str | None, **changes) -> TrainConfig:
        """The rung's base ``TrainConfig``: warm-up 10 % of the steps, five held-out
        evaluations, statistics at the start and the end, ``changes`` on top."""
        fields = {"depth": self.depth, "width": self.width, "heads": self.heads, "seq_len": self.seq_len,
                  "steps": self.steps, "batch_size": self.batch_size, "warmup_steps": max(1, self.steps // 10),
                  "eval_every": max(1, self.steps // 5), "eval_batches": 8, "stats_every": self.steps,
                  "checkpoint_every": max(1, self.steps // 5), "corpus": corpus}
        base = TrainConfig().replace(**{**fields, **dict(self.extra)})
        return base.replace(**changes) if changes else base


_SMALL_RATES, _LARGE_RATES = (1e-3, 3e-3, 1e-2, 3e-2), (3e-4, 1e-3, 3e-3, 1e-2)
LADDERS: dict[str, tuple[Rung, ...]] = {
    "default": (Rung("d8w64", 8, 64, 4, 300, _SMALL_RATES), Rung("d16w128", 16, 128, 4, 600, _SMALL_RATES),
                Rung("d16w256", 16, 256, 8, 1500, _LARGE_RATES), Rung("d32w256", 32, 256, 8, 3000, _LARGE_RATES)),
    "quick": (Rung("q-d2w16", 2, 16, 2, 30, (3e-3, 3e-2), seq_len=32, batch_size=8),
              Rung("q-d4w32", 4, 32, 2, 60, (3e-3, 3e-2), seq_len=32, batch_size=8)),
    # Llama-374M's shape (numerics.model.PRESETS) with the byte vocabulary, bf16 autocast on CUDA: 1200
    # steps of 16 × 1024 tokens (19.7 M tokens) per scheme, one rate, sized for ~5 minutes on one H100.
    "gpu": (Rung("llama-374m", 16, 1024, 16, 1200, (1e-3,), seq_len=1024, batch_size=16,
                 extra=(("kv_heads", 4), ("mlp_width", 4096), ("device", "cuda"), ("amp_dtype", "bfloat16"),
                        ("stats_batch", 2), ("eval_batches", 4))),),
}
LADDER_SEEDS = {"default": 3, "quick": 2, "gpu": 1}
LADDER_CORPUS = {"default": "stdlib", "quick": None, "gpu": "stdlib"}
LADDER_RECIPE_SETS = {"default": LADDER_RECIPES, "quick": LADDER_RECIPES, "gpu": (BASELINE_RECIPE, METHOD_RECIPE)}


def run_config(rung: Rung, recipe: str, corpus: str | None, lr: float, seed: int, **changes
               ) -> tuple[Rung, TrainConfig]:
    """One run of the ladder: ``recipe`` on ``rung`` at rate ``lr`` and ``seed``, with ``changes``."""
    return rung, rung.config(corpus, **recipe_changes(recipe), lr=lr, seed=seed, **changes)


def sweep_configs(rungs: Sequence[Rung], recipes: Sequence[str], corpus: str | None, **changes
                  ) -> list[tuple[Rung, TrainConfig]]:
    """Phase 1: every rung × recipe × rate of the rung's sweep, seed 0."""
    return [run_config(rung, name, corpus, lr, 0, **changes) for rung in rungs for name in recipes for lr in rung.lrs]


def best_rates(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    """``{(rung, recipe): lr}`` with the lowest seed-0 held-out loss among runs that
    did not diverge (the first rate of the sweep when every run diverged)."""
    chosen = {}
    for (rung, name), group in table[table["seed"] == 0].groupby(["rung", "recipe"], sort=False):
        finished = group[~group["diverged"] & group["eval_loss"].notna()]
        chosen[rung, name] = float((finished if len(finished) else group).sort_values(
            ["eval_loss", "lr"], na_position="last")["lr"].iloc[0])
    return chosen


SWEEP_EXTENSIONS = 2
"""How many rates ``run_ladder`` adds, one at a time, beyond an end of a recipe's sweep while its best
rate is at that end (``extension_rates``): a best rate at the edge of the grid is not yet tuned."""


def extension_rates(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    """``{(rung, recipe): lr}``: the next rate to try, one grid step beyond the end of the recipe's seed-0
    sweep where its best rate (``best_rates``) lies at that end; the step is the ratio of the two outermost
    rates there (1e-2 after 3e-3 → 3.3e-2). Recipes whose best rate is inside their sweep, or that swept fewer
    than three rates (a sweep with no inside, like the quick ladder's), get none."""
    proposed = {}
    sweeps = table[table["seed"] == 0].groupby(["rung", "recipe"], sort=False)["lr"]
    for key, best in best_rates(table).items():
        rates = sorted(set(sweeps.get_group(key)))
        if len(rates) < 3:
            continue
        if best == rates[-1]:
            proposed[key] = rates[-1] * rates[-1] / rates[-2]
        elif best == rates[0]:
            proposed[key] = rates[0] * rates[0] / rates[1]
    return proposed


_PARAMETER_COUNTS: dict[tuple, int] = {}


def parameter_count(config: TrainConfig) -> int:
    """Trainable parameters of the run's model (counted once per shape and recipe)."""
    key = (tuple(sorted(config.stack.as_dict().items())), config.recipe)
    if key not in _PARAMETER_COUNTS:
        model = LanguageModel(config.replace(device="cpu", dtype="float32"))
        _PARAMETER_COUNTS[key] = sum(p.numel() for p in model.parameters())
    return _PARAMETER_COUNTS[key]


def run_row(rung: Rung, config: TrainConfig, result: dict) -> tuple[dict, pd.DataFrame]:
    """The ``ladder`` row of one run and its ``ladder_norms`` rows."""
    record, log = result["record"], result["log"]
    stack = config.stack
    tokens = config.steps * config.tokens_per_step
    row = {
        "rung": rung.name, "params": parameter_count(config), "tokens": tokens, "scheme": stack.scheme,
        "recipe": config.recipe, "lr": config.lr, "seed": config.seed, "eval_loss": record["final_eval_loss"],
        "diverged": record["diverged"], "divergence_step": record["divergence_step"],
        "depth": stack.depth, "width": stack.width, "heads": stack.heads, "kv_heads": stack.kv_heads,
        "mlp_width": stack.mlp_width, "seq_len": stack.seq_len, "steps": config.steps,
        "batch_size": config.batch_size, "warmup_steps": config.warmup_steps, "device": stack.device,
        "amp_dtype": config.amp_dtype, "corpus": record.get("corpus_source", ""),
        "corpus_digest": record.get("corpus_digest", ""), "tokens_per_epoch": record.get("corpus_train_tokens"),
        "epochs": tokens / record["corpus_train_tokens"] if record.get("corpus_train_tokens") else math.nan,
        "python_version": record.get("python_version", ""), "run_id": record["run_id"],
        "seconds": record["seconds"], "cpu_seconds": record["cpu_seconds"],
    }
    split = magnitude_split(log)
    trained = split[split["when"] == "trained"] if not split.empty else split
    for column in ("last_mean_abs", "last_variance", "embedding_mean_abs", "first_mean_abs", "growth_mean_abs"):
        row[column] = float(trained[column].iloc[0]) if len(trained) else math.nan
    last_step = log["step"].max() if len(log) else 0
    norms = log[(log["step"] == last_step) & log["quantity"].str.startswith(("saturated_fraction", "arg_rms"))]
    norms = norms[["layer", "sublayer", "quantity", "value"]].assign(
        rung=rung.name, recipe=config.recipe, lr=config.lr, seed=config.seed, run_id=record["run_id"])
    saturated = norms[norms["quantity"] == SATURATION]
    for sublayer, column in (("attn", "saturated_attn_max"), ("mlp", "saturated_mlp_max"),
                             ("final", "saturated_final")):
        values = saturated.loc[saturated["sublayer"] == sublayer, "value"]
        row[column] = float(values.max()) if len(values) else math.nan
    return row, norms


def paired_gap(values: Sequence[float], baseline: Sequence[float], level: float = 0.95, prefix: str = "gap") -> dict:
    """Mean paired difference ``values − baseline`` (same seeds, same order) with its
    Student-t interval: ``gap``, ``gap_sd``, ``gap_n``, ``gap_ci_low``,
    ``gap_ci_high``, ``gap_p`` (two-sided paired t-test; NaN below two pairs); the
    keys start with ``prefix`` in place of ``gap``."""
    difference = np.asarray(values, float) - np.asarray(baseline, float)
    n = len(difference)
    out = {"gap": float(difference.mean()) if n else math.nan, "gap_n": n}
    if n < 2:
        out.update(gap_sd=math.nan, gap_ci_low=math.nan, gap_ci_high=math.nan, gap_p=math.nan)
    else:
        sd = float(difference.std(ddof=1))
        half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
        p = float(stats.ttest_rel(values, baseline).pvalue) if sd > 0 else math.nan
        out.update(gap_sd=sd, gap_ci_low=out["gap"] - half, gap_ci_high=out["gap"] + half, gap_p=p)
    return {prefix + key[3:]: value for key, value in out.items()}


def gap_prefix(reference: str, baseline: str = BASELINE_RECIPE) -> str:
    """The ``ladder_summary`` columns of the gap to ``reference``: ``gap…`` for the baseline,
    ``gap_vs_{reference}…`` for any other reference recipe (``gap_vs_bhyt-ref_ci_low``, …)."""
    return "gap" if reference == baseline else f"gap_vs_{reference}"


def _runs_at_best(table: pd.DataFrame, best: dict, rung: str, name: str) -> pd.DataFrame:
    runs = table[(table["rung"] == rung) & (table["recipe"] == name)]
    return runs[(runs["lr"] == best[rung, name]) & ~runs["diverged"]].sort_values("seed")


def reference_gap(table: pd.DataFrame, best: dict, rung: str, name: str, reference: str, level: float = 0.95,
                  prefix: str = "gap") -> dict:
    """The gap of recipe ``name`` to recipe ``reference`` at ``rung``, each at its own best rate
    (``best``: ``best_rates``), paired by seed over the seeds both finished (``paired_gap``
    with ``prefix``); empty when either recipe has no best rate at the rung."""
    if (rung, name) not in best or (rung, reference) not in best:
        return {}
    ours, theirs = _runs_at_best(table, best, rung, name), _runs_at_best(table, best, rung, reference)
    seeds = sorted(set(ours["seed"]) & set(theirs["seed"]))
    return paired_gap(ours.set_index("seed").loc[seeds, "eval_loss"].to_numpy(),
                      theirs.set_index("seed").loc[seeds, "eval_loss"].to_numpy(), level, prefix)


def ladder_summary(table: pd.DataFrame, baseline: str = BASELINE_RECIPE, level: float = 0.95,
                   references: Sequence[str] = (METHOD_RECIPE,)) -> pd.DataFrame:
    """One row per rung × recipe at its best rate (module docstring, ``ladder_summary``); besides
    the gap to ``baseline`` (``gap…``), the paired gap to each recipe of ``references``
    (``gap_vs_{reference}…``, ``reference_gap``) on every other recipe's row."""
    best = best_rates(table)
    rows = []
    for (rung, name), lr in best.items():
        runs = table[(table["rung"] == rung) & (table["recipe"] == name)]
        at_best = runs[(runs["lr"] == lr) & ~runs["diverged"]].sort_values("seed")
        sweep = runs[runs["seed"] == 0].sort_values("lr")
        row = {"rung": rung, "params": runs["params"].iloc[0], "tokens": runs["tokens"].iloc[0],
               "scheme": runs["scheme"].iloc[0], "recipe": name, "best_lr": lr,
               "best_at_sweep_end": lr in (sweep["lr"].min(), sweep["lr"].max()) and len(sweep) > 1,
               "sweep": "; ".join(f"{r.lr:g}: {'div' if r.diverged else f'{r.eval_loss:.4f}'}"
                                  for r in sweep.itertuples()),
               "n_seeds": len(at_best), "eval_loss_mean": at_best["eval_loss"].mean(),
               "eval_loss_sd": at_best["eval_loss"].std(ddof=1) if len(at_best) > 1 else math.nan,
               "tokens_per_epoch": runs["tokens_per_epoch"].iloc[0], "epochs": runs["epochs"].iloc[0]}
        for column in ("last_mean_abs", "last_variance", "embedding_mean_abs", "first_mean_abs", "growth_mean_abs",
                       "saturated_attn_max", "saturated_mlp_max", "saturated_final"):
            row[column] = at_best[column].mean()
        for other in dict.fromkeys((baseline, *references)):
            if other != name:
                row.update(reference_gap(table, best, rung, name, other, level, gap_prefix(other, baseline)))
        reference = table[(table["rung"] == rung) & (table["recipe"] == baseline)]
        if name != baseline and (rung, baseline) in best:
            base = reference[(reference["lr"] == best[rung, baseline]) & ~reference["diverged"]]
            shared = runs[(runs["seed"] == 0) & (runs["lr"] == best[rung, baseline])]
            base_zero = base[base["seed"] == 0]
            row["gap_shared_lr_seed0"] = (float(shared["eval_loss"].iloc[0] - base_zero["eval_loss"].iloc[0])
                                          if len(shared) and len(base_zero) and not shared["diverged"].iloc[0]
                                          else math.nan)
            # Geometric means over seeds: per run last = first × growth, and so the split multiplies
            # exactly (c8_last = c8_first × c8_growth), which ratios of arithmetic means do not.
            for statistic in ("last_mean_abs", "first_mean_abs", "growth_mean_abs"):
                row[f"c8_{statistic}_ratio"] = float(np.exp(np.log(base[statistic]).mean()
                                                            - np.log(at_best[statistic]).mean()))
        rows.append(row)
    return pd.DataFrame(rows)


def gap_trend(summary: pd.DataFrame, method: str = METHOD_RECIPE, level: float = 0.95,
              reference: str = BASELINE_RECIPE, baseline: str = BASELINE_RECIPE) -> pd.DataFrame:
    """The method's gap to ``reference`` (the summary's ``gap_prefix(reference, baseline)``
    column) fitted against log₁₀ params and log₁₀ tokens (ordinary least squares over
    rungs, one fit each), the slope's Student-t interval (n − 2 degrees of freedom) and
    the prediction at ``PAPER_SCALE`` with its prediction interval; NaN intervals below
    three rungs."""
    column = gap_prefix(reference, baseline)
    rows = (summary[(summary["recipe"] == method) & summary[column].notna()] if column in summary
            else summary[:0])
    out = []
    for against in ("params", "tokens"):
        x, y = np.log10(rows[against].to_numpy(float)), rows[column].to_numpy(float)
        n = len(x)
        record = {"recipe": method, "reference": reference, "against": f"log10_{against}", "n_rungs": n,
                  "level": level, "paper_value": PAPER_SCALE[against]}
        if n >= 2 and np.ptp(x) > 0:
            fit = stats.linregress(x, y)
            x0 = math.log10(PAPER_SCALE[against])
            record.update(slope=fit.slope, intercept=fit.intercept, predicted_gap=fit.intercept + fit.slope * x0)
            if n >= 3:
                q = stats.t.ppf(0.5 + level / 2, n - 2)
                residual_sd = math.sqrt(np.sum((y - fit.intercept - fit.slope * x) ** 2) / (n - 2))
                spread = math.sqrt(1 + 1 / n + (x0 - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
                record.update(slope_ci_low=fit.slope - q * fit.stderr, slope_ci_high=fit.slope + q * fit.stderr,
                              prediction_low=record["predicted_gap"] - q * residual_sd * spread,
                              prediction_high=record["predicted_gap"] + q * residual_sd * spread)
        out.append(record)
    return pd.DataFrame(out)


def ladder_trends(summary: pd.DataFrame, recipes: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """``gap_trend`` of every recipe but the baseline against the baseline and, for every
    recipe but those two, against ``METHOD_RECIPE`` too (the method's own first)."""
    pairs = [(METHOD_RECIPE, BASELINE_RECIPE)] if METHOD_RECIPE in recipes else []
    for name in recipes:
        if name not in (BASELINE_RECIPE, METHOD_RECIPE):
            pairs += [(name, BASELINE_RECIPE)] + ([(name, METHOD_RECIPE)] if METHOD_RECIPE in recipes else [])
    if not pairs:
        return gap_trend(summary, level=level)
    return pd.concat([gap_trend(summary, name, level, reference) for name, reference in pairs], ignore_index=True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_ladder(rungs: Sequence[Rung], recipes: Sequence[str], out_dir: str | Path, seeds: int = 3,
               corpus: str | None = "stdlib", workers: int = 1, progress: bool | None = None,
               log: Callable[[str], None] = _stderr, extensions: int = SWEEP_EXTENSIONS,
               **changes) -> dict[str, pd.DataFrame]:
    """Sweep every rung × recipe × rate (seed 0), extend a sweep whose best rate lies at its end by
    up to ``extensions`` rates (``extension_rates``), then train seeds 1 … ``seeds``−1 at
    each recipe's best rate; write and return ``ladder``, ``ladder_norms``,
    ``ladder_summary`` and ``ladder_trend`` (module docstring). ``changes``: further
    ``TrainConfig``/``StackConfig`` fields applied to every run (tiny test sizes)."""
    if BASELINE_RECIPE not in recipes:
        recipes = (BASELINE_RECIPE, *recipes)
    out_dir = Path(out_dir)
    rows, norms = [], []

    def train_all(pairs: list[tuple[Rung, TrainConfig]]) -> None:
        results = run_all([config for _, config in pairs], out_dir, workers, False, progress, log)
        for (rung, config), result in zip(pairs, results):
            row, norm = run_row(rung, config, result)
            rows.append(row)
            norms.append(norm)

    by_name = {rung.name: rung for rung in rungs}
    train_all(sweep_configs(rungs, recipes, corpus, **changes))
    for _ in range(extensions):
        extra = extension_rates(pd.DataFrame(rows))
        if not extra:
            break
        log(f"best rate at an end of its sweep, one more rate each: "
            + ", ".join(f"{rung} {name} {lr:.3g}" for (rung, name), lr in extra.items()))
        train_all([run_config(by_name[rung], name, corpus, lr, 0, **changes) for (rung, name), lr in extra.items()])
    best = best_rates(pd.DataFrame(rows))
    train_all([run_config(by_name[rung], name, corpus, lr, seed, **changes)
               for (rung, name), lr in best.items() for seed in range(1, seeds)])
    table = pd.DataFrame(rows)
    summary = ladder_summary(table)
    tables = {"ladder": table, "ladder_norms": pd.concat(norms, ignore_index=True) if norms else pd.DataFrame(),
              "ladder_summary": summary, "ladder_trend": ladder_trends(summary, recipes)}
    write_tables(tables, out_dir, parquet=False)
    return tables


def measure_step_seconds(rung: Rung, recipe: str = BASELINE_RECIPE, steps: int = 3, corpus: str | None = None,
                         **changes) -> float:
    """CPU seconds per training step of ``rung`` (mean of ``steps`` steps after one untimed
    step), in this process with its current thread count: with one thread, CPU time is
    the work of a step whatever else shares the machine."""
    config = rung.config(corpus, **recipe_changes(recipe), **changes)
    data = build_corpus(config.corpus, config.text_field, config.eval_fraction)
    model = LanguageModel(config)
    optimiser = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    for step in range(steps + 1):
        if step == 1:
            started = time.process_time()
        timed_step(model, optimiser, config, data, step)
    return (time.process_time() - started) / steps


def _makespan(durations: Sequence[float], workers: int) -> float:
    """Longest-first list scheduling of ``durations`` onto ``workers`` (Graham's LPT)."""
    loads = [0.0] * workers
    for duration in sorted(durations, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + duration)
    return max(loads)


def ladder_cost(rungs: Sequence[Rung], recipes: Sequence[str], seeds: int, seconds_per_step: dict[str, float],
                workers: Sequence[int] = (1, 2, 8, 32)) -> pd.DataFrame:
    """CPU-hours of a ladder from measured seconds per step, and its wall hours on N workers.

    Each run costs ``steps`` × its rung's seconds per step × (1 + the held-out
    evaluations' share: 5 evaluations of 8 forward-only batches ≈ 8 × 5 / 3 steps)
    + ``TASK_OVERHEAD_S``. Phase 1 (the sweeps) and phase 2 (the seeds at the best
    rates) run one after the other, each packed longest-first onto the workers.
    Returns one row per N: ``workers``, ``runs``, ``cpu_hours``, ``wall_hours``.
    """
    sweep, seeded = [], []
    for rung in rungs:
        run_seconds = (rung.steps + 8 * 5 / 3) * seconds_per_step[rung.name] + TASK_OVERHEAD_S
        sweep += [run_seconds] * (len(recipes) * len(rung.lrs))
        seeded += [run_seconds] * (len(recipes) * (seeds - 1))
    total = sum(sweep) + sum(seeded)
    return pd.DataFrame([{"workers": n, "runs": len(sweep) + len(seeded), "cpu_hours": total / 3600,
                          "wall_hours": (_makespan(sweep, n) + _makespan(seeded, n)) / 3600} for n in workers])
