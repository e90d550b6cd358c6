"""Checks of proofs/correlation_estimator.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch
from scipy import integrate

from ...numerics.inputs import InputSpec
from ...numerics.model import Stack, StackConfig, build_block
from ...numerics.norms import EPS, mean_square, value_output_maps
from ..meanfield import calibrate_correlation, correlation_factors
from .registry import CheckResult, check


def _block(seed: int = 0, width: int = 64, seq_len: int = 16):
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=4, kv_heads=2, seq_len=seq_len,
                         init_std=0.05, estimator="correlation", dtype="float64")
    return build_block(config, 0, seed)


def _exchangeable_tokens(batch: int, length: int, width: int, mu: float, rho: float, seed: int) -> torch.Tensor:
    """``u_j = sqrt(μ)(sqrt(ρ) g + sqrt(1−ρ) e_j)``: one shared Gaussian g per sequence and iid e_j,
    so ``E u_j ⊗ u_j' = μ(ρ + (1−ρ)δ_jj') I`` (isotropic, exchangeably correlated tokens)."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(batch, 1, width, generator=generator, dtype=torch.float64)
    own = torch.randn(batch, length, width, generator=generator, dtype=torch.float64)
    return math.sqrt(mu) * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * own)


def _exchangeable_factor(length: int, mu: float, rho: float, ratio: float) -> np.ndarray:
    """Statement 2's factor for uniform causal attention: ``T μ/a² (ρ + (1−ρ)/(t+1))``."""
    t = np.arange(length)
    return length * mu / ratio**2 * (rho + (1 - rho) / (t + 1))


@torch.no_grad()
def _increment(block, name: str, u: torch.Tensor) -> torch.Tensor:
    """The package's estimated increment ``M₂ − m₁`` of ``name`` at every position (m₁ = 0)."""
    zero = torch.zeros(u.shape[0], u.shape[1], 1, dtype=torch.float64)
    return block.estimate(u, zero, u, name).expand_as(zero)[0, :, 0]


def _z(samples: torch.Tensor, expected: torch.Tensor) -> float:
    """max |batch mean − expected| / standard error over positions."""
    se = samples.std(0) / math.sqrt(samples.shape[0])
    return float(((samples.mean(0) - expected).abs() / se).max())


@check("correlation.expected_increment_correlated_tokens", kind="package",
       statements={"correlation_estimator.md": (1, 2)})
def _expected_increment() -> CheckResult:
    # Statement 1 on a real Block: zero query/key weights make every head uniform causal; exchangeably
    # correlated isotropic tokens go straight into the module's attention. The measured batch mean of m(a_t)
    # over 4096 sequences must match the package's "correlation" increment with statement 2's factor
    # within 4.5 standard errors at every position; the position estimator (ρ ignored) must miss it.
    block = _block()
    length, width = block.config.seq_len, block.config.width
    ratio = float(block.norm_attn.lam.detach()) / block.norm_attn.kappa
    mu, rho = ratio**2, 0.3
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.attn.k_proj.weight.zero_()
        u = _exchangeable_tokens(4096, length, width, mu, rho, seed=1)
        measured = mean_square(block.attn(u))[..., 0]
    block.set_m2_factor(_exchangeable_factor(length, mu, rho, ratio))
    z_correlation = _z(measured, _increment(block, "correlation", u))
    z_position = _z(measured, _increment(block, "position", u))
    ok = z_correlation <= 4.5 and z_position > 10
    return ok, (f"real Block (uniform causal, GQA 4/2), tokens of correlation rho = 0.3, 4096 sequences: "
                f"max |measured m(a_t) - correlation increment| = {z_correlation:.2f} se; "
                f"position estimator {z_position:.0f} se off")


def _tanh_square_quad(a: float) -> float:
    """E tanh²(aZ) by adaptive quadrature of the Gaussian density (not the package's Gauss–Hermite rule)."""
    value, _ = integrate.quad(lambda z: math.tanh(a * z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                              -40, 40, epsabs=0, epsrel=1e-13, limit=200)
    return value


@check("correlation.first_layer_factor_closed_form", kind="package", statements={"correlation_estimator.md": (2,)})
def _first_layer() -> CheckResult:
    # Statement 2's uncorrelated case: iid inputs N(0, v) leave the first layer's tokens uncorrelated, so the
    # mean-field factor must be T/(t+1) · E tanh²(a'Z)/a², a'² = a² v/(v + ε) (the ε of the norm), with
    # E tanh² from scipy quadrature. Tolerance 1e-9 relative: the mean field's Gauss–Hermite diagonal is
    # accurate to ~1e-12, and the increment is formed as a difference of O(1)-conditioned float64 sums.
    worst = 0.0
    for lam, variance in ((2.0, 0.02**2), (3.0, 1e-6)):
        config = StackConfig(scheme="bhyt", depth=2, width=128, heads=4, seq_len=32, lam_in=lam,
                             estimator="correlation")
        ratio = lam / config.kappa
        moment = _tanh_square_quad(ratio * math.sqrt(variance / (variance + EPS)))
        expected = config.seq_len / (np.arange(config.seq_len) + 1) * moment / ratio**2
        factor = correlation_factors(config, variance)[0]
        worst = max(worst, float(np.max(np.abs(factor / expected - 1))))
    ok = worst <= 1e-9
    return ok, f"first-layer mean-field factor vs T/(t+1) E tanh^2(a'Z)/a^2 (scipy quad): max relative error {worst:.1e}"


@check("correlation.meanfield_factor_monte_carlo", kind="package", statements={"correlation_estimator.md": (2,)})
def _monte_carlo() -> CheckResult:
    # Statement 2 in a stack: the mean-field factors are the expected increment ratios over weight draws. For
    # 12 seeds × 4 sequences at width 256 (T 32, 4 layers), the measured ratio (m(h'_t) − m₁_t)/(c_attn λ₁²/κ²)
    # averaged over positions ≥ 8 of each layer must match the mean-field factor averaged alike within
    # 4.5 standard errors (across seeds) plus a 5 % model error (the mean field's O(1/d) terms and its
    # uniform-attention approximation). Layers ≥ 1, where tokens are correlated: the uncorrelated factor
    # T/(t+1) E tanh²/a² must fail the same test somewhere.
    config = StackConfig(scheme="bhyt", depth=4, width=256, heads=4, seq_len=32, estimator="correlation")
    inputs = InputSpec(batch=4, std=0.02)
    predicted = correlation_factors(config, inputs.std**2)
    measured = []
    with torch.no_grad():
        for seed in range(12):
            stack = calibrate_correlation(Stack(config, seed), inputs.std**2)
            h = inputs.hidden_states(config, seed)
            rows = []
            for block in stack.blocks:
                m1 = mean_square(h)
                u = block.norm_attn(h, mean_square=m1)
                increment = (mean_square(h + block.attn(u)) - m1).double().mean(0)[:, 0]
                reference = block.c_attn * (float(block.norm_attn.lam.detach()) / block.norm_attn.kappa) ** 2
                rows.append((increment / reference).numpy())
                h = block(h)
            measured.append(rows)
    measured = np.array(measured)[:, 1:, 8:].mean(-1)  # seeds × layers ≥ 1, positions ≥ 8
    mean, se = measured.mean(0), measured.std(0, ddof=1) / math.sqrt(len(measured))
    uncorrelated = config.seq_len / (np.arange(config.seq_len) + 1) * _tanh_square_quad(0.2) / 0.04
    model = predicted[1:, 8:].mean(-1)
    z = np.abs(mean - model) / (se + 0.05 * model)
    z_uncorrelated = np.abs(mean - uncorrelated[8:].mean()) / (se + 0.05 * uncorrelated[8:].mean())
    ok = z.max() <= 4.5 and z_uncorrelated.max() > 4.5
    return ok, (f"measured factor (layers 1-3, positions >= 8, 12 seeds): {np.round(mean, 2).tolist()}, mean field "
                f"{np.round(model, 2).tolist()}: max {z.max():.2f} (se + 5 %); uncorrelated factor "
                f"{uncorrelated[8:].mean():.2f} off by {z_uncorrelated.max():.1f}")


@check("correlation.peaked_ratio", kind="package", statements={"correlation_estimator.md": (3,)})
def _peaked() -> CheckResult:
    # Statement 3. Symbolic: for K = μ((1−ρ)I + ρ11ᵀ) and the row with mass p on token 0 and 1−p spread
    # uniformly over 0…t, (pKpᵀ) = μ(ρ + (1−ρ)S_t) and the ratio of the uniform-calibrated increment to
    # it is 1/(1 + (1−ρ)p²t/(1+ρt)) (sympy, t < 6). Monte Carlo: forced peaked rows on a real block's
    # value-output maps, exchangeable tokens (ρ = 0.3), 4096 sequences; the package's "correlation"
    # increment (factor calibrated for uniform causal attention) divided by the ratio must equal the
    # measured m(a_t) within 4.5 se, and the "position" increment divided by 1/((t+1)(ρ + (1−ρ)S_t)) likewise.
    p, rho, mu = sp.symbols("p rho mu", positive=True)
    symbolic_ok = True
    for t in range(6):
        row = [(p if j == 0 else 0) + (1 - p) / (t + 1) for j in range(t + 1)]
        quadratic = sum(row[i] * row[j] * mu * (rho + (1 - rho) * (1 if i == j else 0))
                        for i in range(t + 1) for j in range(t + 1))
        uniform = mu * (rho + (1 - rho) / sp.Integer(t + 1))
        symbolic_ok &= sp.simplify(uniform / quadratic - 1 / (1 + (1 - rho) * p**2 * t / (1 + rho * t))) == 0
    block = _block(seed=2)
    length, width = block.config.seq_len, block.config.width
    ratio = float(block.norm_attn.lam.detach()) / block.norm_attn.kappa
    mu_value, rho_value = ratio**2, 0.3  # μ = a²: linear tanh, so "position" assumes the right m(u)
    block.set_m2_factor(_exchangeable_factor(length, mu_value, rho_value, ratio))
    with torch.no_grad():
        u = _exchangeable_tokens(4096, length, width, mu_value, rho_value, seed=3)
        maps = value_output_maps(block.attn.v_proj.weight, block.attn.o_proj.weight, block.attn.heads,
                                 block.attn.kv_heads)
        values = torch.einsum("btd,kde->bkte", u, maps)
    t = torch.arange(length, dtype=torch.float64)
    worst = 0.0
    for mass in (0.3, 0.7, 1.0):
        rows = torch.tril(torch.ones(length, length, dtype=torch.float64)) * ((1 - mass) / (t + 1))[:, None]
        rows[:, 0] += mass
        measured = mean_square(torch.einsum("ts,bkse->bte", rows, values))[..., 0]
        sums = mass**2 + (1 - mass**2) / (t + 1)
        r_correlation = 1 / (1 + (1 - rho_value) * mass**2 * t / (1 + rho_value * t))
        r_position = 1 / ((t + 1) * (rho_value + (1 - rho_value) * sums))
        worst = max(worst, _z(measured, _increment(block, "correlation", u) / r_correlation),
                    _z(measured, _increment(block, "position", u) / r_position))
    ok = symbolic_ok and worst <= 4.5
    return ok, (f"ratio 1/(1 + (1-rho) p^2 t/(1 + rho t)) (sympy, t < 6): {symbolic_ok}; forced peaked rows "
                f"p = 0.3, 0.7, 1 with rho = 0.3, 4096 sequences: max {worst:.2f} se (correlation and position)")
