"""The trained regime across scale: the stdlib corpus and its split by file, the
authors' recipes as built models, paired seeds, the ladder's statistics against
scipy, and the ladder's quick run end to end."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from bhyt_theory.experiments.training.corpus import (
    STDLIB_EXCLUDED_FOLDERS,
    Corpus,
    build_corpus,
    held_out,
    stdlib_files,
    stdlib_split,
    training_batch,
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
