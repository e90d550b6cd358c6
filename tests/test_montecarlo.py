"""Monte Carlo sweeps: streaming is exact, the cache resumes without loss, the
cache key sees every field, and the confidence intervals are Student-t's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bhyt_theory.experiments import montecarlo
from bhyt_theory.numerics.inputs import INPUT_SEED_OFFSET, InputSpec, gaussian_inputs
from bhyt_theory.numerics.model import SCHEMES, Stack, StackConfig
from bhyt_theory.theory.meanfield import calibrate_correlation

SMALL = {"depth": 3, "width": 16, "heads": 2, "seq_len": 6}


def small_config(scheme: str = "bhyt", **changes) -> StackConfig:
    return StackConfig(scheme=scheme, **{**SMALL, **changes})


def count_stream_traces(monkeypatch) -> list:
    """Replace ``stream_trace`` by a wrapper that records each call."""
    calls = []
    original = montecarlo.stream_trace

    def counted(config, seed, x, progress=False, **options):
        calls.append((config, seed))
        return original(config, seed, x, progress, **options)

    monkeypatch.setattr(montecarlo, "stream_trace", counted)
    return calls


@pytest.mark.parametrize("scheme", SCHEMES)
def test_streamed_run_is_identical_to_stack_trace(scheme):
    # Same weights (build_block), same operations in the same order: bit-identical. A stack of the
    # "correlation" estimator (bhytc) gets the mean-field factors of the inputs' mean square in both.
    config = small_config(scheme, kv_heads=1)
    x = gaussian_inputs(config.width, batch=2, length=5, std=0.3, seed=11)
    stack = calibrate_correlation(Stack(config, 4), float(x.double().square().mean()))
    pd.testing.assert_frame_equal(montecarlo.stream_trace(config, 4, x), stack.trace(x), check_exact=True)


def test_run_uses_the_documented_inputs():
    config = small_config("rmsnorm")
    x = gaussian_inputs(config.width, 3, config.seq_len, 0.5, 7 + INPUT_SEED_OFFSET)
    table = montecarlo.run(config, 7, InputSpec(batch=3, std=0.5), cache_dir=None)
    pd.testing.assert_frame_equal(table, Stack(config, 7).trace(x), check_exact=True)


def test_cached_run_round_trips_exactly(tmp_path, monkeypatch):
    config = small_config("bhyt")
    computed = montecarlo.run(config, 1, cache_dir=tmp_path)
    calls = count_stream_traces(monkeypatch)
    reread = montecarlo.run(config, 1, cache_dir=tmp_path)
    assert calls == []
    pd.testing.assert_frame_equal(reread, computed, check_exact=True)


GRID = {"scheme": ["rmsnorm", "bhyt"], "depth": [2, 3], "width": [16], "heads": [2], "seq_len": [6]}
SEEDS = [0, 1]
N_RUNS = 2 * 2 * len(SEEDS)


class Interrupt(KeyboardInterrupt):
    """A Ctrl-C raised from the sweep's ``on_run`` hook after some runs."""


def interrupt_after(k: int):
    finished = []

    def on_run(config, seed, options):
        finished.append((config, seed))
        if len(finished) == k:
            raise Interrupt

    return on_run


def test_interrupted_sweep_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    uninterrupted = montecarlo.sweep(GRID, SEEDS, cache_dir=None, progress=False)
    # schemes × seeds × Σ_depth (layers × sublayers × T)
    assert len(uninterrupted) == 2 * len(SEEDS) * sum(d * 2 * 6 for d in (2, 3))

    calls = count_stream_traces(monkeypatch)
    k = 3
    with pytest.raises(Interrupt):
        montecarlo.sweep(GRID, SEEDS, cache_dir=tmp_path, progress=False, on_run=interrupt_after(k))
    assert len(calls) == k
    assert len(list(tmp_path.glob("*.parquet"))) == k
    assert list(tmp_path.glob("*.tmp")) == []

    resumed = montecarlo.sweep(GRID, SEEDS, cache_dir=tmp_path, progress=False)
    assert len(calls) == N_RUNS  # the k finished runs were read, not recomputed
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def half_written(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1" + bytes(100))
        raise Interrupt

    monkeypatch.setattr(montecarlo.pq, "write_table", half_written)
    with pytest.raises(Interrupt):
        montecarlo.run(small_config(), 0, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_invalid_grid_point_fails_before_any_run(tmp_path, monkeypatch):
    calls = count_stream_traces(monkeypatch)
    with pytest.raises(ValueError, match="multiple of heads"):
        montecarlo.sweep({"width": [16, 18], "heads": [4]}, [0], cache_dir=tmp_path, progress=False,
                         base={"depth": 1, "seq_len": 4})
    assert calls == []


# A valid value different from the default, for every StackConfig field.
OTHER_VALUES = {
    "scheme": "rmsnorm", "depth": 4, "width": 32, "heads": 4, "kv_heads": 1, "mlp_width": 40,
    "seq_len": 7, "lam_in": 3.0, "lam_post": 3.0, "lam_final": 1.0, "kappa": 9.0,
    "kappa_schedule": "decay", "dyt_alpha": 0.25, "derf_alpha": 0.25, "estimator": "exact", "exact_layers": 3,
    "init_std": 0.03, "rope_theta": 500.0, "dtype": "float64", "device": "cuda",
}


def test_cache_key_changes_when_any_field_changes():
    config = small_config()
    assert set(OTHER_VALUES) == {f.name for f in dataclasses.fields(StackConfig)}
    key = montecarlo.run_key(config, 0, 4, 6, 0.02)
    changed = {name: montecarlo.run_key(config.replace(**{name: value}), 0, 4, 6, 0.02)
               for name, value in OTHER_VALUES.items()}
    changed.update(
        seed=montecarlo.run_key(config, 1, 4, 6, 0.02),
        batch=montecarlo.run_key(config, 0, 5, 6, 0.02),
        length=montecarlo.run_key(config, 0, 4, 7, 0.02),
        input_std=montecarlo.run_key(config, 0, 4, 6, 0.03),
        tag=montecarlo.run_key(config, 0, 4, 6, 0.02, tag="another code version"),
    )
    assert all(other != key for other in changed.values()), [n for n, k in changed.items() if k == key]
    assert len(set(changed.values())) == len(changed)
    assert montecarlo.run_key(small_config(), 0, 4, 6, 0.02) == key  # and it is deterministic
    # equal values given as numpy scalars (a numpy grid) find the same file
    assert montecarlo.run_key(config.replace(lam_in=np.float64(config.lam_in)), np.int64(0), 4, 6, 0.02) == key


def seed_samples():
    """Per-seed values of one statistic at two layers (≥ 2 seeds, moderate magnitudes)."""
    values = st.floats(-1e3, 1e3, allow_nan=False)
    return st.integers(2, 8).flatmap(lambda n: st.tuples(st.lists(values, min_size=n, max_size=n),
                                                         st.lists(values, min_size=n, max_size=n)))


@settings(max_examples=200)
@given(samples=seed_samples(), level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_summary_interval_is_scipy_student_t(samples, level):
    rows = [{"scheme": "bhyt", "seed": seed, "layer": layer, "sublayer": "mlp", "position": 0, "mean_square": value}
            for layer, per_seed in enumerate(samples) for seed, value in enumerate(per_seed)]
    summary = montecarlo.summarise(pd.DataFrame(rows), statistics=["mean_square"], level=level)
    for layer, per_seed in enumerate(samples):
        row = summary[summary["layer"] == layer].iloc[0]
        data = np.asarray(per_seed)
        sem = stats.sem(data)
        low, high = stats.t.interval(level, len(data) - 1, loc=data.mean(), scale=sem) if sem > 0 else (data.mean(),) * 2
        # Two float64 evaluations of the same formula: rounding ≤ a few ulp of the
        # magnitudes involved (|values| ≤ 1e3), so 1e-9 absolute is loose.
        assert row["n_seeds"] == len(data)
        assert row["ci_low"] == pytest.approx(low, abs=1e-9)
        assert row["ci_high"] == pytest.approx(high, abs=1e-9)


def test_interval_covers_the_true_mean_at_its_level():
    # Normal samples of size 3: Student-t intervals cover with probability exactly
    # 0.95. With 20000 intervals the coverage has binomial standard error
    # sqrt(0.95·0.05/20000) ≈ 0.0015; allow 4 of them.
    rng = np.random.default_rng(3)
    trials, n, level = 20_000, 3, 0.95
    samples = rng.normal(5.0, 2.0, size=(trials, n))
    low, high = montecarlo.confidence_interval(samples.mean(1), samples.std(1, ddof=1), np.full(trials, n), level)
    coverage = np.mean((low <= 5.0) & (5.0 <= high))
    assert abs(coverage - level) <= 4 * np.sqrt(level * (1 - level) / trials)


def test_position_averaged_rms_is_root_of_position_averaged_mean_square():
    table = montecarlo.sweep({"scheme": ["rmsnorm"]}, [0, 1], base=SMALL, cache_dir=None, progress=False)
    summary = montecarlo.summarise(table, statistics=["mean_square", "rms"])
    for seed in (0, 1):
        one = montecarlo.summarise(table[table["seed"] == seed], statistics=["mean_square", "rms"])
        ms = one[one["statistic"] == "mean_square"]["mean"].to_numpy()
        rms = one[one["statistic"] == "rms"]["mean"].to_numpy()
        np.testing.assert_allclose(rms, np.sqrt(ms), rtol=1e-15)  # float64 sqrt: ½ ulp
    assert (summary["n_seeds"] == 2).all()
    assert len(summary) == 2 * SMALL["depth"] * 2  # statistics × layers × sublayers


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_block_flop_count_matches_torch_flop_counter(kv_heads):
    # torch's FlopCounterMode counts the projection and MLP matmuls exactly (it
    # does not see CPU attention kernels); the causal attention products are
    # counted separately: 2 FLOPs per multiply-add, for QKᵀ and PV, over the
    # (t, j ≤ t) pairs of each head and sequence.
    from torch.utils.flop_counter import FlopCounterMode

    from bhyt_theory.experiments.bench import block_matmul_flops
    from bhyt_theory.numerics.model import build_block

    config = StackConfig(scheme="bhyt", depth=1, width=64, heads=4, kv_heads=kv_heads, seq_len=16)
    batch, length = 3, 16
    block = build_block(config, 0, 0)
    x = gaussian_inputs(config.width, batch, length, 1.0, 0)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    causal_pairs = np.tril(np.ones((length, length))).sum()
    attention = 2 * 2 * batch * config.heads * causal_pairs * config.head_dim
    assert block_matmul_flops(config, batch, length) == counter.get_total_flops() + attention
