"""Monte Carlo sweeps: streaming is exact, the cache resumes without loss, the
cache key sees every field, and the confidence intervals are Student-t's."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bhyt_theory.experiments import cache, montecarlo
from bhyt_theory.numerics.inputs import INPUT_SEED_OFFSET, InputSpec, gaussian_inputs
from bhyt_theory.numerics.model import SCHEMES, Stack, StackConfig
from bhyt_theory.theory.meanfield import calibrate_correlation

SMALL = {"depth": 3, "width": 16, "heads": 2, "seq_len": 6}


def small_config(scheme: str = "bhyt", **changes) -> StackConfig:
    return StackConfig(scheme=scheme, **{**SMALL, **changes})


def count_streams(monkeypatch) -> list:
    """Replace ``stream_traces`` by a wrapper that records ``(scheme, depth, seed)``
    of every stream it is asked to compute."""
    calls = []
    original = montecarlo.stream_traces

    def counted(streams, *args, **kwargs):
        calls.extend((stream.config.scheme, stream.config.depth, stream.seed) for stream in streams)
        return original(streams, *args, **kwargs)

    monkeypatch.setattr(montecarlo, "stream_traces", counted)
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
    calls = count_streams(monkeypatch)
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

    calls = count_streams(monkeypatch)
    k = 3
    with pytest.raises(Interrupt):
        montecarlo.sweep(GRID, SEEDS, cache_dir=tmp_path, progress=False, on_run=interrupt_after(k))
    # The runs reported finished are stored (with the rest of their seed's runs,
    # computed in the same pass); the other seed was not started.
    assert len(list(tmp_path.glob("*.parquet"))) == N_RUNS // len(SEEDS)
    assert list(tmp_path.glob("*.tmp")) == []
    assert sorted(calls) == [(scheme, 3, 0) for scheme in ("bhyt", "rmsnorm")]

    resumed = montecarlo.sweep(GRID, SEEDS, cache_dir=tmp_path, progress=False)
    # Only the deepest run of each scheme and seed was ever streamed, once: the
    # depth-2 runs are its prefix, and the finished seed was read, not recomputed.
    assert sorted(calls) == [(scheme, 3, seed) for scheme in ("bhyt", "rmsnorm") for seed in SEEDS]
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)


# Settings where something depends on the layer index (LNS's 1/√l, a κ schedule,
# the hybrid estimator's exact first layers) or on the total depth (the final
# BHyT*'s κ at the last layer, which is not traced): prefix sharing must still
# give each depth's own table.
PREFIX_CASES = [{"scheme": scheme} for scheme in SCHEMES] + [
    {"scheme": "bhyt", "kappa_schedule": "grow", "lam_final": 1.0},
    {"scheme": "bhytstar", "kappa_schedule": "decay", "lam_final": 2.0},
    {"scheme": "bhyt", "estimator": "hybrid", "exact_layers": 2},
]


def solo_trace(config: StackConfig, seed: int, inputs: InputSpec) -> pd.DataFrame:
    """The run alone, through the whole ``Stack`` (all blocks built, final norm included; a
    "correlation" stack calibrated for the inputs' variance, as a sweep calibrates it)."""
    table = calibrate_correlation(Stack(config, seed), inputs.std**2).trace(inputs.hidden_states(config, seed))
    return table.drop(columns=["scheme", "seed"])


def run_rows(table: pd.DataFrame, **fields) -> pd.DataFrame:
    mask = np.logical_and.reduce([table[name] == value for name, value in fields.items()])
    return table[mask][list(montecarlo.TRACE_COLUMNS)].reset_index(drop=True)


@pytest.mark.parametrize("case", PREFIX_CASES, ids=lambda case: "-".join(map(str, case.values())))
def test_prefix_shared_runs_equal_solo_runs(monkeypatch, case):
    inputs, depths = InputSpec(batch=2, std=0.5), [1, 2, 4]
    calls = count_streams(monkeypatch)
    table = montecarlo.sweep({"depth": depths}, [5], inputs, base={**SMALL, **case}, cache_dir=None, progress=False)
    assert calls == [(case["scheme"], 4, 5)]  # the deepest run only
    for depth in depths:
        config = small_config(**{**case, "depth": depth})
        pd.testing.assert_frame_equal(run_rows(table, depth=depth), solo_trace(config, 5, inputs), check_exact=True)


def test_every_scheme_runs_on_one_draw_per_layer_and_equals_its_solo_run(monkeypatch):
    # Two seeds × two dtypes × every scheme: weights are drawn once per seed and
    # layer (the dtypes and schemes share them), and each run's table is its own.
    draws = []
    original = montecarlo.model.draw_weights
    monkeypatch.setattr(montecarlo.model, "draw_weights", lambda *args: draws.append(args[2]) or original(*args))
    inputs, seeds = InputSpec(batch=2, std=0.5), [0, 1]
    grid = {"scheme": list(SCHEMES), "dtype": ["float32", "float64"]}
    table = montecarlo.sweep(grid, seeds, inputs, base=SMALL, cache_dir=None, progress=False)
    assert len(draws) == len(set(draws)) == len(seeds) * SMALL["depth"]
    for scheme, dtype, seed in itertools.product(SCHEMES, grid["dtype"], seeds):
        config = small_config(scheme, dtype=dtype)
        pd.testing.assert_frame_equal(run_rows(table, scheme=scheme, dtype=dtype, seed=seed),
                                      solo_trace(config, seed, inputs), check_exact=True)


def test_a_stored_deeper_run_serves_a_shallower_request(tmp_path, monkeypatch):
    deep = montecarlo.sweep({"depth": [4]}, [2], base=SMALL, cache_dir=tmp_path, progress=False)
    calls = count_streams(monkeypatch)
    shallow = montecarlo.sweep({"depth": [1, 3]}, [2], base=SMALL, cache_dir=tmp_path, progress=False)
    assert calls == []
    for depth in (1, 3):
        expected = deep[deep["layer"] < depth].drop(columns="depth").reset_index(drop=True)
        got = shallow[shallow["depth"] == depth].drop(columns="depth").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # and each is stored as a run of its own, which reads back equal
    assert len(list(tmp_path.glob("*.parquet"))) == 3
    reread = montecarlo.sweep({"depth": [1, 3]}, [2], base=SMALL, cache_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(reread, shallow, check_exact=True)


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def half_written(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1" + bytes(100))
        raise Interrupt

    monkeypatch.setattr(cache.pq, "write_table", half_written)
    with pytest.raises(Interrupt):
        montecarlo.run(small_config(), 0, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_invalid_grid_point_fails_before_any_run(tmp_path, monkeypatch):
    calls = count_streams(monkeypatch)
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
    key = cache.run_key(config, 0, 4, 6, 0.02)
    changed = {name: cache.run_key(config.replace(**{name: value}), 0, 4, 6, 0.02)
               for name, value in OTHER_VALUES.items()}
    changed.update(
        seed=cache.run_key(config, 1, 4, 6, 0.02),
        batch=cache.run_key(config, 0, 5, 6, 0.02),
        length=cache.run_key(config, 0, 4, 7, 0.02),
        input_std=cache.run_key(config, 0, 4, 6, 0.03),
        tag=cache.run_key(config, 0, 4, 6, 0.02, tag="another code version"),
    )
    assert all(other != key for other in changed.values()), [n for n, k in changed.items() if k == key]
    assert len(set(changed.values())) == len(changed)
    assert cache.run_key(small_config(), 0, 4, 6, 0.02) == key  # and it is deterministic
    # equal values given as numpy scalars (a numpy grid) find the same file
    assert cache.run_key(config.replace(lam_in=np.float64(config.lam_in)), np.int64(0), 4, 6, 0.02) == key


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


def test_sweep_cost_restores_the_thread_count_and_the_backend():
    """The bench's full sweep, serial and on Dask workers of one thread each: afterwards the
    caller's torch thread count is back (the bench's later figures are measured at it) and no
    cluster is left as the current backend."""
    from bhyt_theory.experiments.bench import sweep_cost
    from bhyt_theory.experiments.executor import Serial, current

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for workers in (None, 2):
            cost = sweep_cost(("rmsnorm", "bhyt"), (1, 2), 2, width=8, length=4, workers=workers)
            assert torch.get_num_threads() == 2
            assert isinstance(current(), Serial)
            assert cost["runs"] == 8 and cost["seconds"] > 0
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("part", ["matmul", "weight draw", "chunked weight draw"])
def test_cost_split_gives_a_works_time_to_the_part_that_spends_it(part):
    """The bench's split of a run's time: shares sum to 1, and work that is nothing but
    matmuls (or seeded normal draws, also ``draw_weights`` on 2 threads: its chunks, which
    the profiler does not see, and its scaling, an operator inside its labelled range) is
    credited to that part. Each operator or chunk takes about 1 ms or more
    here against the profiler's few µs per operator and the loop's interpreter time, so the
    part's share is far above the 0.5 asserted."""
    from bhyt_theory.experiments.bench import cost_split

    a = torch.randn(256, 256)
    generator = torch.Generator().manual_seed(0)
    work = {"matmul": lambda: [a @ a for _ in range(20)],
            "weight draw": lambda: [torch.empty(1 << 20).normal_(generator=generator) for _ in range(5)],
            "chunked weight draw": lambda: montecarlo.model.draw_weights(((1024, 1024),) * 4, 0.02, 0, 1 << 18)}[part]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        split = cost_split(work)
    finally:
        torch.set_num_threads(previous)
    assert sum(split.values()) == pytest.approx(1.0, abs=1e-9)
    assert split[part.removeprefix("chunked ")] > 0.5
    assert set(split) == {"matmul", "attention kernel", "weight draw", "other"}


def test_block_floor_compiles_a_forward_equal_to_the_eager_one_up_to_rounding():
    """The bench's floor times a compiled forward that computes the eager block, not another
    function: inductor fuses and reorders float32 arithmetic, so each output differs from the
    eager one by a few roundings of 2⁻²⁴ relative, passed through the width-32 sums of the
    projections (≤ 32 · 2⁻²⁴ ≈ 2·10⁻⁶ relative each) and the norms' division by the rms
    (relative errors pass through at most doubled); 1e-5 of the largest output bounds that
    with margin, while a compiled block of another scheme or layer is off by order 1. Configs
    with different weight shapes cannot share a draw and are refused."""
    from bhyt_theory.experiments.bench import block_floor

    configs = [StackConfig(scheme=scheme, depth=1, width=32, heads=2, seq_len=8) for scheme in ("periln", "bhyt")]
    floor = block_floor(configs, 2, 8, repeats=1)
    assert floor["max_relative_difference"] < 1e-5
    assert min(floor["eager"], floor["compiled"], floor["draw"]) > 0
    assert floor["compile_seconds"] > floor["compiled"]
    with pytest.raises(ValueError, match="weight shapes"):
        block_floor([configs[0], configs[0].replace(width=64)], 2, 8)
