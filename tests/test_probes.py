"""The probe interface (numerics.probes.Probe) and the one saturated fraction."""

from __future__ import annotations

import torch

from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import DyT, RMSNorm
from bhyt_theory.numerics.probes import (
    NO_PROBE,
    NullProbe,
    Probe,
    RecordingProbe,
    TraceProbe,
    norm_argument,
    saturated_fraction,
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
