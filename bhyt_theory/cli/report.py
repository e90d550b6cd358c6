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

    from ..pipeline.claims import CLAIM_STUDIES, claims_table, compute_plan, evaluate
    from ..pipeline.studies import STUDIES, ResultsStore

    store = ResultsStore(args.results, log=lambda message: print(message, file=sys.stderr))
    pending, seconds = compute_plan(store, quick=True)
    if not args.compute and len(pending) == len(CLAIM_STUDIES):
        raise ValueError(f"no current results in {args.results}: compute them with `bhyt-theory reproduce --out "
                         f"{args.results}` (or add --compute for quick sizes)")
    if args.compute and pending:
        print(f"computing at quick sizes into {args.results}: " + ", ".join(
            f"{name} ({STUDIES[name].sizes(True)})" for name in pending) + f"; about {seconds:.0f} s on two cores",
              file=sys.stderr)
    assessments = evaluate(store, quick=True, compute_missing=args.compute)
    if args.json:
        print(json.dumps([a.as_dict() for a in assessments], indent=1, ensure_ascii=False))
        return 0
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
        description="Read the latest results in --results (as `reproduce --out` writes them), apply each claim's "
        "rule (bhyt_theory.pipeline.rules.RULES) and print the verdicts; a claim whose study has no current result "
        "there is 'not run', and a folder with no results at all is an error (exit 2) naming the command that "
        "computes them. --compute first computes, at quick sizes, whatever is missing or stale, after saying what and "
        "about how long. --json prints a list of objects (id, statement, verdict, reason, measured, expected, rule, "
        "command, explanation, evidence, …).",
    )
    claims.add_argument("--results", type=Path, default=Path("results"))
    claims.add_argument("--json", action="store_true", help="print JSON instead of a table")
    claims.add_argument("--compute", action="store_true",
                        help="compute missing or stale studies at quick sizes first (says which and how long)")
    claims.set_defaults(run=cmd_claims)
