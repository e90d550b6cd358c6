"""The registry of proof-step checks: check id ↔ function ↔ the proofs citing it.

``CHECKS`` maps a check id (``"<proof topic>.<step>"``) to a zero-argument
function returning ``(passed, message)``; the modules of this package fill it
with ``@check``. Every proof in ``proofs/`` lists the ids covering its steps, and
``bhyt-theory checks`` runs them all.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable

import pandas as pd

CheckResult = tuple[bool, str]
CHECKS: dict[str, Callable[[], CheckResult]] = {}
"""Check id → zero-argument function re-deriving or verifying one proof step,
returning ``(passed, message)``. Filled by ``@check``."""

CHECK_KINDS = ("lemma", "package")
"""``"lemma"``: the mathematics of a proof step verified with sympy, mpmath or numpy
alone, no package code, so it cannot catch a bug in the package; ``"package"``: a
function of the package (``numerics``, ``theory``) against an independent route (autograd,
an SVD, quadrature, Monte Carlo, a hand formula). A proof counts as confirmed only
through its package checks."""

KINDS: dict[str, str] = {}
"""Check id → its kind (one of ``CHECK_KINDS``). Filled by ``@check``."""

COVERS: dict[str, dict[str, tuple[int, ...]]] = {}
"""Check id → {proof file name → the numbered statements of that proof it verifies}. A proof
with no numbered statements has the one statement 1. A check cited by a proof without an entry
here supports that proof (a step, a table) without covering a statement."""

# float64 unit roundoff; tolerances of the numeric checks are multiples of it.
U64 = 2.0**-53


def check(check_id: str, *, kind: str, statements: dict[str, tuple[int, ...]] | None = None,
          ) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    """Register ``function`` under ``check_id`` (unique) in ``CHECKS``, with its ``kind``
    (``CHECK_KINDS``) and the proof ``statements`` it verifies."""
    if kind not in CHECK_KINDS:
        raise ValueError(f"kind must be one of {CHECK_KINDS}, got {kind!r}")

    def register(function: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        if check_id in CHECKS:
            raise ValueError(f"duplicate check id {check_id!r}")

        @functools.wraps(function)
        def run() -> CheckResult:
            passed, message = function()
            return bool(passed), message  # numpy/torch booleans become plain bool

        CHECKS[check_id] = run
        KINDS[check_id] = kind
        COVERS[check_id] = {name: tuple(numbers) for name, numbers in (statements or {}).items()}
        return run

    return register


# ---------------------------------------------------------------------------
# Proof files: the sections they must have and the checks they cite
# ---------------------------------------------------------------------------

PROOF_SECTIONS = ("Assumptions", "Statement", "Proof", "Tightness", "Checks")
"""Level-2 headings every ``proofs/*.md`` has, in this order; the fourth may read
"Tightness example" or "Tightness example or counterexample"."""

_CHECK_REFERENCE = re.compile(r"`check:([A-Za-z0-9_.\-]+)`")


PROOFS_DIR = Path(__file__).resolve().parents[3] / "proofs"
"""The written proofs, in the repository next to the package."""


def proof_sections(text: str) -> list[str]:
    """The level-2 headings (``## …``) of a proof, in order."""
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


def check_references(proofs: Path) -> dict[str, list[str]]:
    """Check id → the ``proofs/*.md`` file names that cite it as `` `check:<id>` ``."""
    references: dict[str, list[str]] = {}
    for path in sorted(proofs.glob("*.md")):
        for check_id in dict.fromkeys(_CHECK_REFERENCE.findall(path.read_text(encoding="utf-8"))):
            references.setdefault(check_id, []).append(path.name)
    return references


def statement_numbers(text: str) -> tuple[int, ...]:
    """The numbers of a proof's statements: the ``N.`` items opening lines of its
    ``## Statement`` section, or ``(1,)`` when the section is one unnumbered statement."""
    section = re.split(r"^## Statement.*$", text, maxsplit=1, flags=re.MULTILINE)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    numbers = tuple(int(match) for match in re.findall(r"^(\d+)\. ", section, flags=re.MULTILINE))
    return numbers or (1,)


def run_checks(proofs: Path = PROOFS_DIR) -> pd.DataFrame:
    """Run every registered check: one row per check id with ``kind``, ``passed``, ``message``
    and the ``proofs`` files citing it. A check that raises is a failure whose
    message names the exception, so one broken check never hides the others."""
    references = check_references(proofs) if proofs.is_dir() else {}
    rows = []
    for check_id, function in CHECKS.items():
        try:
            passed, message = function()
        except Exception as error:  # reported as a failed check, with its cause
            passed, message = False, f"raised {type(error).__name__}: {error}"
        rows.append({"check": check_id, "kind": KINDS.get(check_id, "unlabelled"), "passed": bool(passed), "message": message,
                     "proofs": ", ".join(references.get(check_id, []))})
    return pd.DataFrame(rows)
