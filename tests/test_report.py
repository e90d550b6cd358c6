"""`bhyt-theory reproduce`: every section writes its data and text, and a rerun
resumes from what an earlier (possibly interrupted) run saved."""

import pytest

from bhyt_theory import report

FAST_SECTIONS = [report.section_depth_trace, report.section_meanfield, report.section_variance, report.section_jacobian, report.section_growth]


def test_reproduce_quick_writes_every_section_and_report(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "SECTIONS", FAST_SECTIONS)
    sections = report.reproduce(tmp_path, quick=True, echo=lambda _: None)
    text = (tmp_path / "report.md").read_text()
    for section in sections:
        assert f"## {section.title}" in text
        assert all(path.exists() for path in section.files), section.title
    assert (tmp_path / "depth_trace.png").stat().st_size > 0


def test_reproduce_resumes_from_saved_sections(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "SECTIONS", FAST_SECTIONS[:1])
    first = report.reproduce(tmp_path, quick=True, echo=lambda _: None)

    def interrupted(out_dir, quick):
        raise KeyboardInterrupt("must not be recomputed")

    interrupted.__doc__ = report.section_depth_trace.__doc__
    interrupted.__name__ = report.section_depth_trace.__name__
    monkeypatch.setattr(report, "SECTIONS", [interrupted])
    second = report.reproduce(tmp_path, quick=True, echo=lambda _: None)
    assert second[0].text == first[0].text

    (tmp_path / "depth_trace.csv").unlink()  # a missing data file forces a recomputation
    with pytest.raises(KeyboardInterrupt):
        report.reproduce(tmp_path, quick=True, echo=lambda _: None)
