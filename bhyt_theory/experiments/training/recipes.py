"""The baselines as their authors train them: one record per scheme recipe, with its source.

A recipe is a scheme (a row of ``numerics.schemes.SCHEME_TABLE``) plus what the
authors' own training code adds around it: λ or α initial values, a learnable
scale on the token embedding, a norm on the embedding output, no β, the final
norm. ``TrainConfig(recipe=name)`` builds the recipe's model
(``LanguageModel`` reads ``RECIPES[name]``); ``recipe_config`` sets the
scheme and the ``StackConfig`` fields the recipe fixes. docs/recipes.md
documents each record and its source; tests/test_ladder.py checks the built
models against those sources.

Where a recipe as specified does not train in this setting, the minimal change
that makes it learn is its own record, with a name that says the change
(``dyt-llama+rmsnorm-final``): the two are reported side by side, never swapped.

References: Touvron et al., arXiv 2302.13971 (Llama, §2.2 pre-normalisation with
RMSNorm); Zhu et al., arXiv 2503.10622 (DyT) and its code, github.com/jiachenzhu/DyT,
other_tasks/LLaMA (README α₀ table; fms_fsdp/models/llama.py); Kim et al.,
arXiv 2502.02732 (Peri-LN); Sun et al., arXiv 2502.05795 and
github.com/lmsdss/LayerNorm-Scaling, peft_pretraining/modeling_llama.py
(``norm_type == "LNS"``); Byun et al., arXiv 2601.09719 and
github.com/MLAI-Yonsei/BHyT (scripts/bhyt/pt_bhyt_sweep.sh,
config/norm_config_bhyt.yaml, models/hf_src/llama/modeling_llama.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...numerics.model import Stack
from ...numerics.norms import DyT, RMSNorm

# DyT's α₀ for LLaMA models (arXiv 2503.10622, LLaMA α₀ table; repository
# other_tasks/LLaMA/README.md): (model width, α₀ before attention, α₀ before the
# FFN and at the final norm). LLaMA 2 7B/13B/34B/70B have widths 4096/5120/8192/8192.
DYT_LLAMA_ALPHA_TABLE = ((4096, 0.8, 0.2), (5120, 0.6, 0.15), (8192, 0.2, 0.05))


def dyt_llama_alphas(width: int) -> tuple[float, float, float]:
    """DyT's ``(α₀ attention, α₀ FFN, α₀ final)`` for a model of ``width``: the row of
    the smallest table width ≥ ``width`` (narrower models than LLaMA-7B take its row,
    wider than 8192 the last row; the table has no entry below 4096)."""
    for table_width, attention, other in DYT_LLAMA_ALPHA_TABLE:
        if width <= table_width:
            return attention, other, other
    _, attention, other = DYT_LLAMA_ALPHA_TABLE[-1]
    return attention, other, other


@dataclass(frozen=True)
class Recipe:
    """One scheme as its authors train it.

    Attributes
    ----------
    name, scheme : str
        Recipe name (tables' ``recipe`` column) and its block scheme.
    source : str
        Where the recipe is specified (paper section or file of the authors' code).
    stack : tuple of (field, value)
        ``StackConfig`` fields the recipe fixes (λ initial values, …).
    embedding_scale : bool
        A learnable scalar multiplies the token embedding, initialised to √d.
    embedding_norm : bool
        An RMSNorm acts on the embedding output (the stream entering layer 0).
    dyt_llama_alpha : bool
        DyT's α₀ per norm position from ``dyt_llama_alphas(width)``.
    dyt_bias : bool
        DyT keeps its β (False: ``γ ⊙ tanh(α h)`` only).
    final_norm : str or None
        ``"rmsnorm"`` replaces the scheme's final norm by an RMSNorm.
    calibrate_m2_factor : bool
        The "correlation" estimator's per-position factors are set at build to the mean
        field's prediction for the embedding's initial variance
        (``theory.meanfield.calibrate_correlation``) and kept through training.
    """

    name: str
    scheme: str
    source: str
    stack: tuple[tuple[str, object], ...] = ()
    embedding_scale: bool = False
    embedding_norm: bool = False
    dyt_llama_alpha: bool = False
    dyt_bias: bool = True
    final_norm: str | None = None
    calibrate_m2_factor: bool = False

    @torch.no_grad()
    def adjust_stack(self, stack: Stack) -> None:
        """Set the recipe's α₀ and β on a freshly built ``stack`` and replace its final
        norm if the recipe says so (nothing random is drawn: weights stay paired)."""
        width = stack.config.width
        if self.scheme == "dyt":
            attention, ffn, final = dyt_llama_alphas(width) if self.dyt_llama_alpha else (None, None, None)
            norms = [(block.norm_attn, attention) for block in stack.blocks]
            norms += [(block.norm_mlp, ffn) for block in stack.blocks]
            norms += [(stack.final_norm, final)] if isinstance(stack.final_norm, DyT) else []
            for norm, alpha in norms:
                if alpha is not None:
                    norm.alpha.fill_(alpha)
                if not self.dyt_bias:
                    norm.beta = None
        if self.final_norm == "rmsnorm":
            stack.final_norm = RMSNorm(width).to(device=stack.config.device, dtype=stack.config.torch_dtype)
        elif self.final_norm is not None:
            raise ValueError(f"recipe {self.name}: final_norm {self.final_norm!r} is not 'rmsnorm'")

    def embedding_modules(self, width: int) -> tuple[nn.Parameter | None, nn.Module | None]:
        """The learnable embedding scale (initialised to √d) and the embedding-output
        norm of the recipe, each None where the recipe has none."""
        scale = nn.Parameter(torch.tensor(math.sqrt(width))) if self.embedding_scale else None
        norm = RMSNorm(width) if self.embedding_norm else None
        return scale, norm


_BHYT_REFERENCE = ("github.com/MLAI-Yonsei/BHyT: scripts/bhyt/pt_bhyt_sweep.sh (λ pairs (2, 1) and (3, 3), "
                   "last-layer λ 0: RMSNorm final norm), config/norm_config_bhyt.yaml (learnable_lam: True), "
                   "models/hf_src/llama/modeling_llama.py (κ 10, c_attn refreshed every max_steps/50)")

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe("rmsnorm-llama", "rmsnorm",
           "Touvron et al., arXiv 2302.13971 §2.2: pre-normalisation with RMSNorm, RMSNorm before the head"),
    Recipe("periln", "periln",
           "Kim et al., arXiv 2502.02732 §3: a norm on the input and on the output of every sublayer, and on "
           "the embedding output", embedding_norm=True),
    Recipe("lns", "lns",
           "Sun et al., arXiv 2502.05795 §4; github.com/lmsdss/LayerNorm-Scaling, "
           "peft_pretraining/modeling_llama.py (norm_type 'LNS'): each pre-norm output × 1/√(layer_index+1), "
           "layer_index 0-based"),
    Recipe("dyt-llama", "dyt",
           "Zhu et al., arXiv 2503.10622 (LLaMA: learnable scalar after the embedding initialised to √d; α₀ "
           "per position from the LLaMA α₀ table); github.com/jiachenzhu/DyT other_tasks/LLaMA/README.md "
           "(attention / FFN / final α₀ 0.8 / 0.2 / 0.2 at width 4096), fms_fsdp/models/llama.py (γ ⊙ tanh(αx), "
           "no β)", embedding_scale=True, dyt_llama_alpha=True, dyt_bias=False),
    Recipe("dyt-llama+rmsnorm-final", "dyt",
           "dyt-llama with only its final DyT replaced by an RMSNorm: the minimal change that lets it learn "
           "here (the final tanh saturates; docs/recipes.md)", embedding_scale=True, dyt_llama_alpha=True,
           dyt_bias=False, final_norm="rmsnorm"),
    Recipe("bhyt-ref", "bhyt", _BHYT_REFERENCE, stack=(("lam_in", 2.0), ("lam_post", 1.0), ("lam_final", 0.0))),
    Recipe("bhyt-ref+shared-scale", "bhyt",
           _BHYT_REFERENCE + "; use_shared_scale: a learnable scalar on the embedding, initialised to "
           "√hidden_size", stack=(("lam_in", 2.0), ("lam_post", 1.0), ("lam_final", 0.0)), embedding_scale=True),
    Recipe("bhytstar-ref", "bhytstar",
           "github.com/MLAI-Yonsei/BHyT: config/norm_config_bhytstar.yaml (learnable_lam: True), λ pair (2, 1) "
           "as for bhyt-ref (scripts/bhyt/pt_bhyt_sweep.sh), κ 10, exact m(h) at both norms",
           stack=(("lam_in", 2.0), ("lam_post", 1.0), ("lam_final", 0.0))),
    Recipe("bhytc-ref", "bhytc",
           "bhyt-ref's recipe (" + _BHYT_REFERENCE + ") with the toolkit's scheme bhytc: docs/schemes.md §7 "
           "(κ_l = κ·l², l 1-based) and docs/estimators.md §8 (M₂ from the correlation estimator, its factor "
           "the mean field's prediction at initialisation, meanfield.calibrate_correlation)",
           stack=(("lam_in", 2.0), ("lam_post", 1.0), ("lam_final", 0.0)), calibrate_m2_factor=True),
)}
LADDER_RECIPES = ("rmsnorm-llama", "periln", "lns", "dyt-llama", "dyt-llama+rmsnorm-final", "bhyt-ref",
                  "bhytc-ref", "bhytstar-ref")
"""The recipes a ladder trains by default (``bhyt-ref+shared-scale`` on request)."""
BASELINE_RECIPE, METHOD_RECIPE = "rmsnorm-llama", "bhyt-ref"
SOURCE_RECIPES = {"rmsnorm": "rmsnorm-llama", "periln": "periln", "lns": "lns", "dyt": "dyt-llama",
                     "bhyt": "bhyt-ref", "bhytstar": "bhytstar-ref", "bhytc": "bhytc-ref"}
"""Per scheme, its recipe as specified by its source: the one a claim about the scheme reads."""
MINIMAL_CHANGES = {"dyt-llama": "dyt-llama+rmsnorm-final"}
"""A recipe as specified → the minimal change that makes it learn here, reported as its own row beside it."""


def recipe(name: str) -> Recipe:
    """``RECIPES[name]``, with the list of names in the error."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"recipe {name!r} is not one of {tuple(RECIPES)}") from None


def recipe_changes(name: str) -> dict:
    """The ``TrainConfig.replace`` changes of a recipe: its scheme, its ``StackConfig``
    fields, ``recipe`` and ``label`` (both the recipe's name)."""
    chosen = recipe(name)
    return {"scheme": chosen.scheme, **dict(chosen.stack), "recipe": name, "label": name}
