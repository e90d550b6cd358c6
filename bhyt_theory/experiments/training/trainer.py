"""CPU pretraining of a small byte-level language model built on ``Stack``, every scheme.

The trained regime of the paper's depth claims (C1, C2, C4, C5, C7, C8 of
docs/claims.md): a token embedding, the ``Stack`` of the chosen scheme with its
final norm (RMSNorm; DyT/Derf for those schemes; a last-layer BHyT when
``lam_final > 0``), and an untied LM head, trained with AdamW, linear warm-up and
cosine decay, optional gradient clipping, on the corpus of :mod:`.corpus`.

What is trained
---------------
Every parameter: the linear weights and the embedding (with weight decay), and,
without weight decay, every norm's γ (and β), BHyT's λ, DyT/Derf's α (and Derf's
shift), and the scalars of a learnable M₂ estimator (numerics/estimators.py) —
as in the reference implementation, where λ and α are ``nn.Parameter`` s.
BHyT's ``c_attn`` is a buffer, refreshed from the current W_V, W_O every
``refresh_every`` steps (default ``max(1, steps // 50)``, the reference's ~50
refreshes per run; 1 means every step).

Logged (``TrainingRun.log``, one tidy long table)
------------------------------------------------
Key columns ``run_id``, ``label``, ``scheme``, ``seed``, ``step``, ``layer``,
``sublayer``, ``band``, then ``quantity`` and ``value``. ``step`` counts updates
done (statistics at step s describe the weights after s updates). Every step:
``train_loss`` (of the batch of step s), ``lr``, ``grad_norm`` (before clipping).
Every ``eval_every`` steps and at the end: ``eval_loss`` on the held-out split.
Every ``stats_every`` steps and at the end, through ``numerics.probes.TraceProbe``
on ``stats_batch`` held-out sequences (position-averaged with
``probes.position_average``; ``layer`` −1 is the embedding output, the stream
entering layer 0): per layer × sublayer the residual-stream ``mean_abs``,
``variance``, ``rms``; for tanh-type norms ``arg_rms`` and
``saturated_fraction_{1,2,3}``; for ``bhyt``/``bhytline`` the estimate/exact ratio
``estimate_ratio`` = batch-mean M₂/m(h') per position band (``band``, and "all")
with the stored, possibly stale ``c_attn``, and ``estimate_ratio_fresh`` with a
``c_attn`` computed from the current weights — their difference is the staleness
term of the estimate's error; per layer ``grad_norm``, ``attention_entropy``
(nats, mean over heads, positions, sequences), ``c_attn``, and every scalar
parameter (``param:norm_attn.lam``, ``param:norm_mlp.alpha``,
``param:estimator_parameters.beta``, …; the final norm's at ``layer = depth``).

Divergence
----------
A run stops cleanly at the first step whose training loss is not finite, or,
after warm-up, whose smoothed training loss (the mean of the last
``SPIKE_WINDOW`` = 5 batch losses, so one unlucky batch is no spike) exceeds
``spike_ratio`` × the running minimum of that smoothed loss (default 1.5: a byte
model's loss never climbs 50 % above its best while training normally). ``TrainingRun.record`` keeps the step and the layer: the
first block whose output is not finite on that batch, else the first block with a
non-finite gradient, else (a finite spike) the block with the largest gradient norm.

Resuming
--------
A checkpoint (model, optimiser, log, running minimum; written atomically) is kept
in ``out_dir`` every ``checkpoint_every`` steps, when a run stops and at its end
(an interrupted run loses at most the steps since its last checkpoint);
``train`` continues from it and the continuation is bit-identical to an
uninterrupted run (batches depend on ``(seed, step)`` only; no dropout).

References: Byun et al., arXiv 2601.09719 (BHyT); Loshchilov & Hutter,
arXiv 1711.05101 (AdamW).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...numerics.model import Stack, StackConfig
from ...numerics.norms import rms_norm
from ...numerics.probes import (
    TraceProbe,
    argument_statistics,
    norm_argument,
    position_average,
    state_statistics,
)
from ...numerics.schemes import scheme_row
from ...theory.meanfield import calibrate_correlation
from ..atomic import write_atomically
from .corpus import VOCAB_SIZE, Corpus, build_corpus, evaluation_batches, training_batch
from .recipes import RECIPES

LOG_KEYS = ("run_id", "label", "scheme", "seed", "step", "layer", "sublayer", "band")
LOG_COLUMNS = LOG_KEYS + ("quantity", "value")
STATE_QUANTITIES = ("mean_abs", "variance", "rms")
ARGUMENT_QUANTITIES = ("arg_rms", "saturated_fraction_1", "saturated_fraction_2", "saturated_fraction_3")
SPIKE_WINDOW = 5  # batch losses averaged by the spike rule ("Divergence")
EMBEDDING_LAYER = -1  # ``layer`` of the embedding output and of run-level quantities
_EMBEDDING_STREAM, _HEAD_STREAM = 2**20, 2**20 + 1  # weight streams beyond any layer's

DEFAULT_STACK = StackConfig(scheme="bhyt", depth=8, width=64, heads=4, seq_len=64)


@dataclass(frozen=True)
class TrainConfig:
    """A training run: the ``StackConfig`` plus every optimisation and logging setting.

    ``lr`` is the peak AdamW learning rate, reached after ``warmup_steps`` of linear
    warm-up and decayed by a cosine to ``min_lr_ratio · lr`` at ``steps``.
    ``weight_decay`` applies to matrices only. ``grad_clip`` ≤ 0 disables clipping.
    ``refresh_every`` 0 means ``max(1, steps // 50)``. ``fixed_embedding_rms`` > 0
    rescales each token's embedding to that rms (the fixed-embedding-scale
    experiment); 0 leaves the embedding free. ``corpus`` None is
    ``pydoc_data.topics``, ``"stdlib"`` the standard library's sources (module
    ``corpus``). ``recipe`` names a record of ``recipes.RECIPES`` whose modules and
    initial values the model gets ("" for none; its scheme must be ``stack.scheme``).
    ``amp_dtype`` "bfloat16" or "float16" runs the training forward and backward and
    the held-out evaluations under ``torch.autocast`` (weights and optimiser state
    stay in the stack's dtype); "" runs plainly. ``label`` names the run in tables
    (default: the scheme).
    """

    stack: StackConfig = DEFAULT_STACK
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    refresh_every: int = 0
    eval_every: int = 50
    eval_batches: int = 4
    stats_every: int = 100
    stats_batch: int = 4
    spike_ratio: float = 1.5
    fixed_embedding_rms: float = 0.0
    checkpoint_every: int = 100
    corpus: str | None = None
    text_field: str | None = None
    eval_fraction: float = 0.1
    recipe: str = ""
    amp_dtype: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "stats_every", "stats_batch",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "refresh_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            problems.append(f"beta1, beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.weight_decay < 0 or self.fixed_embedding_rms < 0:
            problems.append("weight_decay and fixed_embedding_rms must be ≥ 0")
        if not self.spike_ratio > 1:
            problems.append(f"spike_ratio must be > 1, got {self.spike_ratio}")
        if self.recipe and self.recipe not in RECIPES:
            problems.append(f"recipe {self.recipe!r} is not one of {tuple(RECIPES)}")
        elif self.recipe and RECIPES[self.recipe].scheme != self.stack.scheme:
            problems.append(f"recipe {self.recipe!r} is for scheme {RECIPES[self.recipe].scheme!r}, "
                            f"not {self.stack.scheme!r}")
        if self.amp_dtype not in ("", "bfloat16", "float16"):
            problems.append(f"amp_dtype must be '', 'bfloat16' or 'float16', got {self.amp_dtype!r}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @property
    def name(self) -> str:
        return self.label or self.stack.scheme

    @property
    def refresh_interval(self) -> int:
        return self.refresh_every or max(1, self.steps // 50)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.stack.seq_len

    def as_dict(self) -> dict:
        """Every field, the ``StackConfig`` flattened under ``stack.``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "stack"}
        return {**{f"stack.{k}": v for k, v in self.stack.as_dict().items()}, **values}

    @property
    def run_id(self) -> str:
        """``{name}_s{seed}_{hash}``: the hash covers every field, so runs never collide."""
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}_s{self.seed}_{digest}"

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``; ``StackConfig`` fields go to ``stack`` (re-derived as in
        ``StackConfig.replace``)."""
        stack_fields = {f.name for f in dataclasses.fields(StackConfig)}
        stack_changes = {k: changes.pop(k) for k in list(changes) if k in stack_fields}
        stack = self.stack.replace(**stack_changes) if stack_changes else self.stack
        return dataclasses.replace(self, stack=stack, **changes)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr_ratio · lr``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _stream_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


class LanguageModel(nn.Module):
    """Embedding → ``Stack`` (its final norm included) → LM head, byte vocabulary.

    The stack's blocks draw their weights as ``Stack(config.stack, config.seed)``;
    the embedding and the head draw N(0, init_std²) from streams of the same seed.
    A ``config.recipe`` adds its embedding scale (``embedding_scale``, √d at
    first) and embedding-output norm (``embedding_norm``) and sets its α₀, β and
    final norm on the stack (``recipes.Recipe``); it draws nothing random, so one
    seed gives the same weights and batches under every scheme and recipe.
    """

    def __init__(self, config: TrainConfig):
        super().__init__()
        stack_config = config.stack
        self.fixed_embedding_rms = config.fixed_embedding_rms
        self.embedding = nn.Embedding(VOCAB_SIZE, stack_config.width)
        self.stack = Stack(stack_config, config.seed)
        self.head = nn.Linear(stack_config.width, VOCAB_SIZE, bias=False)
        with torch.no_grad():
            for module, stream in ((self.embedding, _EMBEDDING_STREAM), (self.head, _HEAD_STREAM)):
                generator = torch.Generator().manual_seed(_stream_seed(config.seed, stream))
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * stack_config.init_std)
        self.embedding_scale, self.embedding_norm = None, None
        if config.recipe:
            chosen = RECIPES[config.recipe]
            chosen.adjust_stack(self.stack)
            self.embedding_scale, self.embedding_norm = chosen.embedding_modules(stack_config.width)
            if chosen.calibrate_m2_factor:  # the embedding's N(0, init_std²), times the scale² if any
                scale = stack_config.width if chosen.embedding_scale else 1.0
                calibrate_correlation(self.stack, stack_config.init_std**2 * scale)
        for module in (self.embedding, self.head, self.embedding_norm):
            if module is not None:
                module.to(device=stack_config.device, dtype=stack_config.torch_dtype)
        if self.embedding_scale is not None:
            self.embedding_scale.data = self.embedding_scale.data.to(device=stack_config.device,
                                                                     dtype=stack_config.torch_dtype)

    def embed(self, tokens: Tensor) -> Tensor:
        """The stream entering layer 0: the embedding, times the recipe's scale, through the
        recipe's norm; with ``fixed_embedding_rms`` each token's rms is fixed."""
        e = self.embedding(tokens.to(self.embedding.weight.device))
        if self.embedding_scale is not None:
            e = e * self.embedding_scale
        if self.embedding_norm is not None:
            e = self.embedding_norm(e)
        if self.fixed_embedding_rms:
            e = rms_norm(e) * self.fixed_embedding_rms
        return e

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-byte logits, shape ``(B, T, 256)``."""
        return self.head(self.stack(self.embed(tokens)))

    def loss(self, tokens: Tensor, targets: Tensor) -> Tensor:
        """Mean next-byte cross-entropy (nats)."""
        logits = self(tokens)
        return F.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), targets.to(logits.device).reshape(-1))


def autocast(config: TrainConfig) -> contextlib.AbstractContextManager:
    """``torch.autocast`` at ``config.amp_dtype`` on the stack's device; a no-op for ""."""
    if not config.amp_dtype:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(config.stack.device).type, dtype=getattr(torch, config.amp_dtype))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Matrices (≥ 2-D) with weight decay; γ, β, λ, α and other scalars without."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def timed_step(model: LanguageModel, optimiser: torch.optim.Optimizer, config: TrainConfig, data, step: int) -> Tensor:
    """One optimisation step as ``train`` takes it — batch, learning rate, loss, backward, gradient
    clipping, AdamW — without its logging: what the throughput and cost measurements time."""
    tokens, targets = training_batch(data, config.batch_size, config.stack.seq_len, config.seed, step)
    for group in optimiser.param_groups:
        group["lr"] = learning_rate(config, step)
    loss = model.loss(tokens, targets)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
    optimiser.step()
    return loss


def evaluation_loss(model: LanguageModel, batches: list[tuple[Tensor, Tensor]]) -> float:
    """Mean held-out cross-entropy over ``batches`` (equal sizes, so the mean of means)."""
    return float(np.mean([model.loss(tokens, targets).item() for tokens, targets in batches]))


def position_bands(length: int) -> list[tuple[str, int, int]]:
    """Position bands ``(name, first, end)`` for per-band estimate ratios: position 0,
    1–3, 4 … T/4−1, T/4 … T−1 (those that are not empty)."""
    edges = sorted({0, min(1, length), min(4, length), max(min(4, length), length // 4), length})
    return [(f"{a}-{b - 1}", a, b) for a, b in itertools.pairwise(edges) if b > a]


class _AttentionInputs:
    """Forward pre-hooks that keep each block's attention input (for entropies)."""

    def __init__(self, stack: Stack):
        self.inputs: dict[int, Tensor] = {}
        self._handles = [
            block.attn.register_forward_pre_hook(lambda _, args, layer=block.layer: self.inputs.__setitem__(layer, args[0]))
            for block in stack.blocks
        ]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _attention_entropy(stack: Stack, inputs: dict[int, Tensor]) -> dict[int, float]:
    entropies = {}
    for block in stack.blocks:
        p = block.attn.probabilities(inputs[block.layer]).double()
        entropies[block.layer] = float(-(p * torch.log(p.clamp_min(1e-300))).sum(-1).mean())
    return entropies


@torch.no_grad()
def trace_language_model(model: LanguageModel, tokens: Tensor) -> tuple[pd.DataFrame, dict[int, float]]:
    """The ``TraceProbe`` table of the stack on ``tokens`` and each layer's attention entropy."""
    probe, hooks = TraceProbe(), _AttentionInputs(model.stack)
    try:
        model.stack.residual(model.embed(tokens), probe)
        return probe.frame(), _attention_entropy(model.stack, hooks.inputs)
    finally:
        hooks.close()


@torch.no_grad()
def _fresh_estimate_ratios(model: LanguageModel, tokens: Tensor) -> pd.DataFrame:
    """The trace with every ``c_attn`` recomputed from the current weights (restored after)."""
    stored = [block.c_attn.clone() for block in model.stack.blocks]
    model.stack.refresh_variance_constants()
    try:
        return trace_language_model(model, tokens)[0]
    finally:
        for block, value in zip(model.stack.blocks, stored):
            block.c_attn.copy_(value)


def _band_ratios(table: pd.DataFrame, column: str = "estimate_ratio") -> Iterator[tuple[int, str, float]]:
    """``(layer, band, mean ratio)`` over the positions of each band and over all positions."""
    rows = table[(table["sublayer"] == "attn") & table[column].notna()]
    length = int(rows["position"].max()) + 1 if len(rows) else 0
    for layer, group in rows.groupby("layer"):
        ratio = group.set_index("position")[column]
        for name, first, end in position_bands(length):
            yield int(layer), name, float(ratio.loc[first:end - 1].mean())
        yield int(layer), "all", float(ratio.mean())


def layer_statistics(model: LanguageModel, tokens: Tensor) -> list[dict]:
    """The per-layer statistics of the module docstring at the current weights, as
    ``(layer, sublayer, band, quantity, value)`` rows (gradients not included)."""
    table, entropies = trace_language_model(model, tokens)
    rows = []

    def add(layer, sublayer, quantity, value, band="all"):
        rows.append({"layer": int(layer), "sublayer": sublayer, "band": band, "quantity": quantity,
                     "value": float(value)})

    with torch.no_grad():
        embedded = state_statistics(model.embed(tokens))
    for quantity in STATE_QUANTITIES:
        value = np.sqrt(np.mean(embedded["mean_square"])) if quantity == "rms" else np.mean(embedded[quantity])
        add(EMBEDDING_LAYER, "embedding", quantity, value)
    averaged = position_average(table, ["layer", "sublayer"])
    for row in averaged.itertuples(index=False):
        for quantity in STATE_QUANTITIES + ARGUMENT_QUANTITIES:
            if pd.notna(getattr(row, quantity)):  # argument statistics exist for tanh/erf norms only
                add(row.layer, row.sublayer, quantity, getattr(row, quantity))
    if scheme_row(model.stack.config.scheme).estimates_m2:
        fresh = _fresh_estimate_ratios(model, tokens)
        for name, source in (("estimate_ratio", table), ("estimate_ratio_fresh", fresh)):
            for layer, band, value in _band_ratios(source):
                add(layer, "attn", name, value, band)
    for block in model.stack.blocks:
        add(block.layer, "block", "attention_entropy", entropies[block.layer])
        add(block.layer, "block", "c_attn", block.c_attn.item())
        for name, parameter in block.named_parameters():
            if parameter.ndim == 0:
                add(block.layer, "block", f"param:{name}", parameter.item())
    for name, parameter in model.stack.final_norm.named_parameters():
        if parameter.ndim == 0:
            add(model.stack.config.depth, "final", f"param:{name}", parameter.item())
    if model.embedding_scale is not None:
        add(EMBEDDING_LAYER, "embedding", "param:embedding_scale", model.embedding_scale.item())
    with torch.no_grad():
        argument = norm_argument(model.stack.final_norm, model.stack.residual(model.embed(tokens)))
    if argument is not None:  # a tanh/erf final norm: its argument statistics, as for the block norms
        for quantity, values in argument_statistics(argument).items():
            if quantity in ARGUMENT_QUANTITIES:
                add(model.stack.config.depth, "final", quantity, np.mean(values) if quantity != "arg_rms"
                    else np.sqrt(np.mean(np.square(values))))
    return rows


def block_gradient_norms(stack: Stack) -> dict[int, float]:
    """‖∇‖₂ over each block's parameters (after ``backward``)."""
    norms = {}
    for block in stack.blocks:
        squares = [p.grad.double().square().sum() for p in block.parameters() if p.grad is not None]
        norms[block.layer] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


@torch.no_grad()
def divergence_layer(model: LanguageModel, tokens: Tensor, gradient_norms: dict[int, float] | None) -> int:
    """The layer a divergence is charged to (module docstring, "Divergence")."""
    h = model.embed(tokens)
    for block in model.stack.blocks:
        h = block(h)
        if not torch.isfinite(h).all():
            return block.layer
    if gradient_norms:
        for layer, norm in gradient_norms.items():
            if not math.isfinite(norm):
                return layer
        return max(gradient_norms, key=gradient_norms.get)
    return EMBEDDING_LAYER


@dataclass
class TrainingRun:
    """The outcome of ``train``: the model at its last step, the log table and a
    one-row run record (``run_id``, ``label``, ``scheme``, ``seed``, ``steps_done``,
    ``diverged``, ``divergence_step``, ``divergence_layer``, ``divergence_reason``,
    ``final_eval_loss``, ``tokens_seen``, ``seconds`` (wall), ``cpu_seconds`` (this
    process's CPU time; with one thread, a contention-robust measure of the work),
    ``tokens_per_second`` (wall), and the corpus's ``Corpus.metadata``: source, SHA-256
    digest, training tokens (= tokens per epoch), held-out tokens, Python version)."""

    config: TrainConfig
    model: LanguageModel
    log: pd.DataFrame
    record: dict = field(default_factory=dict)


def checkpoint_path(out_dir: str | Path, config: TrainConfig) -> Path:
    return Path(out_dir) / "checkpoints" / f"{config.run_id}.pt"


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    corpus: Corpus | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> TrainingRun:
    """Train (or resume, or read back) one run.

    Parameters
    ----------
    config : TrainConfig
    out_dir : path or None
        Folder of the run's checkpoint (``checkpoints/{run_id}.pt``); None keeps
        nothing on disk. A finished run found there is returned without training.
    corpus : Corpus or None
        Pre-loaded corpus (default: ``build_corpus(config.corpus, config.text_field,
        config.eval_fraction)``).
    stop_after : int or None
        Stop (with a checkpoint) once this many steps are done — an interruption
        on purpose, for tests of resumption.
    progress : bool or None
        tqdm bar over steps; None: only on a terminal.

    Returns
    -------
    TrainingRun
    """
    if corpus is None:
        corpus = build_corpus(config.corpus, config.text_field, config.eval_fraction)
    stack_config = config.stack
    corpus.check_length(stack_config.seq_len)
    model = LanguageModel(config)
    optimiser = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay), lr=config.lr, betas=(config.beta1, config.beta2)
    )
    eval_batches = evaluation_batches(corpus, config.eval_batches, config.batch_size, stack_config.seq_len)
    stats_tokens = eval_batches[0][0][: config.stats_batch]
    keys = {"run_id": config.run_id, "label": config.name, "scheme": stack_config.scheme, "seed": config.seed}
    rows: list[dict] = []
    state = {"step": 0, "running_min": math.inf, "recent": [], "record": {}, "seconds": 0.0, "cpu_seconds": 0.0}
    path = checkpoint_path(out_dir, config) if out_dir is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        if saved["config"] != config.as_dict():
            raise ValueError(f"checkpoint {path} belongs to another configuration")
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimizer"])
        rows, state = saved["rows"], saved["state"]

    def log(step, quantity, value, layer=EMBEDDING_LAYER, sublayer="run", band="all"):
        rows.append({**keys, "step": step, "layer": layer, "sublayer": sublayer, "band": band,
                     "quantity": quantity, "value": float(value)})

    def save():
        if path is not None:
            checkpoint = {"config": config.as_dict(), "model": model.state_dict(),
                          "optimizer": optimiser.state_dict(), "rows": rows, "state": state}
            write_atomically(path, partial(torch.save, checkpoint))

    def observe(step, gradient_norms=None):
        if step % config.eval_every == 0 or step == config.steps:
            with autocast(config):
                log(step, "eval_loss", evaluation_loss(model, eval_batches))
        if step % config.stats_every == 0 or step == config.steps:
            for row in layer_statistics(model, stats_tokens):
                rows.append({**keys, "step": step, **row})

    bar = tqdm(total=config.steps, initial=state["step"], desc=config.run_id, leave=False,
               disable=not _show_progress(progress))
    started = time.perf_counter() - state["seconds"]
    cpu_started = time.process_time() - state["cpu_seconds"]
    try:
        while state["step"] < config.steps and not state["record"] and (stop_after is None or state["step"] < stop_after):
            step = state["step"]
            stats_step = step % config.stats_every == 0
            model.eval()
            observe(step)
            if step and step % config.refresh_interval == 0:
                model.stack.refresh_variance_constants()
            model.train()
            tokens, targets = training_batch(corpus, config.batch_size, stack_config.seq_len, config.seed, step)
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, step)
            with autocast(config):
                loss = model.loss(tokens, targets)
            value = loss.item()
            recent = (state["recent"] + [value])[-SPIKE_WINDOW:]
            smoothed = sum(recent) / len(recent)
            spike = (step >= config.warmup_steps and len(recent) == SPIKE_WINDOW
                     and smoothed > config.spike_ratio * state["running_min"])
            if not math.isfinite(value) or spike:
                optimiser.zero_grad(set_to_none=True)
                gradient_norms = None
                if math.isfinite(value):
                    loss.backward()
                    gradient_norms = block_gradient_norms(model.stack)
                state["record"] = {"divergence_step": step, "divergence_reason": "spike" if spike else "non-finite",
                                   "divergence_layer": divergence_layer(model, tokens, gradient_norms)}
                log(step, "train_loss", value)
                break
            state["recent"] = recent
            if len(recent) == SPIKE_WINDOW:
                state["running_min"] = min(state["running_min"], smoothed)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if stats_step:
                for layer, norm in block_gradient_norms(model.stack).items():
                    log(step, "grad_norm", norm, layer, "block")
            total = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
            optimiser.step()
            log(step, "train_loss", value)
            log(step, "lr", learning_rate(config, step))
            log(step, "grad_norm", total.item())
            state["step"] = step + 1
            state["seconds"] = time.perf_counter() - started
            state["cpu_seconds"] = time.process_time() - cpu_started
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if state["step"] % config.checkpoint_every == 0:
                save()
        if state["step"] == config.steps and not state["record"] and not state.get("finished"):
            model.eval()
            observe(config.steps)
            state["finished"] = True
        save()
    finally:
        bar.close()
    model.eval()
    table = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    eval_losses = table[table["quantity"] == "eval_loss"]
    finished = bool(state.get("finished"))
    record = {
        **keys, "steps_done": state["step"], "diverged": bool(state["record"]),
        "divergence_step": state["record"].get("divergence_step", -1),
        "divergence_layer": state["record"].get("divergence_layer", -1),
        "divergence_reason": state["record"].get("divergence_reason", ""),
        "final_eval_loss": float(eval_losses["value"].iloc[-1]) if finished else math.nan,
        "tokens_seen": state["step"] * config.tokens_per_step, "seconds": state["seconds"],
        "cpu_seconds": state["cpu_seconds"],
        "tokens_per_second": state["step"] * config.tokens_per_step / state["seconds"] if state["seconds"] else math.nan,
        **corpus.metadata(),
    }
    return TrainingRun(config, model, table, record)
