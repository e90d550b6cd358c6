"""The training command ``train``: CPU pretraining of every scheme and the trained-regime
analyses."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from pathlib import Path

from ..experiments.training.trainer import TrainConfig
from ..numerics.model import PRESETS, StackConfig
from .common import (
    add_config_arguments,
    library_default,
    show,
    write_table,
)


def cmd_train(args: argparse.Namespace) -> int:
    from ..experiments import executor

    with executor.backend(scheduler=args.scheduler):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from ..experiments.training.study import (
        GRID_PRESETS,
        comparison_configs,
        grid_configs,
        preset_config,
        run_comparison,
        stability_grid,
        training_throughput,
    )

    preset, changes = training_preset(args), training_changes(args)
    progress = False if args.no_progress else None
    if args.throughput:
        base = preset_config(preset, **changes)
        table = training_throughput(base, tuple(args.schemes), repeats=args.repeats, steps=args.throughput_steps)
        write_table(table, args.out / "throughput.csv")
        print(f"training tokens/s relative to rmsnorm (same process, {args.repeats} interleaved repeats, "
              f"Student-t 95 % interval) and achieved matmul FLOP/s over a dense matmul timed alongside; "
              f"depth {base.stack.depth}, width {base.stack.width}, batch {base.batch_size} × T {base.stack.seq_len}")
        show(table, index=False)
        return 0
    if args.grid:
        grid = GRID_PRESETS["quick" if args.quick else "default"]
        stack_sizes = {k: grid[k] for k in ("width", "heads", "seq_len", "steps", "batch_size")}
        base = preset_config(preset, **{**stack_sizes, **changes})
        configs = grid_configs(base, tuple(args.grid_depths or grid["depths"]), tuple(args.grid_lrs or grid["lrs"]),
                               tuple(args.schemes), tuple(args.seeds))
        table = stability_grid(configs, args.out / "grid", args.workers, progress)
        print(f"divergence grid (width {base.stack.width}, {base.steps} steps, batch {base.batch_size} × "
              f"T {base.stack.seq_len}; diverged: non-finite loss or loss > {base.spike_ratio} × running minimum)")
        shown = table.assign(result=[
            f"div@{r.divergence_step} L{r.divergence_layer}" if r.diverged else f"{r.final_eval_loss:.3f}"
            for r in table.itertuples()])
        show(shown.pivot_table(index=["label", "depth"], columns="lr", values="result", aggfunc="first", sort=False))
        return 0
    base = train_config(args)
    configs = comparison_configs(base, tuple(args.schemes), tuple(args.seeds), tuple(args.estimators),
                                 args.fixed_embedding_experiment)
    print(f"training {len(configs)} runs: depth {base.stack.depth}, width {base.stack.width}, heads {base.stack.heads}, "
          f"T {base.stack.seq_len}, batch {base.batch_size}, {base.steps} steps "
          f"({base.steps * base.tokens_per_step} tokens per run) → {args.out}", file=sys.stderr)
    tables = run_comparison(configs, args.out, args.workers, progress=progress)
    columns = ["label", "n_runs", "n_diverged", "eval_loss_mean", "eval_loss_sd", "embedding_mean_abs",
               "first_mean_abs", "last_mean_abs", "last_variance", "growth_mean_abs", "mean_abs_baseline_ratio",
               "variance_baseline_ratio", "estimate_ratio_min", "estimate_ratio_max", "stale_share_median",
               "skip_increase_last_half"]
    summary = tables["summary"]
    show(summary[[c for c in columns if c in summary.columns]], index=False)
    print(f"tables and figures in {args.out}")
    return 0


def training_preset(args: argparse.Namespace) -> str:
    """The training preset (``experiments.training.study.PRESETS``) that ``--quick``/``--full`` name."""
    return "quick" if args.quick else "full" if args.full else "default"


def training_changes(args: argparse.Namespace) -> dict:
    """What ranks above the training preset: the ``--preset`` shape, then the options given."""
    changes = dict(PRESETS[args.preset]) if args.preset else {}
    changes.update({f.name: getattr(args, f.name) for f in dataclasses.fields(StackConfig)
                    if getattr(args, f.name) is not None})
    changes.update({name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None})
    return changes


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The base ``TrainConfig`` of the comparison: training preset < ``--preset`` shape < options given."""
    from ..experiments.training.study import preset_config

    return preset_config(training_preset(args), **training_changes(args))


# Every TrainConfig field is an option; seeds and labels come from --seeds and the study.
TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("stack", "seed", "label"))


def register(commands) -> None:
    """Add ``train`` to ``commands`` (an argparse sub-parsers action)."""
    from ..experiments.training.study import (
        COMPARISON_SCHEMES,
        DEFAULT_SEEDS,
        training_throughput,
    )
    from ..experiments.training.study import PRESETS as TRAINING_PRESETS

    train = commands.add_parser(
        "train", help="CPU pretraining of every scheme on a byte-level corpus, trained-regime analyses",
        description="Train a byte-level language model (embedding, Stack, LM head; AdamW, warm-up + cosine) per "
        "scheme × seed on CPython's pydoc_data.topics (or --corpus), resumably, and write the logged table, "
        "post-training analyses (layer skip, angular distance, depth bound, growth fit, Jacobian), a summary "
        "and figures to --out. --grid runs the divergence grid instead, --throughput the throughput ratios. "
        f"Training presets: default {TRAINING_PRESETS['default']}; --quick {TRAINING_PRESETS['quick']}; "
        f"--full {TRAINING_PRESETS['full']}. A --preset shape overrides the training preset's, and StackConfig "
        "and TrainConfig options override both.",
    )
    add_config_arguments(train)
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in TRAIN_OPTIONS:
            base = next((t for t in typing.get_args(hints[field.name]) if t is not type(None)), hints[field.name])
            train.add_argument("--" + field.name.replace("_", "-"), type=base, default=None,
                               help=f"TrainConfig.{field.name} (default {field.default}, unless the preset sets it)")
    size = train.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny preset, about a minute")
    size.add_argument("--full", action="store_true", help=f"larger preset ({TRAINING_PRESETS['full']})")
    train.add_argument("--schemes", nargs="+", default=list(COMPARISON_SCHEMES))
    train.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    train.add_argument("--estimators", nargs="+", default=[],
                       help="also train bhyt with these M₂ estimators (e.g. position learnable_scale hybrid)")
    train.add_argument("--fixed-embedding-experiment", type=float, default=0.0, metavar="RMS",
                       help="also train rmsnorm and bhyt with each token's embedding output fixed at this rms")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                       help="runs trained in parallel in local processes, one thread each")
    where.add_argument("--scheduler", default=None,
                       help="train each run as a task of an existing Dask cluster: its scheduler's address "
                       "(tcp://host:8786); --out must be a folder every worker sees at the same path")
    train.add_argument("--grid", action="store_true", help="divergence grid depth × lr × scheme instead")
    train.add_argument("--grid-depths", type=int, nargs="+", default=None)
    train.add_argument("--grid-lrs", type=float, nargs="+", default=None)
    train.add_argument("--throughput", action="store_true", help="tokens/s ratios to rmsnorm instead")
    train.add_argument("--repeats", type=int, default=library_default(training_throughput, "repeats"),
                       help="repeats of --throughput")
    train.add_argument("--throughput-steps", type=int, default=library_default(training_throughput, "steps"),
                       help="steps per scheme and repeat of --throughput")
    train.add_argument("--out", type=Path, default=Path("results/train"))
    train.add_argument("--no-progress", action="store_true", help="no progress bar (one line per run instead)")
    train.set_defaults(run=cmd_train, configs=lambda args: [train_config(args).stack])
