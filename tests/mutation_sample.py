"""The fixed mutation sample of numerics/ and theory/: list it, run it, tabulate it.

The sample is not chosen by whoever reports it: a mutant is in it when the SHA-256 of its name
followed by ``SALT`` (the hash of the first commit of the change that introduced this sample) is
0 mod 10. ``[tool.mutmut]`` in pyproject.toml says which files are mutated and which tests run.

Usage (from the repository root, mutmut installed: the optional ``mutation`` extra)::

    python tests/mutation_sample.py list          # generate mutants/, write the sample's names to NAMES
    python tests/mutation_sample.py run           # mutmut run --max-children 1 on the sample
    python tests/mutation_sample.py table         # killed / survived / other counts of the sample

``make mutation-sample`` does all three. Not a test module (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

SALT = "db1c710d570b9d2c6abe0a794f6a695a74abfaa0"
"""The commit hash that fixes the sample (see the module docstring)."""
MODULUS = 10
MUTMUT = [sys.executable, "-m", "mutmut"]
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.tsv")
"""Survivors argued equivalent: one ``name<TAB>why no input tells it apart`` a line."""
NAMES = Path("mutation_sample_names.txt")
"""Where ``list`` writes the sample (one name a line; generation itself prints file paths)."""


def in_sample(name: str, salt: str = SALT, modulus: int = MODULUS) -> bool:
    """Whether mutant ``name`` belongs to the sample: SHA-256 of ``name + salt`` is 0 mod ``modulus``."""
    return int(hashlib.sha256((name + salt).encode()).hexdigest(), 16) % modulus == 0


def _meta_files() -> list[Path]:
    return sorted(Path("mutants").rglob("*.py.meta"))


def generate() -> None:
    """Write mutants/ (every mutant of the files in [tool.mutmut] only_mutate), running no test."""
    from mutmut.__main__ import (
        copy_also_copy_files,
        copy_src_dir,
        create_mutants,
        setup_source_paths,
    )

    Path("mutants").mkdir(exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    create_mutants(1)


def results() -> dict[str, int | None]:
    """Mutant name → exit code recorded by mutmut (None: not run yet), for every generated mutant."""
    codes: dict[str, int | None] = {}
    for path in _meta_files():
        codes.update(json.loads(path.read_text())["exit_code_by_key"])
    return codes


def sample() -> list[str]:
    return sorted(name for name in results() if in_sample(name))


def outcome(code: int | None) -> str:
    """mutmut's reading of a test run's exit code on a mutant."""
    return {None: "not run", 0: "survived", 1: "killed", 3: "killed", 5: "no tests", 33: "no tests",
            34: "skipped", 35: "suspicious", 36: "timeout", 24: "timeout", 152: "timeout",
            -24: "timeout", 255: "timeout", -11: "segfault", -9: "killed (memory)"}.get(code, f"exit {code}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "list"
    if command == "list":
        generate()
        names = sample()
        NAMES.write_text("\n".join(names) + "\n")
        print(f"{len(names)} of {len(results())} mutants in the sample, listed in {NAMES}")
        return 0
    if command == "run":
        names = sample()
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.call([*MUTMUT, "run", "--max-children", "1", *names], env=environment)
    if command == "table":
        codes, names = results(), sample()
        equivalent = {line.split("\t")[0] for line in EQUIVALENT.read_text().splitlines() if line.strip()}
        read = {name: "equivalent" if codes[name] == 0 and name in equivalent else outcome(codes[name])
                for name in names}
        counts = Counter(read.values())
        for key, value in sorted(counts.items()):
            print(f"{key}: {value}")
        killed = sum(value for key, value in counts.items() if key.startswith("killed"))
        judged = len(names) - counts["equivalent"]
        print(f"score: {killed}/{judged} = {killed / judged:.1%} (killed over the sample less the equivalent)")
        survivors = [name for name in names if read[name] == "survived"]
        print("survivors:", *survivors, sep="\n  ")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
