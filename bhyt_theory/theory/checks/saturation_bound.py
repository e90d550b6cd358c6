"""Checks of proofs/saturation_bound.md."""

from __future__ import annotations

import torch

from ...numerics.norms import (
    KAPPA,
    bhyt_argument,
    mean_square,
)
from ...numerics.probes import saturated_fraction
from ..bounds import saturated_fraction_bound
from .fixtures import adversarial_tokens
from .registry import U64, CheckResult, check


@check("saturation.markov_step", kind="package", statements={'saturation_bound.md': (1,)})
def _saturation_markov() -> CheckResult:
    # #{i : z_i² ≥ t²} · t² ≤ Σ z_i²: checked with exact counts on adversarial tokens.
    worst = 0.0
    for d in (5, 64, 1000):
        h = adversarial_tokens(d, seed=100 + d)
        for lam, t in ((2.0, 0.05), (2.0, 0.2), (3.0, 1.0)):
            z = bhyt_argument(h, lam, KAPPA)
            fraction = saturated_fraction(z, t)
            bound = saturated_fraction_bound(lam, KAPPA, t)
            worst = max(worst, float((fraction / bound).max()))
    ok = worst <= 1.0
    return ok, f"adversarial tokens: max saturated fraction / min(1, (lambda/(kappa t))^2) = {worst:.4f}"


@check("saturation.spike_tightness", kind="package", statements={'saturation_bound.md': (1,)})
def _saturation_spikes() -> CheckResult:
    # k = d (λ/(κt))² equal spikes give z = t exactly at ε = 0 (up to rounding, 8u).
    d, lam, t = 100, 2.0, 1.0
    k = round(d * (lam / (KAPPA * t)) ** 2)
    h = torch.zeros(1, d, dtype=torch.float64)
    h[0, :k] = 5.0
    z = bhyt_argument(h, lam, KAPPA, eps=0.0)
    spike = float(z[0, 0])
    fraction = float(saturated_fraction(z, t * (1 - 8 * U64)))
    bound = saturated_fraction_bound(lam, KAPPA, t)
    ok = abs(spike - t) <= 8 * U64 and fraction == k / d and abs(k / d - bound) <= 4 * U64
    return ok, f"{k} equal spikes in d = {d}: z_spike = {spike!r}, fraction {fraction} = bound {bound}"


@check("saturation.estimate_scaling", kind="package", statements={'saturation_bound.md': (1,)})
def _saturation_estimate() -> CheckResult:
    # Under an estimate M the bound becomes min(1, (λ/(κt))² m(h)/M).
    worst = 0.0
    for d in (16, 256):
        h = adversarial_tokens(d, seed=200 + d)
        m = mean_square(h)
        for factor in (0.01, 0.3, 1.0, 5.0):
            estimate = m * factor
            for t in (0.1, 0.5, 2.0):
                z = bhyt_argument(h, 2.0, KAPPA, mean_square=estimate)
                fraction = saturated_fraction(z, t)
                bound = saturated_fraction_bound(2.0, KAPPA, t, (m / estimate)[..., 0].numpy())
                worst = max(worst, float((fraction.numpy() / bound).max()))
    ok = worst <= 1.0
    return ok, f"estimated M = (0.01..5) m(h): max fraction / min(1, (lambda/(kappa t))^2 m/M) = {worst:.4f}"
