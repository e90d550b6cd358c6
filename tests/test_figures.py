"""Figures of the report: every view draws from its study's tables, and schemes whose
curves coincide at initialisation are drawn so that they can be told apart."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bhyt_theory.pipeline import figures, studies, styles, tables  # noqa: E402
from bhyt_theory.experiments.decode import decode_exactness  # noqa: E402
from bhyt_theory.experiments.efficiency import efficiency_study  # noqa: E402
from bhyt_theory.numerics.model import StackConfig  # noqa: E402

TINY = StackConfig(depth=3, width=16, heads=2, seq_len=8)
TABLES = {
    "trace": lambda: tables.trace_tables(TINY, range(2), batch=1),
    "growth": lambda: tables.growth_tables(TINY, range(2), batch=1),
    "meanfield": lambda: tables.meanfield_tables(TINY, range(2), batch=1),
    "variance": lambda: tables.variance_tables(TINY.replace(scheme="bhyt"), (0, 2), (0,), batch=1),
    "variance_decomposition": lambda: tables.variance_decomposition_tables(TINY.replace(scheme="bhyt"), (0, 2), (0,), 1),
    "jacobian": lambda: tables.jacobian_tables(TINY, (0,), probes=2),
    "bounds": lambda: studies.STUDIES["bounds"].produce(studies.STUDIES["bounds"].size(quick=True)),
    "efficiency": lambda: dict(zip(("efficiency_costs", "efficiency_timings"),
                                   efficiency_study(TINY.replace(depth=1), batch=1, rounds=2))),
    "decode": lambda: {"decode_exactness": decode_exactness(seeds=(0,), batch=1, steps=2)},
    "training": lambda: _training_tables(),
    "bhytc": lambda: _bhytc_tables(),
}

TINY_PRESET = {"width": 16, "depth": 2, "heads": 2, "kv_heads": 1, "mlp_width": 32, "seq_len": 10}
"""A stand-in paper preset, small enough for a unit test (registered under the name "tiny")."""


def _bhytc_tables():
    from unittest import mock

    from bhyt_theory.numerics import model

    config = TINY.replace(scheme="bhyt", seq_len=10)
    with mock.patch.dict(model.PRESETS, {"tiny": TINY_PRESET}):
        return {"bhytc_prediction": tables.bhytc_prediction(config, ("tiny",)),
                "bhytc_measurement": tables.bhytc_measurement(config, range(2), 1, None, ("tiny",), range(2))}


def test_bhytc_tables_cover_every_preset_cell_and_match_a_direct_comparison():
    from bhyt_theory.experiments.variance import estimator_comparison
    from bhyt_theory.numerics.inputs import InputSpec

    measured = _bhytc_tables()["bhytc_measurement"]
    preset = measured[(measured["quantity"] == "ratio") & (measured["shape"] == "tiny")]
    # every estimator × layer × position of the preset, with its seed count
    assert len(preset) == len(tables.BHYTC_ESTIMATORS) * TINY_PRESET["depth"] * TINY_PRESET["seq_len"]
    assert set(preset["n_seeds"]) == {2}
    # the preset's rows are the variance study's own comparison at the preset (same machine: exact)
    direct = estimator_comparison(StackConfig(scheme="bhyt", **TINY_PRESET), tables.BHYTC_ESTIMATORS, seeds=(0, 1),
                                  inputs=InputSpec(batch=1), layers=range(2), positions=range(10))
    np.testing.assert_array_equal(preset["measured"].to_numpy(), direct["ratio"].to_numpy())
    np.testing.assert_array_equal(preset["se"].to_numpy(), direct["ratio_se"].to_numpy())


def _training_tables():
    import tempfile

    from bhyt_theory.experiments.training.study import comparison_configs, preset_config, run_comparison

    configs = comparison_configs(preset_config("quick", steps=4), schemes=("rmsnorm", "bhyt"), seeds=(0, 1))
    with tempfile.TemporaryDirectory() as folder:
        tables = run_comparison(configs, folder, workers=1, figures=False, progress=False, log=lambda message: None)
    return {f"training_{name}": tables[name] for name in ("runs", "log", "summary")}


def _planted_timings():
    """Timings with one clean scheme and one whose round 1 is an outlier (contended)."""
    from bhyt_theory.experiments.efficiency import cost_model, timing_summary

    seconds = {"rmsnorm": [1.0, 1.0, 1.0], "dyt": [0.9, 0.91, 0.89], "bhyt": [1.0, 4.0, 1.0]}
    raw = pd.DataFrame([{"measurement": "block forward+backward", "scheme": scheme, "round": r, "seconds": t}
                        for scheme, times in seconds.items() for r, t in enumerate(times)])
    timings = timing_summary(raw.assign(device="cpu", hardware="test CPU"))
    return {"efficiency_costs": cost_model(16, tuple(seconds)), "efficiency_timings": timings}

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
        chosen = styles.style(scheme, 32)
        return chosen.get("linestyle"), chosen.get("marker"), chosen.get("linewidth")

    assert look(first) != look(second)
    assert styles.SCHEME_STYLES[first]["color"] != styles.SCHEME_STYLES[second]["color"]


def test_every_scheme_has_a_style():
    from bhyt_theory.numerics.model import SCHEMES

    assert set(SCHEMES) <= set(styles.SCHEME_STYLES)


def test_figure_without_path_is_returned_for_a_notebook():
    figure = figures.figure_trace(TABLES["trace"]())
    assert figure is not None and len(figure.axes) == 2


def test_growth_panels_share_one_log_y_range():
    """A flat curve must look flat next to a growing one: every panel has the same y limits."""
    figure = figures.figure_growth(TABLES["growth"]())
    visible = [axis for axis in figure.axes if axis.get_visible()]
    assert len({axis.get_ylim() for axis in visible}) == 1
    assert all(axis.get_yscale() == "log" for axis in visible)


def test_efficiency_draws_ratios_on_a_log_axis_and_marks_contention():
    tables = _planted_timings()
    assert tables["efficiency_timings"].set_index("scheme")["contended"].to_dict() == {
        "rmsnorm": False, "dyt": False, "bhyt": True}
    figure = figures.figure_efficiency(tables)
    right = figure.axes[1]
    assert right.get_xscale() == "log"
    drawn = np.concatenate([line.get_xdata() for line in right.lines if len(line.get_xdata())]).astype(float)
    assert np.isfinite(drawn).all() and (drawn > 0).all()
    assert any("contended" in text.get_text() for text in right.texts)
    short = figures.table_efficiency(tables).set_index("scheme")
    assert short.loc["bhyt", "contended"].startswith("yes") and short.loc["dyt", "contended"] == "no"


def test_jacobian_figure_draws_the_slope_minus_one_it_names():
    figure = figures.figure_jacobian(TABLES["jacobian"]())
    right = figure.axes[1]
    (reference,) = [line for line in right.lines if line.get_label().startswith("slope −1")]
    x, y = (np.log(np.asarray(v, dtype=float)) for v in reference.get_data())
    # a straight line in log-log coordinates; slope −1 up to float rounding of exp/log
    assert np.polyfit(x, y, 1)[0] == pytest.approx(-1.0, abs=1e-9)
    assert any("bhytline" in line.get_label() for line in right.lines)


def test_training_figure_has_one_legend_integer_steps_and_its_sizes_in_the_title():
    tables = TABLES["training"]()
    figure = figures.figure_training(tables)
    assert len(figure.legends) == 1 and not any(axis.get_legend() for axis in figure.axes)
    for axis in figure.axes:
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks)
    assert figures.training_sizes(tables) in figure._suptitle.get_text()
    assert "4 steps" in figures.training_sizes(tables) and "2 seeds" in figures.training_sizes(tables)


def test_bounds_figure_is_a_log_axis_with_the_attained_line():
    figure = figures.figure_bounds(TABLES["bounds"]())
    for axis in figure.axes[:2]:
        assert axis.get_xscale() == "log"
        assert any(list(line.get_xdata()) == [1.0, 1.0] for line in axis.lines)
