"""A stored shallower run extends to a deeper request: only the new blocks run, and the
result is bit for bit the run from scratch; a bad state file means a recomputation."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from bhyt_theory.experiments import cache, montecarlo
from bhyt_theory.numerics.inputs import InputSpec
from bhyt_theory.numerics.model import StackConfig

SMALL = {"width": 16, "heads": 2, "seq_len": 6}
SCHEMES = ("bhyt", "rmsnorm")
INPUTS = InputSpec(batch=2)


def count_blocks(monkeypatch) -> list:
    """Record ``(scheme, layer)`` of every block ``stream_traces`` builds."""
    built = []
    original = montecarlo.build_block

    def counted(config, layer, *args, **kwargs):
        built.append((config.scheme, layer))
        return original(config, layer, *args, **kwargs)

    monkeypatch.setattr(montecarlo, "build_block", counted)
    return built


def sweep(depth: int, cache_dir):
    return montecarlo.sweep({"scheme": SCHEMES, "depth": [depth]}, seeds=[3], base=SMALL, inputs=INPUTS,
                            cache_dir=cache_dir)


def state_of(cache_dir, scheme: str, depth: int) -> torch.Tensor:
    config = StackConfig(scheme=scheme, depth=depth, **SMALL)
    run = montecarlo._Run(config, 3, {"batch": INPUTS.batch, "length": config.seq_len, "input_std": INPUTS.std},
                          cache.CODE_TAG)
    state = run.read_state(cache_dir)
    assert state is not None
    return state


def test_extended_run_equals_the_run_from_scratch_and_runs_only_the_new_blocks(tmp_path, monkeypatch):
    # Same weights (layer_seed), same operations in the same order from the same stored state: bit-identical.
    scratch = sweep(5, tmp_path / "scratch")
    sweep(2, tmp_path / "extended")
    built = count_blocks(monkeypatch)
    extended = sweep(5, tmp_path / "extended")
    assert sorted(built) == sorted((scheme, layer) for scheme in SCHEMES for layer in (2, 3, 4))
    pd.testing.assert_frame_equal(extended, scratch, check_exact=True)
    for scheme in SCHEMES:
        assert torch.equal(state_of(tmp_path / "extended", scheme, 5), state_of(tmp_path / "scratch", scheme, 5))
    # the extended file itself, read back with no computation, is the scratch table too
    built.clear()
    pd.testing.assert_frame_equal(sweep(5, tmp_path / "extended"), scratch, check_exact=True)
    assert built == []


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _tamper_values(path):
    # a well-formed file whose tensor no longer matches its SHA-256
    record = torch.load(path, weights_only=True)
    record["state"] = record["state"] + 1
    torch.save(record, path)


def _other_run(path):
    # a valid state file of another run (another seed) under this run's name
    other = montecarlo._Run(StackConfig(scheme="bhyt", depth=2, **SMALL), 4,
                            {"batch": INPUTS.batch, "length": SMALL["seq_len"], "input_std": INPUTS.std}, cache.CODE_TAG)
    cache.write_state(torch.zeros(INPUTS.batch, SMALL["seq_len"], SMALL["width"]), path, other.key)


@pytest.mark.parametrize("damage", [_truncate, _flip_middle_byte, _tamper_values, _other_run, lambda path: path.unlink()],
                         ids=["truncated", "flipped", "tampered", "other-run", "missing"])
def test_a_bad_state_file_falls_back_to_the_run_from_scratch(tmp_path, monkeypatch, damage):
    scratch = sweep(5, tmp_path / "scratch")
    sweep(2, tmp_path / "extended")
    states = sorted((tmp_path / "extended").glob("bhyt-*depth2-*.parquet.state"))
    assert len(states) == 1
    damage(states[0])
    built = count_blocks(monkeypatch)
    extended = sweep(5, tmp_path / "extended")
    # bhyt recomputed from layer 0, rmsnorm (its state intact) extended
    assert sorted(built) == sorted([("bhyt", layer) for layer in range(5)] + [("rmsnorm", layer) for layer in (2, 3, 4)])
    pd.testing.assert_frame_equal(extended, scratch, check_exact=True)


def test_a_sweep_over_several_depths_extends_from_its_deepest(tmp_path, monkeypatch):
    # depths 1 and 2 in one request: only depth 2 keeps a state, and depth 4 continues from it
    scratch = sweep(4, tmp_path / "scratch")
    montecarlo.sweep({"scheme": SCHEMES, "depth": [1, 2]}, seeds=[3], base=SMALL, inputs=INPUTS,
                     cache_dir=tmp_path / "extended")
    assert len(list((tmp_path / "extended").glob("*.state"))) == len(SCHEMES)
    built = count_blocks(monkeypatch)
    pd.testing.assert_frame_equal(sweep(4, tmp_path / "extended"), scratch, check_exact=True)
    assert sorted(built) == sorted((scheme, layer) for scheme in SCHEMES for layer in (2, 3))
