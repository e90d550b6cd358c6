"""Checks of the M₂ error decomposition (proofs/variance_approximation.md)."""

from __future__ import annotations

import sympy as sp
import torch

from ...numerics import gaussian
from ...numerics.norms import (
    mean_square,
)
from ..symbolic import (
    post_attention_error_terms,
    variance_decomposition,
)
from .fixtures import is_zero, small_block
from .registry import CheckResult, check


@check("variance.residual_expansion")
def _variance_residual() -> CheckResult:
    d = 3
    h = sp.Matrix(sp.symbols(f"h1:{d + 1}", real=True))
    attn = sp.Matrix(sp.symbols(f"a1:{d + 1}", real=True))
    lhs = sum(c**2 for c in h + attn) / d
    rhs = sum(c**2 for c in h) / d + sp.Rational(2, d) * h.dot(attn) + sum(c**2 for c in attn) / d
    return is_zero(sp.expand(lhs - rhs)), "m(h + a) = m(h) + (2/d)<h, a> + m(a)"


@check("variance.attention_square_split")
def _variance_square_split() -> CheckResult:
    # Symbolic T = 3 tokens, d = 2, one shared pattern: m(a_t) = diagonal + off-diagonal,
    # and the diagonal term of an isotropic u has mean m(u) ‖W‖_F² (E u_i u_k = m δ_ik).
    T, d = 3, 2
    p = sp.symbols("p1:4", real=True)
    u = [sp.Matrix(1, d, sp.symbols(f"u{j}_1:{d + 1}", real=True)) for j in range(T)]
    w = sp.Matrix(d, d, sp.symbols("w1:5", real=True))
    a_t = sum((p[j] * u[j] * w for j in range(T)), sp.zeros(1, d))
    m_a = (a_t * a_t.T)[0] / d
    diagonal = sum(p[j] ** 2 * (u[j] * w * w.T * u[j].T)[0] for j in range(T)) / d
    off = sum(p[j] * p[k] * (u[j] * w * w.T * u[k].T)[0] for j in range(T) for k in range(T) if j != k) / d
    split_ok = is_zero(sp.expand(m_a - diagonal - off))
    mu = sp.Symbol("mu", positive=True)
    variables = list(u[0])
    quadratic = sp.Poly(sp.expand((u[0] * w * w.T * u[0].T)[0]), *variables)
    # E u_i u_k = m δ_ik: only the u_i² monomials survive, each with weight m.
    expected = sum(
        coefficient * mu for powers, coefficient in quadratic.terms() if sorted(powers) == [0] * (d - 1) + [2]
    )
    isotropic_ok = is_zero(expected - mu * sum(c**2 for c in w))
    return split_ok and isotropic_ok, "m(a_t) = sum_j P_tj^2 (.)/d + sum_{j!=k} P_tj P_tk (.)/d; E u W W^T u^T = m(u) ||W||_F^2"


@check("variance.reduces_to_reference")
def _variance_reduces() -> CheckResult:
    decomposition = variance_decomposition()
    residual = decomposition.exact - decomposition.reference - sum(decomposition.error_terms.values())
    exact_ok = is_zero(residual)
    vanish = decomposition.exact.subs(decomposition.vanishing) - decomposition.reference
    terms_vanish = all(is_zero(term.subs(decomposition.vanishing)) for term in decomposition.error_terms.values())
    ok = exact_ok and is_zero(vanish) and terms_vanish
    return ok, f"exact = M2 + sum of {len(decomposition.error_terms)} error terms; all vanish and exact = M2 under the four assumptions"


@check("variance.decomposition_on_real_block")
def _variance_real_block() -> CheckResult:
    # q_proj = 0 makes the real Attention module uniform causal, P_tj = 1/t; then the
    # decomposition must sum to m(h + Attn(u)) computed by the module (float64, 1e-12 rel).
    config, block = small_block(scheme="bhytstar", width=16, heads=2, kv_heads=1, init_std=0.5, seed=6)
    T = config.seq_len
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.norm_attn.gamma.copy_(torch.linspace(0.5, 1.5, config.width, dtype=torch.float64))
    h = torch.randn(1, T, config.width, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 0.7
    with torch.no_grad():
        module_state = h + block.attn(block.norm_attn(h))
    causal = torch.tril(torch.ones(T, T, dtype=torch.float64))
    pattern = (causal / causal.sum(-1, keepdim=True)).expand(config.heads, T, T)
    terms = post_attention_error_terms(
        h[0], pattern, block.attn.v_proj.weight, block.attn.o_proj.weight, config.kv_heads, T,
        float(block.norm_attn.lam.detach()), config.kappa, block.norm_attn.gamma.detach(),
    )
    module_exact = mean_square(module_state)[0, :, 0]
    names = variance_decomposition().error_terms
    assembled = terms["reference"] + sum(terms[name] for name in names)
    position = torch.arange(1, T + 1, dtype=torch.float64)
    err_module = float(((terms["exact"] - module_exact).abs() / module_exact).max())
    err_sum = float(((assembled - terms["exact"]).abs() / terms["exact"]).max())
    err_conc = float((terms["concentration_sum"] * position - 1).abs().max())
    ok = err_module < 1e-12 and err_sum < 1e-12 and err_conc < 1e-12
    return ok, (f"real block, uniform causal attention: decomposition vs module m(h') rel. error {err_module:.1e}; "
                f"M2 + terms vs exact {err_sum:.1e}; S_t = 1/t to {err_conc:.1e}")


@check("variance.uniform_causal_concentration")
def _variance_uniform_causal() -> CheckResult:
    t, j, T = sp.symbols("t j T", positive=True, integer=True)
    concentration = sp.summation((1 / t) ** 2, (j, 1, t))
    ok = is_zero(concentration - 1 / t) and is_zero(concentration / (1 / T) - T / t)
    return ok, "uniform causal attention: sum_{j<=t} (1/t)^2 = 1/t, i.e. T/t times the assumed 1/T"


@check("variance.tanh_curvature_numbers")
def _variance_curvature() -> CheckResult:
    rows = []
    ok = True
    for value in (0.1, 0.2, 0.3):
        exact = float(gaussian.tanh_square_moment(value))
        ok &= exact < value**2
        rows.append(f"a={value}: E tanh^2 = {exact:.6g} = {exact / value**2:.4f} a^2")
    return ok, "; ".join(rows)
