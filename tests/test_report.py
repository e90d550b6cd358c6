"""`bhyt-theory reproduce`: report.md and a self-contained report.html, progress in a
log, and a rerun that reuses current results instead of recomputing them."""

import dataclasses
import html
import re

import pytest

from bhyt_theory.pipeline import report, studies

FAST = ["trace", "variance"]


def test_quick_reproduce_writes_markdown_and_self_contained_html(tmp_path):
    report.reproduce(tmp_path, quick=True, only=FAST, echo=lambda _: None)
    markdown = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert markdown.index("## Summary of findings") < markdown.index("## Claims") < markdown.index("## Depth trace")
    for claim in [f"C{i}" for i in range(1, 10)]:
        assert f"| {claim} |" in markdown
    # quick sizes decide nothing: a banner opens both pages and the claims table has a reach column
    assert markdown.index("No verdict on the paper's claims") < markdown.index("## Summary of findings")
    assert "No verdict on the paper's claims" in html.unescape(page) and "| reach |" in markdown
    claim_rows = [line for line in markdown.splitlines() if re.match(r"\| C\d \|", line)]
    assert len(claim_rows) == 9
    assert all(any(f"| {status} |" in row for status in ("insufficient evidence", "not testable here", "not run"))
               for row in claim_rows)
    for name in FAST:
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert f"![{studies.STUDIES[name].title}]({name}.png)" in markdown
        assert f"`bhyt-theory reproduce --only {name} --quick`" in markdown
    # self-contained: every image inlined, no resource fetched from anywhere
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == len(FAST) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "<script" not in page and "http://" not in page and "https://" not in page
    assert "commit" in page and "torch" in page
    log = (tmp_path / "reproduce.log").read_text()
    assert "[1/2]" in log and "[2/2]" in log and "wrote" in log


def test_rerun_reuses_current_results_and_recomputes_missing_files(tmp_path, monkeypatch):
    report.reproduce(tmp_path, quick=True, only=FAST[:1], echo=lambda _: None)

    def interrupted(sizes, log):
        raise KeyboardInterrupt("must not be recomputed")

    study = studies.STUDIES["trace"]
    # the stand-in imports nothing, so the study keeps the fingerprint of the code it stands in for
    sources = study.sources()
    monkeypatch.setitem(studies.STUDIES, "trace", dataclasses.replace(study, produce=interrupted))
    monkeypatch.setattr(studies.Study, "sources", lambda self, root=None: sources)
    report.reproduce(tmp_path, quick=True, only=FAST[:1], echo=lambda _: None)  # reused: no exception
    (tmp_path / "trace.csv").unlink()  # a missing data file forces a recomputation
    with pytest.raises(KeyboardInterrupt):
        report.reproduce(tmp_path, quick=True, only=FAST[:1], echo=lambda _: None)


def test_unknown_study_name_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="--only"):
        report.reproduce(tmp_path, quick=True, only=["nonsense"], echo=lambda _: None)


def test_threads_follow_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert report.configure_threads() == 1


def test_markdown_table_escapes_pipes():
    import pandas as pd

    text = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [0.5]}))
    assert text.splitlines()[2] == "| x\\|y | 0.5 |"


def test_stored_result_is_stale_when_its_sizes_change(tmp_path, monkeypatch):
    store = studies.ResultsStore(tmp_path)
    store.get("variance_decomposition", quick=True)
    assert store.stored("variance_decomposition") is not None
    study = studies.STUDIES["variance_decomposition"]
    monkeypatch.setitem(studies.STUDIES, "variance_decomposition",
                        dataclasses.replace(study, quick={**study.quick, "seeds": study.quick["seeds"] + 1}))
    assert store.stored("variance_decomposition") is None


def test_a_study_is_keyed_by_the_sources_that_compute_it(tmp_path):
    """Editing a study's own source changes its key; other studies keep theirs."""
    source = tmp_path / "extra.py"
    source.write_text("x = 1\n")
    study = dataclasses.replace(studies.STUDIES["checks"], extra_sources=lambda: [source])
    before = study.sources()
    source.write_text("x = 2\n")
    assert study.sources() != before
    assert studies.STUDIES["efficiency"].sources() != studies.STUDIES["bounds"].sources()


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the package's sources to edit (each test compares keys before and after its own edits)."""
    import shutil

    root = tmp_path_factory.mktemp("copy") / studies.PACKAGE.name
    shutil.copytree(studies.PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("name", sorted(studies.STUDIES))
def test_editing_any_module_a_study_imports_changes_its_key(package_copy, name):
    """The fingerprint follows the imports of the study's produce function transitively: appending a
    comment to any file of the closure (the first, the last and a middle one) changes the key."""
    root = package_copy
    study = studies.STUDIES[name]
    files = study.source_files(root)
    for path in (files[0], files[len(files) // 2], files[-1]):
        before = study.sources(root)
        path.write_text(path.read_text() + "\n# edited\n")
        assert study.sources(root) != before, path


def test_a_module_only_the_training_study_imports_keys_it_and_no_other(package_copy):
    """corpus.py is imported only by the training experiment (trainer, through study.py): editing it
    invalidates the training study and leaves the depth trace current."""
    root = package_copy
    corpus = root / "experiments" / "training" / "corpus.py"
    training, trace = studies.STUDIES["training"], studies.STUDIES["trace"]
    before = training.sources(root), trace.sources(root)
    corpus.write_text(corpus.read_text() + "\n# edited\n")
    assert training.sources(root) != before[0]
    assert trace.sources(root) == before[1]
    assert corpus in training.source_files(root) and corpus not in trace.source_files(root)


def test_the_closure_follows_relative_imports_through_packages():
    """``from ..numerics import model`` inside experiments/x.py names bhyt_theory.numerics.model."""
    source = "from ..numerics import model\nfrom .montecarlo import sweep\nimport numpy\n"
    names = studies.imported_modules(source, "bhyt_theory.experiments")
    assert {"bhyt_theory.numerics", "bhyt_theory.numerics.model", "bhyt_theory.experiments.montecarlo"} <= names
    files = studies.module_closure(["bhyt_theory.experiments.growth"])
    package = studies.PACKAGE
    assert {package / "numerics" / "model.py", package / "theory" / "meanfield.py",
            package / "experiments" / "__init__.py", package / "__init__.py"} <= set(files)


def test_sizes_text_is_derived_from_the_sizes():
    study = studies.STUDIES["jacobian"]
    assert study.sizes(True) == ", ".join(studies.SIZE_TEXT[k](v) for k, v in study.quick.items())
    assert "depth 8" in study.sizes(True) and "16 probes" in study.sizes(False)
    for each in studies.STUDIES.values():  # every size has its text, quick and full
        assert each.sizes(True) and each.sizes(False)


def test_threads_are_recorded_per_study_and_restored_after_it(tmp_path, monkeypatch):
    """A study that changes torch's threads (as the training study does) leaves the next one unchanged,
    and its meta records what it started and ended with."""
    import torch

    study = studies.STUDIES["decode"]

    def changes_threads(sizes, log):
        torch.set_num_threads(1)
        return study.produce(sizes, log)

    monkeypatch.setitem(studies.STUDIES, "decode", dataclasses.replace(study, produce=changes_threads))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = studies.ResultsStore(tmp_path).get("decode", quick=True)
        assert torch.get_num_threads() == 2
        assert result.meta["threads"] == 2 and result.meta["threads_at_end"] == 1
        line = report.threads_line({"decode": result})
        assert "2 torch threads (1 when it ended)" in line
    finally:
        torch.set_num_threads(previous)


def test_checks_study_runs_with_autograd_and_every_check_passes(tmp_path):
    """The proof checks include autograd gradients: the store must not switch autograd off for them."""
    result = studies.ResultsStore(tmp_path).get("checks", quick=True)
    failed = result.table("checks", "passed").query("not passed")
    assert failed.empty, failed[["check", "message"]].to_string()


@pytest.mark.parametrize("name", [name for name, study in studies.STUDIES.items() if study.subcommand])
def test_each_study_names_a_command_line_that_parses_at_its_full_sizes(name):
    """The equivalent command of a study is derived from its full sizes and is a valid command line."""
    import shlex

    from bhyt_theory.cli.main import build_parser

    study = studies.STUDIES[name]
    line = study.subcommand_line()
    args = build_parser().parse_args(shlex.split(line)[1:])
    for size in ("depth", "width", "seq_len", "batch", "probes", "rounds", "steps"):
        if size in study.full and hasattr(args, size):
            given = getattr(args, size)  # a sweep's options take lists
            assert (given if not isinstance(given, list) else given[0]) == study.full[size], (name, size)
    if "seeds" in study.full and hasattr(args, "seeds"):
        assert len(args.seeds) == study.full["seeds"]


def _assessment(id_, verdict):
    from bhyt_theory.pipeline.claims import Assessment

    return Assessment(id=id_, statement=f"statement {id_}", source="s", expected="e", rule="r", verdict=verdict,
                      reason=f"reason {id_}", measured={}, explanation="x", command="c", experiment="x")


def test_proofs_collapse_into_one_row_of_the_claims_table():
    # V1 (the toolkit's own variant) is a claim with its own row, never counted among the proofs.
    claims = [_assessment("C1", "qualified"), _assessment("V1", "qualified")]
    passing = [_assessment(f"proofs/p{i}", "confirmed") for i in range(3)]
    table = report.summary_table(claims + passing)
    assert list(table["id"]) == ["C1", "V1", "proofs"]
    assert table.iloc[2]["why"] == "3/3 proofs: every check passes" and table.iloc[2]["verdict"] == "confirmed"
    assert len(report.proofs_table(claims + passing)) == 3
    failing = passing[:2] + [_assessment("proofs/p2", "refuted")]
    row = report.summary_table(claims + failing).iloc[2]
    assert row["verdict"] == "refuted" and row["why"].startswith("2/3") and "proofs/p2 (refuted)" in row["why"]
