"""Checks of proofs/jacobian.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ...numerics.model import StackConfig, build_block
from ...numerics.norms import (
    KAPPA,
    bhyt_argument,
    mean_square,
)
from ...numerics.probes import norm_argument
from ..symbolic import (
    bhyt_argument_symbolic,
    bhyt_jacobian_closed_form,
    bhyt_jacobian_symbolic,
    eps_sym,
    kappa_sym,
    lam_sym,
)
from .fixtures import is_zero
from .registry import U64, CheckResult, check


@check("jacobian.symbolic_closed_form", kind="package", statements={'jacobian.md': (1,)})
def _jacobian_symbolic() -> CheckResult:
    ok = all(
        (bhyt_jacobian_symbolic(d) - bhyt_jacobian_closed_form(d)).applyfunc(sp.simplify) == sp.zeros(d, d)
        for d in (2, 3, 4)
    )
    return ok, "sympy's dz/dh equals (lambda/(kappa sqrt(M+eps))) (I - h h^T/(d(M+eps))) for d = 2, 3, 4"


@check("jacobian.autograd_match", kind="package", statements={'jacobian.md': (1,)})
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


@check("jacobian.eigenstructure", kind="lemma")
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


@check("jacobian.operator_norm_scaling", kind="package", statements={'jacobian.md': (2,)})
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


@check("jacobian.one_dimensional_case", kind="package", statements={'jacobian.md': (3,)})
def _jacobian_one_dimensional() -> CheckResult:
    # d = 1: sympy's derivative of λh/(κ sqrt(h² + ε)) against the closed form λε/(κ(h²+ε)^{3/2}),
    # and torch autograd of norms.bhyt_argument at d = 1 against it (float64: 64 u relative).
    h = sp.Symbol("h", real=True)
    derivative = sp.diff(lam_sym * h / (kappa_sym * sp.sqrt(h**2 + eps_sym)), h)
    symbolic_ok = is_zero(derivative - lam_sym * eps_sym / (kappa_sym * (h**2 + eps_sym) ** sp.Rational(3, 2)))
    worst, eps = 0.0, 1e-6
    for value in (0.0, 1e-4, 1e-3, 1.0, -7.0):
        point = torch.tensor([value], dtype=torch.float64)
        auto = float(torch.autograd.functional.jacobian(lambda v: bhyt_argument(v, 2.0), point)[0, 0])
        closed = 2.0 * eps / (KAPPA * (value**2 + eps) ** 1.5)
        worst = max(worst, abs(auto / closed - 1))
    # The d ≥ 2 value λ/(κ sqrt(M+ε)) is wrong at d = 1: at h = 1 it overstates the slope 1e6-fold.
    at_one = float(torch.autograd.functional.jacobian(lambda v: bhyt_argument(v, 2.0),
                                                      torch.ones(1, dtype=torch.float64))[0, 0])
    overstatement = (2.0 / (KAPPA * math.sqrt(1 + eps))) / at_one
    ok = symbolic_ok and worst <= 64 * U64 and overstatement > 1e5
    return ok, (f"d = 1: dz/dh = lambda eps/(kappa (h^2+eps)^(3/2)) (sympy; autograd max rel. error {worst:.1e}); "
                f"the d >= 2 norm lambda/(kappa sqrt(M+eps)) would overstate it {overstatement:.3g}-fold at h = 1")


class _ArgumentKeeper:
    """A ``probes.Probe`` that keeps the block's post-attention state and MLP-side tanh
    argument *with* their autograd graph (``RecordingProbe`` detaches them)."""

    def __init__(self) -> None:
        self.state_after_attention: torch.Tensor | None = None
        self.estimate: torch.Tensor | None = None
        self.mlp_argument: torch.Tensor | None = None

    def state(self, layer: int, sublayer: str, h: torch.Tensor, estimate: torch.Tensor | None = None) -> None:
        if sublayer == "attn":
            self.state_after_attention, self.estimate = h, estimate

    def argument(self, layer: int, sublayer: str, norm: torch.nn.Module, h: torch.Tensor, **statistic: torch.Tensor) -> None:
        if sublayer == "mlp":
            self.mlp_argument = norm_argument(norm, h, **statistic)


def _second_norm_jacobians(block, h: torch.Tensor):
    """Autograd Jacobians (float64) of the real block's h' and z₂ with respect to the block input."""
    def run(v: torch.Tensor) -> _ArgumentKeeper:
        keeper = _ArgumentKeeper()
        block(v[None], keeper)
        return keeper

    jac_state = torch.autograd.functional.jacobian(lambda v: run(v).state_after_attention[0], h)
    jac_argument = torch.autograd.functional.jacobian(lambda v: run(v).mlp_argument[0], h)
    with torch.no_grad():
        keeper = run(h)
    return jac_state, jac_argument, keeper.state_after_attention[0], keeper.estimate[0]


@check("jacobian.second_norm_full", kind="package", statements={'jacobian.md': (4,)})
def _jacobian_second_norm_full() -> CheckResult:
    # The full Jacobian of bhyt's second-norm argument z₂,t with respect to the block input h_j:
    #   (λ₂/(κ₂ sqrt(M₂,t+ε))) [∂h'_t/∂h_j − δ_tj h'_t h_tᵀ/(d (M₂,t+ε))],
    # checked against torch autograd of the real Block.forward (reference estimator, GQA,
    # non-constant κ schedule, γ₁ ≠ 1), with ∂h'/∂h from autograd of the same forward.
    # float64; each entry is a sum of O(T d) products of size ≤ ‖J‖_max: allow 64 T d u ‖J‖_max.
    config = StackConfig(scheme="bhyt", depth=2, width=16, heads=4, kv_heads=2, mlp_width=24, seq_len=8,
                         init_std=0.4, kappa_schedule="decay", dtype="float64")
    block = build_block(config, 1, seed=13)
    with torch.no_grad():
        block.norm_attn.gamma.copy_(torch.linspace(0.5, 1.5, config.width, dtype=torch.float64))
    length, d = 6, config.width
    h = torch.randn(length, d, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    jac_state, jac_argument, state, estimate = _second_norm_jacobians(block, h)
    lam2, kappa2, eps = float(block.norm_mlp.lam.detach()), block.norm_mlp.kappa, block.norm_mlp.eps
    scale = lam2 / (kappa2 * torch.sqrt(estimate + eps))  # (T, 1)
    rank_one = torch.zeros_like(jac_state)
    for t in range(length):
        rank_one[t, :, t, :] = torch.outer(state[t], h[t]) / (d * (estimate[t] + eps))
    predicted = scale[:, :, None, None] * (jac_state - rank_one)
    without_rank_one = scale[:, :, None, None] * jac_state
    size = float(jac_argument.abs().max())
    error = float((jac_argument - predicted).abs().max()) / (64 * length * d * U64 * size)
    omitted = float((jac_argument - without_rank_one).abs().max()) / size
    # M₂ = m(h_t) + c_attn λ₁²/κ₁² with the layer's scheduled κ₁ (decay: κ/√2 at layer 1), from scratch;
    # float64 sums of d squares: 8 d u relative.
    kappa_layer = config.kappa / math.sqrt(2)
    from_scratch = h.square().mean(-1, keepdim=True) + float(block.c_attn) * (config.lam_in / kappa_layer) ** 2
    estimate_ok = bool(((estimate - from_scratch).abs() <= 8 * d * U64 * from_scratch).all())
    ok = error <= 1.0 and omitted > 0.1 and estimate_ok
    return ok, (f"real bhyt block (d = 16, T = 6, GQA 4/2, kappa decay): autograd vs closed form incl. the rank-one "
                f"term, max error / (64 T d u ||J||) = {error:.3f}; dropping the rank-one term errs by "
                f"{omitted:.3f} ||J||_max")
