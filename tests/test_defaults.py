"""Defaults that carry meaning, pinned: a changed default changes every result that relies on it.

Each value below is a modelling choice documented elsewhere (the paper's κ and λ, the reference
estimator, the matched decode order, the gradient study's inputs); none is copied from the code's output.
"""

from __future__ import annotations

import inspect

import pytest

from bhyt_theory.numerics import norms
from bhyt_theory.numerics.model import StackConfig
from bhyt_theory.theory import backward


def test_bhyt_constants_are_the_papers():
    # κ = 10 and ε = 1e-6 (arXiv 2601.09719); λ₁ = 2, λ₂ = 1 its initial values; DyT's α₀ = 0.5.
    assert norms.KAPPA == 10.0 and norms.EPS == 1e-6
    config = StackConfig()
    assert (config.lam_in, config.lam_post, config.kappa, config.dyt_alpha) == (2.0, 1.0, 10.0, 0.5)
    assert config.kappa_schedule == "constant" and config.lam_final == 0.0


def test_the_default_block_is_the_papers_method_at_the_reference_initialisation():
    config = StackConfig()
    assert config.scheme == "bhyt" and config.estimator == "reference"
    assert config.init_std == 0.02 and config.rope_theta == 10000.0


def test_decode_precomputation_defaults_to_the_exact_order():
    order = inspect.signature(norms.precompute_decode_constants).parameters["order"].default
    assert order == "matched" and norms.DECODE_ORDERS[0] == "matched"
    assert inspect.signature(norms.precompute_decode_constants).parameters["kappa"].default == norms.KAPPA


@pytest.mark.parametrize("function", [backward.mean_field_gradient_growth, backward.mean_field_gradient_gram])
def test_gradient_mean_field_defaults_to_the_measured_setting(function):
    # Inputs N(0, 0.02²) and uniform causal attention, as in the gradient study it is compared with.
    parameters = inspect.signature(function).parameters
    assert parameters["input_variance"].default == 0.02**2
    assert parameters["attention"].default == "uniform_causal"
