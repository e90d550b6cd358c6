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

# float64 unit roundoff; tolerances of the numeric checks are multiples of it.
U64 = 2.0**-53


def check(check_id: str) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    """Register ``function`` under ``check_id`` (unique) in ``CHECKS``."""
    def register(function: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        if check_id in CHECKS:
            raise ValueError(f"duplicate check id {check_id!r}")

        @functools.wraps(function)
        def run() -> CheckResult:
            passed, message = function()
            return bool(passed), message  # numpy/torch booleans become plain bool

        CHECKS[check_id] = run
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


def run_checks(proofs: Path = PROOFS_DIR) -> pd.DataFrame:
    """Run every registered check: one row per check id with ``passed``, ``message``
    and the ``proofs`` files citing it. A check that raises is a failure whose
    message names the exception, so one broken check never hides the others."""
    references = check_references(proofs) if proofs.is_dir() else {}
    rows = []
    for check_id, function in CHECKS.items():
        try:
            passed, message = function()
        except Exception as error:  # reported as a failed check, with its cause
            passed, message = False, f"raised {type(error).__name__}: {error}"
        rows.append({"check": check_id, "passed": bool(passed), "message": message,
                     "proofs": ", ".join(references.get(check_id, []))})
    return pd.DataFrame(rows)
