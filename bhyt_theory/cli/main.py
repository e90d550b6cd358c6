"""Derive, prove and numerically check the theory behind BHyT (arXiv 2601.09719).

The ``bhyt-theory`` command line. Each group of commands is one module of this package —
``init_regime`` (studies at initialisation), ``theory``, ``training``, ``report`` — with a
``register(commands)`` that adds its sub-parsers; ``main`` parses, validates and runs.

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

from .. import __version__
from . import init_regime, report, theory, training
from .options import Parser

GROUPS = (init_regime, theory, training, report)


def build_parser() -> argparse.ArgumentParser:
    """The ``bhyt-theory`` parser: every group's sub-commands."""
    parser = Parser(prog="bhyt-theory", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"bhyt-theory {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
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
    from ..experiments.executor import SchedulerUnreachable

    try:
        args = build_parser().parse_args(argv)
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
