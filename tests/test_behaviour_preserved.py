"""Behaviour preservation across the scheme-table refactor.

``tests/fixtures/stack_outputs_273ca06.json`` holds SHA-256 hashes of ``Stack``
outputs and ``Stack.trace`` tables computed at commit 273ca06, *before* ``Block``,
``Stack`` and ``make_norm`` were rewritten to read ``schemes.SCHEME_TABLE`` (and the
probe interface became a Protocol). Every built-in scheme, a last-layer BHyT*,
two non-reference estimators, GQA with a κ schedule and three float64 stacks are
covered. The refactor promised the same numbers, bit for bit; a hash mismatch
means some operation changed (order, dtype, an extra rounding), which this test
exists to catch. The fixture must never be regenerated from the code it guards.

The trace tables of 273ca06 reduced every statistic in float64; the probes now
reduce in float32 (``probes.state_statistics``, its own test in test_probes.py).
The model's states are what the fixture guards, so the trace is rebuilt here from
those states with the float64 statistics of 273ca06, restated below.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bhyt_theory.numerics.inputs import gaussian_inputs
from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import mean_square
from bhyt_theory.numerics.probes import SATURATION_THRESHOLDS, TraceProbe, norm_argument

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "stack_outputs_273ca06.json").read_text())


def _config(key: str) -> StackConfig:
    changes = {}
    for item in key.split(","):
        name, value = item.split("=")
        default = getattr(StackConfig(), name)
        changes[name] = value if isinstance(default, str) or default is None and not value.isdigit() else (
            int(value) if value.isdigit() else float(value))
    return StackConfig(**FIXTURE["base"]).replace(**changes)


def _batch_mean(per_token: torch.Tensor) -> np.ndarray:
    return per_token.reshape(per_token.shape[0], per_token.shape[1]).double().mean(0).numpy()


class Float64TraceProbe(TraceProbe):
    """``TraceProbe`` with the float64 statistics of commit 273ca06."""

    def state(self, layer, sublayer, h, estimate=None):
        entry = self._entry(layer, sublayer)
        ms, h64 = _batch_mean(mean_square(h)), h.double()
        entry.update(mean_square=ms, rms=np.sqrt(ms), mean_abs=_batch_mean(h64.abs().mean(-1)),
                     variance=_batch_mean(h64.var(-1, unbiased=False)))
        if estimate is not None:
            exact = mean_square(h)
            entry["mean_square_estimate"] = _batch_mean(estimate.expand_as(exact))
            entry["estimate_ratio"] = _batch_mean(estimate.expand_as(exact) / exact)

    def argument(self, layer, sublayer, norm, h, **statistic):
        z = norm_argument(norm, h, **statistic)
        if z is None:
            return
        z64 = z.double()
        entry = self._entry(layer, sublayer)
        entry.update(arg_rms=np.sqrt(_batch_mean(z64.square().mean(-1))),
                     arg_max_abs=z64.abs().amax(-1).amax(0).numpy())
        for t in SATURATION_THRESHOLDS:
            entry[f"saturated_fraction_{t:g}"] = _batch_mean((z64.abs() >= t).double().mean(-1))


@pytest.mark.parametrize("key", sorted(FIXTURE["cases"]))
def test_stack_outputs_and_traces_are_bit_identical_to_before_the_refactor(key):
    case = FIXTURE["cases"][key]
    config = _config(key)
    x = gaussian_inputs(config.width, 2, config.seq_len, case["input_std"], case["input_seed"])
    stack = Stack(config, seed=case["seed"])
    probe = Float64TraceProbe()
    with torch.no_grad():
        out = stack(x)
        stack.residual(x, probe)
    trace = probe.frame()
    trace.insert(0, "seed", case["seed"])
    trace.insert(0, "scheme", config.scheme)
    assert hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest() == case["output_sha256"]
    csv = trace.to_csv(index=False, float_format="%.17g").encode()
    assert hashlib.sha256(csv).hexdigest() == case["trace_sha256"]
