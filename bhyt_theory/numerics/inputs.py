"""The inputs of every experiment: Gaussian hidden states, one input spec and the one seeding rule.

An experiment's inputs are iid ``N(0, std²)`` hidden states of shape
``(batch, length, width)``, described by an :class:`InputSpec`. A run with
weight seed ``s`` draws them from the generator seeded with
``input_seed(s) = s + INPUT_SEED_OFFSET``, so that inputs and weights never
share a random stream; an analysis that needs a second, independent input
batch for the same weights uses stream 1, ``s + 2 · INPUT_SEED_OFFSET``
(:func:`input_seed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch
from torch import Tensor

__all__ = ["INPUT_SEED_OFFSET", "InputSpec", "gaussian_inputs", "input_seed"]

INPUT_SEED_OFFSET = 10_000


def input_seed(seed: int, stream: int = 0) -> int:
    """The input seed of a run with weight seed ``seed``: ``seed + (1 + stream) · INPUT_SEED_OFFSET``.

    Stream 0 is every experiment's inputs; stream 1 is a second input batch for the
    same weights (the tightness hill climb's starting point).

    Examples
    --------
    >>> input_seed(3), input_seed(3, stream=1)
    (10003, 20003)
    """
    if stream < 0:
        raise ValueError(f"stream must be ≥ 0, got {stream}")
    return seed + (1 + stream) * INPUT_SEED_OFFSET


def gaussian_inputs(width: int, batch: int, length: int, std: float, seed: int) -> Tensor:
    """Hidden states ~ N(0, std²) of shape ``(batch, length, width)``, drawn on the CPU from ``seed``.

    ``seed`` is the generator's seed itself (no offset); experiments draw through
    :meth:`InputSpec.hidden_states`, which applies :func:`input_seed`.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, width, generator=generator) * std


@dataclass(frozen=True)
class InputSpec:
    """The inputs of a run: ``batch`` sequences of ``length`` tokens, coordinates iid N(0, std²).

    Parameters
    ----------
    batch : int, ≥ 1
        Independent input sequences (every statistic averages over them).
    length : int ≥ 1 or None
        Input length T; ``None`` means the stack's training length ``config.seq_len``.
    std : float, ≥ 0 and finite
        Standard deviation of every input coordinate.

    Examples
    --------
    >>> spec = InputSpec(batch=2, length=3, std=0.5)
    >>> spec.draw(width=4, seed=0).shape
    torch.Size([2, 3, 4])
    >>> bool((spec.draw(4, 0) == gaussian_inputs(4, 2, 3, 0.5, input_seed(0))).all())
    True
    >>> InputSpec(batch=0)
    Traceback (most recent call last):
    ...
    ValueError: invalid InputSpec: batch must be an integer ≥ 1, got 0
    """

    batch: int = 4
    length: int | None = None
    std: float = 0.02

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.batch, bool) or not isinstance(self.batch, Integral) or self.batch < 1:
            problems.append(f"batch must be an integer ≥ 1, got {self.batch!r}")
        if self.length is not None and (
            isinstance(self.length, bool) or not isinstance(self.length, Integral) or self.length < 1
        ):
            problems.append(f"length must be None or an integer ≥ 1, got {self.length!r}")
        if isinstance(self.std, bool) or not isinstance(self.std, Real) or not math.isfinite(self.std) or self.std < 0:
            problems.append(f"std must be a finite number ≥ 0, got {self.std!r}")
        if problems:
            raise ValueError("invalid InputSpec: " + "; ".join(problems))

    def length_for(self, seq_len: int) -> int:
        """T of the inputs: ``length``, or ``seq_len`` when ``length`` is None."""
        return seq_len if self.length is None else self.length

    def draw(self, width: int, seed: int, length: int | None = None, stream: int = 0) -> Tensor:
        """The inputs of weight seed ``seed``, shape ``(batch, T, width)``, drawn from ``input_seed(seed, stream)``.

        ``length`` is the T to use when the spec's own ``length`` is None.
        """
        resolved = self.length if self.length is not None else length
        if resolved is None:
            raise ValueError("InputSpec.length is None: pass length= (or use hidden_states(config, seed))")
        return gaussian_inputs(width, self.batch, resolved, self.std, input_seed(seed, stream))

    def hidden_states(self, config, seed: int, stream: int = 0) -> Tensor:
        """The inputs of a run of ``config`` (a ``StackConfig``) with weight seed ``seed``
        (width ``config.width``, T = ``length_for(config.seq_len)``)."""
        return self.draw(config.width, seed, self.length_for(config.seq_len), stream)
