"""What every ``bhyt-theory`` command group shares: the ``StackConfig`` options (with
``--preset``), output options, the Monte Carlo sweep and Dask options, table output, and the
validation helpers for what options mean together (indices within a configuration,
distinct sweep values)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import typing
from pathlib import Path

import pandas as pd

from ..experiments.montecarlo import DEFAULT_SEEDS, summarise
from ..numerics.inputs import InputSpec
from ..numerics.model import PRESETS, StackConfig
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


def add_config_arguments(parser: argparse.ArgumentParser, multi: bool = False,
                         defaults: StackConfig | None = None) -> None:
    """One ``--option`` per ``StackConfig`` field (``kv_heads`` → ``--kv-heads``),
    each typed and range-checked as ``StackConfig`` requires; its help names the default of
    ``defaults`` (the command's library configuration; ``StackConfig()`` when None).

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
            help=f"StackConfig.{field.name} (default {getattr(defaults, field.name, field.default)}{accepted})",
            **config_type(field.name, base),
        )


def config_changes(config: StackConfig) -> dict:
    """The fields of a library's default ``config`` that differ from ``StackConfig()``'s (``kv_heads``
    and ``mlp_width`` only where they differ from what they derive from, so that a preset or an
    option that changes the width or the heads re-derives them): a command's lowest-ranked defaults."""
    derived = StackConfig(width=config.width, heads=config.heads)
    changes = {}
    for field in dataclasses.fields(StackConfig):
        reference = getattr(derived, field.name) if field.name in ("kv_heads", "mlp_width") else field.default
        if getattr(config, field.name) != reference:
            changes[field.name] = getattr(config, field.name)
    return changes


def library_config(parser: argparse.ArgumentParser, config, **fixed) -> None:
    """Make ``config`` (a ``StackConfig``, or a function of the parsed arguments returning one) the
    command's library default, below ``--preset`` and the options given; ``fixed`` fields are the
    experiment's own (e.g. one layer) and rank above everything."""
    parser.set_defaults(config_defaults=config, config_fixed=fixed)


def config_from_arguments(args: argparse.Namespace, **overrides) -> StackConfig:
    """``StackConfig`` from, in increasing precedence: the library's default configuration of the
    command (``library_config``; ``StackConfig()`` where it has none), ``--preset``, the options
    given, the command's fixed fields and ``overrides``."""
    library = getattr(args, "config_defaults", None) or StackConfig()
    values = config_changes(library(args) if callable(library) else library)
    values.update(PRESETS[args.preset] if getattr(args, "preset", None) else {})
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(StackConfig)
                   if getattr(args, f.name) is not None})
    values.update(getattr(args, "config_fixed", {}))
    values.update(overrides)
    return StackConfig(**values)


def command_configs(args: argparse.Namespace) -> list[StackConfig]:
    """Every ``StackConfig`` a parsed command would run (several for a sweep): the command's own
    ``configs(args)`` where it sets one, else ``config_from_arguments(args)``."""
    configs = getattr(args, "configs", None)
    return list(configs(args)) if configs is not None else [config_from_arguments(args)]


def library_default(function, name: str):
    """The default of parameter ``name`` of ``function``: CLI defaults are the library's."""
    return inspect.signature(function).parameters[name].default


def describe_config(config: StackConfig) -> str:
    """What a library's default configuration sets beyond ``StackConfig()``, for a command's help."""
    return ", ".join(f"{name} {value}" for name, value in config_changes(config).items()) or "StackConfig()"


def add_study_command(commands, name: str, study, run, validate, *, help: str, description: str,
                      **fixed) -> argparse.ArgumentParser:
    """The parser of command ``name``, which runs library function ``study`` (taking ``config``,
    ``seeds`` and ``inputs``) through ``run(args)`` after ``validate(args)``: the ``StackConfig``
    options with ``--preset`` over the function's default configuration (``fixed``: fields the
    experiment sets itself), ``add_study_options`` and the output options. The command's own
    options are added to the parser returned; the description ends with the default configuration."""
    config = library_default(study, "config")
    parser = commands.add_parser(name, help=help, description=f"{description} Default configuration: "
                                 f"{describe_config(config)} ({study.__module__}.{study.__name__}).")
    add_config_arguments(parser, defaults=config if isinstance(config, StackConfig) else None)
    library_config(parser, config, **fixed)
    add_study_options(parser, study)
    add_output_options(parser)
    parser.set_defaults(run=run, validate=validate)
    return parser


def add_study_options(parser: argparse.ArgumentParser, study) -> None:
    """``--seeds``, ``--batch`` and ``--input-std`` of a study function taking ``seeds`` and
    ``inputs`` (an ``InputSpec``), each defaulting to the function's own default."""
    parser.add_argument("--seeds", type=seed, nargs="+", default=list(library_default(study, "seeds")),
                        help="weight seeds (inputs: numerics.inputs.input_seed)")
    add_input_options(parser, library_default(study, "inputs"))


def add_input_options(parser: argparse.ArgumentParser, inputs: InputSpec = InputSpec(), length: bool = False) -> None:
    """``--batch`` and ``--input-std`` (with ``length``, ``--length`` too), defaulting to ``inputs``:
    the options of an ``InputSpec`` (``inputs_from_arguments``)."""
    parser.add_argument("--batch", type=size, default=inputs.batch, help="input sequences per seed")
    if length:
        parser.add_argument("--length", type=size, default=inputs.length, help="input length T (default: seq_len)")
    parser.add_argument("--input-std", type=positive_real, default=inputs.std, help="inputs iid N(0, input_std²)")


def inputs_from_arguments(args: argparse.Namespace) -> InputSpec:
    """The ``InputSpec`` of ``add_input_options``'s options."""
    return InputSpec(args.batch, getattr(args, "length", None), args.input_std)


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


def validate_seeded_config(args: argparse.Namespace, **overrides) -> None:
    config_from_arguments(args, **overrides)
    check_distinct("--seeds", args.seeds)


CACHE_DIR = "results/cache"
"""The command line's cache of Monte Carlo runs (the library takes its folder explicitly)."""


def saved_runs(args: argparse.Namespace) -> str | None:
    return None if args.no_cache else f"the runs finished so far (in {args.cache_dir})"


def add_output_options(parser: argparse.ArgumentParser, what: str = "the table") -> None:
    parser.add_argument("--csv", type=output_file, default=None, help=f"write {what} as CSV")
    parser.add_argument("--json", type=output_file, default=None, help=f"write {what} as JSON records")


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the cached Monte Carlo commands (``sweep``, ``growth``)."""
    parser.add_argument("--seeds", type=seed, nargs="+", default=list(DEFAULT_SEEDS),
                        help="weight seeds (inputs: numerics.inputs.input_seed)")
    parser.add_argument("--batch", type=size, default=InputSpec().batch)
    parser.add_argument("--length", type=size, nargs="+", default=None, help="input length T (default: seq_len)")
    parser.add_argument("--input-std", type=positive_real, nargs="+", default=None,
                        help=f"input scale, > 0 (zero inputs make every statistic 0; default {InputSpec().std})")
    parser.add_argument("--level", type=probability, default=library_default(summarise, "level"),
                        help="confidence level of the intervals, in (0, 1)")
    parser.add_argument("--cache-dir", type=output_folder, default=CACHE_DIR,
                        help=f"folder of the cached runs, relative to the working directory (default {CACHE_DIR})")
    parser.add_argument("--no-cache", action="store_true", help="compute every run, reading and writing no cache")
    parser.add_argument("--no-progress", action="store_true")
    add_backend_options(parser)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` / ``--scheduler ADDRESS``: run each Monte Carlo run as a Dask task (default: serial)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=size, default=None,
                       help="run on a local Dask cluster of N worker processes, one thread each")
    where.add_argument("--scheduler", default=None,
                       help="run on an existing Dask cluster: its scheduler's address (tcp://host:8786)")
