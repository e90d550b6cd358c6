"""The inputs of every experiment: Gaussian hidden states and the seeding rule."""

from __future__ import annotations

import torch
from torch import Tensor

# The inputs of a run with weight seed s are drawn from seed s + INPUT_SEED_OFFSET,
# so that inputs and weights never share a random stream.
INPUT_SEED_OFFSET = 10_000


def gaussian_inputs(width: int, batch: int, length: int, std: float, seed: int) -> Tensor:
    """Hidden states ~ N(0, std²) of shape ``(batch, length, width)``, drawn on the CPU from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, width, generator=generator) * std
