"""Claim C9: is BHyT's decode-time precomputation exact, in float32 and in bfloat16?

The reference implementation's decode path precomputes ``λ₂/κ`` and
``c_attn λ₁²/κ²`` once per layer (``norms.precompute_decode_constants``) and
forms the MLP-side BHyT from them (``norms.bhyt_decode``); its README calls this
exact, with identical greedy decoding. Whether the outputs are *bit*-identical
depends on the order of operations and on the dtype λ is held in
(``norms.DECODE_ORDERS``). ``decode_exactness`` measures, per dtype × order, the
fraction of MLP-norm outputs and of block outputs that differ from the unfused
``Block.forward``, the largest difference in ulps of the output dtype, and the
agreement of greedy decoding on a small random language model (tied embedding
and LM head around a ``Stack``). Proof: proofs/decode_precomputation.md.

References
----------
Byun et al., arXiv 2601.09719 (BHyT; claim C9).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from torch import Tensor

from ..numerics.model import Block, Stack, StackConfig
from ..numerics.norms import (
    DECODE_ORDERS,
    bhyt_decode,
    mean_square,
    precompute_decode_constants,
)

__all__ = ["ulp_distance", "block_decode_forward", "greedy_decode", "decode_exactness", "DECODE_COLUMNS"]

DECODE_COLUMNS = (
    "dtype", "order", "norm_outputs", "norm_fraction_differing", "norm_max_ulps",
    "block_fraction_differing", "block_max_relative_difference", "greedy_sequences", "greedy_identical_fraction",
    "greedy_token_agreement",
)

_BITS = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.bfloat16: (torch.int16, 0x7FFF),
         torch.float16: (torch.int16, 0x7FFF), torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF)}


def ulp_distance(a: Tensor, b: Tensor) -> Tensor:
    """Number of representable values of their dtype between ``a`` and ``b``, element-wise (int64).

    The bit patterns are mapped to integers ordered like the floats (negative
    values mirrored below zero, ``+0`` and ``-0`` both 0), so adjacent floats are 1
    apart. ``a`` and ``b`` must share a floating dtype; NaN is not supported.
    """
    if a.dtype != b.dtype or a.dtype not in _BITS:
        raise TypeError(f"a and b must share a dtype among {tuple(_BITS)}, got {a.dtype} and {b.dtype}")
    integer, magnitude = _BITS[a.dtype]

    def ordered(x: Tensor) -> Tensor:
        bits = x.contiguous().view(integer).long()
        return torch.where(bits < 0, -(bits & magnitude), bits)

    return (ordered(a) - ordered(b)).abs()


def block_decode_forward(block: Block, h: Tensor, order: str) -> tuple[Tensor, Tensor, Tensor]:
    """A ``bhyt`` block's forward with the decode fast path on its MLP side.

    The attention half is ``Block.forward``'s; the MLP-side norm is
    ``bhyt_decode`` with constants precomputed in ``order``. Returns
    ``(block output, fast-path norm output v, unfused norm output v)``, the last
    from ``norms.bhyt`` fed the reference ``M₂``, exactly as ``Block.forward`` forms it.
    """
    if block.scheme not in ("bhyt", "bhytline") or block.config.estimator != "reference":
        raise ValueError(f"the decode fast path is the reference bhyt estimate, got scheme {block.scheme!r}, "
                         f"estimator {block.config.estimator!r}")
    m1 = mean_square(h)
    h_after = h + block.attn(block.norm_attn(h, mean_square=m1))
    constants = precompute_decode_constants(block.c_attn, block.norm_attn.lam, block.norm_mlp.lam,
                                            block.norm_mlp.kappa, order)
    fast = bhyt_decode(h_after, m1, constants, block.norm_mlp.gamma, block.norm_mlp.eps)
    unfused = block.norm_mlp(h_after, mean_square=block.estimate(h, m1, h_after, "reference"))
    return h_after + block.mlp(fast), fast, unfused


def _language_model(config: StackConfig, vocabulary: int, embedding_std: float, seed: int) -> tuple[Stack, Tensor]:
    stack = Stack(config, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    embedding = (torch.randn(vocabulary, config.width, generator=generator) * embedding_std).to(config.torch_dtype)
    return stack, embedding


def _logits(stack: Stack, embedding: Tensor, tokens: Tensor, order: str | None) -> Tensor:
    h = embedding[tokens]
    for block in stack.blocks:
        h = block(h) if order is None else block_decode_forward(block, h, order)[0]
    return stack.final_norm(h)[:, -1] @ embedding.T


@torch.no_grad()
def greedy_decode(stack: Stack, embedding: Tensor, prompt: Tensor, steps: int, order: str | None) -> Tensor:
    """Greedy continuation of ``prompt`` (``(batch, length)`` token ids) by ``steps`` tokens.

    The language model is ``embedding`` → ``stack`` → final norm → ``embedding``ᵀ
    (tied). ``order=None`` runs ``Block.forward`` (unfused); an order runs the
    fast path of ``block_decode_forward``. The whole prefix is recomputed at each
    step (no cache), so the two paths see the same arithmetic except the MLP-side norm.
    """
    tokens = prompt
    for _ in range(steps):
        tokens = torch.cat([tokens, _logits(stack, embedding, tokens, order).argmax(-1, keepdim=True)], 1)
    return tokens[:, prompt.shape[1]:]


@torch.no_grad()
def decode_exactness(
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    orders: Sequence[str] = DECODE_ORDERS,
    seeds: Sequence[int] = (0, 1, 2),
    config: StackConfig | None = None,
    batch: int = 4,
    vocabulary: int = 96,
    prompt_length: int = 8,
    steps: int = 16,
    embedding_std: float = 0.02,
) -> pd.DataFrame:
    """Bit-exactness of the decode fast path against the unfused ``Block.forward``: dtype × order.

    Parameters
    ----------
    dtypes : model dtypes (the stack, λ and the hidden states are held in it)
    orders : entries of ``norms.DECODE_ORDERS``
    seeds : weight seeds; each seed also draws the embedding and the prompts
    config : StackConfig, default a ``bhyt`` stack of depth 4, width 64, 4 heads, T 32,
        λ = (2, 1), init_std 0.1 (its ``dtype`` is replaced by each entry of ``dtypes``).
        init_std 0.1 makes the increment ``c_attn λ₁²/κ²`` about as large as ``m₁`` of
        embeddings of std 0.02, as at width 2048, T 1024, init_std 0.02; with a
        negligible increment the constants could not change any output.
    batch, vocabulary, prompt_length, steps : the greedy-decoding workload per seed
    embedding_std : the embedding (and LM head) entries ~ N(0, embedding_std²)

    Returns
    -------
    DataFrame with ``DECODE_COLUMNS``, one row per dtype × order: over every layer,
    token and seed, ``norm_fraction_differing`` and ``norm_max_ulps`` compare the
    MLP-side norm outputs (fast vs unfused, same input); ``block_fraction_differing``
    and ``block_max_relative_difference`` (max |difference| / rms of the output)
    compare the block outputs with ``Block.forward``'s; ``greedy_identical_fraction`` is the
    fraction of prompts whose ``steps`` greedy tokens are identical and
    ``greedy_token_agreement`` the fraction of equal tokens.
    """
    config = config or StackConfig(scheme="bhyt", depth=4, width=64, heads=4, seq_len=32, lam_in=2.0,
                                   lam_post=1.0, init_std=0.1)
    rows = []
    for dtype in dtypes:
        model_config = config.replace(dtype=dtype)
        models = {seed: _language_model(model_config, vocabulary, embedding_std, seed) for seed in seeds}
        for order in orders:
            counts = {"norm": [0, 0, 0], "block": [0, 0, 0.0]}  # outputs, differing, max ulps / relative
            identical = agreeing = total_tokens = 0
            for seed, (stack, embedding) in models.items():
                generator = torch.Generator().manual_seed(seed + 2)
                prompt = torch.randint(0, vocabulary, (batch, prompt_length), generator=generator)
                h = embedding[prompt]
                for block in stack.blocks:
                    out, fast, unfused = block_decode_forward(block, h, order)
                    reference = block(h)
                    ulps = ulp_distance(fast, unfused)
                    counts["norm"] = [counts["norm"][0] + ulps.numel(), counts["norm"][1] + int((ulps > 0).sum()),
                                      max(counts["norm"][2], int(ulps.max()))]
                    # Block outputs near 0 have tiny ulps: compare them relative to the output's rms.
                    difference = (out.double() - reference.double()).abs().max() / reference.double().square().mean().sqrt()
                    counts["block"] = [counts["block"][0] + out.numel(), counts["block"][1] + int((out != reference).sum()),
                                       max(counts["block"][2], float(difference))]
                    h = reference
                fast_tokens = greedy_decode(stack, embedding, prompt, steps, order)
                unfused_tokens = greedy_decode(stack, embedding, prompt, steps, None)
                identical += int((fast_tokens == unfused_tokens).all(1).sum())
                agreeing += int((fast_tokens == unfused_tokens).sum())
                total_tokens += fast_tokens.numel()
            rows.append({
                "dtype": dtype, "order": order, "norm_outputs": counts["norm"][0],
                "norm_fraction_differing": counts["norm"][1] / counts["norm"][0], "norm_max_ulps": counts["norm"][2],
                "block_fraction_differing": counts["block"][1] / counts["block"][0],
                "block_max_relative_difference": counts["block"][2], "greedy_sequences": batch * len(seeds),
                "greedy_identical_fraction": identical / (batch * len(seeds)),
                "greedy_token_agreement": agreeing / total_tokens,
            })
    return pd.DataFrame(rows, columns=list(DECODE_COLUMNS))
