"""CPU pretraining: corpus, training loop, resumption, divergence, logged
statistics, learnable M₂ estimators, post-training instruments and the CLI.

Every run here is tiny (width ≤ 16, depth ≤ 3, T 16): the properties tested —
bit-identical resumption, exactly zero staleness at a fresh c_attn, an identity
block costing exactly nothing when skipped — hold at any size.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from bhyt_theory.cli import main
from bhyt_theory.experiments.training.corpus import (
    Corpus,
    default_corpus_text,
    evaluation_batches,
    load_corpus,
    training_batch,
)
from bhyt_theory.experiments.training.analysis import (
    analyse,
    angular_distances,
    layer_skip_profile,
)
from bhyt_theory.experiments.training.trainer import LanguageModel, TrainConfig, train
from bhyt_theory.numerics.estimators import (
    ESTIMATORS,
    LEARNABLE_ESTIMATORS,
    EstimateInputs,
)
from bhyt_theory.numerics.model import Stack, StackConfig
from bhyt_theory.numerics.norms import mean_square

TINY = StackConfig(scheme="bhyt", depth=2, width=16, heads=2, seq_len=16)
U64 = 2.0**-53


def tiny(**changes) -> TrainConfig:
    """A run of a few seconds: 2 layers, width 16, T 16, batch 4."""
    base = TrainConfig(stack=TINY, steps=12, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=4,
                       eval_batches=2, stats_every=4, stats_batch=2, checkpoint_every=100)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.from_bytes(load_corpus())


# ---- corpus ---------------------------------------------------------------------------------------

def test_default_corpus_is_pythons_own_help_text():
    text = default_corpus_text()
    assert len(text) > 100_000 and "while" in text


def test_split_holds_out_the_last_tenth(corpus):
    data = load_corpus()
    assert len(corpus.train) + len(corpus.evaluation) == len(data)
    assert len(corpus.evaluation) == round(0.1 * len(data))
    assert bytes(corpus.evaluation[:50].tolist()) == data[len(corpus.train):len(corpus.train) + 50]


def test_training_batch_depends_on_seed_and_step_only(corpus):
    first = training_batch(corpus, 4, 16, seed=3, step=7)
    assert all(torch.equal(a, b) for a, b in zip(first, training_batch(corpus, 4, 16, seed=3, step=7)))
    assert not torch.equal(first[0], training_batch(corpus, 4, 16, seed=3, step=8)[0])
    tokens, targets = first
    assert torch.equal(tokens[:, 1:], targets[:, :-1])  # targets are the next bytes


def test_jsonl_corpus_reads_the_text_field(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(["héllo", "world"])))
    assert load_corpus(path, "body") == "héllo\n\nworld".encode()
    with pytest.raises(ValueError, match="text"):
        load_corpus(path)  # default field "text" is absent
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "missing.txt")


# ---- training ---------------------------------------------------------------------------------------

def test_training_lowers_held_out_loss_and_logs_statistics(corpus):
    config = tiny(steps=30)
    run = train(config, corpus=corpus, progress=False)
    log = run.log
    eval_loss = log[log["quantity"] == "eval_loss"].set_index("step")["value"]
    # Untrained, the byte model is near uniform (ln 256 = 5.55 nats); 30 steps at lr 1e-2 reach the
    # byte-frequency level (≈ 3.3) and below. A 1-nat margin is far outside batch noise (~0.05).
    assert eval_loss[0] > 5.0 and eval_loss[30] < eval_loss[0] - 1.0
    assert not run.record["diverged"] and run.record["steps_done"] == 30
    stats = log[log["step"] == 30]
    for quantity in ("mean_abs", "variance", "rms", "arg_rms", "saturated_fraction_1", "estimate_ratio",
                     "estimate_ratio_fresh", "attention_entropy", "c_attn", "param:norm_attn.lam"):
        assert quantity in set(stats["quantity"]), quantity
    assert set(log[log["quantity"] == "mean_abs"]["layer"]) == {-1, 0, 1}


def test_logged_magnitude_is_that_of_the_residual_stream(corpus):
    run = train(tiny(steps=4), corpus=corpus, progress=False)
    tokens = evaluation_batches(corpus, 2, 4, 16)[0][0][:2]
    with torch.no_grad():
        h = run.model.stack.residual(run.model.embed(tokens))
    logged = run.log.query("step == 4 and layer == 1 and sublayer == 'mlp' and quantity in ['mean_abs', 'variance']")
    logged = logged.set_index("quantity")["value"]
    # float32 activations, float64 reductions of 2·16·16 numbers: relative error ~1e-6.
    assert logged["mean_abs"] == pytest.approx(h.double().abs().mean().item(), rel=1e-5)
    assert logged["variance"] == pytest.approx(h.double().var(-1, unbiased=False).mean().item(), rel=1e-5)


def test_stale_term_is_zero_at_a_fresh_c_attn_and_not_after_updates(corpus):
    run = train(tiny(steps=8, stats_every=8, refresh_every=100), corpus=corpus, progress=False)
    ratios = run.log[run.log["quantity"].str.startswith("estimate_ratio")]
    table = ratios.pivot_table(index=["step", "layer", "band"], columns="quantity", values="value")
    at_init, later = table.loc[0], table.loc[8]
    # At step 0 the stored c_attn was computed from these very weights: identical numbers.
    assert (at_init["estimate_ratio"] == at_init["estimate_ratio_fresh"]).all()
    # After 8 updates without a refresh, W_V and W_O have moved and c_attn with them.
    assert (later["estimate_ratio"] != later["estimate_ratio_fresh"]).any()


def test_c_attn_is_refreshed_every_refresh_interval(corpus):
    config = tiny(steps=6, refresh_every=3, stats_every=1)
    run = train(config, corpus=corpus, progress=False)
    c_attn = run.log.query("quantity == 'c_attn' and layer == 0").set_index("step")["value"]
    # Logged before the refresh of its step: constant over steps 0–3, new at 4 (refreshed at 3).
    assert c_attn[0] == c_attn[1] == c_attn[2] == c_attn[3] != c_attn[4]
    block = run.model.stack.blocks[0]
    # No refresh at the end (step 6 is not trained): the final c_attn is the one from step 3 ...
    assert c_attn[4] == c_attn[6] == block.c_attn.item()
    # ... and the weights have moved since, so a fresh one differs.
    assert block.attn.variance_constant(config.stack.seq_len).item() != c_attn[6]


@pytest.mark.parametrize("scheme,estimator", [("bhyt", "learnable_scale"), ("dyt", "reference")])
def test_resumed_run_is_bit_identical(tmp_path, corpus, scheme, estimator):
    config = tiny(steps=8, stats_every=3, eval_every=3, refresh_every=3, scheme=scheme, estimator=estimator)
    straight = train(config, tmp_path / "straight", corpus, progress=False)
    train(config, tmp_path / "resumed", corpus, stop_after=4, progress=False)
    resumed = train(config, tmp_path / "resumed", corpus, progress=False)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(straight.log, resumed.log, check_exact=True)
    assert resumed.record["steps_done"] == 8


def test_checkpoint_of_another_configuration_is_refused(tmp_path, corpus):
    train(tiny(steps=2), tmp_path, corpus, progress=False)
    config = tiny(steps=2)
    other = tiny(steps=2, lr=2e-2)
    (tmp_path / "checkpoints" / f"{config.run_id}.pt").rename(tmp_path / "checkpoints" / f"{other.run_id}.pt")
    with pytest.raises(ValueError, match="another configuration"):
        train(other, tmp_path, corpus, progress=False)


def test_divergence_stops_the_run_and_records_where(corpus):
    # lr 30 without clipping: the first updates blow the weights up, and the loss jumps far past
    # 1.5 × its running minimum (or overflows) within a few steps.
    config = tiny(scheme="rmsnorm", steps=40, lr=30.0, grad_clip=0.0, warmup_steps=1)
    run = train(config, corpus=corpus, progress=False)
    record = run.record
    assert record["diverged"] and record["divergence_reason"] in ("spike", "non-finite")
    step = record["divergence_step"]
    assert 1 <= step < 40 and record["steps_done"] == step
    assert -1 <= record["divergence_layer"] < 2
    losses = run.log[run.log["quantity"] == "train_loss"].set_index("step")["value"]
    assert losses.index.max() == step
    # The rule, recomputed from the logged losses: non-finite, or the 5-step mean past 1.5 × the
    # smallest earlier 5-step mean.
    smoothed = losses.rolling(5).mean()
    assert not math.isfinite(losses[step]) or smoothed[step] > 1.5 * smoothed.loc[:step - 1].min()
    assert math.isnan(record["final_eval_loss"])


def test_trainable_scalars_move():
    config = tiny(steps=10, lr=3e-2, estimator="residual_aware")
    run = train(config, progress=False)
    block = run.model.stack.blocks[0]
    assert block.norm_attn.lam.item() != 2.0 and block.norm_mlp.lam.item() != 1.0
    assert block.estimator_parameters["alpha"].item() != 1.0


# ---- learnable estimators ---------------------------------------------------------------------------

def _inputs(m1, parameters, layer=0, exact_layers=0, after=None):
    m1 = torch.tensor(m1, dtype=torch.float64).reshape(1, -1, 1)
    return EstimateInputs(
        m1, torch.tensor(0.3, dtype=torch.float64), torch.tensor(2.0), 10.0, torch.ones(4),
        torch.zeros(1, m1.shape[1], 4) if after is None else after, torch.arange(m1.shape[1])[:, None].double(), 8,
        parameters, layer, exact_layers,
    )


def test_learnable_estimators_follow_their_formulas():
    increment = 0.3 * (2.0 / 10.0) ** 2  # c_attn λ²/κ²
    m1 = [1.0, 4.0]
    cases = {
        "learnable_scale": ({"beta": torch.tensor(0.5)}, [1 + 0.5 * increment, 4 + 0.5 * increment]),
        "learnable_relative": ({"eta": torch.tensor(0.25)}, [1.25, 5.0]),
        "residual_aware": ({"beta_c": torch.tensor(0.1), "alpha": torch.tensor(2.0)},
                           [1.1 + 2 * increment, 4.4 + 2 * increment]),
    }
    for name, (parameters, expected) in cases.items():
        got = ESTIMATORS[name](_inputs(m1, parameters)).flatten()
        # float32 parameters (0.1 is not exact in float32: rel 3e-8) times float64 statistics.
        assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-7, atol=0), name


def test_learnable_estimators_start_at_their_documented_values():
    reference = ESTIMATORS["reference"](_inputs([1.0, 4.0], {}))
    for name, initial in LEARNABLE_ESTIMATORS.items():
        parameters = {k: torch.tensor(v) for k, v in initial.items()}
        got = ESTIMATORS[name](_inputs([1.0, 4.0], parameters))
        expected = torch.tensor([1.0, 4.0], dtype=torch.float64)[None, :, None] if name == "learnable_relative" else reference
        assert torch.allclose(got, expected, rtol=4 * U64, atol=0), name


def test_hybrid_is_exact_below_exact_layers_and_reference_above():
    after = torch.full((1, 2, 4), 3.0)
    exact = ESTIMATORS["hybrid"](_inputs([1.0, 4.0], {}, layer=1, exact_layers=2, after=after))
    assert torch.equal(exact, mean_square(after))
    later = ESTIMATORS["hybrid"](_inputs([1.0, 4.0], {}, layer=2, exact_layers=2, after=after))
    assert torch.equal(later, ESTIMATORS["reference"](_inputs([1.0, 4.0], {})))


def test_learnable_estimator_parameters_receive_gradients():
    stack = Stack(TINY.replace(estimator="learnable_scale", dtype="float64"), seed=1)
    x = torch.randn(2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stack(x).square().sum().backward()
    assert all(block.estimator_parameters["beta"].grad.abs() > 0 for block in stack.blocks)


# ---- post-training instruments ------------------------------------------------------------------------

def test_skipping_an_identity_block_costs_nothing(corpus):
    model = LanguageModel(tiny(scheme="rmsnorm"))
    with torch.no_grad():  # zero output maps: block 1 adds nothing to the stream, h_out = h_in exactly
        model.stack.blocks[1].attn.o_proj.weight.zero_()
        model.stack.blocks[1].mlp.down_proj.weight.zero_()
    batches = evaluation_batches(corpus, 2, 4, 16)
    profile = layer_skip_profile(model, batches).set_index("layer")
    assert profile.loc[1, "loss_increase"] == 0.0
    assert profile.loc[0, "loss_increase"] != 0.0
    angles = angular_distances(model, batches[0][0]).set_index("layer")["angular_distance"]
    # cos(h, h) = 1 up to float64 rounding of the norms; arccos near 1 amplifies it to ~sqrt(2·1e-16)/π.
    assert angles[1] < 1e-7 and angles[0] > 1e-3


def test_analysis_tables_of_a_trained_run(corpus):
    config = tiny(steps=6)
    run = train(config, corpus=corpus, progress=False)
    tables = analyse(run, evaluation_batches(corpus, 2, 4, 16), stats_batch=2, jacobian_probes=2)
    assert set(tables) == {"layer_skip", "angular", "bound", "growth", "jacobian"}  # growth: empty at depth 2
    bound = tables["bound"]
    # The depth bound is a theorem: measured/bound ≤ 1 up to float32 rounding of the measured rms.
    assert (bound["ratio_max"] <= 1 + 1e-5).all()
    assert (tables["layer_skip"]["run_id"] == run.record["run_id"]).all()


# ---- command line --------------------------------------------------------------------------------

def test_train_command_writes_tables_summary_and_figures(tmp_path, capsys):
    out = tmp_path / "train"
    code = main(["train", "--schemes", "rmsnorm", "bhyt", "--seeds", "0", "1", "--depth", "2", "--width", "16",
                 "--heads", "2", "--seq-len", "16", "--steps", "6", "--batch-size", "4", "--eval-every", "3",
                 "--stats-every", "3", "--eval-batches", "1", "--warmup-steps", "1", "--workers", "1",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    for name in ("runs", "log", "summary", "layer_skip", "angular", "bound", "jacobian"):
        assert (out / f"{name}.csv").exists() and (out / f"{name}.parquet").exists(), name
    for name in ("loss_curves", "fig3_magnitudes", "layer_skip"):
        assert (out / "figures" / f"{name}.png").exists()
    summary = pd.read_csv(out / "summary.csv").set_index("label")
    assert list(summary.index) == ["rmsnorm", "bhyt"] and (summary["n_runs"] == 2).all()
    runs = pd.read_csv(out / "runs.csv")
    expected = runs.groupby("label")["final_eval_loss"].agg(["mean", "std"])
    assert np.allclose(summary.loc[expected.index, "eval_loss_mean"], expected["mean"], rtol=1e-12)
    assert summary.loc["rmsnorm", "mean_abs_baseline_ratio"] == 1.0
    assert "eval_loss_mean" in capsys.readouterr().out


def test_train_command_rejects_a_bad_option(tmp_path, capsys):
    assert main(["train", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "steps must be ≥ 1" in capsys.readouterr().err
