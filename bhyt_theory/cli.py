"""``bhyt-theory`` command line: one sub-command per job (argparse).

Each sub-command is a ``_cmd_*`` function registered in ``_build_parser``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

import pandas as pd
import torch

from .model import Stack, StackConfig


def add_config_arguments(parser: argparse.ArgumentParser, multi: bool = False) -> None:
    """One ``--option`` per ``StackConfig`` field (``kv_heads`` → ``--kv-heads``).

    With ``multi=True`` every option takes one or more values (for sweeps).
    """
    hints = typing.get_type_hints(StackConfig)
    for field in dataclasses.fields(StackConfig):
        kind = hints[field.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=base,
            nargs="+" if multi else None,
            default=None,
            help=f"StackConfig.{field.name} (default {field.default})",
        )


def config_from_arguments(args: argparse.Namespace, **overrides) -> StackConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(StackConfig)}
    values = {k: v for k, v in values.items() if v is not None}
    values.update(overrides)
    return StackConfig(**values)


def gaussian_inputs(config: StackConfig, batch: int, length: int, std: float, seed: int) -> torch.Tensor:
    """Hidden states ~ N(0, std²) of shape ``(batch, length, width)``, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, config.width, generator=generator) * std


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


def _cmd_trace(args: argparse.Namespace) -> int:
    config = config_from_arguments(args)
    stack = Stack(config, seed=args.seed)
    x = gaussian_inputs(config, args.batch, args.length or config.seq_len, args.input_std, args.seed + 10_000)
    table = stack.trace(x)
    write_table(table, args.csv, args.json)
    if args.per_position:
        shown = table
    else:
        shown = table.groupby(["layer", "sublayer"], sort=False).mean(numeric_only=True).drop(columns=["position", "seed"])
        shown["rms"] = shown["mean_square"] ** 0.5
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250, "display.float_format", "{:.4g}".format):
        print(shown)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bhyt-theory", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    trace = commands.add_parser(
        "trace", help="per-layer statistics of one stack on Gaussian inputs",
        description="Run one Stack on inputs ~ N(0, input_std²) and print per-layer "
        "(position-averaged) statistics; --per-position prints every row.",
    )
    add_config_arguments(trace)
    trace.add_argument("--seed", type=int, default=0, help="weight seed (inputs use seed + 10000)")
    trace.add_argument("--batch", type=int, default=4)
    trace.add_argument("--length", type=int, default=None, help="input length T (default: seq_len)")
    trace.add_argument("--input-std", type=float, default=0.02)
    trace.add_argument("--per-position", action="store_true")
    trace.add_argument("--csv", type=Path, default=None)
    trace.add_argument("--json", type=Path, default=None)
    trace.set_defaults(run=_cmd_trace)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"bhyt-theory {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
