"""Checks of proofs/position_estimator.md."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ...numerics.gaussian import tanh_square_moment
from ...numerics.model import StackConfig, build_block
from ...numerics.norms import mean_square, value_output_maps
from ..trained_bounds import (
    increment_ratio,
    peaked_attention_sum_squares,
)
from .registry import U64, CheckResult, check


def _block(width: int = 64, heads: int = 4, kv_heads: int = 2, seq_len: int = 16, seed: int = 0):
    config = StackConfig(scheme="bhyt", depth=1, width=width, heads=heads, kv_heads=kv_heads, seq_len=seq_len,
                         init_std=0.05, dtype="float64")
    return build_block(config, 0, seed)


def _tokens(block, batch: int, seed: int):
    """iid Gaussian sequences (uncorrelated, isotropic tokens) and their exact-M BHyT outputs."""
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, block.config.seq_len, block.config.width, generator=generator, dtype=torch.float64) * 0.1
    m1 = mean_square(h)
    return h, m1, block.norm_attn(h, mean_square=m1)


@torch.no_grad()
def _increment(block, name: str, h, m1, h_after):
    return (block.estimate(h, m1, h_after, name) - m1).expand_as(m1)[..., 0].mean(0)


def _z_scores(samples: torch.Tensor, expected: torch.Tensor, relative_model: float) -> torch.Tensor:
    """|batch mean − expected| in units of (standard error + a relative model error)."""
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    return (mean - expected).abs() / (se + relative_model * expected.abs())


@check("position.sum_squares_minimum", kind="lemma")
def _sum_squares() -> CheckResult:
    # S_t = Σ_j P_tj² ≥ 1/(t+1) for a causal row (Cauchy–Schwarz), equality iff uniform; the peaked
    # row's S_t in closed form (sympy) against trained_bounds.peaked_attention_sum_squares.
    p = sp.symbols("p", nonnegative=True)
    symbolic_ok = all(
        sp.simplify(sum(((p if j == 0 else 0) + (1 - p) / (t + 1)) ** 2 for j in range(t + 1))
                    - (p**2 + (1 - p**2) / (t + 1))) == 0
        for t in range(8)
    )
    numeric = max(abs(peaked_attention_sum_squares(q, t) - float(sum(((q if j == 0 else 0) + (1 - q) / (t + 1)) ** 2
                                                                      for j in range(t + 1))))
                  for q in (0.0, 0.3, 1.0) for t in range(8))
    rng = np.random.default_rng(5)
    gaps = []
    for t in range(1, 40):
        for alpha in (0.05, 1.0, 50.0):
            row = rng.dirichlet(np.full(t + 1, alpha))
            gaps.append(float(np.square(row).sum()) - 1.0 / (t + 1))
    uniform_gap = max(abs(float(np.square(np.full(t + 1, 1.0 / (t + 1))).sum()) - 1 / (t + 1)) for t in range(40))
    ok = symbolic_ok and numeric <= 8 * U64 and min(gaps) > 0 and uniform_gap <= 64 * U64
    return ok, (f"peaked row: S_t = p^2 + (1-p^2)/(t+1) (sympy, t < 8; package error {numeric:.1e}); "
                f"Dirichlet causal rows: min S_t - 1/(t+1) = {min(gaps):.2e} > 0; uniform: {uniform_gap:.1e}")


@check("position.unbiased_under_uniform_causal", kind="package", statements={'position_estimator.md': (1, 2)})
def _unbiased() -> CheckResult:
    # A real Block whose query and key weights are zero attends uniformly causally (equal logits), in
    # every head. For iid Gaussian tokens the measured batch-mean m(a_t) must equal the "position+tanh"
    # increment c T/(t+1) E tanh²(aZ): within 4.5 standard errors (Monte Carlo) plus a relative 4a⁴/(d+2)/a²
    # (the finite-d excess of E tanh² of an rms-standardised coordinate over E tanh²(aZ)).
    block = _block()
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.attn.k_proj.weight.zero_()
        h, m1, u = _tokens(block, batch=2048, seed=1)
        a = block.attn(u)
        estimated = _increment(block, "position+tanh", h, m1, h + a)
    ratio = float(block.norm_attn.lam.detach()) / block.norm_attn.kappa
    finite_d = 4 * ratio**4 / (block.config.width + 2) / tanh_square_moment(ratio)
    z = _z_scores(mean_square(a)[..., 0], estimated, finite_d)
    ok = float(z.max()) <= 4.5
    return ok, (f"real Block, zero q/k weights (uniform causal, GQA 4/2 heads), 2048 iid Gaussian sequences: "
                f"max |measured m(a_t) - position+tanh increment| = {float(z.max()):.2f} (se + model) over T = 16")


@check("position.peaked_increment_ratio", kind="package", statements={'position_estimator.md': (1, 3, 4)})
def _peaked() -> CheckResult:
    # Forced peaked rows, all heads, on the block's own value-output maps (a from-scratch attention):
    # the measured ratio (estimated increment)/m(a_t) must equal trained_bounds.increment_ratio times the
    # tanh-curvature factor, within Monte Carlo error (4.5 se) plus the same finite-d term; and for
    # t + 1 ≤ T the position-aware estimator is never farther from 1 than the reference, both tanh-corrected.
    block = _block(seed=2)
    length = block.config.seq_len
    with torch.no_grad():
        h, m1, u = _tokens(block, batch=2048, seed=3)
        maps = value_output_maps(block.attn.v_proj.weight, block.attn.o_proj.weight, block.attn.heads,
                                 block.attn.kv_heads)
        values = torch.einsum("btd,kde->bkte", u, maps)
    ratio = float(block.norm_attn.lam.detach()) / block.norm_attn.kappa
    finite_d = 4 * ratio**4 / (block.config.width + 2) / tanh_square_moment(ratio)
    positions = np.arange(length)
    worst_z, dominated = 0.0, True
    for p in (0.3, 0.7, 1.0):
        t = torch.arange(length, dtype=torch.float64)
        rows = torch.tril(torch.ones(length, length, dtype=torch.float64)) * ((1 - p) / (t + 1))[:, None]
        rows[:, 0] += p
        a = torch.einsum("ts,bkse->bte", rows, values)
        measured = mean_square(a)[..., 0]
        sums = peaked_attention_sum_squares(p, positions)
        errors = {}
        for name, base in (("position+tanh", "position"), ("tanh", "reference")):
            estimated = _increment(block, name, h, m1, h + a)
            expected = estimated / torch.as_tensor(increment_ratio(sums, positions, length, base))
            worst_z = max(worst_z, float(_z_scores(measured, expected, finite_d).max()))
            errors[name] = np.abs(estimated.numpy() / measured.mean(0).numpy() - 1)
        relative_se = (measured.std(0) / math.sqrt(measured.shape[0]) / measured.mean(0)).numpy()
        dominated &= bool(np.all(errors["position+tanh"] <= errors["tanh"] + 4.5 * relative_se + finite_d))
    ok = worst_z <= 4.5 and dominated
    return ok, (f"forced peaked attention p = 0.3, 0.7, 1 (sink at token 0), 2048 iid Gaussian sequences: "
                f"measured increment vs estimate / increment_ratio: max {worst_z:.2f} (se + model); "
                f"position+tanh never farther from the measured increment than tanh (reference): {dominated}")
