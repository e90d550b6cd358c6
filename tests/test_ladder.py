"""The trained regime across scale: the stdlib corpus and its split by file, the
authors' recipes as built models, paired seeds, the ladder's statistics against
scipy, and the ladder's quick run end to end."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from bhyt_theory.cli import main

from bhyt_theory.experiments.training.corpus import (
    STDLIB_EXCLUDED_FOLDERS,
    Corpus,
    build_corpus,
    held_out,
    stdlib_files,
    stdlib_split,
    training_batch,
)
from bhyt_theory.experiments.training.ladder import (
    LADDERS,
    TASK_OVERHEAD_S,
    Rung,
    best_rates,
    extension_rates,
    gap_trend,
    ladder_cost,
    ladder_summary,
    ladder_trends,
    measure_step_seconds,
    paired_gap,
    run_ladder,
)
from bhyt_theory.experiments.training.recipes import LADDER_RECIPES, dyt_llama_alphas, recipe_changes
from bhyt_theory.experiments.training.trainer import LanguageModel, TrainConfig, parameter_groups
from bhyt_theory.numerics.model import StackConfig
from bhyt_theory.numerics.norms import DyT, RMSNorm


def _fake_library(root):
    """A small library tree: kept files, excluded folders and a test_ file."""
    files = {f"pkg{i}/mod{j}.py": f"x = {i * 10 + j}\n" * (j + 1) for i in range(4) for j in range(6)}
    files |= {"os.py": "import sys\n", "test/test_os.py": "bad\n", "pkg0/tests/helper.py": "bad\n",
              "idlelib/run.py": "bad\n", "site-packages/thing.py": "bad\n", "pkg1/test_mod.py": "bad\n",
              "pkg2/notes.txt": "not python\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return files


def test_stdlib_files_skip_tests_idlelib_and_site_packages(tmp_path):
    _fake_library(tmp_path)
    found = stdlib_files(tmp_path)
    assert "os.py" in found and "pkg3/mod5.py" in found
    assert len(found) == 25  # 24 modules + os.py
    for name in found:
        assert not set(name.split("/")[:-1]) & STDLIB_EXCLUDED_FOLDERS
        assert not name.rsplit("/", 1)[-1].startswith("test_")


def test_held_out_is_a_hash_of_the_relative_path():
    path = "json/decoder.py"
    fraction = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") / 2**64
    assert held_out(path, fraction + 1e-12) and not held_out(path, fraction)


def test_stdlib_split_is_deterministic_and_disjoint(tmp_path):
    _fake_library(tmp_path)
    train, evaluation = stdlib_split(0.3, tmp_path)
    again = stdlib_split(0.3, tmp_path)
    assert (train, evaluation) == again
    assert not set(train) & set(evaluation)
    assert sorted(train + evaluation) == stdlib_files(tmp_path)
    assert evaluation  # 25 files at 30 %: an empty held-out split has probability 0.7²⁵ ≈ 1e-4 — fixed by the names


def test_stdlib_corpus_hash_is_stable_and_splits_bytes_by_file(tmp_path):
    root = tmp_path / "a"
    files = _fake_library(root)
    first = build_corpus("stdlib", eval_fraction=0.3, root=root)
    second = build_corpus("stdlib", eval_fraction=0.3, root=str(root))
    assert first.digest == second.digest and len(first.digest) == 64
    train, evaluation = stdlib_split(0.3, root)
    expected = b"\n\n".join(files[name].encode() for name in evaluation)
    assert bytes(first.evaluation.tolist()) == expected
    assert first.tokens_per_epoch == sum(len(files[name]) for name in train) + 2 * (len(train) - 1)
    meta = first.metadata()
    assert meta["corpus_source"] == "stdlib" and meta["corpus_digest"] == first.digest
    other = tmp_path / "b"
    _fake_library(other)
    assert build_corpus("stdlib", eval_fraction=0.3, root=other).digest == first.digest  # same bytes, other folder
    (other / "pkg0" / "mod0.py").write_text("changed\n")
    build_corpus.cache_clear()
    assert build_corpus("stdlib", eval_fraction=0.3, root=other).digest != first.digest


def test_real_stdlib_corpus_is_large_and_held_out_by_file():
    corpus = build_corpus("stdlib")
    assert corpus.tokens_per_epoch > 2_000_000  # CPython ≥ 3.8 ships several MB of .py sources
    assert 0.03 < len(corpus.evaluation) / (len(corpus.train) + len(corpus.evaluation)) < 0.3


# ---- recipes --------------------------------------------------------------------------------------

def _model(name, width=64, depth=3, seed=0):
    config = TrainConfig(stack=StackConfig(depth=depth, width=width, heads=4, seq_len=16)).replace(
        **recipe_changes(name), seed=seed)
    return config, LanguageModel(config)


def test_dyt_alpha_width_rule_follows_the_llama_table():
    # DyT paper, LLaMA α₀ table: 7B (width 4096) 0.8/0.2, 13B (5120) 0.6/0.15, 34B and 70B (8192) 0.2/0.05
    assert dyt_llama_alphas(64) == (0.8, 0.2, 0.2)
    assert dyt_llama_alphas(4096) == (0.8, 0.2, 0.2)
    assert dyt_llama_alphas(4097) == (0.6, 0.15, 0.15)
    assert dyt_llama_alphas(8192) == (0.2, 0.05, 0.05)
    assert dyt_llama_alphas(16384) == (0.2, 0.05, 0.05)


@pytest.mark.parametrize("name", ["dyt-llama", "dyt-llama+rmsnorm-final"])
def test_dyt_llama_recipe_matches_its_source(name):
    config, model = _model(name, width=64)
    for block in model.stack.blocks:
        assert isinstance(block.norm_attn, DyT) and block.norm_attn.alpha.item() == pytest.approx(0.8, rel=1e-7)
        assert block.norm_mlp.alpha.item() == pytest.approx(0.2, rel=1e-7)  # float32 of 0.2: rel. error ≤ 2⁻²⁴
        assert block.norm_attn.beta is None and block.norm_mlp.beta is None  # no β
    assert not [n for n, _ in model.named_parameters() if n.endswith("beta")]
    assert model.embedding_scale.item() == 8.0 and model.embedding_scale.requires_grad  # √64, learnable
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.embed(tokens), model.embedding(tokens) * 8.0, rtol=0, atol=0)
    if name == "dyt-llama":
        assert isinstance(model.stack.final_norm, DyT) and model.stack.final_norm.beta is None
        assert model.stack.final_norm.alpha.item() == pytest.approx(0.2, rel=1e-7)
    else:
        assert isinstance(model.stack.final_norm, RMSNorm)


def test_lns_recipe_scales_each_pre_norm_output_by_one_over_root_layer():
    _, model = _model("lns", depth=4)
    h = torch.randn(2, 16, 64, generator=torch.Generator().manual_seed(2))
    for block in model.stack.blocks:
        factor = 1 / math.sqrt(block.layer + 1)  # the repository's 1/√(layer_index + 1), 0-based index
        assert block.branch_scale == factor
        with torch.no_grad():
            h_attn = h + block.attn(block.norm_attn(h) * factor)
            expected = h_attn + block.mlp(block.norm_mlp(h_attn) * factor)
            torch.testing.assert_close(block(h), expected, rtol=1e-6, atol=1e-6)  # same float32 ops, same order


def test_periln_recipe_norms_every_sublayer_output_and_the_embedding():
    _, model = _model("periln")
    for block in model.stack.blocks:
        assert isinstance(block.norm_attn_out, RMSNorm) and isinstance(block.norm_mlp_out, RMSNorm)
    assert isinstance(model.embedding_norm, RMSNorm) and model.embedding_scale is None
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        rms = model.embed(tokens).square().mean(-1).sqrt()
    # γ = 1: rms = sqrt(m / (m + ε)), m ≈ 0.02² = 4e-4 and ε ≤ 1e-5, so 1 − rms ≤ ε/(2m) ≈ 1.3e-2
    assert ((rms > 0.98) & (rms <= 1.0 + 1e-6)).all()


@pytest.mark.parametrize("name", ["bhyt-ref", "bhyt-ref+shared-scale", "bhytstar-ref"])
def test_bhyt_reference_recipes_match_the_reference_code(name):
    config, model = _model(name)
    for block in model.stack.blocks:
        assert block.norm_attn.lam.item() == 2.0 and block.norm_mlp.lam.item() == 1.0  # the (2, 1) pair
        assert block.norm_attn.lam.requires_grad and block.norm_mlp.lam.requires_grad  # learnable_lam: True
        assert block.norm_attn.kappa == 10.0
    assert isinstance(model.stack.final_norm, RMSNorm)  # last_layer_lam 0
    assert config.replace(steps=1000).refresh_interval == 20  # ~50 c_attn refreshes per run
    if name == "bhyt-ref+shared-scale":
        assert model.embedding_scale.item() == 8.0  # use_shared_scale: √hidden_size
        grouped = {id(p) for group in parameter_groups(model, 0.1) for p in group["params"]}
        assert id(model.embedding_scale) in grouped
    else:
        assert model.embedding_scale is None


def test_bhytc_recipe_matches_its_documentation():
    """docs/schemes.md §7 and docs/estimators.md §8: bhyt-ref's λ pair (learnable) and final RMSNorm,
    κ_l = κ·l² with l 1-based, M₂ from the correlation estimator with the mean field's factors for the
    embedding's N(0, init_std²) (not the uncorrelated starting value a bare Stack holds)."""
    from bhyt_theory.numerics.estimators import uncorrelated_m2_factor
    from bhyt_theory.theory.meanfield import correlation_factors

    config, model = _model("bhytc-ref", depth=3)
    assert config.stack.scheme == "bhytc" and config.stack.estimator == "correlation"
    assert [block.norm_attn.kappa for block in model.stack.blocks] == [10.0, 40.0, 90.0]  # 10 · l², l = 1, 2, 3
    for block in model.stack.blocks:
        assert block.norm_attn.lam.item() == 2.0 and block.norm_mlp.lam.item() == 1.0
        assert block.norm_attn.lam.requires_grad and block.norm_mlp.lam.requires_grad
    assert isinstance(model.stack.final_norm, RMSNorm)
    assert config.replace(steps=1000).refresh_interval == 20
    expected = correlation_factors(config.stack, config.stack.init_std**2)
    factors = np.stack([block.m2_factor.numpy() for block in model.stack.blocks])
    # the same float64 computation copied into the buffers: equal to rounding
    np.testing.assert_allclose(factors, expected, rtol=1e-12)
    start = uncorrelated_m2_factor(config.stack.seq_len, 2.0, 40.0)
    assert np.max(np.abs(factors[1] / start - 1)) > 1e-3  # calibrated, not left at the starting value
    assert model.embedding_scale is None and model.embedding_norm is None


def test_step_seconds_are_measured_with_gradients():
    """``--dry-run``'s step timer runs backward: it failed under ``torch.no_grad``."""
    seconds = measure_step_seconds(Rung("t", 1, 16, 2, 10, (1e-3,), seq_len=16, batch_size=2), "bhyt-ref", steps=2)
    assert math.isfinite(seconds) and seconds > 0


def test_recipe_and_scheme_must_agree():
    with pytest.raises(ValueError, match="is for scheme"):
        TrainConfig().replace(recipe="dyt-llama", scheme="rmsnorm")
    with pytest.raises(ValueError, match="is not one of"):
        TrainConfig(recipe="nonesuch")
    with pytest.raises(ValueError, match="is not one of"):
        recipe_changes("nonesuch")


def test_seeds_are_paired_across_recipes():
    """Same seed → same embedding, head and linear weights under every recipe, and the
    same batches; another seed → other weights."""
    reference = dict(_model("rmsnorm-llama", seed=5)[1].named_parameters())
    linear = [n for n, p in reference.items() if p.ndim == 2]
    assert len(linear) == 2 + 3 * 7  # embedding, head, and 7 matrices per block
    for name in LADDER_RECIPES:
        parameters = dict(_model(name, seed=5)[1].named_parameters())
        for key in linear:
            assert torch.equal(parameters[key], reference[key]), (name, key)
    other = dict(_model("rmsnorm-llama", seed=6)[1].named_parameters())
    assert not torch.equal(other["embedding.weight"], reference["embedding.weight"])
    corpus = Corpus.from_bytes(bytes(range(256)) * 8)
    assert torch.equal(training_batch(corpus, 4, 16, 5, 3)[0], training_batch(corpus, 4, 16, 5, 3)[0])


# ---- ladder statistics -----------------------------------------------------------------------------

def test_paired_gap_matches_scipy_paired_t_test():
    rng = np.random.default_rng(7)
    baseline = rng.normal(2.0, 0.1, 5)
    values = baseline + rng.normal(0.03, 0.02, 5)
    gap = paired_gap(values, baseline, level=0.9)
    reference = stats.ttest_rel(values, baseline)
    interval = reference.confidence_interval(0.9)
    # same formula in float64 through two code paths: agreement to a few ulps of O(1) numbers
    assert gap["gap"] == pytest.approx(np.mean(values - baseline), abs=1e-14)
    assert gap["gap_p"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert gap["gap_ci_low"] == pytest.approx(interval.low, abs=1e-12)
    assert gap["gap_ci_high"] == pytest.approx(interval.high, abs=1e-12)
    assert gap["gap_n"] == 5
    assert math.isnan(paired_gap([1.0], [0.5])["gap_ci_low"])


def _table(losses: dict) -> pd.DataFrame:
    """A ladder table from ``{(rung, recipe, lr, seed): loss or None (diverged)}``."""
    rows = []
    for (rung, name, lr, seed), loss in losses.items():
        rows.append({"rung": rung, "params": {"a": 1e5, "b": 1e6}[rung], "tokens": {"a": 1e6, "b": 1e7}[rung],
                     "scheme": name.split("-")[0], "recipe": name, "lr": lr, "seed": seed,
                     "eval_loss": math.nan if loss is None else loss, "diverged": loss is None,
                     "tokens_per_epoch": 1e6, "epochs": 1.0, "last_mean_abs": 10.0, "last_variance": 1.0,
                     "embedding_mean_abs": 0.1, "first_mean_abs": 2.0, "growth_mean_abs": 5.0,
                     "saturated_attn_max": 0.0, "saturated_mlp_max": 0.0, "saturated_final": math.nan})
    return pd.DataFrame(rows)


def test_best_rate_skips_diverged_runs_and_summary_pairs_seeds():
    losses = {("a", "rmsnorm-llama", 1e-3, 0): 2.0, ("a", "rmsnorm-llama", 1e-2, 0): 1.9,
              ("a", "bhyt-ref", 1e-3, 0): 2.1, ("a", "bhyt-ref", 1e-2, 0): None, ("a", "bhyt-ref", 3e-2, 0): 2.2}
    losses |= {("a", "rmsnorm-llama", 1e-2, s): 1.9 + 0.1 * s for s in (1, 2)}
    losses |= {("a", "bhyt-ref", 1e-3, s): 2.1 + 0.1 * s + 0.01 * s for s in (1, 2)}
    table = _table(losses)
    assert best_rates(table) == {("a", "rmsnorm-llama"): 1e-2, ("a", "bhyt-ref"): 1e-3}
    summary = ladder_summary(table).set_index("recipe")
    # per seed, bhyt − rmsnorm = 0.2 + 0.01 s, s = 0, 1, 2
    assert summary.loc["bhyt-ref", "gap"] == pytest.approx(0.21, abs=1e-12)
    assert summary.loc["bhyt-ref", "gap_n"] == 3
    assert summary.loc["bhyt-ref", "gap_sd"] == pytest.approx(0.01, abs=1e-12)
    assert math.isnan(summary.loc["bhyt-ref", "gap_shared_lr_seed0"])  # diverged at rmsnorm's best rate
    assert summary.loc["bhyt-ref", "best_at_sweep_end"] and summary.loc["bhyt-ref", "n_seeds"] == 3
    assert summary.loc["rmsnorm-llama", "eval_loss_mean"] == pytest.approx(2.0, abs=1e-12)


def test_a_sweep_is_extended_beyond_the_end_where_its_best_rate_lies():
    losses = {("a", "rmsnorm-llama", lr, 0): loss for lr, loss in ((1e-3, 2.2), (3e-3, 2.0), (1e-2, 2.1))}
    losses |= {("a", "bhyt-ref", lr, 0): loss for lr, loss in ((1e-3, 2.3), (3e-3, 2.2), (1e-2, 2.1))}
    losses |= {("a", "bhytc-ref", lr, 0): loss for lr, loss in ((1e-3, 2.0), (3e-3, 2.1), (1e-2, 2.2))}
    losses |= {("b", "bhyt-ref", lr, 0): loss for lr, loss in ((1e-3, 2.0), (1e-2, 2.1))}  # no inside
    losses |= {("a", "bhyt-ref", 1e-2, 1): 1.0}  # other seeds never choose the rate
    proposed = extension_rates(_table(losses))
    assert proposed.keys() == {("a", "bhyt-ref"), ("a", "bhytc-ref")}
    assert proposed[("a", "bhyt-ref")] == pytest.approx(1e-2 * 10 / 3, rel=1e-12)
    assert proposed[("a", "bhytc-ref")] == pytest.approx(1e-3 / 3, rel=1e-12)  # the step of that end, 3e-3 → 1e-3
    # once the extension is worse (or diverged), the best rate is inside and the sweep stops growing
    assert extension_rates(_table(losses | {("a", "bhyt-ref", 1e-2 * 10 / 3, 0): None,
                                            ("a", "bhytc-ref", 1e-3 / 3, 0): 2.05})) == {}


def test_c8_split_multiplies_to_the_last_layer_ratio():
    # per run last = first × growth; seeds with unequal splits (a mean of products is not the product
    # of means): the summary's block-0 × growth must give its last-layer ratio, each a ratio of
    # geometric means over seeds (computed here from scratch)
    losses = {("a", "rmsnorm-llama", 1e-3, s): 2.0 for s in range(3)} | {("a", "bhyt-ref", 1e-3, s): 2.1 for s in range(3)}
    table = _table(losses)
    first = {"rmsnorm-llama": [0.5, 0.6, 0.4], "bhyt-ref": [0.64, 0.38, 0.16]}
    growth = {"rmsnorm-llama": [1.25, 1.5, 1.4], "bhyt-ref": [0.93, 1.52, 1.86]}
    for name in first:
        rows = table["recipe"] == name
        table.loc[rows, "first_mean_abs"], table.loc[rows, "growth_mean_abs"] = first[name], growth[name]
        table.loc[rows, "last_mean_abs"] = np.multiply(first[name], growth[name])
    row = ladder_summary(table).set_index("recipe").loc["bhyt-ref"]
    geometric = lambda values: math.exp(np.mean(np.log(values)))  # noqa: E731
    assert row["c8_first_mean_abs_ratio"] == pytest.approx(geometric(first["rmsnorm-llama"]) / geometric(first["bhyt-ref"]), rel=1e-12)
    assert row["c8_growth_mean_abs_ratio"] == pytest.approx(geometric(growth["rmsnorm-llama"]) / geometric(growth["bhyt-ref"]), rel=1e-12)
    assert row["c8_last_mean_abs_ratio"] == pytest.approx(
        row["c8_first_mean_abs_ratio"] * row["c8_growth_mean_abs_ratio"], rel=1e-12)


def test_gap_to_a_chosen_reference_is_paired_by_seed():
    """bhytc-ref against bhyt-ref (``gap_vs_bhyt-ref…``) and against the baseline (``gap…``), each at its
    own best rate, paired by seed over the seeds both finished, whatever the rows' order."""
    rng = np.random.default_rng(11)
    seed_effect = rng.normal(0, 0.2, 4)  # shared by every recipe: pairing removes it
    loss = {"rmsnorm-llama": 2.0 + seed_effect[:3], "bhyt-ref": 2.05 + seed_effect + rng.normal(0, 0.01, 4),
            "bhytc-ref": 2.02 + seed_effect[:3] + rng.normal(0, 0.01, 3)}
    best = {"rmsnorm-llama": 1e-3, "bhyt-ref": 1e-2, "bhytc-ref": 3e-2}
    losses = {}
    for name, values in loss.items():
        losses |= {("a", name, lr, 0): 3.0 for lr in (1e-3, 1e-2, 3e-2) if lr != best[name]}
        losses |= {("a", name, best[name], s): value for s, value in enumerate(values)}
    table = _table(losses).sample(frac=1, random_state=1)  # rows shuffled
    summary = ladder_summary(table).set_index("recipe")
    row = summary.loc["bhytc-ref"]
    against_bhyt = stats.ttest_rel(loss["bhytc-ref"], loss["bhyt-ref"][:3])  # bhyt-ref's seed 3 has no pair
    against_rms = stats.ttest_rel(loss["bhytc-ref"], loss["rmsnorm-llama"])
    # the same float64 formula through two code paths: agreement to a few ulps of O(1) numbers
    assert row["gap_vs_bhyt-ref_n"] == 3 and row["gap_n"] == 3
    assert row["gap_vs_bhyt-ref"] == pytest.approx(np.mean(loss["bhytc-ref"] - loss["bhyt-ref"][:3]), abs=1e-12)
    assert (row["gap_vs_bhyt-ref_ci_low"], row["gap_vs_bhyt-ref_ci_high"]) == pytest.approx(
        tuple(against_bhyt.confidence_interval(0.95)), abs=1e-12)
    assert row["gap_vs_bhyt-ref_p"] == pytest.approx(against_bhyt.pvalue, rel=1e-9)
    assert (row["gap_ci_low"], row["gap_ci_high"]) == pytest.approx(
        tuple(against_rms.confidence_interval(0.95)), abs=1e-12)
    # unpaired, the seed effect (sd 0.2) would swamp a difference of ≈ 0.03 with sd 0.014
    unpaired = stats.ttest_ind(loss["bhytc-ref"], loss["bhyt-ref"][:3]).confidence_interval(0.95)
    assert row["gap_vs_bhyt-ref_ci_high"] - row["gap_vs_bhyt-ref_ci_low"] < (unpaired.high - unpaired.low) / 5
    assert math.isnan(summary.loc["bhyt-ref", "gap_vs_bhyt-ref"])  # no gap to itself
    assert summary.loc["bhyt-ref", "gap_n"] == 3 and math.isnan(summary.loc["rmsnorm-llama", "gap"])


def test_trends_of_every_recipe_against_the_baseline_and_the_method():
    params = np.array([4e5, 3e6, 1.2e7])
    to_baseline, to_method = 0.1 - 0.05 * np.log10(params), np.array([0.3, 0.1, 0.2])
    summary = pd.DataFrame({"recipe": "bhytc-ref", "params": params, "tokens": params * 2, "gap": to_baseline,
                            "gap_vs_bhyt-ref": to_method})
    trend = ladder_trends(summary, ("rmsnorm-llama", "bhyt-ref", "bhytc-ref"))
    rows = trend[(trend["recipe"] == "bhytc-ref") & (trend["against"] == "log10_params")].set_index("reference")
    assert rows.loc["rmsnorm-llama", "slope"] == pytest.approx(-0.05, abs=1e-12)  # exact line
    assert rows.loc["bhyt-ref", "slope"] == pytest.approx(np.polyfit(np.log10(params), to_method, 1)[0], abs=1e-12)
    assert set(trend["recipe"]) == {"bhyt-ref", "bhytc-ref"}


def test_gap_trend_fits_the_slope_with_a_student_t_interval():
    rng = np.random.default_rng(3)
    params = np.array([4e5, 3e6, 1.2e7, 2.5e7])
    gap = 0.1 - 0.05 * np.log10(params) + rng.normal(0, 0.01, 4)
    summary = pd.DataFrame({"recipe": "bhyt-ref", "params": params, "tokens": params * 2, "gap": gap})
    trend = gap_trend(summary, level=0.95).set_index("against")
    x = np.log10(params)
    slope, intercept = np.polyfit(x, gap, 1)
    residual = gap - intercept - slope * x
    stderr = math.sqrt(residual @ residual / 2 / np.sum((x - x.mean()) ** 2))
    q = stats.t.ppf(0.975, 2)
    row = trend.loc["log10_params"]
    assert row["slope"] == pytest.approx(slope, abs=1e-10)
    assert row["slope_ci_low"] == pytest.approx(slope - q * stderr, abs=1e-10)
    assert row["slope_ci_high"] == pytest.approx(slope + q * stderr, abs=1e-10)
    assert row["predicted_gap"] == pytest.approx(intercept + slope * math.log10(374e6), abs=1e-10)
    assert row["prediction_low"] < row["predicted_gap"] < row["prediction_high"]


def test_ladder_cost_counts_runs_and_packs_them_onto_workers():
    rungs = (Rung("a", 1, 8, 2, 100, (1e-3, 1e-2)), Rung("b", 1, 8, 2, 400, (1e-3, 1e-2)))
    table = ladder_cost(rungs, ("r1", "r2"), seeds=3, seconds_per_step={"a": 0.5, "b": 1.0},
                        workers=(1, 4)).set_index("workers")
    run_a = (100 + 8 * 5 / 3) * 0.5 + TASK_OVERHEAD_S
    run_b = (400 + 8 * 5 / 3) * 1.0 + TASK_OVERHEAD_S
    # per rung: 2 recipes × (2 rates + 2 more seeds) = 8 runs
    assert table.loc[1, "runs"] == 16
    assert table.loc[1, "cpu_hours"] == pytest.approx(8 * (run_a + run_b) / 3600, rel=1e-12)
    assert table.loc[1, "wall_hours"] == pytest.approx(table.loc[1, "cpu_hours"], rel=1e-12)
    # 4 workers: sweep = 4 runs of b then 4 of a, one of each per worker; seeds likewise
    assert table.loc[4, "wall_hours"] == pytest.approx(2 * (run_a + run_b) / 3600, rel=1e-12)


# ---- the ladder end to end ------------------------------------------------------------------------

LADDER_COLUMNS = {"rung", "params", "tokens", "scheme", "recipe", "lr", "seed", "eval_loss", "last_mean_abs",
                  "corpus", "corpus_digest", "tokens_per_epoch", "depth", "width", "steps", "batch_size",
                  "first_mean_abs", "growth_mean_abs", "saturated_attn_max", "saturated_mlp_max", "saturated_final"}


def test_quick_ladder_end_to_end_writes_its_tables_and_resumes(tmp_path):
    out = tmp_path / "ladder"
    code = main(["train", "--ladder", "--quick", "--recipes", "bhyt-ref", "dyt-llama", "--steps", "3",
                 "--eval-batches", "1", "--workers", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "ladder.csv")
    summary = pd.read_csv(out / "ladder_summary.csv")
    assert LADDER_COLUMNS <= set(table.columns)
    # rmsnorm-llama is added as the baseline: 2 rungs × 3 recipes × (2 rates + 1 more seed)
    assert len(table) == 18 and set(table["recipe"]) == {"rmsnorm-llama", "bhyt-ref", "dyt-llama"}
    assert len(summary) == 6 and (summary["n_seeds"] == 2).all()
    assert summary.loc[summary["recipe"] != "rmsnorm-llama", "gap_n"].eq(2).all()
    assert (table["tokens"] == 3 * 8 * 32).all() and (table["corpus"] == "pydoc").all()
    assert (table.loc[table["recipe"] == "dyt-llama", "saturated_final"].notna()).all()
    assert len(list((out / "runs").glob("*.meta.json"))) == 18
    assert len(list((out / "checkpoints").glob("*.pt"))) == 18
    meta = json.loads(next((out / "runs").glob("bhyt-ref*.meta.json")).read_text())
    assert meta["config"]["recipe"] == "bhyt-ref" and meta["record"]["corpus_source"] == "pydoc"
    again = run_ladder(LADDERS["quick"], ("bhyt-ref", "dyt-llama"), out, 2, None, progress=False,
                       log=lambda message: None, steps=3, eval_batches=1)
    keys = ["rung", "recipe", "lr", "seed", "run_id", "eval_loss", "seconds", "last_mean_abs"]
    # read back from the run cache, not retrained: the same runs, losses and timings (CSV keeps 17 digits)
    pd.testing.assert_frame_equal(again["ladder"][keys], table[keys], check_dtype=False, rtol=1e-15)


def test_gpu_ladder_code_path_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu"
    code = main(["train", "--ladder", "--gpu", "--device", "cpu", "--depth", "2", "--width", "32", "--heads", "2",
                 "--kv-heads", "1", "--mlp-width", "64", "--seq-len", "16", "--steps", "3", "--batch-size", "2",
                 "--workers", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "ladder.csv")
    assert set(table["recipe"]) == {"rmsnorm-llama", "bhyt-ref"} and len(table) == 2
    assert (table["amp_dtype"] == "bfloat16").all() and (table["kv_heads"] == 1).all()
    assert (table["corpus"] == "stdlib").all() and table["eval_loss"].notna().all()


def test_train_help_shows_the_defaults_the_command_uses(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    # the comparison's own defaults (trainer.DEFAULT_STACK and study.PRESETS), not StackConfig's width 256
    assert "StackConfig.width (default 64; quick 32; full 128;" in text
    assert "TrainConfig.steps (default 300; quick 40; full 1000;" in text
    assert "depth 8, width 64, 300 steps of 16×128" in text
    assert "depth 32, width 256, 3000 steps of 16×128" in text
