"""Behaviour preservation across the scheme-table refactor.

``tests/fixtures/stack_outputs_273ca06.json`` holds SHA-256 hashes of ``Stack``
outputs and ``Stack.trace`` tables computed at commit 273ca06, *before* ``Block``,
``Stack`` and ``make_norm`` were rewritten to read ``schemes.SCHEME_TABLE`` (and the
probe interface became a Protocol). Every built-in scheme, a last-layer BHyT*,
two non-reference estimators, GQA with a κ schedule and three float64 stacks are
covered. The refactor promised the same numbers, bit for bit; a hash mismatch
means some operation changed (order, dtype, an extra rounding), which this test
exists to catch. The fixture must never be regenerated from the code it guards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from bhyt_theory.numerics.inputs import gaussian_inputs
from bhyt_theory.numerics.model import Stack, StackConfig

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "stack_outputs_273ca06.json").read_text())


def _config(key: str) -> StackConfig:
    changes = {}
    for item in key.split(","):
        name, value = item.split("=")
        default = getattr(StackConfig(), name)
        changes[name] = value if isinstance(default, str) or default is None and not value.isdigit() else (
            int(value) if value.isdigit() else float(value))
    return StackConfig(**FIXTURE["base"]).replace(**changes)


@pytest.mark.parametrize("key", sorted(FIXTURE["cases"]))
def test_stack_outputs_and_traces_are_bit_identical_to_before_the_refactor(key):
    case = FIXTURE["cases"][key]
    config = _config(key)
    x = gaussian_inputs(config.width, 2, config.seq_len, case["input_std"], case["input_seed"])
    stack = Stack(config, seed=case["seed"])
    with torch.no_grad():
        out = stack(x)
    trace = stack.trace(x)
    assert hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest() == case["output_sha256"]
    csv = trace.to_csv(index=False, float_format="%.17g").encode()
    assert hashlib.sha256(csv).hexdigest() == case["trace_sha256"]
