"""The theory commands: ``checks`` (every proof-step check), ``bounds`` (how tight the bounds
are), and the statements about gradients, trained parameters and decoding: ``gradients``,
``staleness``, ``position``, ``decode``."""

from __future__ import annotations

import argparse
import sys

import torch

from ..experiments import bounds as bounds_experiment
from ..experiments import decode as decode_experiment
from ..experiments import gradients as gradients_experiment
from ..experiments import position as position_experiment
from ..experiments import staleness as staleness_experiment
from ..numerics.inputs import InputSpec
from ..numerics.model import DTYPES
from ..numerics.schemes import SCHEME_TABLE
from .common import (
    add_output_options,
    add_study_command,
    check_distinct,
    config_from_arguments,
    inputs_from_arguments,
    library_default,
    show,
    validate_seeded_config,
    write_table,
)
from .options import (
    choices_help,
    fraction,
    index,
    non_negative_real,
    one_of,
    seed,
    size,
)


def cmd_checks(args: argparse.Namespace) -> int:
    from ..theory.checks import PROOFS_DIR, run_checks

    if not PROOFS_DIR.is_dir():
        print(f"bhyt-theory checks: no proofs folder at {PROOFS_DIR} (run from a repository checkout)", file=sys.stderr)
        return 2
    table = run_checks()
    for row in table.itertuples():
        print(f"{'PASS' if row.passed else 'FAIL'} {row.check} ({row.kind}) [{row.proofs or 'NOT REFERENCED'}]: "
              f"{row.message}")
    print(f"{int(table.passed.sum())}/{len(table)} checks passed ({len(list(PROOFS_DIR.glob('*.md')))} proofs)")
    for kind in ("lemma", "package"):
        rows = table[table.kind == kind]
        print(f"  {kind} checks: {int(rows.passed.sum())}/{len(rows)} passed")
    return 0 if table.passed.all() else 1


def cmd_bounds(args: argparse.Namespace) -> int:
    from ..experiments.bounds import DEFAULT_INIT, tightness_table

    torch.set_num_threads(args.threads)
    table = tightness_table(seed=args.seed, random_trials=args.random_trials, hill_climb_steps=args.hill_climb_steps)
    write_table(table, args.csv, args.json)
    print("tightest measured/bound ratio per bound and scheme (search: seeded random + adversarial "
          "constructions in float64; default_init: float32 Stack "
          f"width {DEFAULT_INIT.width}, depth {DEFAULT_INIT.depth}, heads {DEFAULT_INIT.heads}, "
          f"T {DEFAULT_INIT.seq_len}, init_std {DEFAULT_INIT.init_std}, inputs N(0, {InputSpec().std}²)). "
          "depth: growth ratio (rms(h_l) − rms(h_0)) / Σ(A + F), max over layers and tokens; "
          "saturation: fraction(|z| ≥ t) / saturated_fraction_bound, max over norms and tokens.")
    show(table, "{:.9g}", index=False)
    return 0


def cmd_gradients(args: argparse.Namespace) -> int:
    from ..experiments.gradients import (
        GRADIENT_SCHEMES,
        gradient_growth,
        gradient_study,
        gradient_table,
    )

    config = config_from_arguments(args)
    study = gradient_study(config, schemes=tuple(args.schemes or GRADIENT_SCHEMES), seeds=tuple(args.seeds),
                           inputs=inputs_from_arguments(args), probes=args.probes,
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


def run_study(args: argparse.Namespace, study, summary, **options) -> int:
    """Run library function ``study`` on the command's configuration, seeds and inputs (and ``options``),
    write its table to ``--csv``/``--json`` and print ``summary(table)``."""
    table = study(config_from_arguments(args), seeds=tuple(args.seeds), inputs=inputs_from_arguments(args), **options)
    write_table(table, args.csv, args.json)
    show(summary(table), index=False)
    return 0


def cmd_staleness(args: argparse.Namespace) -> int:
    return run_study(args, staleness_experiment.staleness_study, staleness_experiment.staleness_summary,
                     deltas=tuple(args.deltas))


def cmd_position(args: argparse.Namespace) -> int:
    return run_study(args, position_experiment.peaked_attention_study, position_experiment.worst_peaked_error,
                     peaks=tuple(args.peaks))


def cmd_decode(args: argparse.Namespace) -> int:
    from ..experiments.decode import decode_exactness

    table = decode_exactness(dtypes=tuple(args.dtypes), seeds=tuple(args.seeds), steps=args.steps)
    write_table(table, args.csv, args.json)
    show(table, index=False)
    return 0


def register(commands) -> None:
    """Add the theory commands to ``commands`` (an argparse sub-parsers action)."""
    checks = commands.add_parser(
        "checks", help="run every registered proof-step check (bhyt_theory.theory.checks.CHECKS)",
        description="Run every check of bhyt_theory.theory.checks.CHECKS and print PASS/FAIL, its "
        "message and the proofs/ files that cite it; exit code 1 if any fails.",
    )
    checks.set_defaults(run=cmd_checks)

    bounds = commands.add_parser(
        "bounds", help="tightest measured/bound ratios of the saturation and depth bounds",
        description="Seeded search (random, aligned rank-1, spike and hill-climb constructions) for the "
        "largest measured/bound ratio of bhyt_theory.bounds on real Stacks, every scheme, plus the ratio at "
        "the default initialisation. A ratio above 1 would be a counterexample.",
    )
    bounds.add_argument("--seed", type=seed, default=library_default(bounds_experiment.tightness_table, "seed"))
    bounds.add_argument("--random-trials", type=size,
                        default=library_default(bounds_experiment.tightness_table, "random_trials"),
                        help="random configurations per scheme")
    bounds.add_argument("--hill-climb-steps", type=index,
                        default=library_default(bounds_experiment.tightness_table, "hill_climb_steps"))
    bounds.add_argument("--threads", type=size, default=1, help="torch CPU threads (the search is sized for one core)")
    add_output_options(bounds)
    bounds.set_defaults(run=cmd_bounds)

    gradients = add_study_command(
        commands, "gradients", gradients_experiment.gradient_study, cmd_gradients, validate_seeded_config,
        help="gradient norms through depth at init per scheme: measured and predicted",
        description="||dL/dh_l|| for L = <R, h_L> (R iid N(0,1)) per scheme x layer x seed, against the "
        "isotropic-cotangent prediction prod ||J_k||_F^2/(T d) and the token-Gram recursion "
        "(experiments.gradients; proofs/backward_pass.md).",
    )
    gradients.add_argument("--schemes", nargs="+", **one_of(tuple(SCHEME_TABLE), "SCHEME"), default=None,
                           help="default: all but bhytline; " + choices_help(tuple(SCHEME_TABLE)))
    gradients.add_argument("--probes", type=size, default=library_default(gradients_experiment.gradient_study, "probes"))
    gradients.add_argument("--no-progress", action="store_true")

    staleness = add_study_command(
        commands, "staleness", staleness_experiment.staleness_study, cmd_staleness, validate_seeded_config, scheme="bhyt",
        help="size of the stale-c_attn error term after a controlled weight perturbation",
        description="experiments.staleness (proofs/trained_parameters.md): bhyt stacks, weights moved by a "
        "relative delta (random noise, or W_V, W_O scaled) after c_attn was computed.",
    )
    staleness.add_argument("--deltas", type=non_negative_real, nargs="+",
                           default=list(library_default(staleness_experiment.staleness_study, "deltas")),
                           help="relative weight perturbations, finite, ≥ 0")

    position = add_study_command(
        commands, "position", position_experiment.peaked_attention_study, cmd_position, validate_seeded_config,
        scheme="bhyt", depth=1,
        help="M2 estimators under forced peaked attention: worst error per estimator x peak",
        description="experiments.position (proofs/position_estimator.md): one bhyt block, attention "
        "forced to mass p on token 0 and 1-p uniform causal, iid Gaussian tokens.",
    )
    position.add_argument("--peaks", type=fraction, nargs="+",
                          default=list(library_default(position_experiment.peaked_attention_study, "peaks")),
                          help="attention mass on token 0, each in [0, 1]")

    decode = commands.add_parser(
        "decode", help="bit-exactness of the decode-time precomputation (C9), float32 and bfloat16",
        description="experiments.decode (proofs/decode_precomputation.md): fraction of outputs differing, "
        "max ulps and greedy-decoding agreement per dtype x order of operations.",
    )
    decode.add_argument("--dtypes", nargs="+", **one_of(DTYPES, "DTYPE"),
                        default=list(library_default(decode_experiment.decode_exactness, "dtypes")),
                        help="default %(default)s; " + choices_help(DTYPES))
    decode.add_argument("--seeds", type=seed, nargs="+",
                        default=list(library_default(decode_experiment.decode_exactness, "seeds")))
    decode.add_argument("--steps", type=size, default=library_default(decode_experiment.decode_exactness, "steps"))
    add_output_options(decode)
    decode.set_defaults(run=cmd_decode, validate=lambda args: check_distinct("--seeds", args.seeds))
