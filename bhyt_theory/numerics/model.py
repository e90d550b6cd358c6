"""A small Llama-style decoder stack with every normalisation scheme of docs/schemes.md §2.

Causal multi-head attention with RoPE and optional GQA, a SwiGLU MLP, and a
residual stream. The stack takes hidden states (no embedding, no LM head) so
that depth behaviour can be studied on inputs of any scale. Each scheme is a
row of ``schemes.SCHEME_TABLE`` and ``Block.forward`` reads the row: the table
of docs/schemes.md §2, one line per sublayer, the same for every scheme.

Schemes
-------
``rmsnorm``   Pre-LN:   h' = h + Attn(N₁(h));               h'' = h' + MLP(N₂(h'))
``periln``    Peri-LN:  h' = h + N₁ᵒ(Attn(N₁(h)));          h'' = h' + N₂ᵒ(MLP(N₂(h')))
``lns``       Pre-LN with each pre-norm output scaled by 1/√l (l 1-based)
``dyt``       Pre-LN with DyT (also the final norm)
``derf``      Pre-LN with Derf (also the final norm)
``bhytstar``  Pre-LN with BHyT and the exact M = m(·) at both norms
``bhyt``      m₁ = m(h); h' = h + Attn(BHyT_λ₁(h; m₁));
              M₂ = m₁ + c_attn λ₁²/κ²;  h'' = h' + MLP(BHyT_λ₂(h'; M₂))
``bhytline``  the same numbers as ``bhyt``. The reference implementation computes
              ``bhyt``'s M₂ on a side CUDA stream, overlapped with attention, and
              ``bhytline``'s in sequence; that is scheduling only, so here both run
              the same sequential code.

References: Byun et al., arXiv 2601.09719 (BHyT); Sun et al., arXiv 2502.05795
(LNS, curse of depth); Kim et al., arXiv 2502.02732 (Peri-LN).
"""

from __future__ import annotations

import functools
import math
import numbers
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import schemes
from .estimators import (
    ESTIMATORS,
    EstimateInputs,
    estimator_parameters,
    token_positions,
    uncorrelated_m2_factor,
)
from .norms import BHyT, attention_variance_constant, check_real, mean_square
from .probes import NO_PROBE, Probe, TraceProbe
from .schemes import NORMALISERS, SCHEME_TABLE, scheme_row

SCHEMES = tuple(SCHEME_TABLE)
"""The built-in schemes (rows of ``schemes.SCHEME_TABLE``)."""
# Paper-scale shapes (``StackConfig.from_preset``). Llama-374M is the paper's own
# model (arXiv 2601.09719: hidden 1024, 16 layers, 16 heads, 4 KV heads, MLP 4096,
# head dim 64, T 1024; its RoPE base is not stated, so the Llama default 10⁴ is
# kept); Llama-1B and -3B are the Llama-3.2 shapes (RoPE base 5·10⁵; the Llama-3
# long-context frequency rescaling is not modelled: it changes only wavelengths
# above 8192 tokens, which barely turn over T = 1024), at the paper's T 1024.
PRESETS: dict[str, dict[str, object]] = {
    "llama-374m": {"width": 1024, "depth": 16, "heads": 16, "kv_heads": 4, "mlp_width": 4096, "seq_len": 1024},
    "llama-1b": {"width": 2048, "depth": 16, "heads": 32, "kv_heads": 8, "mlp_width": 8192, "seq_len": 1024,
                 "rope_theta": 500000.0},
    "llama-3b": {"width": 3072, "depth": 28, "heads": 24, "kv_heads": 8, "mlp_width": 8192, "seq_len": 1024,
                 "rope_theta": 500000.0},
}
KAPPA_SCHEDULES = {
    "constant": lambda layer: 1.0,
    "decay": lambda layer: layer**-0.5,
    "grow": lambda layer: layer**0.5,
    "mild_grow": lambda layer: layer**0.25,
    "quadratic": lambda layer: layer**2.0,
}
DTYPES = ("float32", "float64", "bfloat16", "float16")
INTEGER_FIELDS = ("depth", "width", "heads", "kv_heads", "mlp_width", "seq_len")
# Accepted range of each real field: (minimum or None, strict); every value must be finite.
# λ₁, λ₂ may take any sign: a trained λ may reach or cross zero (λ = 0 switches the branch
# off, λ < 0 negates γ; norms module docstring, "Validation"). lam_final = 0 means "no
# last-layer BHyT", so it is ≥ 0.
REAL_RANGES = {
    "lam_in": (None, False),
    "lam_post": (None, False),
    "lam_final": (0.0, False),
    "kappa": (0.0, True),
    "dyt_alpha": (0.0, True),
    "derf_alpha": (0.0, True),
    "init_std": (0.0, False),
    "rope_theta": (0.0, True),
}


@dataclass(frozen=True)
class StackConfig:
    """Everything that defines a stack, its initialisation and its BHyT estimate.

    ``init_std``: every linear weight ~ N(0, init_std²), no depth scaling.
    ``seq_len``: the (training) sequence length T in ``c_attn``; inputs may be
    shorter or longer. ``lam_in``/``lam_post``: λ of the norm before attention and
    before the MLP. ``lam_final``: λ of a last-layer BHyT* (BHyT schemes only, κ of the last
    layer); 0 means the final norm is
    RMSNorm (DyT/Derf for those schemes). ``estimator``: how ``bhyt``/``bhytline``
    form M₂ (``ESTIMATORS``; "reference" is the paper's); ``exact_layers``: how many
    first layers use the exact M₂ under the "hybrid" estimator.
    """

    scheme: str = "bhyt"
    depth: int = 8
    width: int = 256
    heads: int = 4
    kv_heads: int | None = None
    mlp_width: int | None = None
    seq_len: int = 128
    lam_in: float = 2.0
    lam_post: float = 1.0
    lam_final: float = 0.0
    kappa: float = 10.0
    kappa_schedule: str = "constant"
    dyt_alpha: float = 0.5
    derf_alpha: float = 0.5
    estimator: str = "reference"
    exact_layers: int = 2
    init_std: float = 0.02
    rope_theta: float = 10000.0
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.mlp_width is None:
            object.__setattr__(self, "mlp_width", 8 * math.ceil(8 * self.width / 3 / 8))
        problems = []
        table = schemes.SCHEME_TABLE  # read at call time: a table extended at run time is seen
        if self.scheme not in table:
            problems.append(f"scheme {self.scheme!r} is not one of {tuple(table)}")
        for name in INTEGER_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                problems.append(f"{name} must be an integer ≥ 1, got {value!r}")
        for name, (minimum, strict) in REAL_RANGES.items():
            try:
                check_real(getattr(self, name), name, minimum, strict)
            except (TypeError, ValueError) as error:
                problems.append(str(error))
        if not problems:  # the divisibility checks need positive sizes
            if self.width % self.heads:
                problems.append(f"width {self.width} is not a multiple of heads {self.heads}")
            elif (self.width // self.heads) % 2:
                problems.append(f"head_dim {self.width // self.heads} must be even for RoPE")
            if self.heads % self.kv_heads:
                problems.append(f"heads {self.heads} is not a multiple of kv_heads {self.kv_heads}")
        if self.lam_final and self.scheme in table and not table[self.scheme].bhyt_family:
            problems.append(f"lam_final (a last-layer BHyT) applies to BHyT schemes only, not {self.scheme!r}")
        if self.scheme in table:
            problems.extend(self._take_row_fields(table[self.scheme]))
        if self.kappa_schedule not in KAPPA_SCHEDULES:
            problems.append(f"kappa_schedule {self.kappa_schedule!r} is not one of {tuple(KAPPA_SCHEDULES)}")
        if self.estimator not in ESTIMATORS:
            problems.append(f"estimator {self.estimator!r} is not one of {tuple(ESTIMATORS)}")
        if self.exact_layers < 0:
            problems.append(f"exact_layers must be ≥ 0, got {self.exact_layers}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype {self.dtype!r} is not one of {DTYPES}")
        if problems:
            raise ValueError("invalid StackConfig: " + "; ".join(problems))

    def _take_row_fields(self, row: "schemes.Scheme") -> list[str]:
        """Take the estimator and κ schedule the scheme row fixes (``Scheme.estimator``,
        ``Scheme.kappa_schedule``) where this config holds the field's default; a
        different explicit value is a problem (returned)."""
        problems = []
        for name, default in (("estimator", "reference"), ("kappa_schedule", "constant")):
            fixed, value = getattr(row, name), getattr(self, name)
            if fixed is None or value == fixed:
                continue
            if value == default:
                object.__setattr__(self, name, fixed)
            else:
                problems.append(f"scheme {self.scheme!r} fixes {name} {fixed!r}, got {value!r}")
        return problems

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def kappa_at(self, layer: int) -> float:
        """κ of 0-based ``layer`` under ``kappa_schedule`` (l = layer + 1)."""
        return self.kappa * KAPPA_SCHEDULES[self.kappa_schedule](layer + 1)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> StackConfig:
        """The paper-scale shape ``PRESETS[name]`` with ``overrides`` (any field,
        the preset's own included) applied on top.

        Examples
        --------
        >>> config = StackConfig.from_preset("llama-374m", scheme="rmsnorm", depth=4)
        >>> config.width, config.kv_heads, config.mlp_width, config.depth, config.head_dim
        (1024, 4, 4096, 4, 64)
        """
        if name not in PRESETS:
            raise ValueError(f"preset {name!r} is not one of {tuple(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes) -> "StackConfig":
        """A copy with ``changes`` applied (validated again).

        Derived fields that still hold their derived value (``kv_heads = heads``,
        ``mlp_width`` from ``width``) are derived again unless ``changes`` sets them,
        so ``replace(width=512)`` gets the MLP width of width 512.
        """
        derived = {"kv_heads": self.heads, "mlp_width": StackConfig(width=self.width).mlp_width}
        for name, value in derived.items():
            if name not in changes and getattr(self, name) == value:
                changes[name] = None
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Every field, for cache keys and tables."""
        return asdict(self)


def rotary(x: Tensor, theta: float, start: int = 0) -> Tensor:
    """RoPE on ``(B, H, T, head_dim)`` (rotate-half convention), angles in float32.

    The tokens sit at 0-based positions ``start … start + T − 1`` (``start > 0``:
    new tokens appended to a key/value cache).
    """
    cos, sin = _rotary_tables(x.shape[-1], start, x.shape[-2], float(theta), x.dtype, x.device)
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], -1) * sin


@functools.lru_cache(maxsize=16)
def _rotary_tables(head_dim: int, start: int, length: int, theta: float, dtype: torch.dtype,
                   device: torch.device) -> tuple[Tensor, Tensor]:
    """``rotary``'s cos and sin tables, ``(length, head_dim)`` in ``dtype``: the same for every
    layer and head of a stack, so they are computed once per shape (never modified in place)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    positions = torch.arange(start, start + length, dtype=torch.float32, device=device)
    angles = torch.outer(positions, inv_freq)
    cos = torch.cat([angles.cos(), angles.cos()], -1).to(dtype)
    sin = torch.cat([angles.sin(), angles.sin()], -1).to(dtype)
    return cos, sin


class _PlaceholderLinear(nn.Linear):
    """An ``nn.Linear`` built with a placeholder weight on the meta device and without
    its default initialisation (no memory, no random draw), for a caller that sets
    the weight next (``build_block``)."""

    def reset_parameters(self) -> None:
        """Nothing to initialise: the caller sets the weight."""


def linear(inputs: int, outputs: int, empty: bool = False) -> nn.Linear:
    """A bias-free ``nn.Linear``; ``empty=True``: a ``_PlaceholderLinear``."""
    if empty:
        return _PlaceholderLinear(inputs, outputs, bias=False, device="meta")
    return nn.Linear(inputs, outputs, bias=False)


class Attention(nn.Module):
    """Causal multi-head attention with RoPE; KV head j serves query heads j·g … j·g+g−1.

    ``empty_linears=True``: placeholder weights, to be set by the caller (``linear``)."""

    def __init__(self, config: StackConfig, empty_linears: bool = False):
        super().__init__()
        d, hd = config.width, config.head_dim
        self.heads, self.kv_heads, self.theta = config.heads, config.kv_heads, config.rope_theta
        self.q_proj = linear(d, config.heads * hd, empty_linears)
        self.k_proj = linear(d, config.kv_heads * hd, empty_linears)
        self.v_proj = linear(d, config.kv_heads * hd, empty_linears)
        self.o_proj = linear(config.heads * hd, d, empty_linears)

    def _split(self, x: Tensor, heads: int) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, -1).transpose(1, 2)

    def _queries_keys(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """RoPE-rotated queries and keys, ``(B, heads, T, head_dim)``, KV heads repeated."""
        q = rotary(self._split(self.q_proj(x), self.heads), self.theta)
        k = rotary(self._split(self.k_proj(x), self.kv_heads), self.theta)
        return q, k.repeat_interleave(self.heads // self.kv_heads, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Causal multi-head attention of ``x`` (shape ``(B, T, d)``)."""
        q, k = self._queries_keys(x)
        v = self._split(self.v_proj(x), self.kv_heads).repeat_interleave(self.heads // self.kv_heads, 1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))

    def probabilities(self, x: Tensor) -> Tensor:
        """The causal attention probabilities ``P`` of shape ``(B, heads, T, T)`` that
        ``forward`` applies: ``softmax(q kᵀ / sqrt(head_dim))`` with ``P_tj = 0`` for
        ``j > t`` (SDPA's default scale). Rows sum to 1."""
        q, k = self._queries_keys(x)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
        return scores.masked_fill(future, -math.inf).softmax(-1)

    def variance_constant(self, seq_len: int) -> Tensor:
        """``c_attn`` of this layer's current weights (docs/estimators.md §1)."""
        return attention_variance_constant(
            self.v_proj.weight, self.o_proj.weight, seq_len, self.heads, self.kv_heads
        )


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) ⊙ up(x))``; ``empty_linears`` as for ``Attention``."""

    def __init__(self, config: StackConfig, empty_linears: bool = False):
        super().__init__()
        self.gate_proj = linear(config.width, config.mlp_width, empty_linears)
        self.up_proj = linear(config.width, config.mlp_width, empty_linears)
        self.down_proj = linear(config.mlp_width, config.width, empty_linears)

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        # Without autograd the gate's buffer takes the product in place: the same numbers,
        # two fewer buffers of batch × T × MLP width.
        return self.down_proj(F.silu(self.gate_proj(x), inplace=True).mul_(self.up_proj(x)))


def make_norm(config: StackConfig, lam: float, layer: int) -> nn.Module:
    """The pre-norm of ``config.scheme``'s row at 0-based ``layer``."""
    return NORMALISERS[scheme_row(config.scheme).pre_norm].build(config, lam, layer)


def _make_output_norm(config: StackConfig, layer: int) -> nn.Module:
    """The norm after each sublayer of ``config.scheme``'s row; ``nn.Identity`` for none."""
    name = scheme_row(config.scheme).post_norm
    return nn.Identity() if name is None else NORMALISERS[name].build(config, 0.0, layer)


class Block(nn.Module):
    """One Llama block under ``config.scheme`` (its row of ``schemes.SCHEME_TABLE``).

    ``empty_linears=True`` leaves placeholder linear weights (``linear``), for
    ``build_block``, which sets them right after."""

    def __init__(self, config: StackConfig, layer: int, empty_linears: bool = False):
        super().__init__()
        self.scheme, self.layer, self.config = config.scheme, layer, config
        self.row = scheme_row(config.scheme)
        self.norm_attn = make_norm(config, config.lam_in, layer)
        self.norm_mlp = make_norm(config, config.lam_post, layer)
        self.attn = Attention(config, empty_linears)
        self.mlp = SwiGLU(config, empty_linears)
        self.norm_attn_out = _make_output_norm(config, layer)
        self.norm_mlp_out = _make_output_norm(config, layer)
        self.branch_scale = 1.0 / self.row.branch_divisor(layer)
        self.register_buffer("c_attn", torch.zeros((), dtype=torch.float64))
        # The "correlation" estimator's per-position factor on the increment (T values, float64);
        # it starts from the uncorrelated-token value, a mean-field prediction or running
        # statistics replace it (set_m2_factor, track_m2_factor; docs/estimators.md §8).
        self.register_buffer("m2_factor", torch.as_tensor(
            uncorrelated_m2_factor(config.seq_len, config.lam_in, config.kappa_at(layer)), dtype=torch.float64))
        # The learnable scalars of a learnable M₂ estimator (empty otherwise).
        learnable = estimator_parameters(config.estimator) if self.row.estimates_m2 else {}
        self.estimator_parameters = nn.ParameterDict(
            {name: nn.Parameter(torch.tensor(value)) for name, value in learnable.items()}
        )

    def _apply(self, fn, recurse=True):
        # ``.to(dtype)`` casts every floating buffer; c_attn is a statistic and stays
        # float64 (a bf16 copy of it would be ~0.2 % off), only its device follows.
        c_attn, m2_factor = self.c_attn, self.m2_factor
        super()._apply(fn, recurse)
        self.c_attn = c_attn.to(device=self.c_attn.device)
        self.m2_factor = m2_factor.to(device=self.m2_factor.device)
        return self

    @torch.no_grad()
    def set_m2_factor(self, factor) -> None:
        """Replace the "correlation" estimator's per-position factor (``seq_len`` values,
        e.g. ``theory.meanfield.correlation_factors`` of this layer)."""
        values = torch.as_tensor(factor, dtype=torch.float64).reshape(-1)
        if values.shape != self.m2_factor.shape or not bool(torch.isfinite(values).all()):
            raise ValueError(f"m2_factor needs {self.m2_factor.shape[0]} finite values, got shape {tuple(values.shape)}")
        self.m2_factor.copy_(values.to(self.m2_factor.device))

    @torch.no_grad()
    def track_m2_factor(self, h: Tensor, momentum: float = 0.1) -> Tensor:
        """Update ``m2_factor`` from the block input ``h`` as batch norm updates its running
        moments, and return the block's output.

        The measured factor at position t is the batch mean of ``(m(h'_t) − m₁_t)`` over
        the batch mean of the reference increment ``c_attn λ₁²/κ²``; the buffer becomes
        ``(1 − momentum) · m2_factor + momentum · measured`` at the positions ``h`` has
        (at most ``seq_len``). It costs the second reduction the estimate avoids, on
        this pass only (a refresh, like ``refresh_variance_constant``).
        """
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        m1 = mean_square(h)
        u = self.norm_attn(h, mean_square=m1) * self.branch_scale
        h_after = h + self.norm_attn_out(self.attn(u))
        increment = (mean_square(h_after).double() - m1.double()).reshape(-1, h.shape[-2]).mean(0)
        reference = self.c_attn * (self.norm_attn.lam.detach().double() / self.norm_attn.kappa) ** 2
        length = min(h.shape[-2], self.m2_factor.shape[0])
        measured = increment[:length] / reference
        self.m2_factor[:length] = (1.0 - momentum) * self.m2_factor[:length] + momentum * measured
        return self(h)

    def refresh_variance_constant(self) -> None:
        """Recompute ``c_attn`` from the current W_V, W_O (the reference does this
        ~50 times per training run)."""
        self.c_attn.copy_(self.attn.variance_constant(self.config.seq_len).detach())

    def forward(self, h: Tensor, probe: Probe = NO_PROBE) -> Tensor:
        """``h_{l+1}`` from ``h_l`` (shape ``(B, T, d)``); ``probe`` records statistics.

        One line per sublayer, as in docs/schemes.md: ``h' = h + N₁ᵒ(Attn(N₁(h)/s))``,
        ``h'' = h' + N₂ᵒ(MLP(N₂(h')/s))``, with the row's pre-norm N, output norm Nᵒ
        (identity if none) and divisor s. On a row that estimates M₂, N₁ is fed
        ``m₁ = m(h)`` and N₂ the estimate ``M₂`` (``{}``: the norm reduces its input itself).
        """
        attn_statistic = {"mean_square": mean_square(h)} if self.row.estimates_m2 else {}
        probe.argument(self.layer, "attn", self.norm_attn, h, **attn_statistic)
        h_after = h + self.norm_attn_out(self.attn(self.norm_attn(h, **attn_statistic) * self.branch_scale))
        mlp_statistic = self._mlp_statistic(h, h_after, attn_statistic)
        probe.state(self.layer, "attn", h_after, estimate=mlp_statistic.get("mean_square"))
        probe.argument(self.layer, "mlp", self.norm_mlp, h_after, **mlp_statistic)
        h = h_after + self.norm_mlp_out(self.mlp(self.norm_mlp(h_after, **mlp_statistic) * self.branch_scale))
        probe.state(self.layer, "mlp", h)
        return h

    def _mlp_statistic(self, h: Tensor, h_after: Tensor, attn_statistic: dict) -> dict:
        """``{"mean_square": M₂}`` of ``config.estimator`` on a row that estimates M₂, else ``{}``."""
        if not self.row.estimates_m2:
            return {}
        return {"mean_square": self.estimate(h, attn_statistic["mean_square"], h_after)}

    def estimate(self, h: Tensor, mean_square_in: Tensor, h_after: Tensor, estimator: str | None = None) -> Tensor:
        """M₂ of ``estimator`` (default ``config.estimator``; a key of ``ESTIMATORS``) from this
        block's first norm, ``c_attn`` and estimator parameters, the block input ``h``, its
        ``m₁ = m(h)`` and the post-attention state ``h'``."""
        return ESTIMATORS[estimator or self.config.estimator](
            EstimateInputs(
                mean_square_in, self.c_attn, self.norm_attn.lam, self.norm_attn.kappa,
                self.norm_attn.gamma, h_after, token_positions(h), self.config.seq_len,
                dict(self.estimator_parameters), self.layer, self.config.exact_layers, self.m2_factor,
            )
        )


def layer_seed(seed: int, layer: int) -> int:
    """The weight seed of 0-based ``layer`` in a stack seeded with ``seed``.

    Each block draws from its own generator, so block ``l`` of a stack can be
    rebuilt alone (``build_block``) and streamed through depth without holding
    the other blocks.
    """
    return int(np.random.SeedSequence([seed, layer]).generate_state(1)[0])


def linear_shapes(config: StackConfig) -> tuple[tuple[int, int], ...]:
    """The ``nn.Linear`` weight shapes of a block of ``config``, in module order
    (``q, k, v, o`` of attention, then ``gate, up, down`` of the MLP), the order
    ``build_block`` draws them in."""
    d, hd, f = config.width, config.head_dim, config.mlp_width
    return ((config.heads * hd, d), (config.kv_heads * hd, d), (config.kv_heads * hd, d), (d, config.heads * hd),
            (f, d), (f, d), (d, f))


DRAW_CHUNK = 2**20
"""Normals per chunk of a layer's weight draw (``draw_weights``): the weights of a layer
of at most this many numbers (every layer up to width 256 at the default MLP width) are one
stream of its seed."""
DRAW_LABEL = "bhyt::draw_weights"
"""The profiler label of ``draw_weights`` on its calling thread (``bench.cost_split``)."""


def chunk_seed(seed: int, chunk: int) -> int:
    """The generator seed of chunk ``chunk`` of the draw seeded with ``seed``: ``seed``
    itself for chunk 0, a ``SeedSequence`` child of it (spawn key ``chunk``) after."""
    return seed if chunk == 0 else int(np.random.SeedSequence(seed, spawn_key=(chunk,)).generate_state(1)[0])


@torch.no_grad()
def draw_weights(
    shapes: tuple[tuple[int, int], ...], init_std: float, seed: int, chunk: int = DRAW_CHUNK
) -> list[Tensor]:
    """CPU float32 weights ~ N(0, init_std²) of the given shapes, drawn from ``seed``.

    The weights, flattened and laid end to end in order, are cut into chunks of
    ``chunk`` numbers; chunk ``k`` is drawn from torch's generator seeded with
    ``chunk_seed(seed, k)``, piece by piece (one ``normal_`` per weight it covers),
    and every weight is then scaled in place by ``init_std`` (no temporary). So the
    weights of a layer of at most ``chunk`` numbers are the next ``numel`` standard
    normals of one generator seeded with ``seed``, weight after weight, and a larger
    layer draws its chunks in parallel, one per torch thread (``torch.get_num_threads``);
    the thread count does not change a bit. Blocks that share a layer seed and weight
    shapes (every scheme of a sweep, for one seed and layer) can share one draw.

    torch's CPU generator (mt19937, Box–Muller) is the fastest seeded draw measured
    (numpy's ``Generator`` with SFC64, its fastest bit generator, took 2.3×, PCG64
    2.7×, Philox 3.3×). On 2 threads of an idle 2-core machine the chunks took 0.70× the
    one-stream time at width 1024 and 0.89× at width 512 (freshly allocated weights: their
    page faults do not parallelise; 0.52× into memory already touched). The same seed
    gives the same bits on every machine of one torch kernel family: AVX2 and AVX-512
    agree, torch's generic kernel (CPUs without AVX2) differs in the last bit
    (tests/test_model.py checks both against stored draws).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of normals, got {chunk}")
    weights = [torch.empty(shape) for shape in shapes]
    flat = [weight.view(-1) for weight in weights]
    bounds = np.cumsum([0] + [piece.numel() for piece in flat])
    n_chunks = math.ceil(bounds[-1] / chunk)

    def draw(k: int, scale: bool) -> None:
        generator = torch.Generator().manual_seed(chunk_seed(seed, k))
        start, stop = k * chunk, (k + 1) * chunk
        for piece, begin, end in zip(flat, bounds[:-1], bounds[1:]):
            if begin < stop and end > start:
                part = piece[max(start, begin) - begin:min(stop, end) - begin].normal_(generator=generator)
                if scale:  # while the part is in cache
                    part.mul_(init_std)

    with torch.profiler.record_function(DRAW_LABEL):
        workers = min(n_chunks, torch.get_num_threads())
        if workers <= 1:
            for k in range(n_chunks):
                draw(k, scale=True)
        else:
            # normal_ releases the GIL; the scaling waits for the main thread, where
            # torch's own threads may run it.
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(functools.partial(draw, scale=False), range(n_chunks)))
            for weight in weights:
                weight.mul_(init_std)
    return weights


def build_block(
    config: StackConfig, layer: int, seed: int, weights: list[Tensor] | None = None, c_attn: Tensor | None = None
) -> Block:
    """Block ``layer`` of ``Stack(config, seed)``, identical weights, built alone.

    ``weights``: the layer's draw, ``draw_weights(linear_shapes(config),
    config.init_std, layer_seed(seed, layer))``, when the caller already holds it
    (a CPU float32 weight is used as is, not copied: the block must not be
    trained; a weight given in another dtype or on another device is cast or
    moved like the rest of the block). ``c_attn``: the layer's variance constant, when the caller already
    holds it for these weights, dtype, device and ``seq_len`` (another scheme's
    block of the same layer); otherwise it is computed. The linear layers are
    constructed without their default initialisation
    (``Block(..., empty_linears=True)``), since they are overwritten.
    """
    block = Block(config, layer, empty_linears=True)
    if weights is None:
        weights = draw_weights(linear_shapes(config), config.init_std, layer_seed(seed, layer))
    linears = [child for child in block.modules() if isinstance(child, nn.Linear)]
    for child, weight in zip(linears, weights, strict=True):
        child.weight = nn.Parameter(weight, requires_grad=child.weight.requires_grad)
    target = torch.device(config.device)
    if any(p.dtype != config.torch_dtype or p.device != target for p in block.parameters()):
        block.to(device=target, dtype=config.torch_dtype)
    with torch.no_grad():
        if c_attn is None:
            block.refresh_variance_constant()
        else:
            block.c_attn.copy_(c_attn)
    return block


def hidden_states(x: Tensor, config: StackConfig) -> Tensor:
    """``x`` checked to be ``(batch, T, width)`` and moved to the config's device and dtype."""
    if x.ndim != 3 or x.shape[-1] != config.width:
        raise ValueError(f"expected hidden states of shape (batch, T, {config.width}), got {tuple(x.shape)}")
    return x.to(device=config.device, dtype=config.torch_dtype)


class Stack(nn.Module):
    """``depth`` blocks and a final norm, with weights drawn deterministically from ``seed``.

    Block ``l`` draws its weights from ``layer_seed(seed, l)`` on the CPU and is then
    moved, so a seed gives the same stack on every device, and any block can be
    rebuilt alone with ``build_block``.
    """

    def __init__(self, config: StackConfig, seed: int = 0):
        super().__init__()
        self.config, self.seed = config, seed
        self.blocks = nn.ModuleList(build_block(config, layer, seed) for layer in range(config.depth))
        if config.lam_final > 0:
            self.final_norm = BHyT(config.width, config.lam_final, config.kappa_at(config.depth - 1))
        else:
            final = NORMALISERS[scheme_row(config.scheme).final_norm]
            self.final_norm = final.build(config, 0.0, config.depth - 1)
        self.final_norm.to(device=config.device, dtype=config.torch_dtype)

    @torch.no_grad()
    def refresh_variance_constants(self) -> None:
        """Recompute every block's ``c_attn`` from its current weights (e.g. during training)."""
        for block in self.blocks:
            block.refresh_variance_constant()

    def set_m2_factors(self, factors) -> None:
        """Every block's "correlation" factor from an array of shape ``(depth, seq_len)``."""
        for block, factor in zip(self.blocks, np.asarray(factors, dtype=np.float64), strict=True):
            block.set_m2_factor(factor)

    @torch.no_grad()
    def track_m2_factors(self, x: Tensor, momentum: float = 0.1) -> Tensor:
        """One refresh pass of every block's running "correlation" factor
        (``Block.track_m2_factor``), block after block on ``x``; returns the residual stream."""
        h = hidden_states(x, self.config)
        for block in self.blocks:
            h = block.track_m2_factor(h, momentum)
        return h

    def residual(self, x: Tensor, probe: Probe = NO_PROBE) -> Tensor:
        """The residual stream after the last block (before the final norm)."""
        h = hidden_states(x, self.config)
        for block in self.blocks:
            h = block(h, probe)
        return h

    def forward(self, x: Tensor) -> Tensor:
        """The final norm of the residual stream after the last block."""
        return self.final_norm(self.residual(x))

    @torch.no_grad()
    def trace(self, x: Tensor) -> pd.DataFrame:
        """Per layer × sublayer × position statistics of the residual stream.

        Columns: ``layer`` (0-based), ``sublayer`` ("attn"/"mlp"), ``position``,
        ``mean_square`` (batch-mean m of the state right after that sublayer's
        residual add), ``rms``, ``mean_abs``, ``variance``; on ``bhyt``/``bhytline``
        "attn" rows ``mean_square_estimate`` (the M₂ the MLP-side BHyT used) and
        ``estimate_ratio`` (batch-mean M₂/m); for tanh/erf schemes the argument of
        the norm *feeding* that sublayer: ``arg_rms``, ``arg_max_abs``,
        ``saturated_fraction_{1,2,3}``; plus ``scheme`` and ``seed``.
        """
        probe = TraceProbe()
        self.residual(x, probe)
        table = probe.frame()
        table.insert(0, "seed", self.seed)
        table.insert(0, "scheme", self.config.scheme)
        return table
