"""The symbolic derivations of ``bhyt_theory.symbolic`` against independent numerics.

Error models: quadrature values of ``bhyt_theory.gaussian`` are exact to ~1e-12
absolute (we allow 1e-11); float64 computations carry unit roundoff
u = 2^-53 per operation, and each tolerance below states its multiple of u.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bhyt_theory.numerics import gaussian
from bhyt_theory.numerics.norms import EPS, KAPPA, bhyt, bhyt_argument, mean_square
from bhyt_theory.theory import symbolic
from bhyt_theory.theory.symbolic import (
    a,
    bhyt_argument_symbolic,
    bhyt_jacobian_closed_form,
    bhyt_jacobian_symbolic,
    eps_sym,
    erf_square_moment_closed_form,
    erf_square_moment_series,
    kappa_sym,
    lam_sym,
    partial_sums,
    post_attention_error_terms,
    series_terms,
    tanh_prime_moment_series,
    tanh_prime_square_moment_series,
    tanh_square_moment_series,
    variance_decomposition,
)

U64 = 2.0**-53
QUADRATURE_TOLERANCE = 1e-11
MAX_TERMS = 9
SERIES = {
    "tanh_square": (tanh_square_moment_series(MAX_TERMS), gaussian.tanh_square_moment),
    "tanh_prime": (tanh_prime_moment_series(MAX_TERMS), gaussian.tanh_prime_moment),
    "tanh_prime_square": (tanh_prime_square_moment_series(MAX_TERMS), gaussian.tanh_prime_square_moment),
}
CLOSED_JACOBIANS = {
    d: sp.lambdify([*bhyt_argument_symbolic(d)[0], lam_sym, kappa_sym, eps_sym], bhyt_jacobian_closed_form(d), "numpy")
    for d in (2, 3, 4)
}

ratios = st.floats(min_value=0.01, max_value=1.5)
term_counts = st.integers(min_value=1, max_value=MAX_TERMS - 1)
moments = st.sampled_from(sorted(SERIES))


def test_tanh_square_series_has_the_stated_leading_terms():
    # docs/estimators.md §3 states a² − 2a⁴ + (17/3)a⁶ − (62/3)a⁸ (independently of this code).
    stated = a**2 - 2 * a**4 + sp.Rational(17, 3) * a**6 - sp.Rational(62, 3) * a**8
    assert sp.expand(tanh_square_moment_series(4) - stated) == 0


def test_tanh_prime_series_is_one_minus_tanh_square_series():
    assert sp.expand(tanh_prime_moment_series(6) - (1 - tanh_square_moment_series(5))) == 0


def test_each_series_has_the_requested_number_of_nonzero_terms():
    for n in (1, 3, 6):
        for build in (tanh_square_moment_series, tanh_prime_moment_series, tanh_prime_square_moment_series):
            assert len(series_terms(build(n))) == n


@settings(max_examples=150)
@given(value=ratios, n=term_counts, moment=moments)
def test_truncation_error_is_bounded_by_first_omitted_term_with_its_sign(value, n, moment):
    series, exact = SERIES[moment]
    sums = partial_sums(series, value)
    truth = exact(value)
    omitted = sums[n] - sums[n - 1]  # the (n+1)-th term
    error = truth - sums[n - 1]
    assert abs(error) <= abs(omitted) + QUADRATURE_TOLERANCE
    if abs(omitted) > 2 * QUADRATURE_TOLERANCE:
        assert error * omitted >= -QUADRATURE_TOLERANCE * abs(omitted)


def test_tanh_square_series_diverges_terms_eventually_grow():
    # Asymptotic, not convergent: at a = 0.5 the terms grow from the third on.
    terms = [abs(float(t.subs(a, 0.5))) for t in series_terms(SERIES["tanh_square"][0])]
    assert any(later > earlier for earlier, later in zip(terms, terms[1:]))


def test_linear_tanh_overstates_mean_square_at_reference_ratios():
    for value in (0.1, 0.2, 0.3):
        assert gaussian.tanh_square_moment(value) < value**2 - 2 * value**4 + 17 / 3 * value**6 + QUADRATURE_TOLERANCE
        assert gaussian.tanh_square_moment(value) < value**2


def test_erf_square_closed_form_matches_its_moment_series():
    closed = sp.series(erf_square_moment_closed_form(), a, 0, 13).removeO()
    assert sp.expand(erf_square_moment_series(6) - closed) == 0


@given(value=st.floats(min_value=0.01, max_value=3.0))
def test_erf_square_closed_form_equals_numeric_home(value):
    # Same formula evaluated by sympy (mpmath) and by gaussian.py (numpy): a few u relative.
    symbolic = float(erf_square_moment_closed_form().subs(a, value))
    assert math.isclose(symbolic, gaussian.erf_square_moment(value), rel_tol=64 * U64, abs_tol=1e-300)


def test_jacobian_derivative_equals_closed_form():
    for d in (2, 3, 4):
        difference = (bhyt_jacobian_symbolic(d) - bhyt_jacobian_closed_form(d)).applyfunc(sp.simplify)
        assert difference == sp.zeros(d, d)


@st.composite
def jacobian_points(draw):
    d = draw(st.sampled_from((2, 3, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    log_scale = draw(st.floats(-3, 3))
    point = np.random.default_rng(seed).standard_normal(d) * 10.0**log_scale
    return point, draw(st.floats(0.1, 8.0))


@settings(max_examples=60)
@given(case=jacobian_points())
def test_jacobian_matches_autograd_of_bhyt_argument(case):
    point, lam = case
    d = point.size
    auto = torch.autograd.functional.jacobian(
        lambda h: bhyt_argument(h, lam, KAPPA), torch.tensor(point, dtype=torch.float64)
    ).numpy()
    closed = np.array(CLOSED_JACOBIANS[d](*point, lam, KAPPA, EPS), dtype=float)
    # Each entry is a short float64 expression of magnitude ≤ ‖J‖: allow 64 d u ‖J‖_max.
    assert np.abs(auto - closed).max() <= 64 * d * U64 * np.abs(closed).max()


def test_decomposition_reduces_to_reference_when_error_terms_vanish():
    decomposition = variance_decomposition()
    assert sp.simplify(decomposition.exact.subs(decomposition.vanishing) - decomposition.reference) == 0
    total = decomposition.reference + sum(decomposition.error_terms.values())
    assert sp.simplify(decomposition.exact - total) == 0
    assert set(decomposition.error_terms) == set(decomposition.assumption)


def _causal_softmax(scores: torch.Tensor) -> torch.Tensor:
    length = scores.shape[-1]
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, -math.inf).softmax(-1)


@st.composite
def attention_blocks(draw):
    """A random block: GQA heads, causal patterns from random (possibly peaked) scores,
    weights of random scale, γ random, one sequence of random length."""
    n_kv = draw(st.sampled_from((1, 2)))
    n_heads = n_kv * draw(st.sampled_from((1, 2)))
    head_dim = draw(st.sampled_from((2, 4)))
    d = draw(st.sampled_from((4, 8, 12)))
    length = draw(st.integers(1, 9))
    seq_len = draw(st.integers(1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight_scale = 10.0 ** draw(st.floats(-1, 1))
    as_tensor = lambda array: torch.tensor(array, dtype=torch.float64)  # noqa: E731
    return dict(
        h=as_tensor(rng.standard_normal((length, d)) * 10.0 ** draw(st.floats(-2, 2))),
        attention=_causal_softmax(as_tensor(rng.standard_normal((n_heads, length, length)) * draw(st.floats(0, 10)))),
        w_v=as_tensor(rng.standard_normal((n_kv * head_dim, d)) * weight_scale),
        w_o=as_tensor(rng.standard_normal((d, n_heads * head_dim)) * weight_scale),
        n_kv_heads=n_kv,
        seq_len=seq_len,
        lam=draw(st.floats(0.5, 4.0)),
        gamma=as_tensor(rng.normal(1.0, 0.5, d)),
    )


def _attention_output(block: dict) -> torch.Tensor:
    """``a_t`` computed the way attention does it (per head, concat, project), not via C_tj."""
    u = bhyt(block["h"], block["lam"], KAPPA, block["gamma"])
    n_heads, n_kv = block["attention"].shape[0], block["n_kv_heads"]
    head_dim = block["w_v"].shape[0] // n_kv
    values = (u @ block["w_v"].T).reshape(-1, n_kv, head_dim).transpose(0, 1)
    values = values.repeat_interleave(n_heads // n_kv, dim=0)
    heads = block["attention"] @ values  # (heads, T, head_dim)
    return heads.transpose(0, 1).reshape(u.shape[0], -1) @ block["w_o"].T


@settings(max_examples=60)
@given(block=attention_blocks())
def test_error_terms_sum_to_exact_post_attention_mean_square(block):
    terms = post_attention_error_terms(**block)
    direct = mean_square(block["h"] + _attention_output(block))[:, 0]
    names = variance_decomposition().error_terms
    assembled = terms["reference"] + sum(terms[name] for name in names)
    magnitude = terms["reference"].abs() + sum(terms[name].abs() for name in names)
    # A few dozen float64 operations per term, sums over T·d² products: 64·T·d² u of the magnitude.
    tolerance = 64 * block["h"].numel() * block["h"].shape[1] * U64 * magnitude
    assert torch.all((terms["exact"] - direct).abs() <= tolerance)
    assert torch.all((assembled - direct).abs() <= tolerance)


@settings(max_examples=30)
@given(block=attention_blocks())
def test_shared_pattern_concentration_is_sum_of_squared_probabilities(block):
    shared = block["attention"][:1].expand_as(block["attention"])
    terms = post_attention_error_terms(**{**block, "attention": shared})
    expected = shared[0].square().sum(-1)
    assert torch.allclose(terms["concentration_sum"], expected, rtol=64 * U64 * 16, atol=0)


def test_uniform_causal_concentration_is_one_over_position():
    length = seq_len = 12
    rng = np.random.default_rng(0)
    causal = torch.tril(torch.ones(length, length, dtype=torch.float64))
    block = dict(
        h=torch.tensor(rng.standard_normal((length, 8))),
        attention=(causal / causal.sum(-1, keepdim=True))[None],
        w_v=torch.tensor(rng.standard_normal((4, 8))),
        w_o=torch.tensor(rng.standard_normal((8, 4))),
        n_kv_heads=1,
        seq_len=seq_len,
        lam=2.0,
    )
    terms = post_attention_error_terms(**block)
    position = torch.arange(1, length + 1, dtype=torch.float64)
    assert torch.allclose(terms["concentration_sum"] * position, torch.ones(length, dtype=torch.float64), rtol=0, atol=64 * U64)
    # At t = T uniform causal attention is uniform over T tokens: no concentration error.
    assert abs(float(terms["concentration"][-1])) <= 64 * U64 * float(terms["reference"][-1])
    assert torch.all(terms["gamma"] == 0)  # γ = 1


def test_a_series_with_too_few_terms_fails_instead_of_hanging():
    # A wrong Maclaurin polynomial (here identically zero) has no non-zero moment terms;
    # the degree search is capped, so this is an error, not an endless loop.
    with pytest.raises(RuntimeError, match="fewer than 3 non-zero terms"):
        symbolic._moment_series(lambda degree: sp.Integer(0), 3)


def test_anisotropy_variance_formula_needs_spherically_symmetric_tokens():
    # Counterexample to the Var E_aniso formula under sign- and permutation-symmetric tokens only:
    # Rademacher tokens h ∈ {±s}^d have every |z_i| equal, so u = c·sign(h) and, for a diagonal
    # Q = C Cᵀ, u Q̃ uᵀ = c² tr Q̃ = 0: E_aniso is 0 for every draw (variance 0), while the formula
    # for spherically symmetric tokens gives Σ_j 2a⁴‖Q̃_tj‖²/(d(d+2)) > 0.
    d, lam, kappa = 4, 2.0, 10.0
    w_v = torch.eye(d, dtype=torch.float64)
    w_o = torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64))  # B = diag(2, 1, 1, 1)
    attention = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]], dtype=torch.float64)
    rng = np.random.default_rng(0)
    values = []
    for _ in range(64):
        h = torch.tensor(rng.choice([-0.5, 0.5], size=(2, d)), dtype=torch.float64)
        values.append(post_attention_error_terms(h, attention, w_v, w_o, 1, 2, lam, kappa)["anisotropy"])
    values = torch.stack(values)
    assert float(values.abs().max()) <= 64 * 2.0**-53  # identically zero up to rounding
    q = torch.diag(torch.tensor([4.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    q_tilde = q - torch.trace(q) / d * torch.eye(d, dtype=torch.float64)
    a = lam / kappa
    predicted = 2 * a**4 * float(q_tilde.square().sum()) / (d * (d + 2))  # token 0 at t = 0
    assert predicted > 1e-5


def test_a_polynomial_with_exactly_n_moment_terms_gives_all_of_them():
    """f(x) = x² − x⁴/6 is its own Maclaurin polynomial: E f(aZ) = a² − a⁴/2 has exactly two
    non-zero terms, and asking for two must return them (not search for a third). Reference:
    the Gaussian integral done by sympy; exact rational arithmetic, so equality is exact."""
    f = symbolic.x**2 - symbolic.x**4 / 6
    z = sp.Symbol("z", real=True)
    expected = sp.integrate(f.subs(symbolic.x, a * z) * sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    got = symbolic._moment_series(lambda degree: symbolic._truncate(f, degree), 2)
    assert sp.simplify(got - expected) == 0


def test_variance_decomposition_uses_the_documented_symbols():
    """A caller substitutes numbers by the documented names m1, c, lambda, kappa (positive):
    the reference M₂ = m₁ + c λ²/κ² must then be that number (exact rationals)."""
    m1, c, lam, kappa = sp.symbols("m1 c lambda kappa", positive=True)
    values = {m1: sp.Rational(1, 3), c: sp.Rational(5, 7), lam: 2, kappa: 10}
    reference = variance_decomposition().reference.subs(values)
    assert reference == sp.Rational(1, 3) + sp.Rational(5, 7) * 4 / 100
