"""The scheme table: every normaliser has its three faces, and a new scheme is one new row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bhyt_theory.numerics import schemes
from bhyt_theory.numerics.inputs import InputSpec
from bhyt_theory.numerics.estimators import estimator_parameters
from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import LayerNorm, RMSNorm, layer_norm
from bhyt_theory.numerics.schemes import NORMALISERS, SCHEME_TABLE, Scheme
from bhyt_theory.theory.bounds import NORM_OUTPUT_BOUNDS, depth_bound
from bhyt_theory.theory.meanfield import NORM_KERNELS, predict


def test_every_normaliser_has_a_module_a_mean_field_kernel_and_an_output_bound():
    assert set(NORMALISERS) == set(NORM_KERNELS) == set(NORM_OUTPUT_BOUNDS)
    config = StackConfig(width=8, heads=2)
    for name, record in NORMALISERS.items():
        module = record.build(config, 2.0, 0)
        assert hasattr(module, "argument") == record.has_argument, name


def test_every_scheme_row_names_known_normalisers():
    for name, row in SCHEME_TABLE.items():
        assert row.pre_norm in NORMALISERS and row.final_norm in NORMALISERS, name
        assert row.post_norm is None or row.post_norm in NORMALISERS, name


def test_a_row_that_estimates_m2_needs_a_bhyt_pre_norm():
    with pytest.raises(ValueError, match="estimates_m2"):
        Scheme("rmsnorm", estimates_m2=True)
    with pytest.raises(ValueError, match="pre_norm"):
        Scheme("groupnorm")


@pytest.mark.parametrize("role", ["pre_norm", "post_norm", "final_norm"])
def test_an_unknown_normaliser_is_refused_naming_its_role(role):
    fields = {"pre_norm": "rmsnorm", role: "groupnorm"}
    with pytest.raises(ValueError, match=f"^{role} 'groupnorm' is not one of"):
        Scheme(**fields)


@pytest.fixture
def preln_layernorm(monkeypatch):
    """A copy of the table with one added row: Pre-LN with LayerNorm everywhere."""
    table = {**SCHEME_TABLE, "preln_layernorm": Scheme("layernorm", final_norm="layernorm")}
    monkeypatch.setattr(schemes, "SCHEME_TABLE", table)
    return StackConfig(scheme="preln_layernorm", depth=3, width=32, heads=4, seq_len=8)


def test_an_added_row_runs_through_stack_mean_field_and_bounds(preln_layernorm):
    config = preln_layernorm
    stack = Stack(config, seed=0)
    assert isinstance(stack.blocks[0].norm_attn, LayerNorm) and isinstance(stack.final_norm, LayerNorm)
    assert isinstance(stack.blocks[0].norm_attn_out, torch.nn.Identity)
    x = InputSpec(batch=2, std=1.0).hidden_states(config, 0)
    # The stack is the table's formula, written out here from the norm function itself.
    h = x
    for block in stack.blocks:
        h = h + block.attn(layer_norm(h, block.norm_attn.gamma, block.norm_attn.beta))
        h = h + block.mlp(layer_norm(h, block.norm_mlp.gamma, block.norm_mlp.beta))
    with torch.no_grad():
        assert torch.equal(stack.residual(x), h.detach())
    # Mean field: LayerNorm's kernel is RMSNorm's (the feature mean is O(1/√d)), so at
    # init the prediction equals that of the rmsnorm row exactly.
    ours = predict(config, 1.0)
    reference = predict(config.replace(scheme="rmsnorm"), 1.0)
    np.testing.assert_array_equal(ours["mean_square"].to_numpy(), reference["mean_square"].to_numpy())
    # Bounds: every measured rms stays below the depth bound (float32 rounding: 1e-5 relative).
    table = depth_bound(stack, x)
    measured = [float(x.double().square().mean(-1).sqrt().max())]
    h = x
    with torch.no_grad():
        for block in stack.blocks:
            h = block(h)
            measured.append(h.double().square().mean(-1).sqrt())
    for layer in range(config.depth):
        bound = table[table.layer == layer]["bound"].to_numpy().reshape(2, 8)
        assert np.all(measured[layer + 1].numpy() <= bound * (1 + 1e-5)), layer
    assert (table["attention_bound_kind"] == "normalised").all()


def test_an_lns_style_divisor_on_a_bhyt_row_scales_the_norm_output(monkeypatch):
    # "bhytstar with the LNS divisor": one new row, no other code change.
    table = {**SCHEME_TABLE, "bhytstar_lns": Scheme("bhyt", branch_divisor=schemes.depth_divisor)}
    monkeypatch.setattr(schemes, "SCHEME_TABLE", table)
    config = StackConfig(scheme="bhytstar_lns", depth=3, width=32, heads=4, seq_len=8)
    stack = Stack(config, seed=1)
    assert [block.branch_scale for block in stack.blocks] == [1 / math.sqrt(l + 1) for l in range(3)]
    base = predict(config.replace(scheme="bhytstar"), 0.02**2)
    scaled = predict(config, 0.02**2)
    # Layer 0 has divisor 1: identical attention increment; later layers' increments
    # shrink by 1/l (the Gram of the norm output is divided by l).
    assert scaled["mean_square"].iloc[0] == base["mean_square"].iloc[0]
    assert (scaled["mean_square"].iloc[2:].to_numpy() < base["mean_square"].iloc[2:].to_numpy()).all()
    bounds = depth_bound(stack, InputSpec(batch=1, std=0.02).hidden_states(config, 1))
    base_bounds = depth_bound(Stack(config.replace(scheme="bhytstar"), seed=1),
                              InputSpec(batch=1, std=0.02).hidden_states(config, 1))
    ratio = bounds.groupby("layer")["attention_norm_bound"].first() / base_bounds.groupby("layer")["attention_norm_bound"].first()
    np.testing.assert_allclose(ratio.to_numpy(), [1 / math.sqrt(l + 1) for l in range(3)], rtol=1e-15)


def test_rmsnorm_final_norm_is_built_from_the_row():
    assert isinstance(Stack(StackConfig(scheme="bhyt", depth=1, width=16, heads=2, seq_len=4)).final_norm, RMSNorm)


@pytest.mark.parametrize("estimator", ["learnable_scale", "learnable_relative", "residual_aware"])
def test_a_row_added_at_run_time_with_a_learnable_estimator_builds_runs_and_trains(monkeypatch, estimator):
    """The block reads its row for whether it estimates M₂, so a new estimating row gets the learnable
    estimator's scalars (no KeyError 'beta'), a forward pass, and a training step that moves them."""
    from bhyt_theory.experiments.training.trainer import LanguageModel, TrainConfig, parameter_groups

    table = {**SCHEME_TABLE, "bhyt_copy": Scheme("bhyt", estimates_m2=True)}
    monkeypatch.setattr(schemes, "SCHEME_TABLE", table)
    assert "bhyt_copy" in schemes.estimating_schemes()
    config = StackConfig(scheme="bhyt_copy", depth=2, width=16, heads=2, seq_len=8, estimator=estimator)
    stack = Stack(config, seed=0)
    learnable = dict(stack.blocks[0].estimator_parameters)
    assert set(learnable) == set(estimator_parameters(estimator)) and learnable
    # at initialisation the new row computes what the built-in bhyt row computes (same code, same weights)
    x = InputSpec(batch=2, std=1.0).hidden_states(config, 0)
    with torch.no_grad():
        assert torch.equal(stack(x), Stack(config.replace(scheme="bhyt"), seed=0)(x))
    model = LanguageModel(TrainConfig(stack=config, seed=0))
    optimiser = torch.optim.AdamW(parameter_groups(model, 0.0), lr=1e-2)
    tokens = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    before = {name: p.detach().clone() for name, p in model.named_parameters() if "estimator_parameters" in name}
    loss = model.loss(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss) and before
    moved = [name for name, p in model.named_parameters() if name in before and not torch.equal(p, before[name])]
    assert moved, "the learnable estimator's scalars receive gradients and move"


@pytest.mark.parametrize("name", list(SCHEME_TABLE))
def test_every_field_of_every_row_reaches_the_model(name):
    # Each field of each row (read from the table at test time) against what a built stack does:
    # the pre-norm's module type, the output norm (or none), the divisor at three layers, the final
    # norm, and whether the MLP-side norm reads the c_attn buffer (estimates_m2).
    row = SCHEME_TABLE[name]
    config = StackConfig(scheme=name, depth=3, width=16, heads=2, seq_len=8, init_std=0.2, dtype="float64")
    stack = Stack(config, seed=0)
    pre_type = type(NORMALISERS[row.pre_norm].build(config, 2.0, 0))
    for layer, block in enumerate(stack.blocks):
        assert type(block.norm_attn) is pre_type and type(block.norm_mlp) is pre_type
        if row.post_norm is None:
            assert isinstance(block.norm_attn_out, torch.nn.Identity)
        else:
            assert type(block.norm_attn_out) is type(NORMALISERS[row.post_norm].build(config, 0.0, layer))
        assert block.branch_scale == 1.0 / row.branch_divisor(layer)
    assert type(stack.final_norm) is type(NORMALISERS[row.final_norm].build(config, 0.0, config.depth - 1))
    block = stack.blocks[0]
    h = torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        before = block(h)
        block.c_attn.mul_(4.0).add_(1.0)
        after = block(h)
    assert bool((before != after).any()) == row.estimates_m2


@pytest.mark.parametrize("name", list(SCHEME_TABLE))
def test_every_row_has_a_valid_depth_bound_and_a_finite_mean_field(name):
    # Every row of the table (read at test time): the per-token depth bound holds on a real stack at
    # large weights (init_std 0.3, input std 3, where the saturated routes matter), float64, with a
    # 64u relative slack for the rms sums; the mean field predicts a finite mean square everywhere.
    config = StackConfig(scheme=name, depth=3, width=16, heads=2, seq_len=8, init_std=0.3, dtype="float64")
    stack = Stack(config, seed=2)
    x = 3.0 * torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    table = depth_bound(stack, x, data_dependent=False)
    h = x
    with torch.no_grad():
        for block in stack.blocks:
            h = block(h)
            bound = table[table.layer == block.layer]["bound"].to_numpy().reshape(2, 8)
            assert np.all(h.square().mean(-1).sqrt().numpy() <= bound * (1 + 64 * 2.0**-53)), (name, block.layer)
    prediction = predict(config, 1.0)
    assert np.isfinite(prediction["mean_square"].to_numpy()).all()


def test_a_kappa_schedule_is_accepted_on_a_bhyt_row_and_refused_elsewhere():
    # The bhytc row is built at import, before any test runs, so the check is exercised here:
    # a bhyt row with a schedule must build, any other pre-norm must be refused with its name.
    assert Scheme("bhyt", kappa_schedule="quadratic").kappa_schedule == "quadratic"
    with pytest.raises(ValueError, match="^kappa_schedule needs pre_norm 'bhyt', got 'rmsnorm'$"):
        Scheme("rmsnorm", kappa_schedule="quadratic")


def test_an_unknown_scheme_name_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(ValueError, match=r"^scheme 'nope' is not one of \('rmsnorm', "):
        schemes.scheme_row("nope")


def test_a_bhyt_final_norm_row_takes_the_last_layers_kappa(monkeypatch):
    # A row whose final norm is BHyT: under a κ schedule the final norm has κ of the last layer
    # (0-based depth − 1), as the last-layer BHyT* of lam_final does.
    table = {**SCHEME_TABLE, "bhyt_final": Scheme("bhyt", final_norm="bhyt", kappa_schedule="quadratic")}
    monkeypatch.setattr(schemes, "SCHEME_TABLE", table)
    config = StackConfig(scheme="bhyt_final", depth=2, width=16, heads=2, seq_len=4, kappa=10.0)
    assert Stack(config, seed=0).final_norm.kappa == config.kappa_at(1) == 40.0
