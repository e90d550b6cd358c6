"""Argparse types and choices for the ``bhyt-theory`` command line: one small
function per kind of value, so that every option is checked when it is parsed,
before any work starts (``cli`` adds one validation step per command for what
the options mean together).

A type raises ``argparse.ArgumentTypeError`` with the accepted range; the parser
(``Parser``) prints it as one line, ``bhyt-theory trace: error: argument --length:
must be an integer ≥ 1, got '0'``, and exits with code 2. Real ranges are the
library's own (``model.REAL_RANGES`` checked by ``norms.check_real``), except
that an initial λ₁, λ₂ given on the command line must be > 0 (``OPTION_RANGES``).
"""

from __future__ import annotations

import argparse
import os
import typing
from pathlib import Path
from typing import Callable

import torch

from ..numerics.estimators import ESTIMATORS
from ..numerics.inputs import INPUT_SEED_OFFSET
from ..numerics.model import DTYPES, KAPPA_SCHEDULES, REAL_RANGES
from ..numerics.norms import check_real
from ..numerics.schemes import SCHEME_TABLE

# The ranges of the StackConfig options. The command line sets *initial* values: λ₁, λ₂ > 0,
# as in the paper (inits 1–3); a λ ≤ 0 there is almost surely a typo, since it switches a
# branch off or negates it. The library accepts any finite λ, as a trained λ may reach it.
OPTION_RANGES = {**REAL_RANGES, "lam_in": (0.0, True), "lam_post": (0.0, True)}

# Inputs are drawn from input_seed(seed) ≤ seed + 2 · INPUT_SEED_OFFSET, and torch seeds are below 2**63.
SEED_MAX = 2**63 - 1 - 2 * INPUT_SEED_OFFSET


def config_choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each choice field of ``StackConfig``, read when the parser is
    built (a scheme table extended at run time is seen)."""
    return {"scheme": tuple(SCHEME_TABLE), "estimator": tuple(ESTIMATORS),
            "kappa_schedule": tuple(KAPPA_SCHEDULES), "dtype": DTYPES}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``bhyt-theory trace: error: …`` on stderr, exit 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _typed(name: str, parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` with the name argparse shows in its messages."""
    parse.__name__ = name
    return parse


def integer(minimum: int, maximum: int | None = None, name: str = "integer") -> Callable[[str], int]:
    """An argparse type: an integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            accepted = f"≥ {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be an integer {accepted}, got {text!r}")
        return value

    return _typed(name, parse)


def real(minimum: float | None = None, strict: bool = False, name: str = "real") -> Callable[[str], float]:
    """An argparse type: a finite real, ``> minimum`` (``strict``) or ``≥ minimum``
    (the library's own check, ``norms.check_real``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            check_real(value, "value", minimum, strict)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    return _typed(name, parse)


size = integer(1, name="size")
index = integer(0, name="index")
seed = integer(0, SEED_MAX, name="seed")
positive_real = real(0.0, strict=True, name="positive_real")
non_negative_real = real(0.0, name="non_negative_real")


def probability(text: str) -> float:
    """An argparse type: a confidence level strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1 (0.95 is a 95 % interval), got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in ``[0, 1]`` (an attention mass, for instance)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def lam_pair(text: str) -> tuple[float, float]:
    """An argparse type: ``λ₁,λ₂`` such as ``2,1``, both finite and > 0."""
    values = text.split(",")
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"takes λ₁,λ₂ pairs such as 2,1, got {text!r}")
    return positive_real(values[0]), positive_real(values[1])


def device(text: str) -> str:
    """An argparse type: a torch device that exists on this machine."""
    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (cpu, cuda, cuda:N, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine (torch "
                                             f"{torch.__version__}, torch.cuda.is_available() is False); use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine; use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"unsupported device {text!r} (cpu, cuda, cuda:N, mps)")
    return text


def _check_can_create(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` is a directory this process may write in
    (missing folders below it are created when the output is written)."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {existing} (permission denied)")


def output_file(text: str) -> Path:
    """An argparse type: a file to write (not a directory, in a writable place)."""
    path = Path(text)
    if path.is_dir() or text.endswith(os.sep):
        raise argparse.ArgumentTypeError(f"{text} is a directory; give the path of a file to write")
    _check_can_create(path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot overwrite {text} (permission denied)")
    return path


def output_folder(text: str) -> Path:
    """An argparse type: a folder to write in (an existing directory or a creatable one, not a file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is a file, not a directory")
    _check_can_create(path)
    return path


def one_of(choices: typing.Sequence[str], metavar: str) -> dict:
    """``choices=`` for ``add_argument`` with a short usage name; ``--help`` lists the values."""
    return {"choices": tuple(choices), "metavar": metavar}


def choices_help(choices: typing.Sequence[str]) -> str:
    return "one of: " + ", ".join(choices)


def config_type(name: str, kind: type) -> dict:
    """``type=``/``choices=`` of the option for ``StackConfig`` field ``name``."""
    choices = config_choices()
    if name in choices:
        return one_of(choices[name], name.upper())
    if name == "device":
        return {"type": device}
    if name in OPTION_RANGES:
        minimum, strict = OPTION_RANGES[name]
        return {"type": real(minimum, strict, name=name)}
    return {"type": size if kind is int else kind}
