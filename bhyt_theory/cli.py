"""Derive, prove and numerically check the theory behind BHyT (arXiv 2601.09719).

The ``bhyt-theory`` command line: each sub-command is a ``_cmd_*`` function
registered in ``_build_parser`` (argparse).

Every option is validated before any work starts: each value by its argparse
``type=`` (``options``: one small function per kind of value — sizes, seeds,
indices, finite reals in a range, probabilities, devices, output files and
folders) or ``choices=``, and the options together by one ``_validate_*`` step per command
(configurations, layer/position indices within them, distinct sweep values).
A bad option gives one line on stderr (``bhyt-theory trace: error: …``) and
exit code 2. Ctrl-C gives one line saying what was saved and exit code 130; a
closed stdout (``… | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import os
import sys
import typing
from pathlib import Path

import pandas as pd
import torch

from .experiments.training import TrainConfig
from .numerics.estimators import ESTIMATORS
from .numerics.inputs import InputSpec
from .numerics.model import (
    DTYPES,
    PRESETS,
    SCHEMES,
    Stack,
    StackConfig,
)
from .numerics.probes import STATISTICS, position_average
from .numerics.schemes import SCHEME_TABLE
from .options import (
    OPTION_RANGES,
    Parser,
    choices_help,
    config_choices,
    config_type,
    device,
    fraction,
    index,
    lam_pair,
    non_negative_real,
    one_of,
    output_file,
    output_folder,
    positive_real,
    probability,
    seed,
    size,
)
from .theory.meanfield import ATTENTION_MODELS, SOFTMAX_SAMPLES


def add_config_arguments(parser: argparse.ArgumentParser, multi: bool = False) -> None:
    """One ``--option`` per ``StackConfig`` field (``kv_heads`` → ``--kv-heads``),
    each typed and range-checked as ``StackConfig`` requires.

    With ``multi=True`` every option takes one or more values (for sweeps).
    ``--preset`` starts from a paper-scale shape (``model.PRESETS``); options given
    explicitly override its fields.
    """
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="paper-scale shape (explicit options override its fields)")
    hints = typing.get_type_hints(StackConfig)
    for field in dataclasses.fields(StackConfig):
        kind = hints[field.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        accepted = ""
        if field.name in OPTION_RANGES:
            minimum, strict = OPTION_RANGES[field.name]
            accepted = "; finite" + ("" if minimum is None else f", {'>' if strict else '≥'} {minimum:g}")
        elif field.name in config_choices():
            accepted = "; " + choices_help(config_choices()[field.name])
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            nargs="+" if multi else None,
            default=None,
            help=f"StackConfig.{field.name} (default {field.default}{accepted})",
            **config_type(field.name, base),
        )


def config_from_arguments(args: argparse.Namespace, **overrides) -> StackConfig:
    """``StackConfig`` from, in increasing precedence: the command's own defaults
    (``config_defaults``), ``--preset``, the options given, ``overrides``."""
    values = dict(getattr(args, "config_defaults", {}))
    values.update(PRESETS[args.preset] if getattr(args, "preset", None) else {})
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(StackConfig)
                   if getattr(args, f.name) is not None})
    values.update(overrides)
    return StackConfig(**values)


def library_default(function, name: str):
    """The default of parameter ``name`` of ``function``: CLI defaults are the library's."""
    return inspect.signature(function).parameters[name].default


def write_table(table: pd.DataFrame, csv: Path | None = None, json: Path | None = None) -> None:
    """Write ``table`` as CSV and/or JSON records, creating parent folders."""
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        print(f"wrote {csv}", file=sys.stderr)
    if json is not None:
        json.parent.mkdir(parents=True, exist_ok=True)
        table.to_json(json, orient="records", indent=1)
        print(f"wrote {json}", file=sys.stderr)


def show(table: pd.DataFrame, float_format: str = "{:.4g}", index: bool = True) -> None:
    """Print every row and column of ``table``."""
    print(table.to_string(float_format=float_format.format, index=index, line_width=250))


def _cmd_trace(args: argparse.Namespace) -> int:
    config = config_from_arguments(args)
    stack = Stack(config, seed=args.seed)
    table = stack.trace(InputSpec(args.batch, args.length, args.input_std).hidden_states(config, args.seed))
    write_table(table, args.csv, args.json)
    if args.per_position:
        shown = table
    else:
        shown = position_average(table, ["layer", "sublayer"]).set_index(["layer", "sublayer"])
    show(shown)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import executor
    from .report import reproduce

    with executor.backend(args.workers, args.scheduler):
        reproduce(args.out, quick=args.quick, only=args.only)
    return 0


def _cmd_claims(args: argparse.Namespace) -> int:
    import json

    from .claims import claims_table, evaluate
    from .studies import ResultsStore

    notes = []
    store = ResultsStore(args.results, log=lambda message: (notes.append(message), print(message, file=sys.stderr)))
    assessments = evaluate(store, quick=True, compute_missing=not args.no_compute)
    computed = [n.removeprefix("running ") for n in notes if n.startswith("running ")]
    if args.json:
        print(json.dumps([a.as_dict() for a in assessments], indent=1, ensure_ascii=False))
        return 0
    if computed:
        print(f"computed now at quick sizes (no current result in {args.results}): {', '.join(computed)}")
    table = claims_table(assessments)
    print(table.drop(columns=["command"]).to_string(index=False, max_colwidth=90))
    print("\ncommands:")
    for row in table.itertuples():
        print(f"  {row.id}: {row.command}")
    return 0


def _cmd_checks(args: argparse.Namespace) -> int:
    from .theory.checks import PROOFS_DIR, run_checks

    if not PROOFS_DIR.is_dir():
        print(f"bhyt-theory checks: no proofs folder at {PROOFS_DIR} (run from a repository checkout)", file=sys.stderr)
        return 2
    table = run_checks()
    for row in table.itertuples():
        print(f"{'PASS' if row.passed else 'FAIL'} {row.check} [{row.proofs or 'NOT REFERENCED'}]: {row.message}")
    print(f"{int(table.passed.sum())}/{len(table)} checks passed ({len(list(PROOFS_DIR.glob('*.md')))} proofs)")
    return 0 if table.passed.all() else 1


def _cmd_variance(args: argparse.Namespace) -> int:
    from .experiments.variance_study import (
        TABLE_LAYERS,
        decomposition_summary,
        decomposition_table,
        estimator_comparison,
        grid_summary,
        ratio_table,
        table_positions,
        variance_grid,
    )

    config = config_from_arguments(args)
    if args.grid:
        base = config.replace(estimator=args.estimators[0] if args.estimators else config.estimator)
        table = variance_grid(
            base, seq_lens=tuple(args.grid_seq_lens), lams=tuple(args.grid_lams), widths=tuple(args.grid_widths),
            input_stds=tuple(args.grid_input_stds), seeds=tuple(args.seeds), inputs=InputSpec(args.batch),
            layers=args.layers,
        )
        write_table(table, args.csv, args.json)
        print(f"minimum over seeds {list(args.seeds)} × layers × positions of the paper's M₂/m(h') "
              f"(batch means of per-token ratios; terms relative to m(h'); depth {base.depth}, "
              f"heads {base.heads}, estimator {base.estimator!r} drives the stack)")
        show(grid_summary(table), "{:.4g}", index=False)
        return 0
    layers = tuple(args.layers) if args.layers else TABLE_LAYERS
    positions = tuple(args.positions) if args.positions else table_positions(config.seq_len)
    if args.decomposition:
        config = config.replace(estimator=args.estimators[0] if args.estimators else config.estimator)
        table = decomposition_table(config, args.seeds, InputSpec(args.batch, std=args.input_std), layers, positions)
        write_table(table, args.csv, args.json)
        show(decomposition_summary(table), "{:.4f}")
        return 0
    comparison = estimator_comparison(
        config, args.estimators, seeds=tuple(args.seeds), inputs=InputSpec(args.batch, std=args.input_std),
        layers=layers, positions=positions,
    )
    write_table(comparison, args.csv, args.json)
    show(ratio_table(comparison), "{:.3f}")
    if len(args.seeds) > 1:
        print("\nstandard error over seeds:")
        show(ratio_table(comparison, "ratio_se"), "{:.3f}")
    return 0


def _cmd_jacobian(args: argparse.Namespace) -> int:
    from .experiments.block_jacobian import (
        JACOBIAN_SCHEMES,
        deviation_table,
        input_rms_table,
        jacobian_comparison,
        jacobian_layers,
    )

    config = config_from_arguments(args)
    table = jacobian_comparison(
        config, schemes=tuple(args.schemes or JACOBIAN_SCHEMES),
        layers=tuple(args.layers) if args.layers else jacobian_layers(config.depth),
        seeds=tuple(args.seeds), inputs=InputSpec(args.batch, std=args.input_std), probes=args.probes,
    )
    write_table(table, args.csv, args.json)
    show(deviation_table(table))
    print("\nrms(h_l) at each layer's input:")
    show(input_rms_table(table))
    return 0


def _sweep_grid(args: argparse.Namespace, defaults: dict | None = None) -> dict:
    """Grid of a multi-valued ``add_config_arguments`` parser: given options, then ``defaults``."""
    grid = {name: list(values) for name, values in (defaults or {}).items()}
    for field in dataclasses.fields(StackConfig):
        if getattr(args, field.name) is not None:
            grid[field.name] = getattr(args, field.name)
    for name in ("length", "input_std"):
        if getattr(args, name) is not None:
            grid[name] = getattr(args, name)
    return grid


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments import executor
    from .experiments.montecarlo import RUN_COLUMNS, summarise, sweep

    with executor.backend(args.workers, args.scheduler):
        table = sweep(_sweep_grid(args), args.seeds, InputSpec(args.batch), base=PRESETS.get(args.preset),
                      cache_dir=None if args.no_cache else args.cache_dir, progress=not args.no_progress)
    write_table(table, args.csv, args.json)
    summary = summarise(table, args.statistics, per_position=args.per_position, level=args.level)
    write_table(summary, args.summary_csv)
    varying = [c for c in RUN_COLUMNS if c in summary and summary[c].nunique(dropna=False) > 1]
    shown = ["scheme", *varying] if "scheme" not in varying else varying
    keys = [*shown, "layer", "sublayer", *(["position"] if args.per_position else [])]
    excerpt = summary if len(summary) <= SUMMARY_ROWS else _summary_excerpt(summary, args.per_position)
    print(f"mean [Student-t {args.level:.0%} interval] across {len(args.seeds)} seeds "
          f"({'per position' if args.per_position else 'position-averaged'})")
    cells = excerpt.assign(cell=[f"{m:.4g} [{lo:.4g}, {hi:.4g}]" for m, lo, hi in
                                 zip(excerpt["mean"], excerpt["ci_low"], excerpt["ci_high"])])
    wide = cells.pivot_table(index=keys, columns="statistic", values="cell", aggfunc="first", sort=False)
    show(wide[[s for s in args.statistics if s in wide.columns]])
    if excerpt is not summary:
        print(f"{len(wide)} of {len(summary[keys].drop_duplicates())} rows shown: block outputs (sublayer mlp) at the first, "
              "middle and last layer" + (" and position" if args.per_position else "") + " of each configuration. "
              "Every row: --summary-csv PATH; every run's per-position table: --csv PATH.")
    return 0


# A sweep summary longer than this is shown as an excerpt (first, middle, last layer).
SUMMARY_ROWS = 40


def _summary_excerpt(summary: pd.DataFrame, per_position: bool) -> pd.DataFrame:
    """The block-output rows of ``summary`` at the first, middle and last layer (and
    position) of each configuration: what a reader scans a sweep for."""
    def ends(values: pd.Series, count: pd.Series) -> pd.Series:
        return (values == 0) | (values == count // 2) | (values == count - 1)

    rows = (summary["sublayer"] == "mlp") & ends(summary["layer"], summary["depth"])
    if per_position:
        rows &= ends(summary["position"], summary["length"])
    return summary[rows]


def _growth_defaults(default_growth: dict, preset: str | None = None) -> dict:
    """``growth``'s grid defaults; a ``--preset`` shape replaces the default shape fields it sets."""
    shape = PRESETS.get(preset, {})
    return {"scheme": SCHEMES, **{name: [value] for name, value in default_growth.items() if name not in shape}}


def _cmd_growth(args: argparse.Namespace) -> int:
    from .experiments import executor
    from .experiments.growth import DEFAULT_GROWTH, fit_growth, meanfield_growth
    from .experiments.montecarlo import RUN_COLUMNS, sweep

    with executor.backend(args.workers, args.scheduler):
        table = sweep(_sweep_grid(args, _growth_defaults(DEFAULT_GROWTH, args.preset)), args.seeds,
                      InputSpec(args.batch), base=PRESETS.get(args.preset),
                      cache_dir=None if args.no_cache else args.cache_dir, progress=not args.no_progress)
    fits = fit_growth(table, first_layer=args.first_layer, level=args.level).assign(source="monte carlo")
    if args.meanfield:
        fits = pd.concat([fits, meanfield_growth(table, first_layer=args.first_layer).assign(source="mean field")])
    write_table(fits, args.csv, args.json)
    print(f"rms after each block vs l = layer + 1 (position-averaged), layers ≥ {args.first_layer}; "
          f"slope interval: Student-t {args.level:.0%} across {len(args.seeds)} seeds; "
          "best: least rms-space residual (= least AIC, all forms have 2 parameters)")
    keys = [c for c in RUN_COLUMNS if c in fits.columns]
    columns = [*keys, "source", "form", "law", "slope", "slope_ci_low", "slope_ci_high", "slope_stderr", "r2",
               "best", "rms_first", "rms_last"]
    show(fits[columns], index=False)
    print("\nbest form per configuration:")
    show(fits[fits["best"]][columns], index=False)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .experiments.bench import run_bench

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    table = run_bench(widths=tuple(args.widths), memory_width=args.memory_width,
                      meanfield_lengths=tuple(args.meanfield_lengths), device=args.device)
    write_table(table, args.csv, args.json)
    show(table)
    return 0


def _cmd_efficiency(args: argparse.Namespace) -> int:
    from .experiments.efficiency import DEFAULT_EFFICIENCY, QUICK_EFFICIENCY, efficiency_study

    base = QUICK_EFFICIENCY if args.quick else DEFAULT_EFFICIENCY
    config = config_from_arguments(args, **{k: v for k, v in base.as_dict().items() if getattr(args, k) is None})
    costs, timings = efficiency_study(config, tuple(args.schemes), batch=args.batch, rounds=args.rounds)
    write_table(timings, args.csv, args.json)
    print(f"counted cost per token of a block's two normaliser sites (width {config.width}, "
          f"{costs['element_bytes'].iloc[0]} bytes per element):")
    show(costs.drop(columns=["width", "element_bytes"]), "{:.3f}", index=False)
    print(f"\nmeasured in this process on {timings['hardware'].iloc[0]} ({config.device}): ratio to RMSNorm "
          f"and speed-up, mean over {args.rounds} interleaved rounds, Student-t 95% interval; "
          f"block: width {config.width}, heads {config.heads}, T {config.seq_len}, batch {args.batch}; "
          f"decode: one token after a cache of {config.seq_len}")
    show(timings.drop(columns=["device", "hardware", "level"]), "{:.4g}", index=False)
    return 0


def _cmd_bounds(args: argparse.Namespace) -> int:
    from .experiments.tightness import DEFAULT_INIT, tightness_table

    torch.set_num_threads(args.threads)
    table = tightness_table(seed=args.seed, random_trials=args.random_trials, hill_climb_steps=args.hill_climb_steps)
    write_table(table, args.csv, args.json)
    print("tightest measured/bound ratio per bound and scheme (search: seeded random + adversarial "
          "constructions in float64; default_init: float32 Stack "
          f"width {DEFAULT_INIT.width}, depth {DEFAULT_INIT.depth}, heads {DEFAULT_INIT.heads}, "
          f"T {DEFAULT_INIT.seq_len}, init_std {DEFAULT_INIT.init_std}, inputs N(0, 0.02²)). "
          "depth: growth ratio (rms(h_l) − rms(h_0)) / Σ(A + F), max over layers and tokens; "
          "saturation: fraction(|z| ≥ t) / saturated_fraction_bound, max over norms and tokens.")
    show(table, "{:.9g}", index=False)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .theory.meanfield import (
        compare_with_monte_carlo,
        predict,
        predict_per_position,
    )

    config = config_from_arguments(args)
    if args.compare_seeds:
        inputs = InputSpec(args.batch, args.length, args.input_std)
        table = compare_with_monte_carlo(config, range(args.compare_seeds), inputs, tuple(args.statistics),
                                         attention=args.attention, per_position=args.per_position)
    else:
        predictor = predict_per_position if args.per_position else predict
        table = predictor(config, args.input_std**2, args.attention, args.length, not args.uncorrelated,
                          args.attention_samples)
    write_table(table, args.csv, args.json)
    show(table, index=False)
    return 0


# ---- train (issue 8): CPU pretraining of every scheme --------------------------------------------

def _cmd_train(args: argparse.Namespace) -> int:
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
    changes.update({name: getattr(args, name) for name in _TRAIN_OPTIONS if getattr(args, name) is not None})
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
_TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("stack", "seed", "label"))


def _add_train_parser(commands) -> None:
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
        if field.name in _TRAIN_OPTIONS:
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
    train.set_defaults(run=_cmd_train)


# --- validation: one step per command, for what the options mean together -----------------


def _check_indices(option: str, values: list[int] | None, bound: int, what: str) -> None:
    """Every 0-based index in ``values`` is ``< bound``."""
    outside = [value for value in values or () if value >= bound]
    if outside:
        raise ValueError(f"{option} {' '.join(map(str, outside))} outside the configuration: {what} is {bound}, "
                         f"so indices run from 0 to {bound - 1}")


def _check_distinct(option: str, values: list | None) -> None:
    """Repeated values would be counted as independent replicates (or runs) twice."""
    repeated = sorted({str(v) for v in values or () if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"{option} repeats {' '.join(repeated)}; give each value once")


def _validate_config(args: argparse.Namespace) -> None:
    config_from_arguments(args)


def _validate_variance(args: argparse.Namespace) -> None:
    config = config_from_arguments(args)
    _check_indices("--layers", args.layers, config.depth, "--depth")
    if args.grid:
        for width, seq_len, (lam_in, lam_post) in itertools.product(args.grid_widths, args.grid_seq_lens, args.grid_lams):
            config.replace(width=width, seq_len=seq_len, lam_in=lam_in, lam_post=lam_post)
    else:
        _check_indices("--positions", args.positions, config.seq_len, "--seq-len (the input length)")
    _check_distinct("--seeds", args.seeds)


def _validate_seeded_config(args: argparse.Namespace, **overrides) -> None:
    config_from_arguments(args, **overrides)
    _check_distinct("--seeds", args.seeds)


def _validate_jacobian(args: argparse.Namespace) -> None:
    config = config_from_arguments(args)
    _check_indices("--layers", args.layers, config.depth, "--depth")
    _check_distinct("--seeds", args.seeds)


def _validate_sweep(args: argparse.Namespace, defaults: dict | None = None) -> list[StackConfig]:
    from .experiments.montecarlo import grid_configs

    for name, values in vars(args).items():
        if name in {f.name for f in dataclasses.fields(StackConfig)} | {"length", "input_std", "seeds"}:
            _check_distinct("--" + name.replace("_", "-"), values)
    return [config for config, _ in grid_configs(_sweep_grid(args, defaults), PRESETS.get(args.preset))]


def _validate_growth(args: argparse.Namespace) -> None:
    from .experiments.growth import DEFAULT_GROWTH

    configs = _validate_sweep(args, _growth_defaults(DEFAULT_GROWTH, args.preset))
    shallowest = min(config.depth for config in configs)
    if args.first_layer > shallowest - 3:
        raise ValueError(f"--first-layer {args.first_layer} leaves fewer than 3 layers to fit at depth {shallowest}")


def _saved_runs(args: argparse.Namespace) -> str | None:
    return None if args.no_cache else f"the runs finished so far (in {args.cache_dir})"


def _add_output_options(parser: argparse.ArgumentParser, what: str = "the table") -> None:
    parser.add_argument("--csv", type=output_file, default=None, help=f"write {what} as CSV")
    parser.add_argument("--json", type=output_file, default=None, help=f"write {what} as JSON records")


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the cached Monte Carlo commands (``sweep``, ``growth``)."""
    parser.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2],
                        help="weight seeds (inputs: numerics.inputs.input_seed)")
    parser.add_argument("--batch", type=size, default=InputSpec().batch)
    parser.add_argument("--length", type=size, nargs="+", default=None, help="input length T (default: seq_len)")
    parser.add_argument("--input-std", type=positive_real, nargs="+", default=None,
                        help=f"input scale, > 0 (zero inputs make every statistic 0; default {InputSpec().std})")
    parser.add_argument("--level", type=probability, default=0.95,
                        help="confidence level of the intervals, in (0, 1)")
    parser.add_argument("--cache-dir", type=output_folder, default="results/cache")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    _add_backend_options(parser)


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` / ``--scheduler ADDRESS``: run each Monte Carlo run as a Dask task (default: serial)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=size, default=None,
                       help="run on a local Dask cluster of N worker processes, one thread each")
    where.add_argument("--scheduler", default=None,
                       help="run on an existing Dask cluster: its scheduler's address (tcp://host:8786)")


# --- issue 9's new statements: backward pass, stale c_attn, position estimator, decode path (C9) ---


def _cmd_gradients(args: argparse.Namespace) -> int:
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


def _cmd_staleness(args: argparse.Namespace) -> int:
    from .experiments.staleness import staleness_study, staleness_summary

    study = staleness_study(config_from_arguments(args, scheme="bhyt"), deltas=tuple(args.deltas),
                            seeds=tuple(args.seeds), batch=args.batch, input_std=args.input_std)
    write_table(study, args.csv, args.json)
    show(staleness_summary(study), index=False)
    return 0


def _cmd_position(args: argparse.Namespace) -> int:
    from .experiments.position_estimator import (
        peaked_attention_study,
        worst_peaked_error,
    )

    study = peaked_attention_study(config_from_arguments(args, scheme="bhyt", depth=1), peaks=tuple(args.peaks),
                                   seeds=tuple(args.seeds), batch=args.batch, input_std=args.input_std)
    write_table(study, args.csv, args.json)
    show(worst_peaked_error(study), index=False)
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from .experiments.decode import decode_exactness

    table = decode_exactness(dtypes=tuple(args.dtypes), seeds=tuple(args.seeds), steps=args.steps)
    write_table(table, args.csv, args.json)
    show(table, index=False)
    return 0


def _add_new_statement_commands(commands) -> None:
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
    _add_output_options(gradients)
    gradients.set_defaults(run=_cmd_gradients, validate=_validate_seeded_config)

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
    _add_output_options(staleness)
    staleness.set_defaults(run=_cmd_staleness, validate=lambda args: _validate_seeded_config(args, scheme="bhyt"))

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
    _add_output_options(position)
    position.set_defaults(run=_cmd_position,
                          validate=lambda args: _validate_seeded_config(args, scheme="bhyt", depth=1))

    decode = commands.add_parser(
        "decode", help="bit-exactness of the decode-time precomputation (C9), float32 and bfloat16",
        description="experiments.decode (proofs/decode_precomputation.md): fraction of outputs differing, "
        "max ulps and greedy-decoding agreement per dtype x order of operations.",
    )
    decode.add_argument("--dtypes", nargs="+", **one_of(DTYPES, "DTYPE"), default=["float32", "bfloat16"],
                        help="default float32 bfloat16; " + choices_help(DTYPES))
    decode.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2])
    decode.add_argument("--steps", type=size, default=16)
    _add_output_options(decode)
    decode.set_defaults(run=_cmd_decode, validate=lambda args: _check_distinct("--seeds", args.seeds))


def _build_parser() -> argparse.ArgumentParser:
    from .experiments import block_jacobian, variance_study
    from .theory.meanfield import compare_with_monte_carlo

    parser = Parser(prog="bhyt-theory", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    trace = commands.add_parser(
        "trace", help="per-layer statistics of one stack on Gaussian inputs",
        description="Run one Stack on inputs ~ N(0, input_std²) and print per-layer "
        "(position-averaged) statistics; --per-position prints every row.",
    )
    add_config_arguments(trace)
    trace.add_argument("--seed", type=seed, default=0, help="weight seed (inputs: numerics.inputs.input_seed)")
    trace.add_argument("--batch", type=size, default=InputSpec().batch)
    trace.add_argument("--length", type=size, default=None, help="input length T (default: seq_len)")
    trace.add_argument("--input-std", type=positive_real, default=InputSpec().std)
    trace.add_argument("--per-position", action="store_true")
    _add_output_options(trace)
    trace.set_defaults(run=_cmd_trace, validate=_validate_config)

    reproduce = commands.add_parser(
        "reproduce", help="run every section of the report (tables, figures, report.md)",
        description="Run every section of the report and write CSVs, figures and report.md to --out.",
    )
    reproduce.add_argument("--out", type=output_folder, default="results", help="output folder (created)")
    reproduce.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    reproduce.add_argument("--only", nargs="+", default=None, help="run only these studies (names of bhyt_theory.studies)")
    _add_backend_options(reproduce)
    reproduce.set_defaults(run=_cmd_reproduce, saved=lambda args: f"finished studies (CSV + .meta.json) in {args.out}")

    claims = commands.add_parser(
        "claims", help="every claim C1–C9 and proof statement with its measured figures and computed verdict",
        description="Read the latest results in --results (as `reproduce` writes them), compute at quick sizes "
        "whatever is missing or stale (saying so), apply each claim's rule (bhyt_theory.claims.RULES) and print "
        "the verdicts; --json prints a list of objects (id, statement, verdict, reason, measured, expected, rule, "
        "command, explanation, …).",
    )
    claims.add_argument("--results", type=Path, default=Path("results"))
    claims.add_argument("--json", action="store_true", help="print JSON instead of a table")
    claims.add_argument("--no-compute", action="store_true", help="use stored results only")
    claims.set_defaults(run=_cmd_claims)

    checks = commands.add_parser(
        "checks", help="run every registered proof-step check (bhyt_theory.theory.checks.CHECKS)",
        description="Run every check of bhyt_theory.theory.checks.CHECKS and print PASS/FAIL, its "
        "message and the proofs/ files that cite it; exit code 1 if any fails.",
    )
    checks.set_defaults(run=_cmd_checks)

    variance = commands.add_parser(
        "variance", help="BHyT's M₂ estimate/exact ratio per estimator × layer × position (claim C5)",
        description="One bhyt stack per estimator and seed on inputs ~ N(0, input_std²) of length seq_len; "
        "prints M₂/m(h') at the chosen layers × positions (default 0, 1, 7, T/2, T−1). "
        "--decomposition prints the four error terms of docs/estimators.md §3 instead (for --estimators[0]). "
        "--grid runs variance_study over --grid-seq-lens × --grid-lams × --grid-widths × --grid-input-stds "
        "× --seeds (every layer unless --layers) and prints the minimum reference ratio per grid point, "
        "where it occurs and its largest error term.",
    )
    add_config_arguments(variance)
    variance.set_defaults(config_defaults={"depth": 65})
    variance.add_argument("--estimators", nargs="+", **one_of(ESTIMATORS, "ESTIMATOR"), default=None,
                          help="default: every estimator except exact and the training-only ones; " + choices_help(tuple(ESTIMATORS)))
    comparison_inputs = library_default(variance_study.estimator_comparison, "inputs")
    variance.add_argument("--seeds", type=seed, nargs="+",
                          default=list(library_default(variance_study.estimator_comparison, "seeds")),
                          help="weight seeds (inputs: numerics.inputs.input_seed)")
    variance.add_argument("--batch", type=size, default=comparison_inputs.batch)
    variance.add_argument("--input-std", type=positive_real, default=comparison_inputs.std)
    variance.add_argument("--layers", type=index, nargs="+", default=None,
                          help="0-based, < depth; default 0 1 4 16 64; with --grid, every layer")
    variance.add_argument("--positions", type=index, nargs="+", default=None, help="0-based, < seq_len")
    variance.add_argument("--decomposition", action="store_true")
    variance.add_argument("--grid", action="store_true", help="sweep T × (λ₁, λ₂) × width × input scale")
    variance.add_argument("--grid-seq-lens", type=size, nargs="+", default=list(variance_study.GRID_SEQ_LENS),
                          help="T values of --grid (default %(default)s)")
    variance.add_argument("--grid-lams", type=lam_pair, nargs="+", default=list(variance_study.GRID_LAMS),
                          help="λ₁,λ₂ pairs of --grid, such as 2,1 (default "
                          + " ".join(f"{a:g},{b:g}" for a, b in variance_study.GRID_LAMS) + ")")
    variance.add_argument("--grid-widths", type=size, nargs="+", default=list(variance_study.GRID_WIDTHS),
                          help="widths of --grid (default %(default)s)")
    variance.add_argument("--grid-input-stds", type=positive_real, nargs="+",
                          default=list(variance_study.GRID_INPUT_STDS), help="input scales of --grid (default %(default)s)")
    _add_output_options(variance)
    variance.set_defaults(run=_cmd_variance, validate=_validate_variance)

    jacobian = commands.add_parser(
        "jacobian", help="relative deviation of each block's Jacobian from I, per scheme × layer",
        description="‖∂h_{l+1}/∂h_l − I‖_F / sqrt(T·d) at the states each stack reaches on inputs "
        "~ N(0, input_std²), by Hutchinson probes (± standard error over probes), at layers 0, 1, 4, 16, L−1.",
    )
    add_config_arguments(jacobian)
    jacobian.set_defaults(config_defaults={"depth": 32})
    jacobian.add_argument("--schemes", nargs="+", **one_of(tuple(SCHEME_TABLE), "SCHEME"), default=None,
                          help="default: every scheme but bhytline (= bhyt); " + choices_help(tuple(SCHEME_TABLE)))
    jacobian_inputs = library_default(block_jacobian.jacobian_comparison, "inputs")
    jacobian.add_argument("--seeds", type=seed, nargs="+",
                          default=list(library_default(block_jacobian.jacobian_comparison, "seeds")))
    jacobian.add_argument("--batch", type=size, default=jacobian_inputs.batch)
    jacobian.add_argument("--probes", type=size, default=library_default(block_jacobian.jacobian_comparison, "probes"))
    jacobian.add_argument("--input-std", type=positive_real, default=jacobian_inputs.std)
    jacobian.add_argument("--layers", type=index, nargs="+", default=None, help="0-based, < depth")
    _add_output_options(jacobian)
    jacobian.set_defaults(run=_cmd_jacobian, validate=_validate_jacobian)

    sweep = commands.add_parser(
        "sweep", help="Monte Carlo sweep over StackConfig values × seeds, cached; per-layer means with CIs",
        description="Every StackConfig option takes one or more values; the sweep runs their Cartesian "
        "product × --seeds (streamed, one block at a time), caches each run in --cache-dir so an "
        "interrupted sweep resumes, and prints per-layer means across seeds with Student-t intervals.",
    )
    add_config_arguments(sweep, multi=True)
    _add_sweep_options(sweep)
    sweep.add_argument("--statistics", nargs="+", **one_of(STATISTICS, "STATISTIC"), default=["mean_square", "rms"],
                       help="statistics to summarise (default mean_square rms); " + choices_help(STATISTICS))
    sweep.add_argument("--per-position", action="store_true")
    sweep.add_argument("--summary-csv", type=output_file, default=None,
                       help="write the whole summary (every layer) as CSV; the terminal shows at most "
                       f"{SUMMARY_ROWS} rows")
    _add_output_options(sweep, "the full per-position sweep table")
    sweep.set_defaults(run=_cmd_sweep, validate=_validate_sweep, saved=_saved_runs)

    growth = commands.add_parser(
        "growth", help="fit linear / variance-linear / exponential / power growth of rms with depth (C1, C2, C4)",
        description="Monte Carlo sweep (default: every scheme, depth 256, width 256, 4 heads, T 64, "
        "init_std 0.02, inputs N(0, 0.02²), seeds 0 1 2, batch 4; cached) and the growth-law fits per scheme.",
    )
    add_config_arguments(growth, multi=True)
    _add_sweep_options(growth)
    growth.add_argument("--first-layer", type=index, default=0, help="fit layers ≥ this (0-based)")
    growth.add_argument("--meanfield", action="store_true", help="also fit the mean-field curves")
    _add_output_options(growth, "the fit table")
    growth.set_defaults(run=_cmd_growth, validate=_validate_growth, saved=_saved_runs)

    bench = commands.add_parser(
        "bench", help="Monte Carlo FLOP/s vs dense matmul, mean-field time, streamed peak memory (reports only)",
        description="Benchmarks of bhyt_theory.bench: achieved matmul FLOP/s of the Monte Carlo forward and "
        "streamed run over a dense torch.matmul measured in the same run, meanfield.predict time at depth "
        "1024, peak RSS of a streamed run at depth 1024 over depth 16. Reports; asserts nothing.",
    )
    bench.add_argument("--widths", type=size, nargs="+", default=[512, 1024])
    bench.add_argument("--memory-width", type=size, default=256)
    bench.add_argument("--meanfield-lengths", type=size, nargs="+", default=[64])
    bench.add_argument("--device", type=device, default="cpu")
    bench.add_argument("--threads", type=size, default=None, help="torch CPU threads (default: torch's)")
    _add_output_options(bench)
    bench.set_defaults(run=_cmd_bench)

    efficiency = commands.add_parser(
        "efficiency", help="cost model and timing of each normaliser vs RMSNorm, training and decode (C6)",
        description="Counted cost per token (reductions, tanh, bytes, kernel launches) of a block's two "
        "normaliser sites for rmsnorm, dyt, bhytstar, bhyt, and the wall time of one block forward+backward "
        "and one decode step as ratios to RMSNorm measured in this process (interleaved rounds, Student-t "
        "intervals). --device cuda on a GPU; the table names the hardware.",
    )
    add_config_arguments(efficiency)
    efficiency.add_argument("--schemes", nargs="+", default=["rmsnorm", "dyt", "bhytstar", "bhyt"])
    efficiency.add_argument("--batch", type=int, default=4)
    efficiency.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds (≥ 2)")
    efficiency.add_argument("--quick", action="store_true", help="width 128, T 32 (smoke test)")
    _add_output_options(efficiency, "the timing summary")
    efficiency.set_defaults(run=_cmd_efficiency)

    bounds = commands.add_parser(
        "bounds", help="tightest measured/bound ratios of the saturation and depth bounds",
        description="Seeded search (random, aligned rank-1, spike and hill-climb constructions) for the "
        "largest measured/bound ratio of bhyt_theory.bounds on real Stacks, every scheme, plus the ratio at "
        "the default initialisation. A ratio above 1 would be a counterexample.",
    )
    bounds.add_argument("--seed", type=seed, default=0)
    bounds.add_argument("--random-trials", type=size, default=6, help="random configurations per scheme")
    bounds.add_argument("--hill-climb-steps", type=index, default=40)
    bounds.add_argument("--threads", type=size, default=1, help="torch CPU threads (the search is sized for one core)")
    _add_output_options(bounds)
    bounds.set_defaults(run=_cmd_bounds)

    predict = commands.add_parser(
        "predict", help="mean-field per-layer prediction at initialisation (no weights drawn)",
        description="The token-Gram mean-field recursion (bhyt_theory.meanfield) for the stack given by the "
        "same options as `trace`: per-layer (position-averaged) mean square, tanh-argument statistics and, "
        "for bhyt/bhytline, the estimate/exact ratio. --compare-seeds N also runs N Monte Carlo stacks.",
    )
    add_config_arguments(predict)
    predict.add_argument("--input-std", type=positive_real, default=0.02, help="inputs iid N(0, input_std²)")
    predict.add_argument("--length", type=size, default=None, help="input length T (default: seq_len)")
    predict.add_argument("--attention", **one_of(ATTENTION_MODELS, "ATTENTION"), default="uniform_causal",
                         help="attention pattern of the mean field (softmax: causal softmax of Gaussian RoPE "
                         "queries/keys, needed where dσ² ≳ 0.4); " + choices_help(ATTENTION_MODELS))
    predict.add_argument("--attention-samples", type=size, default=SOFTMAX_SAMPLES,
                         help="query/key draws per layer of --attention softmax")
    predict.add_argument("--statistics", nargs="+", **one_of(STATISTICS, "STATISTIC"), default=["mean_square"],
                         help="statistics --compare-seeds compares; " + choices_help(STATISTICS))
    predict.add_argument("--per-position", action="store_true", help="one row per layer × sublayer × position")
    predict.add_argument("--uncorrelated", action="store_true", help="drop token correlations (per-position recursion)")
    predict.add_argument("--compare-seeds", type=index, default=0, help="Monte Carlo seeds to compare against (0: none)")
    predict.add_argument("--batch", type=size, default=library_default(compare_with_monte_carlo, "inputs").batch,
                         help="Monte Carlo batch per seed")
    _add_output_options(predict)
    predict.set_defaults(run=_cmd_predict, validate=_validate_config)

    _add_new_statement_commands(commands)
    _add_train_parser(commands)

    return parser


def _error(args: argparse.Namespace, message: object) -> None:
    print(f"bhyt-theory {args.command}: error: {' '.join(str(message).split())}", file=sys.stderr)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not hit the closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (e.g. captured in tests)
        pass


def main(argv: list[str] | None = None) -> int:
    """Parse, validate every option (exit 2 on the first bad one), then run the command.

    Exit codes: 0 done, 1 a check failed or an output could not be written, 2 bad
    options or an unreachable Dask scheduler, 130 interrupted (Ctrl-C), 141 stdout
    closed by its reader.
    """
    from .experiments.executor import SchedulerUnreachable

    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad option (argparse has printed why)
        return 0 if done.code is None else int(done.code)
    try:
        getattr(args, "validate", lambda _: None)(args)
    except ValueError as error:
        _error(args, error)
        return 2
    try:
        return args.run(args)
    # SchedulerUnreachable is an OSError: caught here, before OSError's exit 1.
    except (ValueError, SchedulerUnreachable) as error:
        _error(args, error)
        return 2
    except KeyboardInterrupt:
        saved = getattr(args, "saved", lambda _: None)(args)
        # On a terminal, end the line a progress bar may have left open.
        print(("\n" if sys.stderr.isatty() else "") + f"bhyt-theory {args.command}: interrupted; "
              + (f"{saved} are saved and rerunning the same command resumes from them" if saved
                 else "this command keeps no partial results, so a rerun starts again"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as error:
        _error(args, error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
