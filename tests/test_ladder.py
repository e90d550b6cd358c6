"""The trained regime across scale: the stdlib corpus and its split by file, the
authors' recipes as built models, paired seeds, the ladder's statistics against
scipy, and the ladder's quick run end to end."""

from __future__ import annotations

import hashlib

import pytest

from bhyt_theory.experiments.training.corpus import (
    STDLIB_EXCLUDED_FOLDERS,
    build_corpus,
    held_out,
    stdlib_files,
    stdlib_split,
)


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
