"""The ``bhyt-theory`` command line (the top layer): ``main`` and the parser in ``main``,
one module per group of commands, and the argparse types in ``options``."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
