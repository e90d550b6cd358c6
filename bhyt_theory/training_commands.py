"""The ``bhyt-theory`` sub-commands for training and for the statements about trained
parameters, gradients and decoding: ``train``, ``gradients``, ``staleness``,
``position``, ``decode`` — each registers its parser and renders what the library
computes."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from pathlib import Path

from .commands import (
    add_config_arguments,
    add_output_options,
    check_distinct,
    config_from_arguments,
    show,
    validate_seeded_config,
    write_table,
)
from .experiments.training import TrainConfig
from .numerics.model import (
    DTYPES,
    StackConfig,
)
from .numerics.schemes import SCHEME_TABLE
from .options import (
    choices_help,
    fraction,
    non_negative_real,
    one_of,
    positive_real,
    seed,
    size,
)

# ---- train: CPU pretraining of every scheme ------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from .experiments import executor

    with executor.backend(scheduler=args.scheduler):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from .experiments.training_study import (
        GRID_PRESETS,
        comparison_configs,
        grid_configs,
        preset_config,
        run_comparison,
        stability_grid,
        training_throughput,
    )

    preset = "quick" if args.quick else "full" if args.full else "default"
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(StackConfig) if getattr(args, f.name) is not None}
    changes.update({name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None})
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
    base = preset_config(preset, **changes)
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


# Every TrainConfig field is an option; seeds and labels come from --seeds and the study.
TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("stack", "seed", "label"))


def add_train_parser(commands) -> None:
    from .experiments.training_study import COMPARISON_SCHEMES, DEFAULT_SEEDS, PRESETS

    train = commands.add_parser(
        "train", help="CPU pretraining of every scheme on a byte-level corpus, trained-regime analyses",
        description="Train a byte-level language model (embedding, Stack, LM head; AdamW, warm-up + cosine) per "
        "scheme × seed on CPython's pydoc_data.topics (or --corpus), resumably, and write the logged table, "
        "post-training analyses (layer skip, angular distance, depth bound, growth fit, Jacobian), a summary "
        "and figures to --out. --grid runs the divergence grid instead, --throughput the throughput ratios. "
        f"Presets: default {PRESETS['default']}; --quick {PRESETS['quick']}; --full {PRESETS['full']}. "
        "StackConfig and TrainConfig options override the preset.",
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
    size.add_argument("--full", action="store_true", help="larger preset (depth 16, width 128, 1000 steps)")
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
    train.add_argument("--repeats", type=int, default=5, help="repeats of --throughput")
    train.add_argument("--throughput-steps", type=int, default=5, help="steps per scheme and repeat of --throughput")
    train.add_argument("--out", type=Path, default=Path("results/train"))
    train.add_argument("--no-progress", action="store_true", help="no progress bar (one line per run instead)")
    train.set_defaults(run=cmd_train)


# ---- gradients, staleness, position, decode: the statements about trained parameters ------------

def cmd_gradients(args: argparse.Namespace) -> int:
    from .experiments.gradients import (
        GRADIENT_SCHEMES,
        gradient_growth,
        gradient_study,
        gradient_table,
    )

    config = config_from_arguments(args)
    study = gradient_study(config, schemes=tuple(args.schemes or GRADIENT_SCHEMES), seeds=tuple(args.seeds),
                           batch=args.batch, input_std=args.input_std, probes=args.probes,
                           progress=not args.no_progress)
    write_table(study, args.csv, args.json)
    layers = sorted({0, 1, 4, 16, config.depth // 2, config.depth - 1, config.depth})
    table = gradient_table(study, layers)
    for column in ("growth", "mean_field_growth", "predicted_growth", "correlated_growth"):
        print(f"\n{column} = ||dL/dh_l|| / ||dL/dh_L|| (mean over seeds):")
        show(table.pivot(index="scheme", columns="layer", values=column).loc[list(dict.fromkeys(study.scheme))])
    print("\ngrowth from the top to the input, 95 % Student-t interval over seeds:")
    show(gradient_growth(study), index=False)
    return 0


def cmd_staleness(args: argparse.Namespace) -> int:
    from .experiments.staleness import staleness_study, staleness_summary

    study = staleness_study(config_from_arguments(args, scheme="bhyt"), deltas=tuple(args.deltas),
                            seeds=tuple(args.seeds), batch=args.batch, input_std=args.input_std)
    write_table(study, args.csv, args.json)
    show(staleness_summary(study), index=False)
    return 0


def cmd_position(args: argparse.Namespace) -> int:
    from .experiments.position_estimator import (
        peaked_attention_study,
        worst_peaked_error,
    )

    study = peaked_attention_study(config_from_arguments(args, scheme="bhyt", depth=1), peaks=tuple(args.peaks),
                                   seeds=tuple(args.seeds), batch=args.batch, input_std=args.input_std)
    write_table(study, args.csv, args.json)
    show(worst_peaked_error(study), index=False)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from .experiments.decode import decode_exactness

    table = decode_exactness(dtypes=tuple(args.dtypes), seeds=tuple(args.seeds), steps=args.steps)
    write_table(table, args.csv, args.json)
    show(table, index=False)
    return 0


def add_statement_commands(commands) -> None:
    gradients = commands.add_parser(
        "gradients", help="gradient norms through depth at init per scheme: measured and predicted",
        description="||dL/dh_l|| for L = <R, h_L> (R iid N(0,1)) per scheme x layer x seed, against the "
        "isotropic-cotangent prediction prod ||J_k||_F^2/(T d) and the token-Gram recursion "
        "(experiments.gradients; proofs/backward_pass.md). Defaults: depth 64, width 64, T 32, float64.",
    )
    add_config_arguments(gradients)
    gradients.set_defaults(depth=64, width=64, seq_len=32, dtype="float64")
    gradients.add_argument("--schemes", nargs="+", **one_of(tuple(SCHEME_TABLE), "SCHEME"), default=None,
                           help="default: all but bhytline; " + choices_help(tuple(SCHEME_TABLE)))
    gradients.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2])
    gradients.add_argument("--batch", type=size, default=2)
    gradients.add_argument("--probes", type=size, default=4)
    gradients.add_argument("--input-std", type=positive_real, default=0.02)
    gradients.add_argument("--no-progress", action="store_true")
    add_output_options(gradients)
    gradients.set_defaults(run=cmd_gradients, validate=validate_seeded_config)

    staleness = commands.add_parser(
        "staleness", help="size of the stale-c_attn error term after a controlled weight perturbation",
        description="experiments.staleness (proofs/trained_parameters.md): bhyt stacks, weights moved by a "
        "relative delta (random noise, or W_V, W_O scaled) after c_attn was computed. Defaults: depth 8, "
        "width 256, T 64, float64.",
    )
    add_config_arguments(staleness)
    staleness.set_defaults(depth=8, width=256, seq_len=64, dtype="float64")
    staleness.add_argument("--deltas", type=non_negative_real, nargs="+", default=[0.03, 0.07, 0.3],
                           help="relative weight perturbations, finite, ≥ 0")
    staleness.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2])
    staleness.add_argument("--batch", type=size, default=4)
    staleness.add_argument("--input-std", type=positive_real, default=0.02)
    add_output_options(staleness)
    staleness.set_defaults(run=cmd_staleness, validate=lambda args: validate_seeded_config(args, scheme="bhyt"))

    position = commands.add_parser(
        "position", help="M2 estimators under forced peaked attention: worst error per estimator x peak",
        description="experiments.position_estimator (proofs/position_estimator.md): one bhyt block, attention "
        "forced to mass p on token 0 and 1-p uniform causal, iid Gaussian tokens. Defaults: width 128, T 32.",
    )
    add_config_arguments(position)
    position.set_defaults(width=128, seq_len=32, dtype="float64")
    position.add_argument("--peaks", type=fraction, nargs="+", default=[0.0, 0.1, 0.25, 0.5, 0.9, 1.0],
                          help="attention mass on token 0, each in [0, 1]")
    position.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2])
    position.add_argument("--batch", type=size, default=256)
    position.add_argument("--input-std", type=positive_real, default=0.02)
    add_output_options(position)
    position.set_defaults(run=cmd_position,
                          validate=lambda args: validate_seeded_config(args, scheme="bhyt", depth=1))

    decode = commands.add_parser(
        "decode", help="bit-exactness of the decode-time precomputation (C9), float32 and bfloat16",
        description="experiments.decode (proofs/decode_precomputation.md): fraction of outputs differing, "
        "max ulps and greedy-decoding agreement per dtype x order of operations.",
    )
    decode.add_argument("--dtypes", nargs="+", **one_of(DTYPES, "DTYPE"), default=["float32", "bfloat16"],
                        help="default float32 bfloat16; " + choices_help(DTYPES))
    decode.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2])
    decode.add_argument("--steps", type=size, default=16)
    add_output_options(decode)
    decode.set_defaults(run=cmd_decode, validate=lambda args: check_distinct("--seeds", args.seeds))


