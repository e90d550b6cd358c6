"""Checks of proofs/jacobian.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ...numerics.norms import (
    KAPPA,
    bhyt_argument,
    mean_square,
)
from ..symbolic import (
    bhyt_argument_symbolic,
    bhyt_jacobian_closed_form,
    bhyt_jacobian_symbolic,
    eps_sym,
    kappa_sym,
    lam_sym,
)
from .registry import U64, CheckResult, check


@check("jacobian.symbolic_closed_form")
def _jacobian_symbolic() -> CheckResult:
    ok = all(
        (bhyt_jacobian_symbolic(d) - bhyt_jacobian_closed_form(d)).applyfunc(sp.simplify) == sp.zeros(d, d)
        for d in (2, 3, 4)
    )
    return ok, "sympy's dz/dh equals (lambda/(kappa sqrt(M+eps))) (I - h h^T/(d(M+eps))) for d = 2, 3, 4"


@check("jacobian.autograd_match")
def _jacobian_autograd() -> CheckResult:
    # float64 autograd vs the lambdified closed form: each entry carries O(d) roundings of
    # magnitude ≤ ‖J‖, so allow 64 d u ‖J‖_max.
    rng = np.random.default_rng(12)
    worst = 0.0
    for d in (2, 3, 4):
        h_symbols, _ = bhyt_argument_symbolic(d)
        closed = sp.lambdify([*h_symbols, lam_sym, kappa_sym, eps_sym], bhyt_jacobian_closed_form(d), "numpy")
        for _ in range(10):
            point = rng.standard_normal(d) * 10.0 ** rng.uniform(-2, 2)
            lam = float(rng.uniform(0.5, 4.0))
            auto = torch.autograd.functional.jacobian(
                lambda v: bhyt_argument(v, lam, KAPPA), torch.tensor(point, dtype=torch.float64)
            ).numpy()
            expected = np.array(closed(*point, lam, KAPPA, 1e-6), dtype=float)
            scale = np.abs(expected).max()
            worst = max(worst, float(np.abs(auto - expected).max() / (64 * d * U64 * scale)))
    ok = worst <= 1.0
    return ok, f"torch autograd of norms.bhyt_argument vs closed form, d = 2, 3, 4: max error / (64 d u ||J||) = {worst:.3f}"


@check("jacobian.eigenstructure")
def _jacobian_eigen() -> CheckResult:
    d = 3
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    m = sum(c**2 for c in h) / d
    projector = sp.eye(d) - h * h.T / (d * (m + eps_sym))
    along = (projector * h - eps_sym / (m + eps_sym) * h).applyfunc(sp.simplify)
    orthogonal = sp.Matrix([h[1], -h[0], 0])  # hᵀ v = 0
    across = (projector * orthogonal - orthogonal).applyfunc(sp.simplify)
    ok = along == sp.zeros(d, 1) and across == sp.zeros(d, 1)
    return ok, "(I - h h^T/(d(M+eps))) h = eps/(M+eps) h, and v for v orthogonal to h"


@check("jacobian.operator_norm_scaling")
def _jacobian_norm() -> CheckResult:
    # Spectral norm of the autograd Jacobian vs λ/(κ sqrt(m+ε)) over scales; 64 d u relative.
    d = 32
    base = torch.randn(d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    worst = 0.0
    for scale in (1e-3, 1.0, 1e3):
        h = base * scale
        jac = torch.autograd.functional.jacobian(lambda v: bhyt_argument(v, 2.0), h)
        norm = float(torch.linalg.matrix_norm(jac, ord=2))
        predicted = 2.0 / (KAPPA * math.sqrt(float(mean_square(h)) + 1e-6))
        worst = max(worst, abs(norm / predicted - 1))
    ok = worst <= 64 * d * U64
    return ok, f"||dz/dh||_2 = lambda/(kappa sqrt(m+eps)) at rms 1e-3..1e3: max relative error {worst:.1e}"
