"""``python -m bhyt_theory``: the ``bhyt-theory`` command line (``bhyt_theory.cli.main``)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
