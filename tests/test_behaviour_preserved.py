"""Behaviour preservation across the scheme-table refactor, on any CPU.

``tests/fixtures/stack_outputs_273ca06.npz`` holds the ``Stack`` outputs and the
numeric columns of ``Stack.trace`` computed by the code of commit 273ca06, *before*
``Block``, ``Stack`` and ``make_norm`` were rewritten to read ``schemes.SCHEME_TABLE``
(and the probe interface became a Protocol). The cases, with their seeds and inputs,
are listed in ``stack_outputs_273ca06.json``: every built-in scheme, a last-layer
BHyT*, two non-reference estimators, GQA with a κ schedule and three float64 stacks.
That file also keeps the SHA-256 hashes the arrays had on the machine that made them
(``generate`` checks them); the test itself compares values, never bit patterns, since
another CPU picks other BLAS kernels and rounds differently.

The fixture is made once, by ``generate`` run on a checkout of commit 273ca06 (never
from the code it guards)::

    git archive 273ca06 bhyt_theory | tar -x -C /tmp/at-273ca06
    PYTHONPATH=/tmp/at-273ca06 python tests/test_behaviour_preserved.py
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
CASES = json.loads((FIXTURES / "stack_outputs_273ca06.json").read_text())
ARRAYS = FIXTURES / "stack_outputs_273ca06.npz"
BATCH = 2
# Statistics that count elements (a fraction of the batch · width coordinates of a position).
COUNTS = ("saturated_fraction_1", "saturated_fraction_2", "saturated_fraction_3")


def _config(key: str):
    from bhyt_theory.numerics.model import StackConfig

    changes = {}
    for item in key.split(","):
        name, value = item.split("=")
        default = getattr(StackConfig(), name)
        changes[name] = value if isinstance(default, str) or default is None and not value.isdigit() else (
            int(value) if value.isdigit() else float(value))
    return StackConfig(**CASES["base"]).replace(**changes)


def _inputs(key: str) -> torch.Tensor:
    from bhyt_theory.numerics.inputs import gaussian_inputs

    case, config = CASES["cases"][key], _config(key)
    return gaussian_inputs(config.width, BATCH, config.seq_len, case["input_std"], case["input_seed"])


def _compute(key: str, x: torch.Tensor):
    """The output and the trace table of case ``key`` on inputs ``x``, by the ``bhyt_theory`` importable now."""
    from bhyt_theory.numerics.model import Stack

    case, config = CASES["cases"][key], _config(key)
    stack = Stack(config, seed=case["seed"])
    with torch.no_grad():
        out = stack(x)
    return config, out, stack.trace(x)


def generate(path: Path = ARRAYS) -> None:
    """Write the fixture arrays (see the module docstring: run on a checkout of 273ca06), after checking
    that they hash to the values recorded at 273ca06 on the machine that made the fixture."""
    arrays = {}
    for index, key in enumerate(sorted(CASES["cases"])):
        x = _inputs(key)
        _, out, trace = _compute(key, x)
        case = CASES["cases"][key]
        csv = trace.to_csv(index=False, float_format="%.17g").encode()
        if (hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest() != case["output_sha256"]
                or hashlib.sha256(csv).hexdigest() != case["trace_sha256"]):
            raise SystemExit(f"{key}: this machine does not reproduce the recorded 273ca06 hashes")
        arrays[f"{index:02d}_input"] = x.numpy()
        arrays[f"{index:02d}_output"] = out.numpy()
        for column in trace.columns:
            if trace[column].dtype.kind == "f":
                arrays[f"{index:02d}_{column}"] = trace[column].to_numpy()
    arrays["keys"] = np.array(sorted(CASES["cases"]))
    np.savez_compressed(path, **arrays)


DRAW_ERROR = 2.0**-21
"""Root-mean-square difference, relative to the root mean square of the draw, between the weights
the same seed draws on two CPUs: torch's CPU normal sampler computes its Box–Muller transform in
float32 with the vector log and cos of the CPU's instruction set, so draws agree only to about a
float32 ulp (measured here between ATEN_CPU_CAPABILITY=avx2 and =default: 2⁻²⁴·⁴ for the weights,
2⁻²²·² for inputs; 2⁻²¹ leaves a factor 2 over the worse). float64 stacks cast float32 draws."""


def _rms(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(np.square(finite, dtype=np.float64)))) if finite.size else 0.0


def _assert_close(config, values: np.ndarray, reference: np.ndarray, what: str) -> None:
    """``values`` equal ``reference`` within the error model of a stack computed on another CPU.

    Two sources, both measured in root mean square over the array (rounding errors and draw
    differences add as random walks). (1) Rounding: every value is the end of ``depth`` blocks,
    each made of sums of at most n = max(width, mlp_width, seq_len) terms (matmuls, row
    reductions, attention); another summation order (other SIMD width, FMA or blocking) changes
    a sum of n terms by about sqrt(n)·u of its terms' magnitude, u = 2⁻²⁴ in float32 and 2⁻⁵³ in
    float64. (2) The weights, drawn from the same seed, differ by ``DRAW_ERROR`` (the inputs are
    stored, so they do not), and each block's increment is linear in its output weights, so it
    moves by that fraction of itself. Both add over the depth through the residual stream:
    rms(Δ) ≤ 8 · depth · (sqrt(n)·u + DRAW_ERROR) · rms(reference), the factor 8 for tanh, exp
    and rsqrt (a few ulps each) and the O(1) gain of a block at these scales. NaN (a statistic
    the scheme does not have) must stay NaN.
    """
    u = 2.0 ** (-53 if config.dtype == "float64" else -24)
    n = max(config.width, config.mlp_width, config.seq_len)
    assert np.array_equal(np.isnan(values), np.isnan(reference)), what
    difference = _rms(values.astype(np.float64) - reference.astype(np.float64))
    allowed = 8 * config.depth * (math.sqrt(n) * u + DRAW_ERROR) * _rms(reference)
    assert difference <= allowed, f"{what}: rms difference {difference:.3g} > {allowed:.3g}"


KEYS = sorted(CASES["cases"])


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    with np.load(ARRAYS) as arrays:
        return {name: arrays[name] for name in arrays.files}


def test_the_fixture_covers_every_recorded_case(stored):
    assert [str(key) for key in stored["keys"]] == KEYS


@pytest.mark.parametrize("index, key", list(enumerate(KEYS)), ids=KEYS)
def test_stack_outputs_and_traces_match_before_the_refactor(stored, index, key):
    # the stored inputs: torch's normal sampler rounds differently on other CPUs (see DRAW_ERROR)
    config, out, trace = _compute(key, torch.from_numpy(stored[f"{index:02d}_input"]))
    reference = stored[f"{index:02d}_output"]
    assert out.dtype == getattr(torch, config.dtype) and reference.dtype == out.numpy().dtype
    _assert_close(config, out.numpy(), reference, f"{key}: output")
    columns = [name.removeprefix(f"{index:02d}_") for name in stored if name.startswith(f"{index:02d}_")
               and name not in (f"{index:02d}_output", f"{index:02d}_input")]
    assert sorted(columns) == sorted(c for c in trace.columns if trace[c].dtype.kind == "f")
    for column in columns:
        values = stored[f"{index:02d}_{column}"]
        if column in COUNTS:
            # a fraction of the batch·width coordinates of one position: a coordinate within rounding
            # of the threshold may fall on either side, so one coordinate's worth is allowed
            np.testing.assert_allclose(trace[column].to_numpy(), values, rtol=0, atol=1 / (BATCH * config.width),
                                       equal_nan=True, err_msg=f"{key}: {column}")
        else:
            _assert_close(config, trace[column].to_numpy(), values, f"{key}: {column}")


if __name__ == "__main__":
    generate()
    print(f"wrote {ARRAYS}")
