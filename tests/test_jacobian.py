"""Hutchinson estimate of a block's relative Jacobian deviation from the identity.

Checked against the exact Frobenius norm of the full Jacobian (within the
estimator's own, exactly computed standard error), against a linear map whose
deviation is known by hand, and on blocks that are exactly the identity.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from bhyt_theory.experiments.jacobian import (
    exact_jacobian_deviation,
    jacobian_deviation,
    jacobian_study,
)
from bhyt_theory.numerics.inputs import gaussian_inputs
from bhyt_theory.numerics.model import SCHEMES, Stack, StackConfig

TINY = dict(depth=2, width=8, heads=2, seq_len=4, init_std=0.3)


def hutchinson_standard_error(block: nn.Module, h: torch.Tensor, probes: int) -> float:
    """The exact standard error of ``JacobianDeviation.squared`` under Rademacher probes.

    One probe: ``Var ‖A v‖² = 2(‖AᵀA‖_F² − Σ_i (AᵀA)_ii²)`` for ``A = J_b − I`` (full
    Jacobian by reverse-mode autograd, float64). The per-probe batch mean over B
    independent sequences, scaled by ``1/(T d)``, has variance ``Σ_b Var_b / (B² (T d)²)``;
    the mean over P probes divides it by P.
    """
    block64 = copy.deepcopy(block).to(torch.float64)
    n = h.shape[1] * h.shape[2]
    variances = []
    for seq in h:
        a = torch.autograd.functional.jacobian(lambda x: block64(x[None])[0], seq.double()).reshape(n, n)
        gram = (a - torch.eye(n, dtype=torch.float64)).T @ (a - torch.eye(n, dtype=torch.float64))
        variances.append(2 * (gram.square().sum() - gram.diagonal().square().sum()).item())
    return math.sqrt(sum(variances) / (len(variances) ** 2 * n**2) / probes)


@pytest.mark.parametrize("scheme", ["rmsnorm", "periln", "dyt", "bhyt", "bhytstar"])
def test_hutchinson_estimate_matches_the_exact_frobenius_norm(scheme):
    block = Stack(StackConfig(scheme=scheme, **TINY), seed=1).blocks[1]
    h = gaussian_inputs(8, 2, 4, 1.0, seed=2)
    probes = 1024
    result = jacobian_deviation(block, h, probes=probes, seed=3, chunk=256)
    exact = exact_jacobian_deviation(block, h)
    se_squared = hutchinson_standard_error(block, h, probes)
    # 4 exact standard errors: a two-sided normal tail of 6e-5 (the mean of 1024 probes is normal).
    assert abs(result.squared - exact**2) <= 4 * se_squared
    # The reported standard error is itself estimated from 1024 samples: within 25 %.
    assert 0.75 * se_squared <= result.squared_se <= 1.25 * se_squared
    assert result.standard_error == pytest.approx(result.squared_se / (2 * result.deviation))


def test_exact_deviation_of_a_tokenwise_linear_residual_map_is_known_by_hand():
    # h ↦ h + h W per token: J − I is block-diagonal with T copies of Wᵀ, so
    # ‖J − I‖_F² = T ‖W‖_F² and δ = ‖W‖_F / sqrt(d).
    torch.manual_seed(0)
    linear = nn.Linear(6, 6, bias=False)

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, h):
            return h + self.linear(h)

    h = torch.randn(2, 3, 6)
    expected = linear.weight.detach().double().norm().item() / math.sqrt(6)
    assert exact_jacobian_deviation(Residual(), h) == pytest.approx(expected, rel=1e-12)
    result = jacobian_deviation(Residual(), h, probes=1024, seed=1, chunk=256)
    assert abs(result.squared - expected**2) <= 4 * hutchinson_standard_error(Residual(), h, 1024)  # 4 exact se


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "bhytline"])
def test_block_with_zero_sublayer_weights_is_exactly_the_identity(scheme):
    # init_std = 0 zeroes every linear weight: Attn(·) = 0 and MLP(·) = 0, so h_{l+1} = h_l
    # and J = I exactly, for every probe (Peri-LN's output norm then sees all-zero tokens,
    # whose finite derivative γ/√ε·I multiplies a zero sublayer Jacobian).
    block = Stack(StackConfig(scheme=scheme, depth=3, width=16, heads=2, seq_len=4, init_std=0.0), seed=0).blocks[2]
    h = gaussian_inputs(16, 2, 4, 1.0, seed=1)
    result = jacobian_deviation(block, h, probes=4)
    assert result.deviation == 0.0 and result.standard_error == 0.0
    assert exact_jacobian_deviation(block, h) == 0.0


def test_jacobian_study_reports_each_requested_layer_at_the_state_it_reaches():
    config = StackConfig(scheme="rmsnorm", depth=3, width=16, heads=2, seq_len=4)
    stack = Stack(config, seed=0)
    x = gaussian_inputs(16, 2, 4, 0.02, seed=1)
    table = jacobian_study(stack, x, layers=(0, 2), probes=4)
    assert list(table["layer"]) == [0, 2]
    h = stack.blocks[1](stack.blocks[0](x))
    direct = jacobian_deviation(stack.blocks[2], h, probes=4, seed=2)  # study seeds probes with seed + layer
    assert table["deviation"].iloc[1] == pytest.approx(direct.deviation, rel=1e-12)


def test_jacobian_command_prints_each_scheme_and_layer(capsys):
    from bhyt_theory.cli import main

    code = main(["jacobian", "--depth", "3", "--width", "16", "--heads", "2", "--seq-len", "4",
                 "--schemes", "rmsnorm", "bhyt", "--probes", "2", "--seeds", "0", "--batch", "1"])
    out = capsys.readouterr().out
    assert code == 0
    table = out.split("\n\n")[0]
    assert "rmsnorm" in table and "bhyt" in table and "±" in table
    assert table.splitlines()[0].split()[1:] == ["0", "1", "2"]  # layers 0, 1, 4, 16, L−1 that exist at L = 3


@pytest.mark.parametrize("layers", [(), (3,), (-1,)])
def test_jacobian_study_rejects_layers_outside_the_stack(layers):
    stack = Stack(StackConfig(scheme="rmsnorm", depth=3, width=16, heads=2, seq_len=4), seed=0)
    with pytest.raises(ValueError, match="non-empty subset"):
        jacobian_study(stack, gaussian_inputs(16, 1, 4, 0.02, seed=1), layers=layers)
