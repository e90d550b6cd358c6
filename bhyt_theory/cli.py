"""Derive, prove and numerically check the theory behind BHyT (arXiv 2601.09719).

The ``bhyt-theory`` command line: each sub-command is a ``cmd_*`` function of
``commands`` or ``training_commands``, registered in ``_build_parser`` (argparse).

Every option is validated before any work starts: each value by its argparse
``type=`` (``options``: one small function per kind of value — sizes, seeds,
indices, finite reals in a range, probabilities, devices, output files and
folders) or ``choices=``, and the options together by one ``validate_*`` step per command
(configurations, layer/position indices within them, distinct sweep values).
A bad option gives one line on stderr (``bhyt-theory trace: error: …``) and
exit code 2. Ctrl-C gives one line saying what was saved and exit code 130; a
closed stdout (``… | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .commands import (
    SUMMARY_ROWS,
    add_backend_options,
    add_config_arguments,
    add_output_options,
    add_sweep_options,
    cmd_bench,
    cmd_bounds,
    cmd_checks,
    cmd_claims,
    cmd_efficiency,
    cmd_growth,
    cmd_jacobian,
    cmd_predict,
    cmd_reproduce,
    cmd_sweep,
    cmd_trace,
    cmd_variance,
    library_default,
    saved_runs,
    validate_config,
    validate_growth,
    validate_jacobian,
    validate_sweep,
    validate_variance,
)
from .numerics.estimators import ESTIMATORS
from .numerics.inputs import InputSpec
from .numerics.probes import STATISTICS
from .numerics.schemes import SCHEME_TABLE
from .options import (
    Parser,
    choices_help,
    device,
    index,
    lam_pair,
    one_of,
    output_file,
    output_folder,
    positive_real,
    seed,
    size,
)
from .theory.meanfield import ATTENTION_MODELS, SOFTMAX_SAMPLES
from .training_commands import add_statement_commands, add_train_parser


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
    add_output_options(trace)
    trace.set_defaults(run=cmd_trace, validate=validate_config)

    reproduce = commands.add_parser(
        "reproduce", help="run every section of the report (tables, figures, report.md)",
        description="Run every section of the report and write CSVs, figures and report.md to --out.",
    )
    reproduce.add_argument("--out", type=output_folder, default="results", help="output folder (created)")
    reproduce.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    reproduce.add_argument("--only", nargs="+", default=None, help="run only these studies (names of bhyt_theory.studies)")
    add_backend_options(reproduce)
    reproduce.set_defaults(run=cmd_reproduce, saved=lambda args: f"finished studies (CSV + .meta.json) in {args.out}")

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
    claims.set_defaults(run=cmd_claims)

    checks = commands.add_parser(
        "checks", help="run every registered proof-step check (bhyt_theory.theory.checks.CHECKS)",
        description="Run every check of bhyt_theory.theory.checks.CHECKS and print PASS/FAIL, its "
        "message and the proofs/ files that cite it; exit code 1 if any fails.",
    )
    checks.set_defaults(run=cmd_checks)

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
    add_output_options(variance)
    variance.set_defaults(run=cmd_variance, validate=validate_variance)

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
    add_output_options(jacobian)
    jacobian.set_defaults(run=cmd_jacobian, validate=validate_jacobian)

    sweep = commands.add_parser(
        "sweep", help="Monte Carlo sweep over StackConfig values × seeds, cached; per-layer means with CIs",
        description="Every StackConfig option takes one or more values; the sweep runs their Cartesian "
        "product × --seeds (streamed, one block at a time), caches each run in --cache-dir so an "
        "interrupted sweep resumes, and prints per-layer means across seeds with Student-t intervals.",
    )
    add_config_arguments(sweep, multi=True)
    add_sweep_options(sweep)
    sweep.add_argument("--statistics", nargs="+", **one_of(STATISTICS, "STATISTIC"), default=["mean_square", "rms"],
                       help="statistics to summarise (default mean_square rms); " + choices_help(STATISTICS))
    sweep.add_argument("--per-position", action="store_true")
    sweep.add_argument("--summary-csv", type=output_file, default=None,
                       help="write the whole summary (every layer) as CSV; the terminal shows at most "
                       f"{SUMMARY_ROWS} rows")
    add_output_options(sweep, "the full per-position sweep table")
    sweep.set_defaults(run=cmd_sweep, validate=validate_sweep, saved=saved_runs)

    growth = commands.add_parser(
        "growth", help="fit linear / variance-linear / exponential / power growth of rms with depth (C1, C2, C4)",
        description="Monte Carlo sweep (default: every scheme, depth 256, width 256, 4 heads, T 64, "
        "init_std 0.02, inputs N(0, 0.02²), seeds 0 1 2, batch 4; cached) and the growth-law fits per scheme.",
    )
    add_config_arguments(growth, multi=True)
    add_sweep_options(growth)
    growth.add_argument("--first-layer", type=index, default=0, help="fit layers ≥ this (0-based)")
    growth.add_argument("--meanfield", action="store_true", help="also fit the mean-field curves")
    add_output_options(growth, "the fit table")
    growth.set_defaults(run=cmd_growth, validate=validate_growth, saved=saved_runs)

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
    add_output_options(bench)
    bench.set_defaults(run=cmd_bench)

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
    add_output_options(efficiency, "the timing summary")
    efficiency.set_defaults(run=cmd_efficiency)

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
    add_output_options(bounds)
    bounds.set_defaults(run=cmd_bounds)

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
    add_output_options(predict)
    predict.set_defaults(run=cmd_predict, validate=validate_config)

    add_statement_commands(commands)
    add_train_parser(commands)

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
