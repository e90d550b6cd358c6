"""What the normaliser costs per block, counted and timed (claim C6; docs/claims.md).

Claim C6 of arXiv 2601.09719: BHyT is faster than Pre-LN RMSNorm, by +1.6 %
training speed and +1.77 % token-generation throughput in v3 of the paper
(+15.8 % and +4.2 % in v1), on GPUs. This module gives the two halves of an
answer that a CPU can give, and a GPU when one is present:

1. ``cost_model``: an analytic count, per token and per block (two normaliser
   sites), of what each normaliser does — row reductions, element-wise
   transcendental operations, per-token scalar roots, bytes of activations moved,
   fused kernel launches — forward, backward and for one decode token, derived
   from the formulas (docs/normalisers.md, docs/estimators.md) under the
   counting rules of ``site_cost``.
2. ``time_block`` / ``time_decode``: wall time of one block forward + backward
   and of one decode step (one new token against a key/value cache, BHyT through
   its decode fast path ``norms.bhyt_decode``), each as a
   ratio to RMSNorm measured in the same process, rounds interleaved across
   schemes, with Student-t intervals of the rounds' log ratios, widened and
   flagged where the rounds disagree (``timing_summary``). A timing is evidence
   for a speed claim only on the kind of device the claim is about: a CPU
   timing is reported next to the paper's GPU claims and decides none of them
   (``DEVICE_CLAIMS``).

What the count shows before any clock is read: the paper's ``bhyt`` removes the
second normaliser's *forward* reduction (``M₂ = m₁ + c_attn λ₁²/κ²``), but not
its pass over the activations (the tanh still reads h′ and writes u), and not
its backward reduction (the gradient with respect to M₂ is a per-token sum).
On a memory-bound GPU kernel the saving is therefore a fraction of one
normaliser's arithmetic, next to the block's matmuls.

Schemes: ``rmsnorm`` (Pre-LN), ``dyt``, ``bhytstar`` (BHyT with exact M at both
sites) and ``bhyt`` (the paper's, M₂ estimated).
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..numerics.inputs import InputSpec
from ..numerics.model import (
    Block,
    StackConfig,
    build_block,
    rotary,
)
from ..numerics.norms import (
    DecodeConstants,
    bhyt_decode,
    mean_square,
    precompute_decode_constants,
)
from .montecarlo import confidence_interval

EFFICIENCY_SCHEMES = ("rmsnorm", "dyt", "bhytstar", "bhyt", "bhytc")
"""Timed and costed by default: the paper's schemes and this toolkit's variant (docs/schemes.md §7)."""
BASELINE = "rmsnorm"
STATISTIC_BYTES = 4  # one float32 per-token statistic (m, M₂ or 1/rms)


@dataclass(frozen=True)
class SiteCost:
    """What one normaliser site costs for one token of width d (``site_cost``)."""

    row_reductions: int
    transcendental_elementwise: int
    scalar_roots: int
    activation_bytes: int
    kernel_launches: int
    parameter_reductions: int = 0

    def __add__(self, other: "SiteCost") -> "SiteCost":
        return SiteCost(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values())))


SITE_KINDS = ("rmsnorm", "dyt", "bhyt_exact", "bhyt_estimated", "bhyt_correlation")
DECODE_ESTIMATORS = ("reference", "correlation")
"""The M₂ estimators with a decode fast path (``decode_constants``)."""


def site_cost(kind: str, width: int, element_bytes: int, direction: str) -> SiteCost:
    """The cost of one normaliser site for one token, counted from its formula.

    Parameters
    ----------
    kind : {"rmsnorm", "dyt", "bhyt_exact", "bhyt_estimated"}
        ``rmsnorm``: ``γ ⊙ h / sqrt(m(h) + ε)``; ``dyt``: ``γ ⊙ tanh(α h) + β``;
        ``bhyt_exact``: ``γ ⊙ tanh(λ h / (κ sqrt(m(h) + ε)))``;
        ``bhyt_estimated``: the same with ``M₂ = m₁ + c_attn λ₁²/κ²`` in place of
        ``m(h)`` (the paper's second site).
        ``bhyt_correlation``: the estimated site with ``M₂ = m₁ + c_attn f_t λ₁²/κ²``,
        ``f_t`` a per-position factor from a buffer of T values per layer (the
        ``correlation`` estimator; ``bhytc``'s second site).
    width : int
        d, the hidden width (≥ 1).
    element_bytes : int
        Bytes per activation element (4 for float32, 2 for bfloat16).
    direction : {"forward", "backward"}

    Returns
    -------
    SiteCost

    Notes
    -----
    Counting rules (one fused kernel per pass, the usual form of a normaliser
    kernel; a kernel keeps its row in registers, so a reduction costs no extra
    pass over memory):

    Forward, per token:

    - ``row_reductions``: sums over the d coordinates of the token: 1 for
      ``m(h) = (1/d) Σ h_i²`` (rmsnorm, bhyt_exact), 0 for DyT and for the
      estimated site, whose M₂ is one scalar add per token.
    - ``transcendental_elementwise``: d tanh for the tanh normalisers, 0 for
      RMSNorm.
    - ``scalar_roots``: one ``1/sqrt(·)`` per token where a mean square is used.
    - ``activation_bytes``: read h and write u, ``2 d · element_bytes``, plus one
      float32 statistic written for the backward pass (the per-token mean square;
      for BHyT the first site's m₁, which the estimated site also reads: +4).
    - ``kernel_launches``: 1.
    - ``bhyt_correlation`` as ``bhyt_estimated``, plus the per-position factor
      read (one float32 per token, +4 bytes; it is shared by the batch, so this
      is an upper bound) and one scalar multiply per token (not a column: it is
      one flop beside the ``d`` tanh).

    Backward, per token, with h and the statistic saved and tanh recomputed:

    - reads ∂L/∂u, h and the statistic, writes ∂L/∂h: ``3 d · element_bytes + 4``;
      the estimated site also writes ∂L/∂M₂ (+4), which the exact first site reads
      (+4) to add ``(2 h / d) ∂L/∂M₂`` — the gradient through ``m₁``. The factor
      is a buffer (no gradient): ``bhyt_correlation``'s backward is ``bhyt_estimated``'s.
    - ``row_reductions``: 1 where the scale depends on the token through a mean
      square — the projection ``Σ_i g_i h_i`` of RMSNorm and BHyT*, and for the
      estimated site the per-token ``∂L/∂M₂ = −½ Σ_i g_i γ_i tanh′(z_i) z_i / (M₂ + ε)``;
      0 for DyT.
    - ``transcendental_elementwise``: d (tanh recomputed) for the tanh normalisers.
    - ``parameter_reductions`` (over tokens, once per batch, counted here per
      site): γ for all; α and β for DyT; λ for BHyT.
    - ``kernel_launches``: 1 for ∂L/∂h plus one per parameter reduction.
    """
    if kind not in SITE_KINDS:
        raise ValueError(f"kind must be one of {SITE_KINDS}, got {kind!r}")
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if width < 1 or element_bytes < 1:
        raise ValueError(f"width and element_bytes must be ≥ 1, got {width}, {element_bytes}")
    tanh = width if kind != "rmsnorm" else 0
    uses_mean_square = kind != "dyt"
    estimated = kind in ("bhyt_estimated", "bhyt_correlation")
    if direction == "forward":
        statistic = STATISTIC_BYTES * (2 if estimated else 1) if uses_mean_square else 0
        statistic += STATISTIC_BYTES if kind == "bhyt_correlation" else 0
        return SiteCost(
            row_reductions=int(kind in ("rmsnorm", "bhyt_exact")),
            transcendental_elementwise=tanh,
            scalar_roots=int(uses_mean_square),
            activation_bytes=2 * width * element_bytes + statistic,
            kernel_launches=1,
        )
    parameters = {"rmsnorm": 1, "dyt": 3, "bhyt_exact": 2, "bhyt_estimated": 2, "bhyt_correlation": 2}[kind]
    statistic = STATISTIC_BYTES if uses_mean_square else 0
    through_estimate = STATISTIC_BYTES if kind == "bhyt_exact" or estimated else 0
    return SiteCost(
        row_reductions=int(uses_mean_square),
        transcendental_elementwise=tanh,
        scalar_roots=int(uses_mean_square),
        activation_bytes=3 * width * element_bytes + statistic + through_estimate,
        kernel_launches=1 + parameters,
        parameter_reductions=parameters,
    )


SCHEME_SITES = {
    "rmsnorm": ("rmsnorm", "rmsnorm"),
    "dyt": ("dyt", "dyt"),
    "bhytstar": ("bhyt_exact", "bhyt_exact"),
    "bhyt": ("bhyt_exact", "bhyt_estimated"),
    "bhytc": ("bhyt_exact", "bhyt_correlation"),
}


def cost_model(width: int, schemes: Sequence[str] = EFFICIENCY_SCHEMES, element_bytes: int = 4) -> pd.DataFrame:
    """Per-token cost of a block's two normaliser sites, per scheme and pass.

    Rows: scheme × pass, pass ∈ {"forward", "backward", "decode"}; "decode" is one
    new token's forward pass (the decode fast path precomputes ``λ/κ`` and
    ``c_attn λ₁²/κ²``, so it counts as the forward). ``bhyt`` is the exact site
    before attention and the estimated site before the MLP (``bhytc`` the
    correlation-aware one); ``bhytstar`` is
    two exact sites. Columns: the fields of ``SiteCost`` and ``width``,
    ``element_bytes``; the bytes column is relative to RMSNorm in
    ``bytes_vs_rmsnorm``.
    """
    unknown = [s for s in schemes if s not in SCHEME_SITES]
    if unknown:
        raise ValueError(f"schemes must be among {tuple(SCHEME_SITES)}, got {unknown}")
    rows = []
    for scheme in schemes:
        for pass_, direction in (("forward", "forward"), ("backward", "backward"), ("decode", "forward")):
            first, second = (site_cost(kind, width, element_bytes, direction) for kind in SCHEME_SITES[scheme])
            rows.append({"scheme": scheme, "pass": pass_, **(first + second).__dict__})
    table = pd.DataFrame(rows).assign(width=width, element_bytes=element_bytes)
    baseline = {p: site_cost("rmsnorm", width, element_bytes, "backward" if p == "backward" else "forward").activation_bytes * 2
                for p in ("forward", "backward", "decode")}
    table["bytes_vs_rmsnorm"] = table["activation_bytes"] / table["pass"].map(baseline)
    return table


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hardware(device: str) -> str:
    """A description of the hardware behind ``device``: the GPU's name, or the CPU's model and threads."""
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} torch threads"


def _timed_rounds(work: dict[str, Callable[[], object]], rounds: int, inner: int, device: str) -> list[dict]:
    """Every job of ``work`` timed in turn, ``rounds`` times after a warm-up round;
    each measurement is the mean of ``inner`` calls. Interleaving gives every scheme
    the same share of a shared machine's disturbances, and a round's ratios pair
    measurements taken seconds apart."""
    rows = []
    for round_ in range(rounds + 1):
        for name, job in work.items():
            _synchronise(device)
            start = time.perf_counter()
            for _ in range(inner):
                job()
            _synchronise(device)
            if round_:
                rows.append({"scheme": name, "round": round_ - 1, "seconds": (time.perf_counter() - start) / inner})
    return rows


def _block(config: StackConfig, scheme: str) -> Block:
    return build_block(config.replace(scheme=scheme), 0, 0)


def time_block(
    config: StackConfig,
    schemes: Sequence[str] = EFFICIENCY_SCHEMES,
    batch: int = 4,
    rounds: int = 10,
    inner: int = 3,
) -> pd.DataFrame:
    """Seconds of one block forward + backward (training step of one block), per scheme × round.

    Inputs ``x ~ N(0, 1)`` of shape ``(batch, config.seq_len, config.width)``
    (BHyT is scale-free; the cost does not depend on the scale); the backward pass
    is ``sum(block(x)).backward()`` with ∂/∂x and every parameter's gradient.
    Returns a raw table: ``measurement`` ("block forward+backward"), ``scheme``,
    ``round``, ``seconds``, ``device``, ``hardware``.
    """
    x = InputSpec(batch=batch, std=1.0).hidden_states(config, seed=0)
    work = {}
    for scheme in schemes:
        block = _block(config, scheme)
        leaf = x.clone().requires_grad_(True)

        def step(block=block, leaf=leaf):
            block.zero_grad(set_to_none=True)
            leaf.grad = None
            block(leaf).sum().backward()

        work[scheme] = step
    rows = _timed_rounds(work, rounds, inner, config.device)
    return pd.DataFrame(rows).assign(measurement="block forward+backward", device=config.device,
                                     hardware=hardware(config.device))


def _attention_input(block: Block, h: Tensor) -> tuple[Tensor, dict]:
    """The attention sublayer's input ``N₁(h)/s`` and the statistic fed to N₁ (``m₁`` on a row that estimates M₂)."""
    statistic = {"mean_square": mean_square(h)} if block.row.estimates_m2 else {}
    return block.norm_attn(h, **statistic) * block.branch_scale, statistic


def key_value_cache(block: Block, prefix: Tensor) -> tuple[Tensor, Tensor]:
    """Keys and values of ``prefix`` (shape ``(B, T, d)``) as the block's attention
    uses them: RoPE-rotated keys, KV heads repeated over their query groups, shape
    ``(B, heads, T, head_dim)``."""
    attention = block.attn
    u, _ = _attention_input(block, prefix)
    batch, length, _ = prefix.shape
    groups = attention.heads // attention.kv_heads
    keys = attention.k_proj(u).view(batch, length, attention.kv_heads, -1).transpose(1, 2)
    values = attention.v_proj(u).view(batch, length, attention.kv_heads, -1).transpose(1, 2)
    return rotary(keys, attention.theta).repeat_interleave(groups, 1), values.repeat_interleave(groups, 1)


def decode_step(block: Block, h: Tensor, keys: Tensor, values: Tensor, constants: DecodeConstants | None = None) -> Tensor:
    """``h_{l+1}`` of one new token ``h`` (shape ``(B, 1, d)``) at position ``T`` after
    a cache of ``T`` keys/values (``key_value_cache``); returns the new state.

    The block's own line per sublayer (``Block.forward``), for one token: the
    normalisers see one token, so RMSNorm and BHyT* reduce twice, DyT not at all,
    and the paper's BHyT once, its MLP-side norm taken by the decode fast path
    ``norms.bhyt_decode`` from the per-layer ``constants`` (``λ₂/κ`` and
    ``c_attn λ₁²/κ²``, ``decode_constants``; only the ``reference`` estimator has
    one). Matches ``block(full sequence)[:, -1:]`` up to float rounding (tests).
    """
    estimates = block.row.estimates_m2
    if estimates and (constants is None or block.config.estimator not in DECODE_ESTIMATORS):
        raise ValueError(f"decode_step: a row that estimates M₂ needs an estimator of {DECODE_ESTIMATORS} and its "
                         "precomputed constants (decode_constants)")
    attention = block.attn
    u, statistic = _attention_input(block, h)
    batch, position = h.shape[0], keys.shape[2]
    groups = attention.heads // attention.kv_heads
    q = rotary(attention.q_proj(u).view(batch, 1, attention.heads, -1).transpose(1, 2), attention.theta, position)
    k = rotary(attention.k_proj(u).view(batch, 1, attention.kv_heads, -1).transpose(1, 2), attention.theta, position)
    v = attention.v_proj(u).view(batch, 1, attention.kv_heads, -1).transpose(1, 2)
    keys = torch.cat([keys, k.repeat_interleave(groups, 1)], 2)
    values = torch.cat([values, v.repeat_interleave(groups, 1)], 2)
    y = F.scaled_dot_product_attention(q, keys, values)  # the newest token attends to every cached one
    h = h + block.norm_attn_out(attention.o_proj(y.transpose(1, 2).reshape(batch, 1, -1)))
    if estimates:
        if constants.increment.ndim:  # a per-position table ("correlation"): this token's entry
            index = min(position, constants.increment.shape[0] - 1)
            constants = dataclasses.replace(constants, increment=constants.increment[index])
        normalised = bhyt_decode(h, statistic["mean_square"], constants, block.norm_mlp.gamma)
    else:
        normalised = block.norm_mlp(h)
    return h + block.norm_mlp_out(block.mlp(normalised * block.branch_scale))


def decode_constants(block: Block) -> DecodeConstants:
    """The per-layer constants of a ``bhyt`` block's decode fast path (``norms.precompute_decode_constants``).

    Under the "correlation" estimator the increment is a table of ``seq_len`` values,
    ``c_attn f_t λ₁²/κ²`` (``Block.m2_factor``), one per position; ``decode_step``
    reads the new token's entry (the last one past ``seq_len``)."""
    c_attn = block.c_attn * block.m2_factor if block.config.estimator == "correlation" else block.c_attn
    return precompute_decode_constants(c_attn, block.norm_attn.lam, block.norm_mlp.lam, block.norm_mlp.kappa)


@torch.no_grad()
def time_decode(
    config: StackConfig,
    schemes: Sequence[str] = EFFICIENCY_SCHEMES,
    batch: int = 4,
    rounds: int = 10,
    inner: int = 20,
) -> pd.DataFrame:
    """Seconds of one decode step of one block (a new token after a cache of
    ``config.seq_len`` tokens), per scheme × round; same columns as ``time_block``
    with ``measurement`` = "decode step"."""
    prefix = InputSpec(batch=batch, std=1.0).hidden_states(config, seed=0)
    token = InputSpec(batch=batch, length=1, std=1.0).hidden_states(config, seed=0, stream=1)
    work = {}
    for scheme in schemes:
        block = _block(config, scheme)
        keys, values = key_value_cache(block, prefix)
        constants = decode_constants(block) if block.row.estimates_m2 else None
        work[scheme] = lambda block=block, keys=keys, values=values, constants=constants: decode_step(
            block, token, keys, values, constants)
    rows = _timed_rounds(work, rounds, inner, config.device)
    return pd.DataFrame(rows).assign(measurement="decode step", device=config.device, hardware=hardware(config.device))


CONTENTION_LOG_SD = 0.10
"""Round-to-round standard deviation of ``log(t_scheme / t_baseline)`` above which a
timing is flagged as contended. Interleaved rounds of the same work on an idle
machine agree to a few per cent (a standard deviation of about 0.01–0.03); at 0.10
a single round's ratio is typically off by ±10 %, more than every speed effect the
paper reports (+1.6 % to +15.8 %), and a normal model of the rounds is no longer
trusted."""

DEVICE_CLAIMS = {"cuda": "claims about GPUs", "cpu": "claims about CPUs"}
"""What a timing is evidence for, by the kind of device it was measured on. Every
speed claim of the paper (C6) and of DyT's (C2) is a GPU claim: a CPU timing is
reported next to it and decides no verdict."""


def device_kind(device: str) -> str:
    """``"cuda"`` or ``"cpu"``: the kind of device behind a torch device string (``"cuda:1"`` → ``"cuda"``)."""
    return str(device).split(":")[0]


def log_ratio_interval(log_ratios: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float, bool]:
    """Geometric-mean time ratio of paired rounds and its interval, from the rounds' log ratios.

    Parameters
    ----------
    log_ratios : sequence of float
        ``ℓ_r = log(t_scheme,r / t_baseline,r)``, one per round (at least two).
    level : float
        Confidence level of the interval.

    Returns
    -------
    (ratio, low, high, log_sd, contended)
        ``ratio = exp(ℓ̄)``; ``[low, high] = exp(ℓ̄ ∓ t_{(1+level)/2, n−1} s/√n)`` with
        ``s`` the sample standard deviation of the ``ℓ_r`` (``log_sd``); where
        ``s > CONTENTION_LOG_SD`` (``contended``) the interval is widened to cover
        also every round's own ratio ``[exp(min ℓ_r), exp(max ℓ_r)]``.

    Notes
    -----
    Time ratios are multiplicative: a round twice as slow and one twice as fast
    should cancel, which they do on the log scale and not on the raw one. The
    interval is exact for log-normal round-to-round noise (the product of many
    small independent slow-downs) and, being an exponential, positive for any
    positive timings and finite unless the rounds' ratios span hundreds of
    orders of magnitude (exp overflows past e⁷⁰⁹). Under contention the rounds are not a
    sample from one distribution (a round shared with another process is an
    outlier, not noise), so the interval no longer claims a coverage; it then
    states only the range the rounds themselves span, whichever is wider.
    """
    values = np.asarray(log_ratios, dtype=float)
    if values.size < 2 or not np.isfinite(values).all():
        raise ValueError(f"an interval needs at least two finite log ratios, got {values.tolist()}")
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    low, high = confidence_interval(mean, sd, values.size, level)
    contended = sd > CONTENTION_LOG_SD
    if contended:
        low, high = min(float(low), float(values.min())), max(float(high), float(values.max()))
    return math.exp(mean), math.exp(float(low)), math.exp(float(high)), sd, contended


def speedup_percent(ratio):
    """The paper's "+x % throughput" of a time ratio ``r``: ``100 (1/r − 1)`` (decreasing in ``r``)."""
    return 100 * (1 / ratio - 1)


def timing_summary(raw: pd.DataFrame, baseline: str = BASELINE, level: float = 0.95) -> pd.DataFrame:
    """Per measurement × scheme: time ratio to ``baseline`` and speed-up, with intervals on the log scale.

    Each round's ratio ``t_scheme / t_baseline`` pairs two measurements of the
    same round; ``log_ratio_interval`` summarises the rounds' log ratios (at least
    two rounds). ``speedup_percent`` is ``100 (1/r − 1)`` of the ratio and its
    interval the ratio's interval mapped the same way: every bound is positive
    (ratio) and finite.

    Columns: ``measurement``, ``scheme``, ``seconds`` (median), ``ratio``,
    ``ratio_ci_low``, ``ratio_ci_high``, ``speedup_percent``, ``speedup_ci_low``,
    ``speedup_ci_high``, ``log_ratio_sd``, ``contended`` (the rounds' log ratios
    spread more than ``CONTENTION_LOG_SD``: the interval is widened to the
    rounds' range), ``rounds``, ``dof`` (rounds − 1), ``level``, and where the raw
    table has a ``device``: ``device``, ``hardware``, ``evidence_for`` (which
    claims a timing on that kind of device can decide, ``DEVICE_CLAIMS``).
    """
    missing = {"measurement", "scheme", "round", "seconds"} - set(raw.columns)
    if missing:
        raise ValueError(f"timing table lacks columns {sorted(missing)}")
    if baseline not in set(raw["scheme"]):
        raise ValueError(f"the baseline {baseline!r} was not timed")
    if not (np.isfinite(raw["seconds"]) & (raw["seconds"] > 0)).all():
        raise ValueError("every timing must be positive and finite")
    base = raw[raw["scheme"] == baseline][["measurement", "round", "seconds"]].rename(columns={"seconds": "baseline"})
    paired = raw.merge(base, on=["measurement", "round"])
    paired["log_ratio"] = np.log(paired["seconds"]) - np.log(paired["baseline"])
    extra = [c for c in ("device", "hardware") if c in raw.columns]
    rows = []
    for keys, group in paired.groupby(["measurement", "scheme", *extra], sort=False):
        ratio, low, high, log_sd, contended = log_ratio_interval(group["log_ratio"], level)
        rows.append({**dict(zip(["measurement", "scheme", *extra], keys)), "seconds": float(group["seconds"].median()),
                     "ratio": ratio, "ratio_ci_low": low, "ratio_ci_high": high,
                     "speedup_percent": speedup_percent(ratio), "speedup_ci_low": speedup_percent(high),
                     "speedup_ci_high": speedup_percent(low), "log_ratio_sd": log_sd, "contended": contended,
                     "rounds": len(group), "dof": len(group) - 1, "level": level})
    summary = pd.DataFrame(rows)
    if "device" in extra:
        summary["evidence_for"] = summary["device"].map(lambda d: DEVICE_CLAIMS.get(device_kind(d), "none"))
    columns = ["measurement", "scheme", "seconds", "ratio", "ratio_ci_low", "ratio_ci_high", "speedup_percent",
               "speedup_ci_low", "speedup_ci_high", "log_ratio_sd", "contended", "rounds", "dof", "level", *extra,
               *(["evidence_for"] if "device" in extra else [])]
    return summary[columns]


DEFAULT_EFFICIENCY = StackConfig(width=512, heads=8, seq_len=128, depth=1)
QUICK_EFFICIENCY = StackConfig(width=128, heads=2, seq_len=32, depth=1)


def efficiency_study(config: StackConfig = DEFAULT_EFFICIENCY, schemes: Sequence[str] = EFFICIENCY_SCHEMES,
                     batch: int = 4, rounds: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cost model at ``config.width`` and the timing summary of both measurements.

    Returns ``(cost_model table, timing_summary table)``; the raw timings are in the
    summary's source rows (``time_block``, ``time_decode``) and not kept.
    """
    if rounds < 2:
        raise ValueError(f"rounds must be ≥ 2 for an interval, got {rounds}")
    raw = pd.concat([time_block(config, schemes, batch, rounds), time_decode(config, schemes, batch, rounds)],
                    ignore_index=True)
    element_bytes = torch.empty((), dtype=config.torch_dtype).element_size()
    return cost_model(config.width, schemes, element_bytes), timing_summary(raw)
