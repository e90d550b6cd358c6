"""The project explains itself: ``docs/`` exists, every citation of it resolves, it
documents every scheme and estimator the code accepts, and every package name it
mentions exists (docs/index.md §3).

Citations have the form ``docs/<file>.md §N`` (further sections may follow as
``, §M`` or `` and §M``); inside ``docs/`` a link whose text is ``<file>.md §N``
cites that file's section N. A section is a level-2 heading ``## N. Title``.
"""

import importlib
import pkgutil
import re
import subprocess
from pathlib import Path

import pytest

import bhyt_theory
from bhyt_theory.numerics.estimators import CORRECTIONS, ESTIMATORS
from bhyt_theory.numerics.model import SCHEMES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOC_FILES = sorted(DOCS.glob("*.md"))

# Written split so that this file does not contain them itself.
FORBIDDEN = ("SP" + "EC", "shared" + "/")

SECTION_HEADING = re.compile(r"^## (\d+)\. \S", re.MULTILINE)
REPOSITORY_CITATION = re.compile(r"docs/([\w\-]+\.md)((?:\s*§\d+)(?:(?:,| and|, and) §\d+)*)")
DOCS_LINK_CITATION = re.compile(r"\[([\w\-]+\.md) §(\d+)\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
SECTION_NUMBER = re.compile(r"§(\d+)")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.\-]*:", re.IGNORECASE)
DOTTED_NAME = re.compile(r"`((?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*)(?:\([^`]*\))?`")

PACKAGE_MODULES = {
    module.name.removeprefix("bhyt_theory.")
    for module in pkgutil.walk_packages(bhyt_theory.__path__, "bhyt_theory.")
}
"""Every module of the package, relative to ``bhyt_theory`` (``numerics.norms``, …)."""


# Only for a checkout without git: what `git ls-files` would leave out.
_UNTRACKED_DIRECTORIES = {".git", ".venv", "results", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"}


def repository_files() -> list[Path]:
    """The files git tracks or would track (not ignored), or, without git, the tree
    minus virtualenvs, caches, results and build metadata."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode("utf-8")
        paths = [ROOT / name for name in listing.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        paths = [
            path for path in ROOT.rglob("*")
            if not any(part in _UNTRACKED_DIRECTORIES or part.endswith(".egg-info")
                       for part in path.relative_to(ROOT).parts)
        ]
    return sorted(path for path in paths if path.is_file())


def text_files() -> dict[Path, str]:
    """Every repository file that decodes as UTF-8, with its text."""
    texts = {}
    for path in repository_files():
        try:
            texts[path] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


TEXTS = text_files()


def sections(path: Path) -> list[int]:
    """The section numbers of a docs file, in order of appearance."""
    return [int(number) for number in SECTION_HEADING.findall(path.read_text(encoding="utf-8"))]


def citations() -> list[tuple[str, str, int]]:
    """``(where, docs file name, section)`` for every section citation in the repository."""
    found = []
    for path, text in TEXTS.items():
        where = str(path.relative_to(ROOT))
        for match in REPOSITORY_CITATION.finditer(text):
            for number in SECTION_NUMBER.findall(match.group(2)):
                found.append((where, match.group(1), int(number)))
        if path.parent == DOCS:
            for name, number, target in DOCS_LINK_CITATION.findall(text):
                if name != target:
                    found.append((where, f"{name} (linked to {target})", int(number)))
                else:
                    found.append((where, name, int(number)))
    return found


def test_docs_have_the_files_the_code_cites():
    names = {path.name for path in DOC_FILES}
    expected = {"index.md", "notation.md", "normalisers.md", "schemes.md", "estimators.md", "claims.md", "statements.md"}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: path.name)
def test_docs_sections_are_numbered_one_to_n(path):
    numbers = sections(path)
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_no_repository_file_mentions_the_external_reference():
    """No file refers to a document outside the repository; docs/ replaces it."""
    offending = [
        f"{path.relative_to(ROOT)}:{line_number}: {line.strip()}"
        for path, text in TEXTS.items()
        for line_number, line in enumerate(text.splitlines(), 1)
        if any(word in line for word in FORBIDDEN)
    ]
    assert not offending, "\n".join(offending)


def test_every_section_citation_resolves():
    found = citations()
    # The package and the proofs cite docs by section; finding none means the pattern broke.
    assert any(where.startswith("bhyt_theory/") for where, _, _ in found)
    assert any(where.startswith("proofs/") for where, _, _ in found)
    broken = [
        f"{where}: {name} §{number}"
        for where, name, number in found
        if not (DOCS / name).is_file() or number not in sections(DOCS / name)
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", [*DOC_FILES, ROOT / "README.md"], ids=lambda path: path.name)
def test_every_relative_link_resolves(path):
    targets = [
        target for target in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8"))
        if not EXTERNAL.match(target) and not target.startswith("#")
    ]
    missing = [target for target in targets if not (path.parent / target.split("#")[0]).exists()]
    assert not missing, missing


def test_every_scheme_is_documented():
    text = (DOCS / "schemes.md").read_text(encoding="utf-8")
    undocumented = [scheme for scheme in SCHEMES if f"`{scheme}`" not in text]
    assert not undocumented, undocumented


def test_every_estimator_is_documented():
    """Every base name an estimator is built from: the corrections, the reference and
    the exact statistic, and every part of every registered combination."""
    text = (DOCS / "estimators.md").read_text(encoding="utf-8")
    names = set(CORRECTIONS) | {"reference", "exact"}
    names |= {part for name in ESTIMATORS for part in name.split("+")}
    undocumented = sorted(name for name in names if f"`{name}`" not in text)
    assert not undocumented, undocumented


def package_object(name: str) -> bool:
    """Whether ``name`` (``numerics.norms.bhyt``, ``norms.bhyt``, ``bhyt_theory.…``) is an
    attribute path of the package; a module named without its layer is looked up in each."""
    parts = name.removeprefix("bhyt_theory.").split(".")
    for module in sorted(PACKAGE_MODULES, key=len, reverse=True):
        module_parts = module.split(".")
        for start in range(len(module_parts)):
            suffix = module_parts[start:]
            if parts[: len(suffix)] == suffix and (start == 0 or len(suffix) == 1):
                obj = importlib.import_module(f"bhyt_theory.{module}")
                try:
                    for attribute in parts[len(suffix):]:
                        obj = getattr(obj, attribute)
                except AttributeError:
                    return False
                return True
    return False


def documented_package_names(text: str) -> list[str]:
    """Backquoted dotted names that start with the package, a layer or a module of it."""
    roots = {"bhyt_theory"} | {part for module in PACKAGE_MODULES for part in module.split(".")}
    return [name for name in DOTTED_NAME.findall(text) if name.split(".")[0] in roots and not name.endswith(".md")]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: path.name)
def test_every_function_the_docs_name_exists(path):
    """The docs name the implementing function of each formula; a rename must reach them."""
    names = documented_package_names(path.read_text(encoding="utf-8"))
    missing = sorted({name for name in names if not package_object(name)})
    assert not missing, missing
