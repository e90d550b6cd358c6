"""What each ``bhyt-theory`` sub-command does: read the parsed options, call the
library, render its table (computing nothing a notebook could not reuse), plus the
one validation step per command for what the options mean together (configurations,
layer/position indices within them, distinct sweep values). ``cli`` builds the parser
and registers these functions."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import sys
import typing
from pathlib import Path

import pandas as pd
import torch

from .numerics.inputs import InputSpec
from .numerics.model import (
    PRESETS,
    SCHEMES,
    Stack,
    StackConfig,
)
from .numerics.probes import position_average
from .options import (
    OPTION_RANGES,
    choices_help,
    config_choices,
    config_type,
    output_file,
    output_folder,
    positive_real,
    probability,
    seed,
    size,
)


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


def cmd_trace(args: argparse.Namespace) -> int:
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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import executor
    from .report import reproduce

    with executor.backend(args.workers, args.scheduler):
        reproduce(args.out, quick=args.quick, only=args.only)
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
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


def cmd_checks(args: argparse.Namespace) -> int:
    from .theory.checks import PROOFS_DIR, run_checks

    if not PROOFS_DIR.is_dir():
        print(f"bhyt-theory checks: no proofs folder at {PROOFS_DIR} (run from a repository checkout)", file=sys.stderr)
        return 2
    table = run_checks()
    for row in table.itertuples():
        print(f"{'PASS' if row.passed else 'FAIL'} {row.check} [{row.proofs or 'NOT REFERENCED'}]: {row.message}")
    print(f"{int(table.passed.sum())}/{len(table)} checks passed ({len(list(PROOFS_DIR.glob('*.md')))} proofs)")
    return 0 if table.passed.all() else 1


def cmd_variance(args: argparse.Namespace) -> int:
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


def cmd_jacobian(args: argparse.Namespace) -> int:
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


def sweep_grid(args: argparse.Namespace, defaults: dict | None = None) -> dict:
    """Grid of a multi-valued ``add_config_arguments`` parser: given options, then ``defaults``."""
    grid = {name: list(values) for name, values in (defaults or {}).items()}
    for field in dataclasses.fields(StackConfig):
        if getattr(args, field.name) is not None:
            grid[field.name] = getattr(args, field.name)
    for name in ("length", "input_std"):
        if getattr(args, name) is not None:
            grid[name] = getattr(args, name)
    return grid


def cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments import executor
    from .experiments.montecarlo import RUN_COLUMNS, summarise, sweep

    with executor.backend(args.workers, args.scheduler):
        table = sweep(sweep_grid(args), args.seeds, InputSpec(args.batch), base=PRESETS.get(args.preset),
                      cache_dir=None if args.no_cache else args.cache_dir, progress=not args.no_progress)
    write_table(table, args.csv, args.json)
    summary = summarise(table, args.statistics, per_position=args.per_position, level=args.level)
    write_table(summary, args.summary_csv)
    varying = [c for c in RUN_COLUMNS if c in summary and summary[c].nunique(dropna=False) > 1]
    shown = ["scheme", *varying] if "scheme" not in varying else varying
    keys = [*shown, "layer", "sublayer", *(["position"] if args.per_position else [])]
    excerpt = summary if len(summary) <= SUMMARY_ROWS else summary_excerpt(summary, args.per_position)
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


def summary_excerpt(summary: pd.DataFrame, per_position: bool) -> pd.DataFrame:
    """The block-output rows of ``summary`` at the first, middle and last layer (and
    position) of each configuration: what a reader scans a sweep for."""
    def ends(values: pd.Series, count: pd.Series) -> pd.Series:
        return (values == 0) | (values == count // 2) | (values == count - 1)

    rows = (summary["sublayer"] == "mlp") & ends(summary["layer"], summary["depth"])
    if per_position:
        rows &= ends(summary["position"], summary["length"])
    return summary[rows]


def growth_defaults(default_growth: dict, preset: str | None = None) -> dict:
    """``growth``'s grid defaults; a ``--preset`` shape replaces the default shape fields it sets."""
    shape = PRESETS.get(preset, {})
    return {"scheme": SCHEMES, **{name: [value] for name, value in default_growth.items() if name not in shape}}


def cmd_growth(args: argparse.Namespace) -> int:
    from .experiments import executor
    from .experiments.growth import DEFAULT_GROWTH, fit_growth, meanfield_growth
    from .experiments.montecarlo import RUN_COLUMNS, sweep

    with executor.backend(args.workers, args.scheduler):
        table = sweep(sweep_grid(args, growth_defaults(DEFAULT_GROWTH, args.preset)), args.seeds,
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


def cmd_bench(args: argparse.Namespace) -> int:
    from .experiments.bench import run_bench

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    table = run_bench(widths=tuple(args.widths), memory_width=args.memory_width,
                      meanfield_lengths=tuple(args.meanfield_lengths), device=args.device)
    write_table(table, args.csv, args.json)
    show(table)
    return 0


def cmd_efficiency(args: argparse.Namespace) -> int:
    from .experiments.efficiency import (
        DEFAULT_EFFICIENCY,
        QUICK_EFFICIENCY,
        efficiency_study,
    )

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


def cmd_bounds(args: argparse.Namespace) -> int:
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


def cmd_predict(args: argparse.Namespace) -> int:
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


# --- validation: one step per command, for what the options mean together -----------------

def check_indices(option: str, values: list[int] | None, bound: int, what: str) -> None:
    """Every 0-based index in ``values`` is ``< bound``."""
    outside = [value for value in values or () if value >= bound]
    if outside:
        raise ValueError(f"{option} {' '.join(map(str, outside))} outside the configuration: {what} is {bound}, "
                         f"so indices run from 0 to {bound - 1}")


def check_distinct(option: str, values: list | None) -> None:
    """Repeated values would be counted as independent replicates (or runs) twice."""
    repeated = sorted({str(v) for v in values or () if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"{option} repeats {' '.join(repeated)}; give each value once")


def validate_config(args: argparse.Namespace) -> None:
    config_from_arguments(args)


def validate_variance(args: argparse.Namespace) -> None:
    config = config_from_arguments(args)
    check_indices("--layers", args.layers, config.depth, "--depth")
    if args.grid:
        for width, seq_len, (lam_in, lam_post) in itertools.product(args.grid_widths, args.grid_seq_lens, args.grid_lams):
            config.replace(width=width, seq_len=seq_len, lam_in=lam_in, lam_post=lam_post)
    else:
        check_indices("--positions", args.positions, config.seq_len, "--seq-len (the input length)")
    check_distinct("--seeds", args.seeds)


def validate_seeded_config(args: argparse.Namespace, **overrides) -> None:
    config_from_arguments(args, **overrides)
    check_distinct("--seeds", args.seeds)


def validate_jacobian(args: argparse.Namespace) -> None:
    config = config_from_arguments(args)
    check_indices("--layers", args.layers, config.depth, "--depth")
    check_distinct("--seeds", args.seeds)


def validate_sweep(args: argparse.Namespace, defaults: dict | None = None) -> list[StackConfig]:
    from .experiments.montecarlo import grid_configs

    for name, values in vars(args).items():
        if name in {f.name for f in dataclasses.fields(StackConfig)} | {"length", "input_std", "seeds"}:
            check_distinct("--" + name.replace("_", "-"), values)
    return [config for config, _ in grid_configs(sweep_grid(args, defaults), PRESETS.get(args.preset))]


def validate_growth(args: argparse.Namespace) -> None:
    from .experiments.growth import DEFAULT_GROWTH

    configs = validate_sweep(args, growth_defaults(DEFAULT_GROWTH, args.preset))
    shallowest = min(config.depth for config in configs)
    if args.first_layer > shallowest - 3:
        raise ValueError(f"--first-layer {args.first_layer} leaves fewer than 3 layers to fit at depth {shallowest}")


def saved_runs(args: argparse.Namespace) -> str | None:
    return None if args.no_cache else f"the runs finished so far (in {args.cache_dir})"


def add_output_options(parser: argparse.ArgumentParser, what: str = "the table") -> None:
    parser.add_argument("--csv", type=output_file, default=None, help=f"write {what} as CSV")
    parser.add_argument("--json", type=output_file, default=None, help=f"write {what} as JSON records")


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
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
    add_backend_options(parser)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` / ``--scheduler ADDRESS``: run each Monte Carlo run as a Dask task (default: serial)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=size, default=None,
                       help="run on a local Dask cluster of N worker processes, one thread each")
    where.add_argument("--scheduler", default=None,
                       help="run on an existing Dask cluster: its scheduler's address (tcp://host:8786)")
