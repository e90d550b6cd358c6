"""The init-regime study commands: ``trace``, ``sweep``, ``growth``, ``meanfield``, ``variance``,
``jacobian``, ``efficiency`` and ``bench`` — Monte Carlo and mean field at initialisation,
and what each normaliser costs. Each command reads its options, calls the library and
renders the table it returns."""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import pandas as pd

from ..experiments import efficiency as efficiency_experiment
from ..experiments import jacobian as jacobian_experiment
from ..experiments import variance as variance_experiment
from ..experiments.bench import run_bench
from ..experiments.growth import DEFAULT_GROWTH, fit_growth
from ..experiments.meanfield import compare_with_monte_carlo
from ..experiments.montecarlo import DEFAULT_SEEDS, summarise
from ..numerics.estimators import ESTIMATORS
from ..numerics.inputs import InputSpec
from ..numerics.model import PRESETS, SCHEMES, Stack, StackConfig
from ..numerics.probes import STATISTICS, position_average
from ..numerics.schemes import SCHEME_TABLE
from ..theory.meanfield import ATTENTION_MODELS, SOFTMAX_SAMPLES
from .common import (
    add_config_arguments,
    add_input_options,
    add_output_options,
    add_study_command,
    add_sweep_options,
    check_distinct,
    check_indices,
    config_from_arguments,
    describe_config,
    inputs_from_arguments,
    library_config,
    library_default,
    saved_runs,
    show,
    validate_config,
    write_table,
)
from .options import (
    choices_help,
    device,
    index,
    lam_pair,
    one_of,
    output_file,
    positive_real,
    seed,
    size,
)


def cmd_trace(args: argparse.Namespace) -> int:
    config = config_from_arguments(args)
    stack = Stack(config, seed=args.seed)
    table = stack.trace(inputs_from_arguments(args).hidden_states(config, args.seed))
    write_table(table, args.csv, args.json)
    if args.per_position:
        shown = table
    else:
        shown = position_average(table, ["layer", "sublayer"]).set_index(["layer", "sublayer"])
    show(shown)
    return 0


def cmd_variance(args: argparse.Namespace) -> int:
    from ..experiments.variance import (
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
        table = decomposition_table(config, args.seeds, inputs_from_arguments(args), layers, positions)
        write_table(table, args.csv, args.json)
        show(decomposition_summary(table), "{:.4f}")
        return 0
    comparison = estimator_comparison(
        config, args.estimators, seeds=tuple(args.seeds), inputs=inputs_from_arguments(args),
        layers=layers, positions=positions,
    )
    write_table(comparison, args.csv, args.json)
    show(ratio_table(comparison), "{:.3f}")
    if len(args.seeds) > 1:
        print("\nstandard error over seeds:")
        show(ratio_table(comparison, "ratio_se"), "{:.3f}")
    return 0


def validate_variance(args: argparse.Namespace) -> None:
    config = config_from_arguments(args)
    check_indices("--layers", args.layers, config.depth, "--depth")
    if args.grid:
        for width, seq_len, (lam_in, lam_post) in itertools.product(args.grid_widths, args.grid_seq_lens, args.grid_lams):
            config.replace(width=width, seq_len=seq_len, lam_in=lam_in, lam_post=lam_post)
    else:
        check_indices("--positions", args.positions, config.seq_len, "--seq-len (the input length)")
    check_distinct("--seeds", args.seeds)


def cmd_jacobian(args: argparse.Namespace) -> int:
    from ..experiments.jacobian import (
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
        seeds=tuple(args.seeds), inputs=inputs_from_arguments(args), probes=args.probes,
    )
    write_table(table, args.csv, args.json)
    show(deviation_table(table))
    print("\nrms(h_l) at each layer's input:")
    show(input_rms_table(table))
    return 0


def validate_jacobian(args: argparse.Namespace) -> None:
    config = config_from_arguments(args)
    check_indices("--layers", args.layers, config.depth, "--depth")
    check_distinct("--seeds", args.seeds)


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


# A sweep summary longer than this is shown as an excerpt (first, middle, last layer).
SUMMARY_ROWS = 40


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..experiments import executor
    from ..experiments.montecarlo import RUN_COLUMNS, sweep

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


def summary_excerpt(summary: pd.DataFrame, per_position: bool) -> pd.DataFrame:
    """The block-output rows of ``summary`` at the first, middle and last layer (and
    position) of each configuration: what a reader scans a sweep for."""
    def ends(values: pd.Series, count: pd.Series) -> pd.Series:
        return (values == 0) | (values == count // 2) | (values == count - 1)

    rows = (summary["sublayer"] == "mlp") & ends(summary["layer"], summary["depth"])
    if per_position:
        rows &= ends(summary["position"], summary["length"])
    return summary[rows]


def validate_sweep(args: argparse.Namespace, defaults: dict | None = None) -> list[StackConfig]:
    from ..experiments.montecarlo import grid_configs

    for name, values in vars(args).items():
        if name in {f.name for f in dataclasses.fields(StackConfig)} | {"length", "input_std", "seeds"}:
            check_distinct("--" + name.replace("_", "-"), values)
    return [config for config, _ in grid_configs(sweep_grid(args, defaults), PRESETS.get(args.preset))]


def growth_defaults(default_growth: dict, preset: str | None = None) -> dict:
    """``growth``'s grid defaults; a ``--preset`` shape replaces the default shape fields it sets."""
    shape = PRESETS.get(preset, {})
    return {"scheme": SCHEMES, **{name: [value] for name, value in default_growth.items() if name not in shape}}


def cmd_growth(args: argparse.Namespace) -> int:
    from ..experiments import executor
    from ..experiments.growth import meanfield_growth
    from ..experiments.montecarlo import RUN_COLUMNS, sweep

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


def validate_growth(args: argparse.Namespace) -> None:
    configs = validate_sweep(args, growth_defaults(DEFAULT_GROWTH, args.preset))
    shallowest = min(config.depth for config in configs)
    if args.first_layer > shallowest - 3:
        raise ValueError(f"--first-layer {args.first_layer} leaves fewer than 3 layers to fit at depth {shallowest}")


def cmd_meanfield(args: argparse.Namespace) -> int:
    from ..theory.meanfield import predict, predict_per_position

    config = config_from_arguments(args)
    if args.compare_seeds:
        inputs = inputs_from_arguments(args)
        table = compare_with_monte_carlo(config, range(args.compare_seeds), inputs, tuple(args.statistics),
                                         attention=args.attention, per_position=args.per_position)
    else:
        predictor = predict_per_position if args.per_position else predict
        table = predictor(config, args.input_std**2, args.attention, args.length, not args.uncorrelated,
                          args.attention_samples)
    write_table(table, args.csv, args.json)
    show(table, index=False)
    return 0


def cmd_efficiency(args: argparse.Namespace) -> int:
    from ..experiments.efficiency import CONTENTION_LOG_SD, efficiency_study

    config = config_from_arguments(args)
    costs, timings = efficiency_study(config, tuple(args.schemes), batch=args.batch, rounds=args.rounds)
    write_table(timings, args.csv, args.json)
    print(f"counted cost per token of a block's two normaliser sites (width {config.width}, "
          f"{costs['element_bytes'].iloc[0]} bytes per element):")
    show(costs.drop(columns=["width", "element_bytes"]), "{:.3f}", index=False)
    print(f"\nmeasured in this process on {timings['hardware'].iloc[0]} ({config.device}): ratio to RMSNorm "
          f"and speed-up, geometric mean over {args.rounds} interleaved rounds, Student-t 95% interval of the log "
          f"ratios (contended: rounds spread > {CONTENTION_LOG_SD} in log ratio, interval widened to their range); "
          f"block: width {config.width}, heads {config.heads}, T {config.seq_len}, batch {args.batch}; "
          f"decode: one token after a cache of {config.seq_len}")
    show(timings.drop(columns=["device", "hardware", "level"]), "{:.4g}", index=False)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    table = run_bench(widths=tuple(args.widths), memory_width=args.memory_width,
                      meanfield_lengths=tuple(args.meanfield_lengths), threads=tuple(args.threads),
                      sweep_depths=tuple(args.sweep_depths), sweep_seeds=args.sweep_seeds,
                      sweep_width=args.sweep_width, sweep_length=args.sweep_length, device=args.device)
    write_table(table, args.csv, args.json)
    show(table)
    return 0


def register(commands) -> None:
    """Add the init-regime commands to ``commands`` (an argparse sub-parsers action)."""
    trace = commands.add_parser(
        "trace", help="per-layer statistics of one stack on Gaussian inputs",
        description="Run one Stack on inputs ~ N(0, input_std²) and print per-layer "
        "(position-averaged) statistics; --per-position prints every row.",
    )
    add_config_arguments(trace)
    trace.add_argument("--seed", type=seed, default=0, help="weight seed (inputs: numerics.inputs.input_seed)")
    add_input_options(trace, length=True)
    trace.add_argument("--per-position", action="store_true")
    add_output_options(trace)
    trace.set_defaults(run=cmd_trace, validate=validate_config)

    sweep = commands.add_parser(
        "sweep", help="Monte Carlo sweep over StackConfig values × seeds, cached; per-layer means with CIs",
        description="Every StackConfig option takes one or more values; the sweep runs their Cartesian "
        "product × --seeds (streamed, one block at a time), caches each run in --cache-dir so an "
        "interrupted sweep resumes, and prints per-layer means across seeds with Student-t intervals.",
    )
    add_config_arguments(sweep, multi=True)
    add_sweep_options(sweep)
    sweep.add_argument("--statistics", nargs="+", **one_of(STATISTICS, "STATISTIC"), default=list(library_default(summarise, "statistics")),
                       help="statistics to summarise (default mean_square rms); " + choices_help(STATISTICS))
    sweep.add_argument("--per-position", action="store_true")
    sweep.add_argument("--summary-csv", type=output_file, default=None,
                       help="write the whole summary (every layer) as CSV; the terminal shows at most "
                       f"{SUMMARY_ROWS} rows")
    add_output_options(sweep, "the full per-position sweep table")
    sweep.set_defaults(run=cmd_sweep, validate=validate_sweep, saved=saved_runs, configs=validate_sweep)

    growth = commands.add_parser(
        "growth", help="fit linear / variance-linear / exponential / power growth of rms with depth (C1, C2, C4)",
        description="Monte Carlo sweep (default: every scheme, "
        + ", ".join(f"{name} {value}" for name, value in DEFAULT_GROWTH.items())
        + f", inputs N(0, {InputSpec().std}²), seeds {' '.join(map(str, DEFAULT_SEEDS))}, batch {InputSpec().batch}; "
        "cached) and the growth-law fits per scheme.",
    )
    add_config_arguments(growth, multi=True)
    add_sweep_options(growth)
    growth.add_argument("--first-layer", type=index, default=library_default(fit_growth, "first_layer"),
                        help="fit layers ≥ this (0-based)")
    growth.add_argument("--meanfield", action="store_true", help="also fit the mean-field curves")
    add_output_options(growth, "the fit table")
    growth.set_defaults(run=cmd_growth, validate=validate_growth, saved=saved_runs,
                        configs=lambda args: validate_sweep(args, growth_defaults(DEFAULT_GROWTH, args.preset)))

    meanfield = commands.add_parser(
        "meanfield", aliases=["predict"], help="mean-field per-layer prediction at initialisation (no weights drawn)",
        description="The token-Gram mean-field recursion (bhyt_theory.theory.meanfield) for the stack given by the "
        "same options as `trace`: per-layer (position-averaged) mean square, tanh-argument statistics and, "
        "for bhyt/bhytline, the estimate/exact ratio. --compare-seeds N also runs N Monte Carlo stacks "
        "(bhyt_theory.experiments.meanfield). `predict` is another name for this command.",
    )
    add_config_arguments(meanfield)
    add_input_options(meanfield, library_default(compare_with_monte_carlo, "inputs"), length=True)
    meanfield.add_argument("--attention", **one_of(ATTENTION_MODELS, "ATTENTION"), default="uniform_causal",
                         help="attention pattern of the mean field (softmax: causal softmax of Gaussian RoPE "
                         "queries/keys, needed where dσ² ≳ 0.4); " + choices_help(ATTENTION_MODELS))
    meanfield.add_argument("--attention-samples", type=size, default=SOFTMAX_SAMPLES,
                         help="query/key draws per layer of --attention softmax")
    meanfield.add_argument("--statistics", nargs="+", **one_of(STATISTICS, "STATISTIC"),
                           default=list(library_default(compare_with_monte_carlo, "statistics")),
                         help="statistics --compare-seeds compares; " + choices_help(STATISTICS))
    meanfield.add_argument("--per-position", action="store_true", help="one row per layer × sublayer × position")
    meanfield.add_argument("--uncorrelated", action="store_true", help="drop token correlations (per-position recursion)")
    meanfield.add_argument("--compare-seeds", type=index, default=0, help="Monte Carlo seeds to compare against (0: none)")
    add_output_options(meanfield)
    meanfield.set_defaults(run=cmd_meanfield, validate=validate_config)

    variance = add_study_command(
        commands, "variance", variance_experiment.estimator_comparison, cmd_variance, validate_variance,
        help="BHyT's M₂ estimate/exact ratio per estimator × layer × position (claim C5)",
        description="One bhyt stack per estimator and seed on inputs ~ N(0, input_std²) of length seq_len; "
        "prints M₂/m(h') at the chosen layers × positions (default 0, 1, 7, T/2, T−1). "
        "--decomposition prints the four error terms of docs/estimators.md §3 instead (for --estimators[0]). "
        "--grid runs experiments.variance.variance_grid over --grid-seq-lens × --grid-lams × --grid-widths × --grid-input-stds "
        "× --seeds (every layer unless --layers) and prints the minimum reference ratio per grid point, "
        "where it occurs and its largest error term.",
    )
    variance.add_argument("--estimators", nargs="+", **one_of(ESTIMATORS, "ESTIMATOR"), default=None,
                          help="default: every estimator except exact and the training-only ones; " + choices_help(tuple(ESTIMATORS)))
    variance.add_argument("--layers", type=index, nargs="+", default=None,
                          help="0-based, < depth; default 0 1 4 16 64; with --grid, every layer")
    variance.add_argument("--positions", type=index, nargs="+", default=None, help="0-based, < seq_len")
    variance.add_argument("--decomposition", action="store_true")
    variance.add_argument("--grid", action="store_true", help="sweep T × (λ₁, λ₂) × width × input scale")
    variance.add_argument("--grid-seq-lens", type=size, nargs="+", default=list(variance_experiment.GRID_SEQ_LENS),
                          help="T values of --grid (default %(default)s)")
    variance.add_argument("--grid-lams", type=lam_pair, nargs="+", default=list(variance_experiment.GRID_LAMS),
                          help="λ₁,λ₂ pairs of --grid, such as 2,1 (default "
                          + " ".join(f"{a:g},{b:g}" for a, b in variance_experiment.GRID_LAMS) + ")")
    variance.add_argument("--grid-widths", type=size, nargs="+", default=list(variance_experiment.GRID_WIDTHS),
                          help="widths of --grid (default %(default)s)")
    variance.add_argument("--grid-input-stds", type=positive_real, nargs="+",
                          default=list(variance_experiment.GRID_INPUT_STDS), help="input scales of --grid (default %(default)s)")

    jacobian = add_study_command(
        commands, "jacobian", jacobian_experiment.jacobian_comparison, cmd_jacobian, validate_jacobian,
        help="relative deviation of each block's Jacobian from I, per scheme × layer",
        description="‖∂h_{l+1}/∂h_l − I‖_F / sqrt(T·d) at the states each stack reaches on inputs "
        "~ N(0, input_std²), by Hutchinson probes (± standard error over probes), at layers 0, 1, 4, 16, L−1.",
    )
    jacobian.add_argument("--schemes", nargs="+", **one_of(tuple(SCHEME_TABLE), "SCHEME"), default=None,
                          help="default: every scheme but bhytline (= bhyt); " + choices_help(tuple(SCHEME_TABLE)))
    jacobian.add_argument("--probes", type=size, default=library_default(jacobian_experiment.jacobian_comparison, "probes"))
    jacobian.add_argument("--layers", type=index, nargs="+", default=None, help="0-based, < depth")

    efficiency = commands.add_parser(
        "efficiency", help="cost model and timing of each normaliser vs RMSNorm, training and decode (C6)",
        description="Counted cost per token (reductions, tanh, bytes, kernel launches) of a block's two "
        "normaliser sites for rmsnorm, dyt, bhytstar, bhyt, and the wall time of one block forward+backward "
        "and one decode step as ratios to RMSNorm measured in this process (interleaved rounds, Student-t "
        "intervals). --device cuda on a GPU; the table names the hardware.",
    )
    add_config_arguments(efficiency, defaults=library_default(efficiency_experiment.efficiency_study, "config"))
    library_config(efficiency, lambda args: efficiency_experiment.QUICK_EFFICIENCY if args.quick
                   else library_default(efficiency_experiment.efficiency_study, "config"))
    efficiency.add_argument("--schemes", nargs="+",
                            default=list(library_default(efficiency_experiment.efficiency_study, "schemes")))
    efficiency.add_argument("--batch", type=size, default=library_default(efficiency_experiment.efficiency_study, "batch"))
    efficiency.add_argument("--rounds", type=int, default=library_default(efficiency_experiment.efficiency_study, "rounds"),
                            help="interleaved timing rounds (≥ 2)")
    efficiency.add_argument("--quick", action="store_true",
                            help=f"{describe_config(efficiency_experiment.QUICK_EFFICIENCY)} (smoke test)")
    add_output_options(efficiency, "the timing summary")
    efficiency.set_defaults(run=cmd_efficiency, validate=validate_config)

    bench = commands.add_parser(
        "bench", help="Monte Carlo FLOP/s vs dense matmul, mean-field time, streamed peak memory (reports only)",
        description="Benchmarks of bhyt_theory.bench: achieved matmul FLOP/s of the Monte Carlo forward and "
        "streamed run over a dense torch.matmul measured in the same run, meanfield.predict time at depth "
        "1024, peak RSS of a streamed run at depth 1024 over depth 16, the full sweep's time over its deepest "
        "runs' matmuls, each run's time split by part and its floor (a block's forward, eager or torch.compile'd, "
        "whichever is faster, plus its weight draw). Reports; asserts nothing.",
    )
    bench.add_argument("--widths", type=size, nargs="+", default=list(library_default(run_bench, "widths")))
    bench.add_argument("--memory-width", type=size, default=library_default(run_bench, "memory_width"))
    bench.add_argument("--meanfield-lengths", type=size, nargs="+",
                       default=list(library_default(run_bench, "meanfield_lengths")))
    bench.add_argument("--device", type=device, default="cpu")
    bench.add_argument("--threads", type=size, nargs="+", default=list(library_default(run_bench, "threads")),
                       help="torch CPU thread counts; throughput and sweep figures at each")
    bench.add_argument("--sweep-depths", type=size, nargs="+", default=list(library_default(run_bench, "sweep_depths")),
                       help="depths of the full-sweep figure (every scheme, --sweep-seeds seeds)")
    bench.add_argument("--sweep-seeds", type=size, default=library_default(run_bench, "sweep_seeds"))
    bench.add_argument("--sweep-width", type=size, default=library_default(run_bench, "sweep_width"),
                       help="width of the full sweep (heads: width / 64, at least 1)")
    bench.add_argument("--sweep-length", type=size, default=library_default(run_bench, "sweep_length"))
    add_output_options(bench)
    bench.set_defaults(run=cmd_bench)
