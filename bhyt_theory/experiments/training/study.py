"""The training studies behind ``bhyt-theory train``: scheme comparison, stability
grid and throughput ratios (claims C2, C6, C7, C8 of docs/claims.md).

- ``run_comparison``: every configuration trained (``training.train``) and
  analysed (``trained_analysis.analyse``), each run cached under
  ``out_dir/runs/{run_id}.pkl`` (an interrupted study resumes; a run interrupted
  mid-way resumes from its checkpoint), in ``workers`` processes of one thread;
  tables and figures written to ``out_dir``.
- ``stability_grid``: depth × learning rate × variant at a small width, recording
  which runs diverge, at which step and layer, and the final held-out losses.
- ``training_throughput``: tokens/s of training per scheme relative to RMSNorm,
  timed interleaved in one process, with a Student-t interval over repeats; and
  the achieved matmul FLOP/s over a dense matmul of the block's MLP shape timed
  in the same run (``bench.dense_matmul_operands``). Reports, asserts nothing.

Presets (``PRESETS``): model and run sizes of the default comparison, ``quick``
and ``full``; byte-level model, T = 64 (module ``corpus``).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import executor
from ..atomic import write_atomically
from ..bench import block_matmul_flops, dense_matmul_operands
from .corpus import VOCAB_SIZE, build_corpus, evaluation_batches
from ..montecarlo import confidence_interval
from .analysis import analyse, training_figures, training_summary
from .trainer import LanguageModel, TrainConfig, parameter_groups, timed_step, train

COMPARISON_SCHEMES = ("rmsnorm", "periln", "lns", "dyt", "bhyt", "bhytstar")
DEFAULT_SEEDS = (0, 1, 2)
_BASE = {"depth": 8, "width": 64, "heads": 4, "seq_len": 64}
PRESETS: dict[str, dict] = {
    "default": {**_BASE, "steps": 300, "batch_size": 16, "stats_every": 100, "eval_every": 50},
    "quick": {"depth": 4, "width": 32, "heads": 2, "seq_len": 32, "steps": 40, "batch_size": 8,
              "warmup_steps": 5, "stats_every": 20, "eval_every": 20, "eval_batches": 2},
    "full": {"depth": 16, "width": 128, "heads": 4, "seq_len": 128, "steps": 1000, "batch_size": 16,
             "warmup_steps": 100, "stats_every": 200, "eval_every": 100},
}
"""Changes to ``TrainConfig()`` (and its ``StackConfig``) per preset."""
GRID_PRESETS: dict[str, dict] = {
    "default": {"depths": (8, 16, 32), "lrs": (3e-4, 3e-3, 1e-2, 3e-2), "width": 32, "heads": 2, "seq_len": 32,
                "steps": 100, "batch_size": 8},
    "quick": {"depths": (4, 8), "lrs": (3e-3, 3e-2), "width": 16, "heads": 2, "seq_len": 16, "steps": 30,
              "batch_size": 4},
}
DYT_SMALL_ALPHA = 0.05
"""The "LLM-style" small DyT α of the grid (DyT's paper lowers α for wider LLMs)."""


def preset_config(preset: str = "default", **changes) -> TrainConfig:
    """``TrainConfig`` of a preset with ``changes`` (TrainConfig or StackConfig fields) on top."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
    base = TrainConfig().replace(**PRESETS[preset])
    return base.replace(**changes) if changes else base


def comparison_configs(
    base: TrainConfig,
    schemes: Sequence[str] = COMPARISON_SCHEMES,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    estimators: Sequence[str] = (),
    fixed_embedding_rms: float = 0.0,
) -> list[TrainConfig]:
    """One configuration per scheme × seed; plus ``bhyt`` with each of ``estimators``
    (label ``bhyt+{estimator}``); plus, if ``fixed_embedding_rms`` > 0, ``rmsnorm`` and
    ``bhyt`` with the embedding output fixed at that rms (labels ``…+fixed_embedding``)."""
    configs = [base.replace(scheme=scheme, seed=seed, label="") for scheme in schemes for seed in seeds]
    configs += [base.replace(scheme="bhyt", estimator=estimator, seed=seed, label=f"bhyt+{estimator}")
                for estimator in estimators for seed in seeds]
    if fixed_embedding_rms > 0:
        configs += [base.replace(scheme=scheme, seed=seed, fixed_embedding_rms=fixed_embedding_rms,
                                 label=f"{scheme}+fixed_embedding")
                    for scheme in ("rmsnorm", "bhyt") for seed in seeds]
    return configs


def run_one(config: TrainConfig, out_dir: str | Path, analysis: bool = True, progress: bool | None = None) -> dict:
    """Train and analyse one configuration, or read its cached result.

    Returns ``{"record": dict, "log": DataFrame, "analysis": {name: DataFrame}}``; the
    record is ``TrainingRun.record`` plus ``analysis_cpu_seconds``. Beside the cached
    result, ``runs/{run_id}.meta.json`` holds the full configuration and the record.
    """
    path = Path(out_dir) / "runs" / f"{config.run_id}.pkl"
    if path.exists():
        return pd.read_pickle(path)
    torch.set_num_threads(1)
    corpus = build_corpus(config.corpus, config.text_field, config.eval_fraction)
    run = train(config, out_dir, corpus, progress=progress)
    tables, started = {}, time.process_time()
    if analysis:
        batches = evaluation_batches(corpus, config.eval_batches, config.batch_size, config.stack.seq_len)
        tables = analyse(run, batches, config.stats_batch)
    record = {**run.record, "analysis_cpu_seconds": time.process_time() - started}
    result = {"record": record, "log": run.log, "analysis": tables}
    meta = {"config": config.as_dict(), "record": record}
    write_atomically(path.with_suffix(".meta.json"),
                     lambda target: Path(target).write_text(json.dumps(meta, indent=1, default=str)))
    write_atomically(path, partial(pd.to_pickle, result))
    return result


def _one_line(record: dict) -> str:
    state = (f"diverged at step {record['divergence_step']} (layer {record['divergence_layer']}, "
             f"{record['divergence_reason']})" if record["diverged"] else f"eval loss {record['final_eval_loss']:.4f}")
    return (f"{record['run_id']}: {state}, {record['steps_done']} steps, {record['seconds']:.1f} s wall, "
            f"{record['cpu_seconds']:.1f} + {record['analysis_cpu_seconds']:.1f} s CPU (training + analysis)")


def run_all(configs: Sequence[TrainConfig], out_dir: Path, workers: int, analysis: bool,
             progress: bool | None, log: Callable[[str], None]) -> list[dict]:
    """``run_one`` for every configuration, in order: one task per run on the current Dask
    backend when one is active (``executor.backend``: ``--scheduler`` or ``reproduce
    --workers``), else ``workers`` local processes at a time (one thread each)."""
    if not executor.current().in_process:
        task = partial(run_one, out_dir=out_dir.resolve(), analysis=analysis, progress=False)
        return executor.map_runs(task, configs, desc="training runs", progress=progress is not False,
                                 on_result=lambda index, result: log(_one_line(result["record"])))
    if workers <= 1:
        results = []
        for config in configs:
            results.append(run_one(config, out_dir, analysis, progress))
            log(_one_line(results[-1]["record"]))
        return results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(run_one, config, out_dir, analysis, False) for config in configs]
        results = []
        for future in futures:
            results.append(future.result())
            log(_one_line(results[-1]["record"]))
    return results


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path, parquet: bool = True) -> list[Path]:
    """Each table as ``{name}.csv`` (and ``{name}.parquet`` with pyarrow) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        if table is None or table.empty:
            continue
        table.to_csv(out_dir / f"{name}.csv", index=False)
        paths.append(out_dir / f"{name}.csv")
        if parquet:
            table.to_parquet(out_dir / f"{name}.parquet", index=False)
            paths.append(out_dir / f"{name}.parquet")
    return paths


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_comparison(
    configs: Sequence[TrainConfig],
    out_dir: str | Path,
    workers: int = 1,
    figures: bool = True,
    progress: bool | None = None,
    log: Callable[[str], None] = _stderr,
) -> dict[str, pd.DataFrame]:
    """Train and analyse every configuration; write and return the tables.

    Returns (and writes as CSV and Parquet) ``runs`` (one record per run),
    ``log`` (every logged quantity, ``training`` module docstring), ``summary``
    (``training_summary``), and the ``analyse`` tables concatenated:
    ``layer_skip``, ``angular``, ``bound``, ``growth``, ``jacobian``. Figures go to
    ``out_dir/figures``.
    """
    out_dir = Path(out_dir)
    results = run_all(configs, out_dir, workers, True, progress, log)
    runs = pd.DataFrame([r["record"] for r in results])
    logged = pd.concat([r["log"] for r in results], ignore_index=True)
    names = sorted({name for r in results for name in r["analysis"]})
    analysis = {name: pd.concat([r["analysis"][name] for r in results if name in r["analysis"]], ignore_index=True)
                for name in names}
    tables = {"runs": runs, "log": logged, "summary": training_summary(runs, logged, analysis), **analysis}
    write_tables(tables, out_dir)
    if figures:
        training_figures(logged, analysis, out_dir / "figures")
    return tables


def grid_configs(base: TrainConfig, depths: Sequence[int], lrs: Sequence[float],
                 schemes: Sequence[str] = COMPARISON_SCHEMES, seeds: Sequence[int] = (0,),
                 dyt_small_alpha: float | None = DYT_SMALL_ALPHA) -> list[TrainConfig]:
    """depth × lr × variant × seed; variants are ``schemes`` plus ``dyt`` at
    ``dyt_small_alpha`` (label ``dyt(α=…)``). Statistics are taken only at the end."""
    variants = [(scheme, {}, "") for scheme in schemes]
    if dyt_small_alpha is not None:
        variants.append(("dyt", {"dyt_alpha": dyt_small_alpha}, f"dyt(α={dyt_small_alpha:g})"))
    return [
        base.replace(scheme=scheme, depth=depth, lr=lr, seed=seed, label=label, stats_every=base.steps,
                     eval_every=base.steps, **changes)
        for depth in depths for lr in lrs for scheme, changes, label in variants for seed in seeds
    ]


def stability_grid(configs: Sequence[TrainConfig], out_dir: str | Path, workers: int = 1,
                   progress: bool | None = None, log: Callable[[str], None] = _stderr) -> pd.DataFrame:
    """Train every grid configuration (no post-training analysis) and return one row
    per run: ``label``, ``scheme``, ``depth``, ``lr``, ``seed``, ``diverged``,
    ``divergence_step``, ``divergence_layer``, ``divergence_reason``,
    ``final_eval_loss``, ``min_train_loss``; written to ``out_dir/grid.csv``."""
    results = run_all(configs, Path(out_dir), workers, False, progress, log)
    rows = []
    for config, result in zip(configs, results):
        record, logged = result["record"], result["log"]
        rows.append({
            "label": record["label"], "scheme": record["scheme"], "depth": config.stack.depth, "lr": config.lr,
            "seed": config.seed, "diverged": record["diverged"], "divergence_step": record["divergence_step"],
            "divergence_layer": record["divergence_layer"], "divergence_reason": record["divergence_reason"],
            "final_eval_loss": record["final_eval_loss"],
            "min_train_loss": logged.loc[logged["quantity"] == "train_loss", "value"].min(),
        })
    table = pd.DataFrame(rows)
    write_tables({"grid": table}, out_dir)
    return table


def training_step_flops(config: TrainConfig) -> int:
    """Matmul FLOPs of one training step: 3 × the forward's (backward ≈ 2 × forward),
    the forward being the blocks' (``bench.block_matmul_flops``) plus the LM head's
    ``2 N d V`` (N = batch · T tokens, V = 256)."""
    stack, n = config.stack, config.tokens_per_step
    forward = stack.depth * block_matmul_flops(stack, config.batch_size, stack.seq_len) + 2 * n * stack.width * VOCAB_SIZE
    return 3 * forward


def training_throughput(base: TrainConfig, schemes: Sequence[str] = COMPARISON_SCHEMES, repeats: int = 5,
                        steps: int = 5, level: float = 0.95) -> pd.DataFrame:
    """Training tokens/s per scheme relative to RMSNorm, and FLOP/s relative to a dense matmul.

    Each repeat times, in turn, ``steps`` training steps of every scheme (after one
    warm-up step each) and a dense ``batch·T × d`` by ``d × mlp_width`` matmul; the
    ratio of each scheme's tokens/s to RMSNorm's is formed within the repeat (same
    machine state), then averaged over repeats with a Student-t interval.

    Returns one row per scheme: ``scheme``, ``tokens_per_second`` (mean),
    ``ratio_to_rmsnorm``, ``ratio_ci_low``, ``ratio_ci_high``, ``flops_ratio_to_dense``
    (achieved training matmul FLOP/s over the dense matmul's, mean over repeats),
    ``repeats``, ``level``, ``threads``.
    """
    if "rmsnorm" not in schemes:
        schemes = ("rmsnorm", *schemes)
    corpus = build_corpus(base.corpus, base.text_field, base.eval_fraction)
    stack = base.stack
    trainers = {}
    for scheme in schemes:
        config = base.replace(scheme=scheme)
        model = LanguageModel(config)
        optimiser = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
        trainers[scheme] = (config, model, optimiser)

    def run_steps(scheme: str, count: int) -> float:
        config, model, optimiser = trainers[scheme]
        start = time.perf_counter()
        for step in range(count):
            timed_step(model, optimiser, config, corpus, step)
        return time.perf_counter() - start

    dense = dense_matmul_operands(base.tokens_per_step, stack.width, stack.mlp_width)
    dense_flops = 2 * base.tokens_per_step * stack.width * stack.mlp_width
    for scheme in schemes:
        run_steps(scheme, 1)
    rates = {scheme: [] for scheme in schemes}
    flops_ratio = {scheme: [] for scheme in schemes}
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            dense()
        dense_rate = 20 * dense_flops / (time.perf_counter() - start)
        for scheme in schemes:
            seconds = run_steps(scheme, steps)
            rates[scheme].append(steps * base.tokens_per_step / seconds)
            flops_ratio[scheme].append(steps * training_step_flops(trainers[scheme][0]) / seconds / dense_rate)
    baseline = np.array(rates["rmsnorm"])
    rows = []
    for scheme in schemes:
        ratio = np.array(rates[scheme]) / baseline
        low, high = confidence_interval(ratio.mean(), ratio.std(ddof=1) if repeats > 1 else math.nan, repeats, level)
        rows.append({"scheme": scheme, "tokens_per_second": float(np.mean(rates[scheme])),
                     "ratio_to_rmsnorm": float(ratio.mean()), "ratio_ci_low": float(low), "ratio_ci_high": float(high),
                     "flops_ratio_to_dense": float(np.mean(flops_ratio[scheme])), "repeats": repeats, "level": level,
                     "threads": torch.get_num_threads()})
    return pd.DataFrame(rows)
