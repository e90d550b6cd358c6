"""Claim C6: the counted cost of each normaliser, the decode step, and the timing summary.

Timings themselves are never asserted (a shared machine makes them noise); the
tests check the counts against hand counts, the decode step against the full
forward pass, and the interval arithmetic against hand-computed values.
"""

import pandas as pd
import pytest
import torch

from bhyt_theory.experiments.efficiency import (
    SCHEME_SITES,
    cost_model,
    decode_constants,
    decode_step,
    key_value_cache,
    site_cost,
    time_block,
    time_decode,
    timing_summary,
)
from bhyt_theory.numerics.model import SCHEMES, StackConfig, build_block

# Hand counts at width d = 4, float32 (4 bytes), per token, both sites of a block.
# forward site: read h (16 B) + write u (16 B) + a float32 statistic (4 B) where a
# mean square is used; bhyt's estimated site also reads m₁ (4 B).
# backward site: read ∂L/∂u, h, write ∂L/∂h (48 B) + statistic (4 B); both BHyT sites
# exchange ∂L/∂M₂ (4 B each, bhyt and bhytstar alike by the counting rule).
HAND_COUNTS = {
    # scheme, pass: (row reductions, tanh, scalar roots, bytes, launches, parameter reductions)
    ("rmsnorm", "forward"): (2, 0, 2, 72, 2, 0),
    ("rmsnorm", "backward"): (2, 0, 2, 104, 4, 2),
    ("dyt", "forward"): (0, 8, 0, 64, 2, 0),
    ("dyt", "backward"): (0, 8, 0, 96, 8, 6),
    ("bhytstar", "forward"): (2, 8, 2, 72, 2, 0),
    ("bhytstar", "backward"): (2, 8, 2, 112, 6, 4),
    ("bhyt", "forward"): (1, 8, 2, 76, 2, 0),
    ("bhyt", "backward"): (2, 8, 2, 112, 6, 4),
    ("bhyt", "decode"): (1, 8, 2, 76, 2, 0),
    # bhytc: bhyt's sites, the second also reads one per-position factor (4 B); the factor is a
    # buffer, so the backward is bhyt's.
    ("bhytc", "forward"): (1, 8, 2, 80, 2, 0),
    ("bhytc", "backward"): (2, 8, 2, 112, 6, 4),
    ("bhytc", "decode"): (1, 8, 2, 80, 2, 0),
}
COST_COLUMNS = ["row_reductions", "transcendental_elementwise", "scalar_roots", "activation_bytes",
                "kernel_launches", "parameter_reductions"]


@pytest.mark.parametrize("key", list(HAND_COUNTS), ids=lambda k: "-".join(k))
def test_cost_model_matches_hand_count_at_width_four(key):
    table = cost_model(4, tuple(SCHEME_SITES)).set_index(["scheme", "pass"])
    assert tuple(int(v) for v in table.loc[key, COST_COLUMNS]) == HAND_COUNTS[key]


def test_estimated_site_saves_one_forward_reduction_and_no_backward_reduction():
    """The paper's M₂ removes the second site's forward reduction only (module docstring)."""
    table = cost_model(256).set_index(["scheme", "pass"])
    assert table.loc[("bhytstar", "forward"), "row_reductions"] - table.loc[("bhyt", "forward"), "row_reductions"] == 1
    assert table.loc[("bhytstar", "backward"), "row_reductions"] == table.loc[("bhyt", "backward"), "row_reductions"]


def test_cost_model_scales_bytes_with_element_size():
    # bfloat16 halves the activation bytes; the 4-byte float32 statistics stay.
    half = site_cost("rmsnorm", 8, 2, "forward").activation_bytes
    assert half == 2 * 8 * 2 + 4


def test_cost_model_rejects_unknown_scheme_and_kind():
    with pytest.raises(ValueError, match="schemes"):
        cost_model(4, ("periln",))
    with pytest.raises(ValueError, match="kind"):
        site_cost("layernorm", 4, 4, "forward")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_decode_step_equals_last_position_of_full_forward(scheme):
    config = StackConfig(scheme=scheme, width=32, heads=4, kv_heads=2, seq_len=8, depth=1)
    block = build_block(config, 0, 3)
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = block(x)[:, -1:]
        keys, values = key_value_cache(block, x[:, :8])
        constants = decode_constants(block) if block.row.estimates_m2 else None
        step = decode_step(block, x[:, 8:], keys, values, constants)
    # float32: the two routes sum the same products in different orders; relative
    # rounding ~1e-7 per operation over O(width + T) terms.
    torch.testing.assert_close(step, full, rtol=1e-5, atol=1e-5)


def test_decode_step_without_constants_for_bhyt_is_an_error():
    block = build_block(StackConfig(scheme="bhyt", width=16, heads=2, seq_len=4, depth=1), 0, 0)
    keys, values = key_value_cache(block, torch.randn(1, 4, 16))
    with pytest.raises(ValueError, match="constants"):
        decode_step(block, torch.randn(1, 1, 16), keys, values)


def _raw(scheme_times: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([
        {"measurement": "m", "scheme": scheme, "round": r, "seconds": t}
        for scheme, times in scheme_times.items() for r, t in enumerate(times)
    ])


def test_timing_summary_interval_from_paired_rounds():
    raw = _raw({"rmsnorm": [1.0, 2.0, 1.0, 2.0], "bhyt": [1.1, 1.8, 1.0, 2.4]})
    row = timing_summary(raw).set_index("scheme").loc["bhyt"]
    # per-round ratios 1.1, 0.9, 1.0, 1.2: mean 1.05, sample std sqrt(0.05/3);
    # t_{0.975, 3} = 3.182446305 (Student-t table).
    half = 3.182446305 * (0.05 / 3) ** 0.5 / 2
    assert row["ratio"] == pytest.approx(1.05)
    assert row["ratio_ci_low"] == pytest.approx(1.05 - half)
    assert row["ratio_ci_high"] == pytest.approx(1.05 + half)
    # speed-up 100(1/r − 1) of the mean ratio; its interval maps the ratio's endpoints (decreasing map)
    assert row["speedup_percent"] == pytest.approx(100 * (1 / 1.05 - 1))
    assert row["speedup_ci_low"] == pytest.approx(100 * (1 / (1.05 + half) - 1))
    assert row["speedup_ci_high"] == pytest.approx(100 * (1 / (1.05 - half) - 1))
    assert row["rounds"] == 4


def test_timing_summary_of_a_constant_ratio_has_a_zero_width_interval():
    row = timing_summary(_raw({"rmsnorm": [2.0, 3.0, 4.0], "dyt": [1.0, 1.5, 2.0]})).set_index("scheme").loc["dyt"]
    assert (row["ratio"], row["ratio_ci_low"], row["ratio_ci_high"]) == pytest.approx((0.5, 0.5, 0.5))
    assert row["speedup_percent"] == pytest.approx(100.0)


def test_speedup_interval_is_unbounded_when_the_ratio_interval_reaches_zero():
    row = timing_summary(_raw({"rmsnorm": [1.0, 1.0], "bhyt": [0.1, 1.9]})).set_index("scheme").loc["bhyt"]
    # ratios 0.1 and 1.9: mean 1, t_{0.975,1} = 12.706 makes the lower ratio bound negative
    assert row["ratio_ci_low"] < 0 and row["speedup_ci_high"] == float("inf")
    assert row["speedup_percent"] == pytest.approx(0.0)


def test_timing_summary_needs_the_baseline():
    with pytest.raises(ValueError, match="baseline"):
        timing_summary(_raw({"dyt": [1.0, 1.0]}))


def test_timing_tables_have_one_row_per_scheme_and_round():
    config = StackConfig(width=16, heads=2, seq_len=4, depth=1)
    schemes = ("rmsnorm", "bhyt")
    for table in (time_block(config, schemes, batch=1, rounds=2, inner=1),
                  time_decode(config, schemes, batch=1, rounds=2, inner=1)):
        assert len(table) == 4
        assert set(table["scheme"]) == set(schemes) and set(table["round"]) == {0, 1}
        assert (table["seconds"] > 0).all()
        summary = timing_summary(table)
        assert list(summary["scheme"]) == list(schemes)
        assert summary.set_index("scheme").loc["rmsnorm", "ratio"] == 1.0
