"""The input spec and the one seeding rule (numerics.inputs)."""

from __future__ import annotations

import pytest
import torch

from bhyt_theory.numerics.inputs import (
    INPUT_SEED_OFFSET,
    InputSpec,
    gaussian_inputs,
    input_seed,
)
from bhyt_theory.numerics.model import StackConfig


def test_hidden_states_follow_the_seeding_rule_and_default_length():
    config = StackConfig(width=16, heads=2, seq_len=6)
    x = InputSpec(batch=3, std=0.5).hidden_states(config, seed=7)
    expected = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(7 + INPUT_SEED_OFFSET)) * 0.5
    assert torch.equal(x, expected)


def test_second_stream_is_a_different_draw_of_the_same_spec():
    config = StackConfig(width=16, heads=2, seq_len=6)
    spec = InputSpec(batch=1, length=4, std=1.0)
    first, second = spec.hidden_states(config, 0), spec.hidden_states(config, 0, stream=1)
    assert first.shape == second.shape == (1, 4, 16)
    assert torch.equal(second, gaussian_inputs(16, 1, 4, 1.0, 2 * INPUT_SEED_OFFSET))
    assert not torch.equal(first, second)
    # stream 1 of seed s never collides with stream 0 of a seed in [0, INPUT_SEED_OFFSET)
    assert input_seed(0, stream=1) == input_seed(INPUT_SEED_OFFSET)


@pytest.mark.parametrize(
    "changes, name",
    [({"batch": 0}, "batch"), ({"batch": 1.5}, "batch"), ({"length": 0}, "length"),
     ({"std": -1.0}, "std"), ({"std": float("nan")}, "std"), ({"std": float("inf")}, "std")],
)
def test_invalid_spec_names_the_argument(changes, name):
    with pytest.raises(ValueError, match=name):
        InputSpec(**changes)


def test_draw_without_any_length_is_an_error():
    with pytest.raises(ValueError, match="length"):
        InputSpec().draw(8, 0)


def test_an_invalid_input_spec_is_refused_with_the_class_name_and_the_problem():
    with pytest.raises(ValueError, match=r"^invalid InputSpec: batch must be an integer ≥ 1, got 0$"):
        InputSpec(batch=0)
