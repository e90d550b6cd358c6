"""The probe interface (numerics.probes.Probe) and the one saturated fraction."""

from __future__ import annotations

import numpy as np
import torch

from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import DyT, RMSNorm
from bhyt_theory.numerics.probes import (
    NO_PROBE,
    SATURATION_THRESHOLDS,
    NullProbe,
    Probe,
    RecordingProbe,
    TraceProbe,
    argument_statistics,
    norm_argument,
    saturated_fraction,
    state_statistics,
)


def test_every_probe_of_the_package_conforms_to_the_protocol():
    for probe in (TraceProbe(), RecordingProbe(), NullProbe(), NO_PROBE):
        assert isinstance(probe, Probe), type(probe)


def test_the_no_op_probe_never_asks_the_norm_for_its_argument():
    class Watched(DyT):
        calls = 0

        def argument(self, h):
            Watched.calls += 1
            return super().argument(h)

    stack = Stack(StackConfig(scheme="dyt", depth=2, width=16, heads=2, seq_len=4), seed=0)
    for block in stack.blocks:
        block.norm_attn = Watched(16)
    x = torch.randn(1, 4, 16)
    stack.residual(x)
    assert Watched.calls == 0
    stack.residual(x, RecordingProbe())
    assert Watched.calls == 2


def test_norm_argument_is_none_without_a_tanh_argument():
    assert norm_argument(RMSNorm(4), torch.ones(1, 4)) is None
    assert torch.equal(norm_argument(DyT(4, 0.5), torch.ones(1, 4)), torch.full((1, 4), 0.5))


def test_saturated_fraction_counts_coordinates_at_or_above_the_threshold():
    z = torch.tensor([[0.0, 1.0, -1.0, 0.999, 2.5], [3.0, -3.0, 0.0, 0.0, 0.0]])
    assert torch.equal(saturated_fraction(z, 1.0), torch.tensor([3 / 5, 2 / 5], dtype=torch.float64))


def test_trace_statistics_equal_float64_within_their_error_model():
    # Per-token reductions run in float32: pairwise sums, relative error at most
    # about log2(d)·2⁻²⁴ (probes.state_statistics); 4× that is allowed. The maximum
    # and the saturation counts are exact in any dtype; their batch means are
    # float64 means of the same numbers (a few ulp).
    generator = torch.Generator().manual_seed(0)
    d = 256
    h = torch.randn(3, 5, d, generator=generator) * 3 + 0.2
    h64 = h.double().numpy()
    rtol = 4 * np.log2(d) * 2.0**-24
    states = state_statistics(h)
    np.testing.assert_allclose(states["mean_square"], (h64**2).mean(-1).mean(0), rtol=rtol)
    np.testing.assert_allclose(states["mean_abs"], np.abs(h64).mean(-1).mean(0), rtol=rtol)
    np.testing.assert_allclose(states["variance"], h64.var(-1).mean(0), rtol=rtol)
    z = h * 0.7
    z64 = z.double().numpy()
    arguments = argument_statistics(z)
    np.testing.assert_allclose(arguments["arg_rms"], np.sqrt((z64**2).mean(-1).mean(0)), rtol=rtol)
    np.testing.assert_array_equal(arguments["arg_max_abs"], np.abs(z64).max(-1).max(0))
    for t in SATURATION_THRESHOLDS:
        np.testing.assert_allclose(arguments[f"saturated_fraction_{t:g}"], (np.abs(z64) >= t).mean(-1).mean(0),
                                   rtol=1e-15)
