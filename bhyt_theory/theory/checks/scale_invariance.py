"""Checks of proofs/scale_invariance.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ...numerics.norms import (
    bhyt,
    bhyt_argument,
    mean_square,
)
from ..symbolic import (
    bhyt_argument_symbolic,
    eps_sym,
    kappa_sym,
    lam_sym,
)
from .fixtures import adversarial_tokens, is_zero
from .registry import U64, CheckResult, check


@check("scale.argument_identity", kind="package", statements={'scale_invariance.md': (1,)})
def _scale_identity() -> CheckResult:
    d = 3
    h, z = bhyt_argument_symbolic(d)
    c = sp.Symbol("c", positive=True)
    scaled = z.subs({component: c * component for component in h}, simultaneous=True)
    m = sum(component**2 for component in h) / d
    target = lam_sym * h / (kappa_sym * sp.sqrt(m + eps_sym / c**2))
    ok = all(is_zero(p - q) for p, q in zip(scaled, target))
    at_zero = all(is_zero(p - q) for p, q in zip(scaled.subs(eps_sym, 0), z.subs(eps_sym, 0)))
    # norms.bhyt_argument(c h) against λ h/(κ sqrt(m(h) + ε/c²)) written from scratch, for c over
    # 1e-8..1e8 on Gaussian tokens of rms 1e-3..1 (where ε matters); float64, 16 d u relative.
    rng = np.random.default_rng(31)
    worst = 0.0
    for rms in (1e-3, 1e-2, 1.0):
        tokens = torch.tensor(rng.standard_normal((4, 32))) * rms
        m_numeric = tokens.square().mean(-1, keepdim=True)
        for factor in (1e-8, 1e-3, 0.5, 7.0, 1e8):
            expected = 2.0 * tokens / (10.0 * (m_numeric + 1e-6 / factor**2).sqrt())
            measured = bhyt_argument(tokens * factor, 2.0)
            worst = max(worst, float(((measured - expected).abs() / expected.abs().amax(-1, keepdim=True)).max()))
    numeric_ok = worst <= 16 * 32 * U64
    return ok and at_zero and numeric_ok, ("z(c h) = lambda h / (kappa sqrt(m + eps/c^2)); equals z(h) at eps = 0; "
                                          f"norms.bhyt_argument(c h) matches it for c = 1e-8..1e8: max rel. error {worst:.1e}")


@check("scale.invariance_at_zero_eps", kind="package", statements={'scale_invariance.md': (1,)})
def _scale_zero_eps() -> CheckResult:
    # float64 rounding of z and tanh: a few u relative; allow 16 u.
    worst = 0.0
    h = adversarial_tokens(48, seed=3)[:, :] / 1e20
    base = bhyt(h, 2.0, eps=0.0)
    for c in (1e-200, 1e-8, 0.5, 3.0, 1e8, 1e200):
        worst = max(worst, float(((bhyt(h * c, 2.0, eps=0.0) - base).abs()).max()))
    ok = worst <= 16 * U64
    return ok, f"eps = 0, c in 1e-200..1e200: max |BHyT(c h) - BHyT(h)| = {worst:.1e}"


@check("scale.epsilon_effect_bound", kind="package", statements={'scale_invariance.md': (2, 3)})
def _scale_epsilon_bound() -> CheckResult:
    # |Δu_i| ≤ |γ_i| |ρ − 1| |z_i| with ρ = sqrt((m+ε)/(m+ε/c²)); rounding slack 16u.
    rng = np.random.default_rng(11)
    gamma = torch.tensor(rng.normal(1.0, 0.5, 64))
    worst = 0.0
    for rms in (1e-4, 1e-3, 1e-2, 1.0):
        h = torch.tensor(rng.standard_normal((8, 64))) * rms
        m = mean_square(h)
        z = bhyt_argument(h, 2.0)
        for c in (0.1, 2.0, 1e3):
            rho = torch.sqrt((m + 1e-6) / (m + 1e-6 / c**2))
            change = (bhyt(h * c, 2.0, gamma=gamma) - bhyt(h, 2.0, gamma=gamma)).abs()
            bound = gamma.abs() * (rho - 1).abs() * z.abs()
            worst = max(worst, float(((change - bound) / (bound + 1e-300)).max()))
    ok = worst <= 16 * U64 * 1e3
    return ok, f"|Delta u_i| <= |gamma_i| |rho - 1| |z_i|: max relative excess {worst:.1e}"


@check("scale.epsilon_effect_numbers", kind="lemma")
def _scale_epsilon_numbers() -> CheckResult:
    eps = 1e-6

    def rho(m: float, c: float) -> float:
        return math.sqrt((m + eps) / (m + eps / c**2))

    # |ρ − 1| ≤ ε / (2 min(m, c² m)) on a grid; float64 evaluation of ρ errs by a few u.
    worst = max(
        abs(rho(m, c) - 1) / (eps / (2 * min(m, c * c * m)) + 8 * U64)
        for m in 10.0 ** np.arange(-12, 5) for c in 10.0 ** np.arange(-4.0, 4.5, 0.5)
    )
    large = abs(rho(1.0, 1e6) - 1)
    small = rho(1e-6, 1e6) - 1
    ok = worst <= 1 and large < 1e-6 and 0.4 < small < 0.42
    return ok, (f"|rho - 1| / (eps / (2 min(m(h), m(ch)))) <= {worst:.3f} on the grid; c -> inf: "
                f"rms(h) = 1: rho - 1 = {large:.1e} (negligible); rms(h) = 1e-3 (m = eps): {small:.3f} (sqrt 2 - 1, O(1))")
