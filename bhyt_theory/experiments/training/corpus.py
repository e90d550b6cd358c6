"""A real training corpus with no download, byte-level tokens and a deterministic split.

Corpus
------
By default the English help text that ships with CPython itself: the topic pages
of ``pydoc_data.topics`` (what ``help("if")`` prints; ≈ 465 kB in CPython 3.12),
joined in sorted-key order with a blank line between topics. Any UTF-8 text file
(``.txt`` or anything else) or JSONL file (``.jsonl``, or any file when
``text_field`` is given: one JSON object per line, its ``text_field`` string taken,
default ``"text"``) works too, through ``load_corpus(path)``.

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

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

VOCAB_SIZE = 256
DEFAULT_EVAL_FRACTION = 0.1
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

    @classmethod
    def from_bytes(cls, data: bytes, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Corpus:
        """Split ``data``: the last ``eval_fraction`` of the bytes is held out."""
        if not 0 < eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
        tokens = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64))
        cut = len(tokens) - round(eval_fraction * len(tokens))
        return cls(tokens[:cut], tokens[cut:])

    def check_length(self, seq_len: int) -> None:
        """Both splits must hold at least one window of ``seq_len + 1`` bytes."""
        for name, split in (("training", self.train), ("held-out", self.evaluation)):
            if len(split) < seq_len + 1:
                raise ValueError(f"the {name} split has {len(split)} bytes, fewer than seq_len + 1 = {seq_len + 1}")


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
