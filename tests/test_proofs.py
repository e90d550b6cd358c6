"""The written proofs and the check registry cover each other, and every check passes.

Each ``proofs/*.md`` has the five sections; every `` `check:<id>` `` it cites is
registered in ``bhyt_theory.theory.checks.registry.CHECKS`` and passes; every registered check
is cited by some proof; ``bhyt-theory checks`` reports them and fails on a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bhyt_theory import cli
from bhyt_theory.theory.checks import (
    CHECK_KINDS,
    CHECKS,
    COVERS,
    KINDS,
    PROOF_SECTIONS,
    check_references,
    proof_sections,
    registry,
    statement_numbers,
)

PROOFS = Path(__file__).resolve().parent.parent / "proofs"
PROOF_FILES = sorted(PROOFS.glob("*.md"))
REQUIRED_PROOFS = (
    "bounded_argument.md",
    "saturation_bound.md",
    "gaussian_typical_case.md",
    "scale_invariance.md",
    "output_bound.md",
    "depth_bound.md",
    "jacobian.md",
    "variance_approximation.md",
    "depth_growth_assessment.md",
    "backward_pass.md",
    "trained_parameters.md",
    "position_estimator.md",
    "decode_precomputation.md",
    "correlation_estimator.md",
)


def test_every_required_proof_is_written():
    assert sorted(set(REQUIRED_PROOFS) - {p.name for p in PROOF_FILES}) == []


@pytest.mark.parametrize("path", PROOF_FILES, ids=lambda p: p.name)
def test_proof_has_the_five_sections_in_order(path):
    sections = proof_sections(path.read_text(encoding="utf-8"))
    assert len(sections) == len(PROOF_SECTIONS), sections
    for heading, required in zip(sections, PROOF_SECTIONS):
        assert heading.startswith(required), (heading, required)


@pytest.mark.parametrize("path", PROOF_FILES, ids=lambda p: p.name)
def test_proof_cites_at_least_one_check_in_its_checks_section(path):
    text = path.read_text(encoding="utf-8")
    checks_section = text.split("\n## Checks", 1)[1]
    assert "`check:" in checks_section


def test_every_cited_check_is_registered():
    cited = check_references(PROOFS)
    assert sorted(set(cited) - set(CHECKS)) == []


def test_every_registered_check_is_cited_by_a_proof():
    cited = check_references(PROOFS)
    assert sorted(set(CHECKS) - set(cited)) == []


def test_every_check_has_a_kind():
    assert sorted(CHECKS) == sorted(KINDS)
    assert set(KINDS.values()) <= set(CHECK_KINDS)


def test_checks_cover_only_proofs_that_cite_them_and_statements_that_exist():
    cited = check_references(PROOFS)
    for check_id, covered in COVERS.items():
        for name, numbers in covered.items():
            assert name in cited.get(check_id, []), (check_id, name)
            assert set(numbers) <= set(statement_numbers((PROOFS / name).read_text(encoding="utf-8"))), (check_id, name)


def test_lemma_checks_cover_no_statement():
    # A lemma check verifies mathematics only; it cannot stand for the package's code.
    assert [c for c, kind in KINDS.items() if kind == "lemma" and COVERS[c]] == []


@pytest.mark.parametrize("path", PROOF_FILES, ids=lambda p: p.name)
def test_every_statement_has_a_package_check(path):
    numbers = statement_numbers(path.read_text(encoding="utf-8"))
    covered = {n for check_id, proofs in COVERS.items() if KINDS[check_id] == "package"
               for n in proofs.get(path.name, ())}
    assert sorted(set(numbers) - covered) == [], f"{path.name}: statements without a package check"


def test_statement_numbers_reads_numbered_items_or_one_statement():
    numbered = "## Statement\n\n1. first\n2. (second)\n   3. not an item\n\n## Proof\n4. not a statement\n"
    assert statement_numbers(numbered) == (1, 2)
    assert statement_numbers("## Statement\n\nOne claim.\n\n## Proof\n1. step\n") == (1,)


def test_check_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        registry.check("x.y", kind="proof")


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_check_passes(check_id):
    passed, message = CHECKS[check_id]()
    assert passed is True, f"{check_id}: {message}"
    assert isinstance(message, str) and message


def test_checks_command_reports_each_check_with_its_proofs(monkeypatch, capsys):
    cited_id = "saturation.markov_step"
    monkeypatch.setattr(registry, "CHECKS", {cited_id: lambda: (True, "fine"), "a.lemma": lambda: (True, "ok")})
    monkeypatch.setattr(registry, "KINDS", {cited_id: "package", "a.lemma": "lemma"})
    assert cli.main(["checks"]) == 0
    out = capsys.readouterr().out
    assert f"PASS {cited_id} (package) [saturation_bound.md]: fine" in out
    assert "lemma checks: 1/1 passed" in out and "package checks: 1/1 passed" in out


def test_checks_command_exits_1_when_a_check_fails(monkeypatch, capsys):
    def crashing():
        raise RuntimeError("boom")

    monkeypatch.setattr(
        registry, "CHECKS", {"a.passes": lambda: (True, "ok"), "a.fails": lambda: (False, "bad"), "a.crashes": crashing}
    )
    assert cli.main(["checks"]) == 1
    out = capsys.readouterr().out
    assert "FAIL a.fails (unlabelled) [NOT REFERENCED]: bad" in out
    assert "FAIL a.crashes (unlabelled) [NOT REFERENCED]: raised RuntimeError: boom" in out
    assert "1/3 checks passed" in out


def test_run_checks_lists_every_citing_proof(monkeypatch):
    # A check cited by several proofs carries all of them, comma-separated (claims splits on ", ").
    monkeypatch.setattr(registry, "CHECKS", {"depth.dyt_bound_is_saturated": lambda: (True, "ok")})
    table = registry.run_checks(PROOFS)
    cited = check_references(PROOFS)["depth.dyt_bound_is_saturated"]
    assert len(cited) >= 2 and table.proofs.iloc[0] == ", ".join(cited)
    assert table.kind.iloc[0] == "package"
