"""Bad input gives either the correct result or a clear error, never a silently wrong
number: the normalisers over every dtype and shape (numerics/norms.py, "Validation").

Error model of the "correct result" branch: the drawn entries are small integers,
exact in every floating dtype; statistics are computed in float32 (float64 for
float64 input) with relative error ≤ 32u, u = 2⁻²⁴ (tests/test_norms.py), and the
output is rounded once to the input dtype (relative error ≤ eps(dtype)/2). We allow
eps(dtype) + 64u, relative and absolute (outputs are O(1)).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import FLOATING_DTYPES, any_dtype_tensors, scalar_parameters

from bhyt_theory.numerics.norms import (
    EPS,
    bhyt,
    derf,
    dyt,
    layer_norm,
    mean_square,
    rms_norm,
)

U32 = 2.0**-24


def _reference_bhyt(h: torch.Tensor, lam: float, kappa: float, eps: float, estimate: float | None = None):
    m = h.square().mean(-1, keepdim=True) if estimate is None else torch.tensor(estimate, dtype=torch.float64)
    return torch.tanh(lam * h / (kappa * torch.sqrt(m + eps)))


# Each normaliser next to a from-scratch float64 expression of its formula.
NORMS = {
    "rms_norm": (rms_norm, lambda h: h / torch.sqrt(h.square().mean(-1, keepdim=True) + EPS)),
    "layer_norm": (layer_norm, lambda h: (h - h.mean(-1, keepdim=True))
                   / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + EPS)),
    "bhyt": (lambda h: bhyt(h, 2.0), lambda h: _reference_bhyt(h, 2.0, 10.0, EPS)),
    "bhyt_estimate": (lambda h: bhyt(h, 2.0, mean_square=4.0), lambda h: _reference_bhyt(h, 2.0, 10.0, EPS, 4.0)),
    "dyt": (lambda h: dyt(h, 0.5), lambda h: torch.tanh(0.5 * h)),
    "derf": (lambda h: derf(h, 0.5), lambda h: torch.erf(0.5 * h)),
    "mean_square": (mean_square, lambda h: h.square().mean(-1, keepdim=True)),
}


@given(any_dtype_tensors(), st.sampled_from(sorted(NORMS)))
def test_norm_of_any_dtype_and_shape_is_correct_or_a_clear_error(h, name):
    function, reference = NORMS[name]
    if h.dtype not in FLOATING_DTYPES:
        with pytest.raises(TypeError, match=r"^h must have a floating dtype"):
            function(h)
    elif h.ndim == 0 or h.shape[-1] == 0:
        with pytest.raises(ValueError, match=r"^h must have"):
            function(h)
    else:
        out = function(h)
        expected = reference(h.double())
        tolerance = torch.finfo(h.dtype).eps + 64 * U32
        assert out.dtype == (torch.float64 if name == "mean_square" else h.dtype)
        assert out.shape == expected.shape
        assert torch.allclose(out.double(), expected, rtol=tolerance, atol=tolerance), (out, expected)


@given(scalar_parameters(), scalar_parameters())
def test_bhyt_kappa_and_eps_are_in_range_or_rejected_by_name(kappa, eps):
    h = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    kappa_ok = math.isfinite(kappa) and kappa > 0
    eps_ok = math.isfinite(eps) and eps >= 0
    if not kappa_ok:
        with pytest.raises(ValueError, match=r"^kappa must be finite and > 0"):
            bhyt(h, 2.0, kappa=kappa, eps=eps)
    elif not eps_ok:
        with pytest.raises(ValueError, match=r"^eps must be finite and ≥ 0"):
            bhyt(h, 2.0, kappa=kappa, eps=eps)
    else:
        # float64 throughout: a few ulp of float64, far inside 1e-12.
        assert torch.allclose(bhyt(h, 2.0, kappa=kappa, eps=eps), _reference_bhyt(h, 2.0, kappa, eps), rtol=1e-12, atol=0)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-10.0, max_value=10.0))
def test_any_finite_lambda_is_computed_and_a_negative_one_flips_the_sign(lam):
    # λ is trained unconstrained in the reference implementation, so every finite λ is valid:
    # tanh is odd, so BHyT_λ(h) = −BHyT_{−λ}(h), and λ = 0 gives 0.
    h = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    out = bhyt(h, lam)
    # float64 throughout: relative rounding of a few ulp, except for outputs below the
    # smallest normal float64 (2.2e-308, a subnormal λ), whose rounding is absolute.
    assert torch.allclose(out, _reference_bhyt(h, lam, 10.0, EPS), rtol=1e-12, atol=1e-300)
    assert torch.equal(out, -bhyt(h, -lam))


@pytest.mark.parametrize("lam", [math.nan, math.inf, "2", True])
def test_non_finite_or_non_numeric_lambda_is_rejected_by_name(lam):
    with pytest.raises((TypeError, ValueError), match=r"^lam must be"):
        bhyt(torch.ones(3), lam)


@pytest.mark.parametrize("estimate", [torch.tensor([[1.0 + 1.0j]]), torch.tensor([[True]])])
def test_complex_or_bool_estimate_is_rejected(estimate):
    with pytest.raises(TypeError, match=r"^mean_square must be real"):
        bhyt(torch.ones(1, 3), 2.0, mean_square=estimate)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_entry_under_a_supplied_estimate_makes_its_whole_token_nan(bad):
    # The documented behaviour (norms module docstring; README "Numerics you can rely on"):
    # the per-token scale max|h_i| is a statistic of the whole token, so one NaN/Inf in a
    # token makes that token NaN, with or without a supplied M; other tokens are untouched.
    h = torch.tensor([[1.0, 2.0, 3.0], [1.0, bad, 3.0]])
    out = bhyt(h, 2.0, mean_square=torch.tensor([[1.0], [1.0]]))
    assert torch.isnan(out[1]).all()
    assert torch.equal(out[0], bhyt(h[:1], 2.0, mean_square=torch.tensor([[1.0]]))[0])
