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
    # S_t = Σ_j P_tj² ≥ 1/(t+1) for a causal row (Cauchy–Schwarz), equality iff uniform, on Dirichlet
    # rows; the peaked row's S_t in closed form (sympy). No package code: mathematics only.
    p = sp.symbols("p", nonnegative=True)
    symbolic_ok = all(
        sp.simplify(sum(((p if j == 0 else 0) + (1 - p) / (t + 1)) ** 2 for j in range(t + 1))
                    - (p**2 + (1 - p**2) / (t + 1))) == 0
        for t in range(8)
    )
    rng = np.random.default_rng(5)
    gaps = []
    for t in range(1, 40):
        for alpha in (0.05, 1.0, 50.0):
            row = rng.dirichlet(np.full(t + 1, alpha))
            gaps.append(float(np.square(row).sum()) - 1.0 / (t + 1))
    uniform_gap = max(abs(float(np.square(np.full(t + 1, 1.0 / (t + 1))).sum()) - 1 / (t + 1)) for t in range(40))
    ok = symbolic_ok and min(gaps) > 0 and uniform_gap <= 64 * U64
    return ok, (f"peaked row: S_t = p^2 + (1-p^2)/(t+1) (sympy, t < 8); "
                f"Dirichlet causal rows: min S_t - 1/(t+1) = {min(gaps):.2e} > 0; uniform: {uniform_gap:.1e}")


@check("position.peaked_row_sum_squares", kind="package", statements={"position_estimator.md": (3, 4)})
def _peaked_sum_squares() -> CheckResult:
    # trained_bounds.peaked_attention_sum_squares and increment_ratio against the rows built entry by
    # entry (mass p on token 0, 1 − p spread over 0 … t): S_t = Σ_j P_tj², r_pos = 1/((t+1) S_t),
    # r_ref = 1/(T S_t); at p = 1, r_pos = 1/(t+1) (statement 4's worst case). O(t) float64 sums: 8u.
    worst = 0.0
    length = 16
    for q in (0.0, 0.3, 0.77, 1.0):
        for t in range(length):
            row = np.full(t + 1, (1 - q) / (t + 1))
            row[0] += q
            sums = float(np.square(row).sum())
            worst = max(worst, abs(float(peaked_attention_sum_squares(q, t)) - sums) / sums)
            for base, expected in (("position", 1 / ((t + 1) * sums)), ("reference", 1 / (length * sums))):
                worst = max(worst, abs(float(increment_ratio(sums, t, length, base)) / expected - 1))
    one_hot = max(abs(float(increment_ratio(peaked_attention_sum_squares(1.0, t), t, length, "position")) * (t + 1) - 1)
                  for t in range(length))
    ok = worst <= 8 * U64 * length and one_hot <= 8 * U64
    return ok, (f"peaked rows built entry by entry vs peaked_attention_sum_squares and increment_ratio: max rel. "
                f"error {worst:.1e}; one-hot r_pos = 1/(t+1) to {one_hot:.1e}")


@check("position.unbiased_under_uniform_causal", kind="package", statements={"position_estimator.md": (1, 2)})
def _unbiased() -> CheckResult:
    # A real Block whose query and key weights are zero attends uniformly causally (equal logits), in
    # every head. For iid Gaussian tokens the measured batch-mean m(a_t) must equal the "position+tanh"
    # increment c T/(t+1) E tanh²(aZ): within 4.5 standard errors (Monte Carlo; 8192 sequences put one
    # se at ≈ 0.2 % of the increment at t = 0, less later) plus a relative 4a⁴/(d+2)/E tanh² (0.25 %: the
    # finite-d excess of E tanh² of an rms-standardised coordinate over E tanh²(aZ)). A 3 % error in the
    # tanh factor is ≥ 6.5 such units: it fails. Without (L) the plain "position" increment is the
    # corrected one times a²/E tanh²(aZ) (1.078 at a = 0.2), to the same tolerance (statement 2's bias).
    block = _block()
    with torch.no_grad():
        block.attn.q_proj.weight.zero_()
        block.attn.k_proj.weight.zero_()
        h, m1, u = _tokens(block, batch=8192, seed=1)
        a = block.attn(u)
        estimated = _increment(block, "position+tanh", h, m1, h + a)
        plain = _increment(block, "position", h, m1, h + a)
    ratio = float(block.norm_attn.lam.detach()) / block.norm_attn.kappa
    finite_d = 4 * ratio**4 / (block.config.width + 2) / tanh_square_moment(ratio)
    measured = mean_square(a)[..., 0]
    z = _z_scores(measured, estimated, finite_d)
    overstatement = ratio**2 / tanh_square_moment(ratio)
    z_plain = _z_scores(measured, plain / overstatement, finite_d)
    ok = float(z.max()) <= 4.5 and float(z_plain.max()) <= 4.5 and overstatement > 1.05
    return ok, (f"real Block, zero q/k weights (uniform causal, GQA 4/2 heads), 8192 iid Gaussian sequences: "
                f"max |measured m(a_t) - position+tanh increment| = {float(z.max()):.2f} (se + model) over T = 16; "
                f"plain position = {overstatement:.3f} x that ({float(z_plain.max()):.2f})")


@check("position.peaked_increment_ratio", kind="package", statements={'position_estimator.md': (1, 3, 4)})
def _peaked() -> CheckResult:
    # Forced peaked rows, one pattern shared by all heads, on the block's own value-output maps (a
    # from-scratch attention): the measured ratio (estimated increment)/m(a_t) must equal
    # trained_bounds.increment_ratio times the tanh-curvature factor, within Monte Carlo error (4.5 se,
    # 8192 sequences) plus the same finite-d term; and for t + 1 ≤ T the position-aware estimator is never
    # farther from the truth than the reference when both are tanh-corrected (statement 3 under (L)'s
    # stand-in: the tanh correction makes the common factor 1 up to the finite-d term).
    block = _block(seed=2)
    length = block.config.seq_len
    with torch.no_grad():
        h, m1, u = _tokens(block, batch=8192, seed=3)
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
    return ok, (f"forced peaked attention p = 0.3, 0.7, 1 (sink at token 0), 8192 iid Gaussian sequences: "
                f"measured increment vs estimate / increment_ratio: max {worst_z:.2f} (se + model); "
                f"position+tanh never farther from the measured increment than tanh (reference): {dominated}")
