"""The report commands: ``reproduce`` (every study, the figures, report.md and report.html)
and ``claims`` (each claim's verdict from stored results)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    add_backend_options,
)
from .options import (
    output_folder,
)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..experiments import executor
    from ..pipeline.report import reproduce

    with executor.backend(args.workers, args.scheduler):
        reproduce(args.out, quick=args.quick, only=args.only)
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    import json

    from ..pipeline.claims import claims_table, evaluate
    from ..pipeline.studies import ResultsStore

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


def register(commands) -> None:
    """Add the report commands to ``commands`` (an argparse sub-parsers action)."""
    reproduce = commands.add_parser(
        "reproduce", help="run every section of the report (tables, figures, report.md)",
        description="Run every section of the report and write CSVs, figures and report.md to --out.",
    )
    reproduce.add_argument("--out", type=output_folder, default="results", help="output folder (created)")
    reproduce.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    reproduce.add_argument("--only", nargs="+", default=None, help="run only these studies (names of bhyt_theory.pipeline.studies)")
    add_backend_options(reproduce)
    reproduce.set_defaults(run=cmd_reproduce, saved=lambda args: f"finished studies (CSV + .meta.json) in {args.out}")

    claims = commands.add_parser(
        "claims", help="every claim C1–C9 and proof statement with its measured figures and computed verdict",
        description="Read the latest results in --results (as `reproduce` writes them), compute at quick sizes "
        "whatever is missing or stale (saying so), apply each claim's rule (bhyt_theory.pipeline.claims.RULES) and print "
        "the verdicts; --json prints a list of objects (id, statement, verdict, reason, measured, expected, rule, "
        "command, explanation, evidence, …).",
    )
    claims.add_argument("--results", type=Path, default=Path("results"))
    claims.add_argument("--json", action="store_true", help="print JSON instead of a table")
    claims.add_argument("--no-compute", action="store_true", help="use stored results only")
    claims.set_defaults(run=cmd_claims)
