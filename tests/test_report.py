"""`bhyt-theory reproduce`: report.md and a self-contained report.html, progress in a
log, and a rerun that reuses current results instead of recomputing them."""

import dataclasses
import html
import re

import pytest

from bhyt_theory.pipeline import report, studies

FAST = ["depth_trace", "variance"]


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
    assert all("| insufficient evidence |" in row or "| not testable here |" in row for row in claim_rows)
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

    def interrupted(quick, log):
        raise KeyboardInterrupt("must not be recomputed")

    study = studies.STUDIES["depth_trace"]
    monkeypatch.setitem(studies.STUDIES, "depth_trace", dataclasses.replace(study, produce=interrupted))
    report.reproduce(tmp_path, quick=True, only=FAST[:1], echo=lambda _: None)  # reused: no exception
    (tmp_path / "depth_trace.csv").unlink()  # a missing data file forces a recomputation
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
                        dataclasses.replace(study, sizes=lambda quick: "other sizes"))
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


def test_checks_study_runs_with_autograd_and_every_check_passes(tmp_path):
    """The proof checks include autograd gradients: the store must not switch autograd off for them."""
    result = studies.ResultsStore(tmp_path).get("checks", quick=True)
    failed = result.tables["checks"].query("not passed")
    assert failed.empty, failed[["check", "message"]].to_string()
