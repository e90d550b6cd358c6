"""Figures of the report: every view draws from its study's tables, and schemes whose
curves coincide at initialisation are drawn so that they can be told apart."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from bhyt_theory.pipeline import figures, studies  # noqa: E402
from bhyt_theory.experiments.efficiency import efficiency_study  # noqa: E402
from bhyt_theory.numerics.model import StackConfig  # noqa: E402

TINY = StackConfig(depth=3, width=16, heads=2, seq_len=8)
TABLES = {
    "trace": lambda: studies.trace_tables(TINY, range(2), batch=1),
    "growth": lambda: studies.growth_tables(TINY, range(2), batch=1),
    "meanfield": lambda: studies.meanfield_tables(TINY, range(2), batch=1),
    "variance": lambda: studies.variance_tables(TINY.replace(scheme="bhyt"), (0, 2), (0,), batch=1),
    "variance_decomposition": lambda: studies.variance_decomposition_tables(TINY.replace(scheme="bhyt"), (0, 2), (0,), 1),
    "jacobian": lambda: studies.jacobian_tables(TINY, (0,), probes=2),
    "bounds": lambda: studies.STUDIES["bounds"].produce(studies.STUDIES["bounds"].size(quick=True)),
    "efficiency": lambda: dict(zip(("efficiency_costs", "efficiency_timings"),
                                   efficiency_study(TINY.replace(depth=1), batch=1, rounds=2))),
}

# Pairs computing (nearly) the same numbers at init (module docstring of figures).
COINCIDING = [("dyt", "derf"), ("bhyt", "bhytline"), ("bhyt", "bhytstar"), ("bhytline", "bhytstar")]


@pytest.mark.parametrize("name", list(TABLES))
def test_view_draws_a_png_and_a_short_table(name, tmp_path):
    figure, table = figures.VIEWS[name]
    tables = TABLES[name]()
    figure(tables, tmp_path / f"{name}.png")
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    short = table(tables)
    assert len(short) > 0 and len(short) <= 60, "the report shows a short table"


@pytest.mark.parametrize("first, second", COINCIDING)
def test_coinciding_schemes_are_drawn_distinguishably(first, second):
    def look(scheme):
        chosen = figures.style(scheme, 32)
        return chosen.get("linestyle"), chosen.get("marker"), chosen.get("linewidth")

    assert look(first) != look(second)
    assert figures.SCHEME_STYLES[first]["color"] != figures.SCHEME_STYLES[second]["color"]


def test_every_scheme_has_a_style():
    from bhyt_theory.numerics.model import SCHEMES

    assert set(SCHEMES) <= set(figures.SCHEME_STYLES)


def test_figure_without_path_is_returned_for_a_notebook():
    figure = figures.figure_trace(TABLES["trace"]())
    assert figure is not None and len(figure.axes) == 2
