"""Named Hypothesis strategies for hidden states, shared by the property suites.

Each strategy builds inputs a reader can recognise in a counterexample: a
per-token vector of width ``d``, with shapes chosen to attack the bounds
(one-hot, k equal spikes, heavy tails, large offsets, tiny and huge scales).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Largest finite magnitude of each dtype (the scales below stay inside it).
DTYPE_MAX = {name: float(torch.finfo(dtype).max) for name, dtype in DTYPES.items()}
DTYPE_TINY = {name: float(torch.finfo(dtype).tiny) for name, dtype in DTYPES.items()}

widths = st.integers(min_value=1, max_value=96)


@st.composite
def one_hot(draw, d: int) -> np.ndarray:
    h = np.zeros(d)
    h[draw(st.integers(0, d - 1))] = draw(st.sampled_from([-1.0, 1.0]))
    return h


@st.composite
def equal_spikes(draw, d: int) -> np.ndarray:
    k = draw(st.integers(1, d))
    h = np.zeros(d)
    h[draw(st.permutations(range(d)))[:k]] = 1.0
    return h


@st.composite
def heavy_tailed(draw, d: int) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_cauchy(d)


@st.composite
def large_offset(draw, d: int) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return draw(st.floats(-1e3, 1e3)) + np.random.default_rng(seed).standard_normal(d) * 1e-3


@st.composite
def arbitrary(draw, d: int) -> np.ndarray:
    return draw(hnp.arrays(np.float64, d, elements=st.floats(-1.0, 1.0, allow_nan=False)))


SHAPES = {
    "one_hot": one_hot,
    "equal_spikes": equal_spikes,
    "heavy_tailed": heavy_tailed,
    "large_offset": large_offset,
    "arbitrary": arbitrary,
}


@st.composite
def hidden_states(draw, dtypes=("float32", "float64", "bfloat16", "float16"), min_log_scale=None, max_log_scale=None):
    """A token ``h`` of width d: an adversarial shape times a scale spanning the
    dtype's whole finite range (1e-30 … 1e30 in float32), cast to the dtype.

    Returns ``(h, shape_name)``; the shape name makes counterexamples readable.
    """
    dtype = draw(st.sampled_from(dtypes))
    d = draw(widths)
    name = draw(st.sampled_from(sorted(SHAPES)))
    base = draw(SHAPES[name](d))
    peak = np.abs(base).max()
    if peak == 0 or not np.isfinite(peak):
        base, peak = np.ones(d), 1.0
    # Leave headroom of 4x below the dtype max and stay above its smallest normal.
    low = np.log10(DTYPE_TINY[dtype]) + 1 if min_log_scale is None else min_log_scale
    high = np.log10(DTYPE_MAX[dtype] / 4) if max_log_scale is None else max_log_scale
    scale = 10.0 ** draw(st.floats(low, high))
    h = torch.tensor(base / peak * scale, dtype=torch.float64).to(DTYPES[dtype])
    return h, name


lams = st.floats(min_value=0.1, max_value=8.0)
kappas = st.floats(min_value=1.0, max_value=20.0)
thresholds = st.floats(min_value=0.01, max_value=5.0)


def signed_lambdas() -> st.SearchStrategy[float]:
    """λ of either sign, zero, small and beyond κ = 10 (trained parameters): any value in [-40, 40]."""
    return st.one_of(st.just(0.0), st.floats(-40.0, 40.0, allow_nan=False, allow_infinity=False))
