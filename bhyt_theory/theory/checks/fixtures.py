"""Inputs and small blocks shared by the proof-step checks."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from ...numerics.model import StackConfig, build_block


def is_zero(expression: sp.Expr) -> bool:
    return sp.simplify(expression) == 0


def adversarial_tokens(d: int, seed: int) -> Tensor:
    """Float64 tokens of width d attacking the bounds: one-hot, k equal spikes,
    Cauchy, large offset, Gaussian; each at scales 1e-30 … 1e30."""
    rng = np.random.default_rng(seed)
    shapes = [np.eye(d)[0], (np.arange(d) < max(1, d // 8)).astype(float), rng.standard_cauchy(d),
              1e3 + 1e-3 * rng.standard_normal(d), rng.standard_normal(d)]
    scales = 10.0 ** np.array([-30, -6, -3, 0, 3, 30])
    rows = [shape * scale for shape in shapes for scale in scales]
    return torch.tensor(np.array(rows), dtype=torch.float64)


def small_block(scheme: str = "bhytstar", width: int = 32, heads: int = 4, kv_heads: int = 2,
                 init_std: float = 0.3, seed: int = 0):
    config = StackConfig(scheme=scheme, depth=1, width=width, heads=heads, kv_heads=kv_heads,
                         mlp_width=48, seq_len=16, init_std=init_std, dtype="float64")
    return config, build_block(config, 0, seed)
