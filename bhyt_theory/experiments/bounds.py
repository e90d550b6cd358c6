"""How tight are the bounds? A seeded search for the largest measured/bound ratio.

Experiments layer: runs real ``Stack`` instances on random and adversarial
weights and inputs, measures what the bounds of :mod:`bhyt_theory.bounds`
speak of, and reports measured/bound. A ratio above 1 (beyond float32
rounding) would be a counterexample; a ratio near 1 shows the bound cannot be
improved without further assumptions; a small ratio at initialisation shows how
much room a worst-case bound leaves in the typical case.

Constructions
-------------
``gaussian``    the model's own N(0, init_std²) weights, Gaussian inputs of many scales;
``aligned``     every layer rank-1 and aligned with one sign direction ``p`` (``align_weights``),
                every token equal to ``c p``: all increments point along ``p`` and add up,
                which attains the depth bound up to ``tanh(a)/a`` and ``silu(x)/x``;
``spikes``      tokens with ``k`` equal spikes, ``k = ⌊d (λ/(κt))²⌋``, which attains the
                saturation bound at the first BHyT norm;
``hill_climb``  coordinate-wise random ascent on the measured/bound ratio of a small
                Gaussian stack, perturbing its input tokens and γ.

Serves docs/statements.md §2 and §5 (saturation bound, depth bound) and claims C3, C4.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..numerics.inputs import InputSpec, gaussian_inputs
from ..numerics.model import (
    SCHEMES,
    Stack,
    StackConfig,
    hidden_states,
)
from ..numerics.norms import root_mean_square
from ..numerics.probes import SATURATION_THRESHOLDS, RecordingProbe, saturated_fraction
from ..numerics.schemes import scheme_row
from ..theory.bounds import depth_bound, saturated_fraction_bound

__all__ = [
    "SEARCH_THRESHOLDS",
    "DEFAULT_INIT",
    "sign_direction",
    "align_weights",
    "measured_rms",
    "depth_ratios",
    "saturation_ratios",
    "search",
    "tightest_ratios",
    "tightness_table",
]

# The trace's thresholds plus two below 1, where the saturation bound binds at the paper's λ/κ.
SEARCH_THRESHOLDS = (0.3, 0.5) + SATURATION_THRESHOLDS
DEFAULT_INIT = StackConfig(depth=32, width=256, heads=4, seq_len=128, init_std=0.02)


def sign_direction(d: int, generator: torch.Generator) -> Tensor:
    """A unit vector ``p`` with ``|p_i| = 1/√d`` and random signs.

    Every coordinate has the same magnitude, so an element-wise odd map
    (tanh, erf) of ``c p`` is again parallel to ``p``: the norms keep the direction.
    """
    signs = torch.randint(0, 2, (d,), generator=generator).float() * 2 - 1
    return signs / math.sqrt(d)


@torch.no_grad()
def align_weights(
    stack: Stack,
    direction: Tensor,
    value_scale: float = 1.0,
    output_scale: float = 1.0,
    gate_scale: float = 1e3,
    up_scale: float = 1e-3,
    down_scale: float = 1.0,
) -> None:
    """Make every block rank-1 and aligned with ``direction`` (in place), so the bounds are attained.

    Attention: each value head reads ``p`` into its first coordinate with gain
    ``value_scale`` (``‖W_V^k‖₂ = value_scale``) and ``W_O`` maps the sum of those
    coordinates back to ``p`` with gain ``output_scale``; then for tokens
    ``u_j = c p`` the output is ``G_A ‖u‖ p`` whatever the attention pattern.
    MLP: one hidden unit with ``W_g = gate_scale · e_0 pᵀ``,
    ``W_up = up_scale · e_0 pᵀ``, ``W_down = down_scale · p e_0ᵀ``; a large
    ``gate_scale`` makes ``silu(x)/x = σ(x)`` close to 1. Query/key weights are
    left as they are (the bounds do not involve them). Refreshes ``c_attn``.
    """
    p = direction.to(dtype=stack.config.torch_dtype, device=stack.config.device)
    for block in stack.blocks:
        attn, mlp = block.attn, block.mlp
        head_dim = attn.v_proj.weight.shape[0] // attn.kv_heads
        attn.v_proj.weight.zero_()
        attn.v_proj.weight[::head_dim] = value_scale * p
        attn.o_proj.weight.zero_()
        attn.o_proj.weight[:, ::head_dim] = output_scale * p[:, None] / math.sqrt(attn.heads)
        for linear, scale in ((mlp.gate_proj, gate_scale), (mlp.up_proj, up_scale)):
            linear.weight.zero_()
            linear.weight[0] = scale * p
        mlp.down_proj.weight.zero_()
        mlp.down_proj.weight[:, 0] = down_scale * p
    stack.refresh_variance_constants()


@torch.no_grad()
def measured_rms(stack: Stack, x: Tensor) -> np.ndarray:
    """``rms(h_l)`` after every layer, shape ``(depth, batch, T)``, float64."""
    h = hidden_states(x, stack.config)
    rows = []
    for block in stack.blocks:
        h = block(h)
        rows.append(root_mean_square(h)[..., 0].double().cpu().numpy())
    return np.stack(rows)


def depth_ratios(stack: Stack, x: Tensor, construction: str) -> pd.DataFrame:
    """measured/bound of the per-token depth bound, one row per bound variant.

    The headline ``ratio`` is the *growth* ratio
    ``(rms(h_l,t) − rms(h_0,t)) / (bound_l,t − rms(h_0,t))``, i.e. measured growth
    over the bound's ``Σ (A + F)``, maximised over layers and tokens: unlike
    ``rms(h_l)/bound``, it does not tend to 1 trivially when the input dominates.
    Columns: ``bound`` ("depth"), ``scheme``, ``variant``, ``construction``,
    ``ratio``, ``layer_at_max``, ``rms_ratio`` (max of ``rms(h_l)/bound``),
    ``ratio_final`` (max growth ratio at the last layer) and
    ``measured_final``/``bound_final`` (``rms(h_L)`` and its bound at that token).
    """
    measured = measured_rms(stack, x)
    bounds = depth_bound(stack, x)
    depth, batch, length = measured.shape
    rms_input = root_mean_square(hidden_states(x, stack.config))[..., 0].double().cpu().numpy()
    rows = []
    for variant, part in bounds.groupby("variant", sort=False):
        bound = part["bound"].to_numpy().reshape(depth, batch, length)
        growth = (measured - rms_input) / (bound - rms_input)
        layer, _, _ = np.unravel_index(np.nanargmax(growth), growth.shape)
        final = int(np.nanargmax(growth[-1]))
        rows.append(
            {
                "bound": "depth",
                "scheme": stack.config.scheme,
                "variant": variant,
                "construction": construction,
                "ratio": float(np.nanmax(growth)),
                "layer_at_max": int(layer),
                "rms_ratio": float(np.nanmax(measured / bound)),
                "ratio_final": float(growth[-1].ravel()[final]),
                "measured_final": float(measured[-1].ravel()[final]),
                "bound_final": float(bound[-1].ravel()[final]),
            }
        )
    return pd.DataFrame(rows)


@torch.no_grad()
def saturation_ratios(stack: Stack, x: Tensor, construction: str, thresholds=SEARCH_THRESHOLDS) -> pd.DataFrame:
    """measured saturated fraction / ``saturated_fraction_bound`` for every BHyT norm of ``stack``.

    One row per (``mean_square`` kind, t): ``exact`` (every norm fed ``m(h)``)
    and ``estimated`` (the MLP-side norm of ``bhyt``/``bhytline``, bound with
    ``mean_square_ratio = m(h')/M₂``); ``ratio`` is the max over layers and tokens.
    """
    recorder = RecordingProbe()
    stack.residual(hidden_states(x, stack.config), recorder)
    rows = []
    for t in thresholds:
        best: dict[str, float] = {}
        for (layer, sublayer), z in recorder.arguments.items():
            block = stack.blocks[layer]
            norm = block.norm_attn if sublayer == "attn" else block.norm_mlp
            estimated = sublayer == "mlp" and scheme_row(stack.config.scheme).estimates_m2
            ratio = recorder.mean_square_ratio(layer).cpu().numpy() if estimated else 1.0
            bound = saturated_fraction_bound(float(norm.lam), norm.kappa, t, ratio)
            fraction = saturated_fraction(z, t).cpu().numpy()
            kind = "estimated" if estimated else "exact"
            best[kind] = max(best.get(kind, 0.0), float(np.max(fraction / bound)))
        for kind, ratio in best.items():
            rows.append(
                {"bound": f"saturation_{kind}_t{t:g}", "scheme": stack.config.scheme, "variant": kind,
                 "construction": construction, "ratio": ratio}
            )
    return pd.DataFrame(rows)


def _random_config(rng: np.random.Generator, scheme: str) -> StackConfig:
    width = int(rng.choice([16, 32, 64]))
    heads = int(rng.choice([h for h in (1, 2, 4) if (width // h) % 2 == 0]))
    return StackConfig(
        scheme=scheme,
        depth=int(rng.integers(1, 7)),
        width=width,
        heads=heads,
        kv_heads=int(rng.choice([k for k in (1, 2, 4) if heads % k == 0])),
        seq_len=int(rng.integers(1, 17)),
        lam_in=float(rng.uniform(0.1, 5.0)),
        lam_post=float(rng.uniform(0.1, 5.0)),
        dyt_alpha=float(10 ** rng.uniform(-2, 1)),
        derf_alpha=float(10 ** rng.uniform(-2, 1)),
        init_std=float(10 ** rng.uniform(-3, 0.5)),
        dtype="float64",
    )


def _spike_tokens(d: int, k: int, batch: int, length: int, scale: float, generator: torch.Generator) -> Tensor:
    x = torch.zeros(batch, length, d)
    for b in range(batch):
        for t in range(length):
            x[b, t, torch.randperm(d, generator=generator)[:k]] = scale
    return x


@torch.no_grad()
def _hill_climb(scheme: str, seed: int, steps: int) -> pd.DataFrame:
    """Random ascent on the scale-free depth ratio of a width-32, depth-2 stack:
    perturb one input token or the γ of one norm, keep the change if the ratio grows."""
    generator = torch.Generator().manual_seed(seed)
    config = StackConfig(scheme=scheme, depth=2, width=32, heads=2, seq_len=8, init_std=0.3, dtype="float64")
    stack = Stack(config, seed)
    # The second input stream of the seeding rule: independent of default_init_ratios' inputs.
    x = InputSpec(batch=1, length=8, std=1.0).hidden_states(config, seed, stream=1)
    norms = [m for block in stack.blocks for m in (block.norm_attn, block.norm_mlp)]

    def ratio() -> float:
        table = depth_ratios(stack, x, "hill_climb")
        return float(table.loc[table["variant"] == "scale_free", "ratio"].iloc[0])

    best = ratio()
    for _ in range(steps):
        saved_x, saved_gammas = x.clone(), [norm.gamma.detach().clone() for norm in norms]
        if torch.rand((), generator=generator) < 0.5:
            position = int(torch.randint(0, x.shape[1], (), generator=generator))
            x[:, position] += torch.randn(x.shape[-1], generator=generator) * x[:, position].abs().mean()
        else:
            norm = norms[int(torch.randint(0, len(norms), (), generator=generator))]
            norm.gamma.mul_(1 + 0.3 * torch.randn(norm.gamma.shape, generator=generator))
        candidate = ratio()
        if candidate > best:
            best = candidate
        else:
            x.copy_(saved_x)
            for norm, gamma in zip(norms, saved_gammas):
                norm.gamma.copy_(gamma)
    return depth_ratios(stack, x, "hill_climb")


def search(seed: int = 0, random_trials: int = 6, hill_climb_steps: int = 40) -> pd.DataFrame:
    """The seeded tightness search over every scheme; one row per stack × bound.

    Parameters
    ----------
    seed : int
        Seeds weights, inputs and the configuration draws.
    random_trials : int
        Random configurations per scheme (``gaussian`` construction), each run on
        inputs of std 1e-4, 1 and 1e4.
    hill_climb_steps : int
        Steps of the ``hill_climb`` construction per scheme (0 to skip it).

    Returns
    -------
    DataFrame with columns ``bound`` ("depth" or "saturation_<kind>_t<t>"),
    ``scheme``, ``variant``, ``construction``, ``ratio`` and, for depth rows,
    ``layer_at_max``, ``ratio_final``, ``measured_final``, ``bound_final``.
    """
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for scheme in SCHEMES:
        bhyt_family = scheme_row(scheme).bhyt_family
        for trial in range(random_trials):
            config = _random_config(rng, scheme)
            stack = Stack(config, seed + trial)
            for std in (1e-4, 1.0, 1e4):
                # drawn from the search's own generator, not a run's seeding rule
                x = gaussian_inputs(config.width, 2, config.seq_len, std, int(rng.integers(2**31)))
                parts.append(depth_ratios(stack, x, f"gaussian(init_std={config.init_std:.3g}, input_std={std:g})"))
                if bhyt_family:
                    parts.append(saturation_ratios(stack, x, "gaussian"))
        for lam in (0.1, 2.0):
            for input_scale in (1e-3, 1.0, 1e3):
                config = StackConfig(scheme=scheme, depth=4, width=64, heads=4, kv_heads=2, seq_len=8,
                                     lam_in=lam, lam_post=lam / 2, dtype="float64")
                stack = Stack(config, seed)
                direction = sign_direction(config.width, generator)
                align_weights(stack, direction)
                x = (input_scale * math.sqrt(config.width) * direction).expand(1, 8, -1).clone()
                parts.append(depth_ratios(stack, x, f"aligned(lam_in={lam:g}, input_rms={input_scale:g})"))
        if bhyt_family:
            # W_O = 0 makes h' = h and c_attn = 0, so the MLP-side norm (M₂ = m₁ for
            # bhyt) sees the same spikes as the attention side.
            config = StackConfig(scheme=scheme, depth=1, width=256, heads=4, seq_len=8, dtype="float64")
            stack = Stack(config, seed)
            stack.blocks[0].attn.o_proj.weight.data.zero_()
            stack.refresh_variance_constants()
            for t in SEARCH_THRESHOLDS:
                for lam in (config.lam_in, config.lam_post):
                    k = max(1, math.floor(config.width * (lam / (config.kappa * t)) ** 2))
                    x = _spike_tokens(config.width, k, 1, 4, 1.0, generator)
                    parts.append(saturation_ratios(stack, x, f"spikes(k={k}, lam={lam:g})", thresholds=(t,)))
        if hill_climb_steps:
            parts.append(_hill_climb(scheme, seed, hill_climb_steps))
    return pd.concat(parts, ignore_index=True)


def tightest_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """The tightest ratio per (bound, scheme, variant), with the construction that reached it."""
    best = table.loc[table.groupby(["bound", "scheme", "variant"], sort=False)["ratio"].idxmax()]
    return best.reset_index(drop=True)


def default_init_ratios(seed: int = 0, batch: int = 1) -> pd.DataFrame:
    """measured/bound at the default initialisation (``DEFAULT_INIT``: width 256,
    depth 32, 4 heads, T = 128, init_std 0.02, inputs ``InputSpec(batch)``) for every scheme."""
    parts = []
    for scheme in SCHEMES:
        config = DEFAULT_INIT.replace(scheme=scheme)
        stack = Stack(config, seed)
        x = InputSpec(batch).hidden_states(config, seed)
        parts.append(depth_ratios(stack, x, "default_init"))
        if scheme_row(scheme).bhyt_family:
            parts.append(saturation_ratios(stack, x, "default_init"))
    return pd.concat(parts, ignore_index=True)


def tightness_table(seed: int = 0, random_trials: int = 6, hill_climb_steps: int = 40) -> pd.DataFrame:
    """Tightest measured/bound over the search, and the ratio at default initialisation.

    Returns the :func:`tightest_ratios` of :func:`search` with ``setting = "search"``
    stacked on :func:`default_init_ratios` with ``setting = "default_init"``.
    """
    searched = tightest_ratios(search(seed, random_trials, hill_climb_steps)).assign(setting="search")
    default = default_init_ratios(seed).assign(setting="default_init")
    table = pd.concat([searched, default], ignore_index=True)
    leading = ["setting", "bound", "scheme", "variant", "ratio", "construction"]
    return table[leading + [c for c in table.columns if c not in leading]]
