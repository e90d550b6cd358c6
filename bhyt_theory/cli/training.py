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
    if args.ladder:
        return _ladder(args, changes, progress)
    if args.gpu:
        raise SystemExit("--gpu selects the GPU ladder rung: use it with --ladder")
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


def _ladder(args: argparse.Namespace, changes: dict, progress: bool | None) -> int:
    from ..experiments.training.ladder import (
        LADDER_CORPUS,
        LADDER_RECIPE_SETS,
        LADDER_SEEDS,
        LADDERS,
        ladder_cost,
        measure_step_seconds,
        run_ladder,
    )

    name = "quick" if args.quick else "gpu" if args.gpu else "default"
    if args.full:
        raise SystemExit("--full is a preset of the comparison; the ladder's sizes are its rungs (--quick, --gpu)")
    rungs = LADDERS[name]
    if args.rungs:
        unknown = set(args.rungs) - {rung.name for rung in rungs}
        if unknown:
            raise SystemExit(f"--rungs: {sorted(unknown)} not among {[rung.name for rung in rungs]}")
        rungs = tuple(rung for rung in rungs if rung.name in args.rungs)
    if args.lrs:
        rungs = tuple(dataclasses.replace(rung, lrs=tuple(args.lrs)) for rung in rungs)
    recipes = tuple(args.recipes or LADDER_RECIPE_SETS[name])
    seeds = args.ladder_seeds or LADDER_SEEDS[name]
    corpus = changes.pop("corpus", LADDER_CORPUS[name])
    runs_per_rung = {rung.name: len(recipes) * (len(rung.lrs) + seeds - 1) for rung in rungs}
    for rung in rungs:
        config = rung.config(corpus, **changes)
        print(f"rung {rung.name}: depth {config.stack.depth}, width {config.stack.width}, heads {config.stack.heads}, "
              f"T {config.stack.seq_len}, batch {config.batch_size}, {config.steps} steps "
              f"({config.steps * config.tokens_per_step} tokens), rates {', '.join(f'{lr:g}' for lr in rung.lrs)}, "
              f"{runs_per_rung[rung.name]} runs", file=sys.stderr)
    print(f"recipes {', '.join(recipes)}; {seeds} seeds at each best rate; corpus {corpus or 'pydoc'} → {args.out}",
          file=sys.stderr)
    if args.dry_run:
        seconds = {rung.name: measure_step_seconds(rung, corpus=corpus, **changes) for rung in rungs}
        for rung in rungs:
            print(f"{rung.name}: {seconds[rung.name]:.4f} CPU s per training step (rmsnorm-llama, measured here, "
                  f"{os.environ.get('OMP_NUM_THREADS', 'default')} threads)")
        print("cost of the whole ladder from these step times (wall: each phase packed longest-first on N workers):")
        show(ladder_cost(rungs, recipes, seeds, seconds), index=False)
        return 0
    tables = run_ladder(rungs, recipes, args.out, seeds, corpus, args.workers, progress, **changes)
    columns = ["rung", "recipe", "best_lr", "best_at_sweep_end", "n_seeds", "eval_loss_mean", "eval_loss_sd", "gap",
               "gap_ci_low", "gap_ci_high", "gap_vs_bhyt-ref", "gap_vs_bhyt-ref_ci_low", "gap_vs_bhyt-ref_ci_high",
               "gap_shared_lr_seed0", "last_mean_abs", "first_mean_abs",
               "growth_mean_abs", "saturated_final", "epochs"]
    summary = tables["ladder_summary"]
    show(summary[[c for c in columns if c in summary.columns]], index=False)
    show(tables["ladder_trend"], index=False)
    print(f"ladder tables in {args.out}")
    return 0




def _ladder_help() -> str:
    from ..experiments.training.ladder import LADDER_CORPUS, LADDERS

    parts = []
    for name, rungs in LADDERS.items():
        shapes = ", ".join(f"(depth {r.depth}, width {r.width}, {r.steps} steps of {r.batch_size}×{r.seq_len})"
                           for r in rungs)
        parts.append(f"{name}{'' if name == 'default' else ' (--' + name + ')'}: {shapes}, corpus "
                     f"{LADDER_CORPUS[name] or 'pydoc'}")
    return "; ".join(parts)


def _train_default(name: str, presets: dict, base) -> str:
    """The value of ``name`` the command uses: the base's, then each preset's that differs."""
    values = [f"{base}"] + [f"{preset} {changes[name]}" for preset, changes in presets.items()
                            if preset != "default" and name in changes]
    return "; ".join(values)


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


# Every TrainConfig field is an option; seeds and labels come from --seeds and the study, recipes from
# --recipes (the ladder).
TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("stack", "seed", "label", "recipe"))


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
    from ..experiments.training.trainer import DEFAULT_STACK

    default = TrainConfig().replace(**TRAINING_PRESETS["default"])
    for action in train._actions:  # the StackConfig options: show this command's defaults, not StackConfig's
        if action.dest in {f.name for f in dataclasses.fields(StackConfig)} and action.dest != "preset":
            base = getattr(default.stack, action.dest, getattr(DEFAULT_STACK, action.dest))
            used = _train_default(action.dest, TRAINING_PRESETS, base)
            action.help = (f"StackConfig.{action.dest} (default {used}; --ladder: the rung's or the recipe's where "
                           "they set it)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in TRAIN_OPTIONS:
            base = next((t for t in typing.get_args(hints[field.name]) if t is not type(None)), hints[field.name])
            used = _train_default(field.name, TRAINING_PRESETS, getattr(default, field.name))
            train.add_argument("--" + field.name.replace("_", "-"), type=base, default=None,
                               help=f"TrainConfig.{field.name} (default {used}; --ladder: the rung's where it sets it)")
    size = train.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny preset, about a minute")
    size.add_argument("--full", action="store_true", help=f"larger preset ({TRAINING_PRESETS['full']})")
    size.add_argument("--gpu", action="store_true",
                      help="with --ladder: the GPU rung (Llama-374M shape, bf16 autocast on CUDA; make train-gpu)")
    ladder = train.add_argument_group("ladder (--ladder)")
    ladder.add_argument("--ladder", action="store_true",
                        help="per-recipe learning-rate sweep (extended by up to two rates beyond an end where the "
                        "best rate lies) and seeds at the best rate on every rung of the ladder: "
                        f"{_ladder_help()}")
    ladder.add_argument("--recipes", nargs="+", default=None,
                        help="recipes of the ladder (default: all but bhyt-ref+shared-scale; --gpu: rmsnorm-llama "
                        "bhyt-ref); docs/recipes.md")
    ladder.add_argument("--rungs", nargs="+", default=None, help="train only these rungs of the ladder (names as "
                        "printed: d8w64 d16w128 d16w256 d32w256; quick q-d2w16 q-d4w32)")
    ladder.add_argument("--ladder-seeds", type=int, default=None, help="seeds at each best rate (default 3; quick 2; "
                        "gpu 1)")
    ladder.add_argument("--lrs", type=float, nargs="+", default=None, help="rates swept at every rung (default: "
                        "the rung's own)")
    ladder.add_argument("--dry-run", action="store_true",
                        help="print the ladder's plan, measured seconds per step per rung and its CPU-hours and wall "
                        "time on N workers; train nothing")
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
