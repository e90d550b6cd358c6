"""A real training corpus with no download, byte-level tokens and a deterministic split.

Corpus
------
By default the English help text that ships with CPython itself: the topic pages
of ``pydoc_data.topics`` (what ``help("if")`` prints; ≈ 465 kB in CPython 3.12),
joined in sorted-key order with a blank line between topics. Any UTF-8 text file
(``.txt`` or anything else) or JSONL file (``.jsonl``, or any file when
``text_field`` is given: one JSON object per line, its ``text_field`` string taken,
default ``"text"``) works too, through ``load_corpus(path)``.

``build_corpus("stdlib")`` is the larger built-in
corpus (≈ 11 MB with CPython 3.11): the ``.py`` sources of the standard library
of the running Python, found by walking the directory that holds ``os.py``
(no module list is consulted), skipping the folders ``test``, ``tests``,
``idlelib``, ``site-packages`` and ``__pycache__`` at any depth and every
``test_*.py`` file. Its held-out split is *by file* (``stdlib_split``): a file
is held out when the first 8 bytes of the SHA-256 of its relative path, read as
a fraction of 2⁶⁴, fall below ``eval_fraction`` — deterministic, the same on
every machine with the same library, and no file is in both splits. Files are
joined in sorted-path order with a blank line between them.

Every corpus carries its ``source`` (``pydoc``, ``stdlib`` or the file path),
the SHA-256 ``digest`` of its training and held-out bytes and the Python
version (``Corpus.metadata``), which every run records.

Tokenisation
------------
Byte level: the UTF-8 bytes of the text are the tokens (vocabulary 256), so no
tokenizer is trained or stored and every file is covered.

Split
-----
The last ``eval_fraction`` (default 10 %) of the byte stream is held out for
evaluation; training never sees it. Training batches are windows of
``seq_len + 1`` bytes at offsets drawn from a generator seeded by
``(seed, step)`` only (``training_batch``), so a run resumed at any step draws
the same batches as one that never stopped. Evaluation uses fixed, evenly spaced
windows of the held-out split (``evaluation_batches``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

VOCAB_SIZE = 256
DEFAULT_EVAL_FRACTION = 0.1
STDLIB = "stdlib"
"""``--corpus`` name of the standard-library corpus."""
STDLIB_EXCLUDED_FOLDERS = frozenset({"test", "tests", "idlelib", "site-packages", "__pycache__"})
_BATCH_STREAM = 0x5EED_BA7C  # keeps training-batch generators apart from weight seeds


def default_corpus_text() -> str:
    """The topic pages of ``pydoc_data.topics`` (CPython's own help text), joined.

    Raises
    ------
    FileNotFoundError
        If this Python was built without ``pydoc_data`` (some minimal distributions).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as error:
        raise FileNotFoundError(
            "the default corpus is CPython's pydoc_data.topics, which this Python does not ship; "
            "pass a UTF-8 text or JSONL file with --corpus PATH"
        ) from error
    return "\n\n".join(topics[key] for key in sorted(topics))


def stdlib_root() -> Path:
    """The standard-library folder of the running Python (the one holding ``os.py``)."""
    return Path(os.__file__).resolve().parent


def stdlib_files(root: str | Path | None = None) -> list[str]:
    """Relative paths (POSIX form, sorted) of the corpus's ``.py`` files under ``root``
    (default ``stdlib_root()``): excluded folders are pruned at any depth, and
    ``test_*.py`` files are skipped."""
    root = Path(root) if root is not None else stdlib_root()
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in STDLIB_EXCLUDED_FOLDERS)
        relative = Path(folder).relative_to(root)
        found += [(relative / name).as_posix() for name in files
                  if name.endswith(".py") and not name.startswith("test_")]
    return sorted(found)


def held_out(relative_path: str, eval_fraction: float) -> bool:
    """Whether a file is in the held-out split: the first 8 bytes of SHA-256(path),
    as a fraction of 2⁶⁴, fall below ``eval_fraction``."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


def stdlib_split(eval_fraction: float = DEFAULT_EVAL_FRACTION, root: str | Path | None = None
                 ) -> tuple[list[str], list[str]]:
    """``(training files, held-out files)``, each sorted, by ``held_out``."""
    files = stdlib_files(root)
    evaluation = [f for f in files if held_out(f, eval_fraction)]
    chosen = set(evaluation)
    return [f for f in files if f not in chosen], evaluation


def _join(root: Path, files: list[str]) -> bytes:
    return b"\n\n".join((root / name).read_bytes() for name in files)


def load_corpus(path: str | Path | None = None, text_field: str | None = None) -> bytes:
    """The corpus as UTF-8 bytes: ``pydoc_data.topics`` when ``path`` is None, else the file.

    A ``.jsonl`` file, or any file when ``text_field`` is given, is read as one JSON
    object per line and the ``text_field`` (default ``"text"``) strings are joined
    with blank lines; any other file is read as UTF-8 text.
    """
    if path is None:
        if text_field is not None:
            raise ValueError("text_field applies to a JSONL --corpus file, and no file was given")
        return default_corpus_text().encode("utf-8")
    if str(path) == STDLIB:
        raise ValueError("the stdlib corpus is split by file: use build_corpus('stdlib')")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    if path.suffix == ".jsonl" or text_field is not None:
        field = text_field or "text"
        texts = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise ValueError(f"{path}:{number}: expected a JSON object with a string field {field!r}")
            texts.append(record[field])
        return "\n\n".join(texts).encode("utf-8")
    return path.read_text(encoding="utf-8").encode("utf-8")


@dataclass(frozen=True)
class Corpus:
    """Byte tokens (int64) of the training and held-out splits."""

    train: Tensor
    evaluation: Tensor
    source: str = ""
    digest: str = ""

    @classmethod
    def from_bytes(cls, data: bytes, eval_fraction: float = DEFAULT_EVAL_FRACTION, source: str = "") -> Corpus:
        """Split ``data``: the last ``eval_fraction`` of the bytes is held out."""
        _check_fraction(eval_fraction)
        tokens = _tokens(data)
        cut = len(tokens) - round(eval_fraction * len(tokens))
        return cls(tokens[:cut], tokens[cut:], source, _digest(data[:cut], data[cut:]))

    @property
    def tokens_per_epoch(self) -> int:
        """Training tokens (bytes) in one pass over the training split."""
        return len(self.train)

    def metadata(self) -> dict:
        """``corpus_source``, ``corpus_digest`` (SHA-256 of both splits), ``corpus_train_tokens``
        (= tokens per epoch), ``corpus_eval_tokens`` and ``python_version``."""
        return {"corpus_source": self.source, "corpus_digest": self.digest,
                "corpus_train_tokens": len(self.train), "corpus_eval_tokens": len(self.evaluation),
                "python_version": sys.version.split()[0]}

    def check_length(self, seq_len: int) -> None:
        """Both splits must hold at least one window of ``seq_len + 1`` bytes."""
        for name, split in (("training", self.train), ("held-out", self.evaluation)):
            if len(split) < seq_len + 1:
                raise ValueError(f"the {name} split has {len(split)} bytes, fewer than seq_len + 1 = {seq_len + 1}")


def _check_fraction(eval_fraction: float) -> None:
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")


def _tokens(data: bytes) -> Tensor:
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64))


def _digest(train: bytes, evaluation: bytes) -> str:
    """SHA-256 over the two splits (each prefixed by its length, so the cut counts)."""
    sha = hashlib.sha256()
    for part in (train, evaluation):
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()


@functools.lru_cache(maxsize=4)
def _stdlib_corpus(eval_fraction: float, root: str) -> Corpus:
    train_files, eval_files = stdlib_split(eval_fraction, root)
    if not train_files or not eval_files:
        raise ValueError(f"the standard library under {root} gives an empty split at eval_fraction {eval_fraction}")
    train, evaluation = _join(Path(root), train_files), _join(Path(root), eval_files)
    return Corpus(_tokens(train), _tokens(evaluation), STDLIB, _digest(train, evaluation))


def build_corpus(path: str | Path | None = None, text_field: str | None = None,
                 eval_fraction: float = DEFAULT_EVAL_FRACTION, root: str | Path | None = None) -> Corpus:
    """The split corpus of a run: ``stdlib`` split by file (``root`` overrides the
    library folder, for tests), anything else by ``load_corpus`` and ``Corpus.from_bytes``."""
    if path is not None and str(path) == STDLIB:
        if text_field is not None:
            raise ValueError("text_field applies to a JSONL --corpus file, not to the stdlib corpus")
        _check_fraction(eval_fraction)
        return _stdlib_corpus(float(eval_fraction), str(Path(root) if root is not None else stdlib_root()))
    return Corpus.from_bytes(load_corpus(path, text_field), eval_fraction, "pydoc" if path is None else str(path))


build_corpus.cache_clear = _stdlib_corpus.cache_clear  # the stdlib corpus is read once per process


def _windows(tokens: Tensor, starts: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """Inputs ``tokens[s : s+T]`` and next-byte targets ``tokens[s+1 : s+T+1]`` per start s."""
    index = starts[:, None] + torch.arange(seq_len + 1)[None, :]
    window = tokens[index]
    return window[:, :-1], window[:, 1:]


def training_batch(corpus: Corpus, batch_size: int, seq_len: int, seed: int, step: int) -> tuple[Tensor, Tensor]:
    """The training batch of ``step``: ``batch_size`` windows at offsets drawn from a
    generator seeded by ``(seed, step)`` alone (resumable, order-independent)."""
    state = np.random.SeedSequence([_BATCH_STREAM, seed, step]).generate_state(1)[0]
    generator = torch.Generator().manual_seed(int(state))
    starts = torch.randint(0, len(corpus.train) - seq_len, (batch_size,), generator=generator)
    return _windows(corpus.train, starts, seq_len)


def evaluation_batches(corpus: Corpus, batches: int, batch_size: int, seq_len: int) -> list[tuple[Tensor, Tensor]]:
    """``batches`` fixed batches of windows evenly spaced over the held-out split."""
    count = batches * batch_size
    starts = torch.linspace(0, len(corpus.evaluation) - seq_len - 1, count).long()
    return [_windows(corpus.evaluation, chunk, seq_len) for chunk in starts.split(batch_size)]
