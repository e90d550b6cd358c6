"""The experiments behind the report and the claims, as named tables on disk.

A *study* runs one experiment of ``bhyt_theory.experiments`` (or a theory check)
at full or quick sizes and returns its tidy tables by name. ``ResultsStore``
keeps them as CSV files in a results folder, each study with a provenance file
(``<study>.meta.json``: package version, git commit, torch version, device,
hardware, date, wall time, sizes) keyed by a fingerprint of the package's
sources, so a rerun reuses what is current and recomputes what is stale or missing.

A study whose experiment is not in this build (a module that has not landed)
reports ``NOT_AVAILABLE`` instead of failing; the claims it serves are then "not
testable here".

This module wires experiments to sizes and files; the experiments compute, the
figures (``bhyt_theory.pipeline.figures``) draw, and ``report`` and ``claims`` render.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from .. import __version__
from ..experiments.atomic import write_atomically
from ..experiments.montecarlo import source_fingerprint, summarise, sweep
from ..numerics.inputs import InputSpec
from ..numerics.model import SCHEMES, StackConfig
from ..numerics.probes import position_average

NOT_AVAILABLE = "experiment not available in this build"
PACKAGE = Path(__file__).resolve().parent.parent
CORE_SOURCES = tuple(sorted(path for layer in ("numerics", "theory") for path in (PACKAGE / layer).rglob("*.py"))) + (
    PACKAGE / "__init__.py",)
"""Sources every study's numbers depend on: the numerics and theory layers."""


TEX_SYMBOLS = {"$": "", "\\lambda": "λ", "\\kappa": "κ", "\\varepsilon": "ε", "\\sqrt": "√", "\\le": "≤",
               "\\gamma": "γ", "\\,": " "}
"""TeX in proof titles, shown as plain text in tables."""
DEPTH_TRACE_STATISTICS = ("rms", "mean_abs", "variance", "arg_rms", "saturated_fraction_1")


def optional(module: str, *names: str):
    """``module``'s attributes ``names`` if the module exists in this build and has them, else None."""
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):
            return None
        raise
    if not all(hasattr(loaded, name) for name in names):
        return None
    return tuple(getattr(loaded, name) for name in names)


def git_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes), or "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=PACKAGE, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance(device: str = "cpu") -> dict:
    """What produced a table: package version and commit, torch, device, hardware, threads, date."""
    from ..experiments.efficiency import hardware

    return {
        "package": f"bhyt-theory {__version__}", "commit": git_commit(), "torch": torch.__version__,
        "python": platform.python_version(), "device": device, "hardware": hardware(device),
        "threads": torch.get_num_threads(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class Study:
    """One experiment: ``produce(quick, log)`` returns its tables by name (``log``: progress lines).

    ``requires``: modules (with attributes) the experiment needs; absent ones make
    the study unavailable. ``claims``: the claim ids it serves.
    """

    name: str
    title: str
    claims: tuple[str, ...]
    produce: Callable[..., dict[str, pd.DataFrame]]
    sizes: Callable[[bool], str]
    requires: tuple[tuple[str, tuple[str, ...]], ...] = ()
    subcommand: str = ""
    modules: tuple[str, ...] = ()
    extra_sources: Callable[[], list[Path]] = list
    forward_only: bool = True

    def sources(self) -> str:
        """Fingerprint of what computes this study's tables: the numerics and theory layers, its
        experiment ``modules`` (``bhyt_theory/experiments/<name>.py``) and any ``extra_sources``.
        The top layer's wiring, rendering and judging (this module, ``claims``, ``figures``,
        ``report``, ``cli``) can change without recomputing; a stored result is current when
        this fingerprint and its sizes match."""
        experiments = [PACKAGE / "experiments" / f"{module}.py" for module in self.modules]
        return source_fingerprint(*CORE_SOURCES, *(p for p in experiments if p.exists()), *self.extra_sources())

    def missing(self) -> str | None:
        """None if the experiment is in this build, else the reason it is not."""
        for module, names in self.requires:
            if optional(module, *names) is None:
                return f"{NOT_AVAILABLE} ({module}{'.' + ', '.join(names) if names else ''})"
        return None

    def command(self, quick: bool) -> str:
        return f"bhyt-theory reproduce --only {self.name}" + (" --quick" if quick else "")


# ---------------------------------------------------------------- the experiments, sized

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress sink of the table functions: discard."""


def _every_scheme(config: StackConfig, seeds: Sequence[int], batch: int, log: Log) -> pd.DataFrame:
    """``sweep`` of every scheme at ``config``'s sizes, one scheme at a time with a progress line each."""
    base = {k: v for k, v in config.as_dict().items() if k != "scheme"}
    parts = []
    for index, scheme in enumerate(SCHEMES, 1):
        started = time.perf_counter()
        parts.append(sweep({"scheme": [scheme]}, list(seeds), InputSpec(batch=batch, std=0.02), base=base,
                           cache_dir=None, progress=False))
        log(f"  {scheme} ({index}/{len(SCHEMES)}): {len(list(seeds))} seeds in {time.perf_counter() - started:.0f} s")
    return pd.concat(parts, ignore_index=True)


def depth_trace_tables(config: StackConfig, seeds: Sequence[int], batch: int = 4,
                       log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """Every scheme at ``config``'s sizes: per layer × sublayer statistics (``DEPTH_TRACE_STATISTICS``)
    with 95 % intervals across seeds, inputs N(0, 0.02²)."""
    table = _every_scheme(config, seeds, batch, log)
    summary = summarise(table, statistics=DEPTH_TRACE_STATISTICS)
    return {"depth_trace": summary[["scheme", "layer", "sublayer", "statistic", "mean", "std", "n_seeds", "ci_low",
                                    "ci_high", "depth", "width", "seq_len"]]}


def growth_tables(config: StackConfig, seeds: Sequence[int], batch: int = 4,
                  log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """Every scheme at ``config``'s sizes: growth-law fits (Monte Carlo and mean field), the per-layer
    rms with 95 % intervals, and the mean-field rms curve."""
    from ..experiments.growth import fit_growth, meanfield_growth
    from ..theory.meanfield import predict

    table = _every_scheme(config, seeds, batch, log)
    fits = pd.concat([fit_growth(table).assign(source="monte carlo"), meanfield_growth(table).assign(source="mean field")],
                     ignore_index=True)
    curves = summarise(table[table["sublayer"] == "mlp"], statistics=("rms",))
    meanfield = pd.concat([predict(config.replace(scheme=scheme), 0.02**2)[["layer", "sublayer", "rms"]]
                           .assign(scheme=scheme) for scheme in SCHEMES], ignore_index=True)
    return {
        "growth_fits": fits,
        "growth_rms": curves[["scheme", "layer", "mean", "ci_low", "ci_high", "n_seeds", "depth", "width", "seq_len"]],
        "growth_meanfield": meanfield[meanfield["sublayer"] == "mlp"].drop(columns="sublayer"),
    }


def meanfield_tables(config: StackConfig, seeds: Sequence[int], batch: int = 2,
                     log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """Mean field vs Monte Carlo of the per-layer mean square, every scheme at ``config``'s sizes."""
    from ..theory.meanfield import compare_with_monte_carlo

    parts = []
    for index, scheme in enumerate(SCHEMES, 1):
        parts.append(compare_with_monte_carlo(config.replace(scheme=scheme), list(seeds), InputSpec(batch=batch))
                     .assign(scheme=scheme, depth=config.depth, width=config.width, seq_len=config.seq_len))
        log(f"  {scheme} ({index}/{len(SCHEMES)})")
    return {"meanfield_vs_montecarlo": pd.concat(parts, ignore_index=True)}


def variance_tables(config: StackConfig, layers: Sequence[int], seeds: Sequence[int],
                    batch: int = 4) -> dict[str, pd.DataFrame]:
    """M₂/m(h′) of every estimator at every position of ``layers`` (``estimator_comparison``)."""
    from ..experiments.variance import estimator_comparison

    table = estimator_comparison(config, seeds=tuple(seeds), inputs=InputSpec(batch=batch), layers=tuple(layers),
                                 positions=range(config.seq_len))
    return {"variance_estimators": table.assign(width=config.width, seq_len=config.seq_len, depth=config.depth)}


def variance_decomposition_tables(config: StackConfig, layers: Sequence[int], seeds: Sequence[int],
                                  batch: int = 4) -> dict[str, pd.DataFrame]:
    """The error terms of the paper's M₂ per layer × position × seed (``decomposition_table``)."""
    from ..experiments.variance import decomposition_table

    table = decomposition_table(config, tuple(seeds), InputSpec(batch=batch), layers, positions=range(config.seq_len))
    return {"variance_decomposition": table}


def jacobian_tables(config: StackConfig, seeds: Sequence[int], probes: int) -> dict[str, pd.DataFrame]:
    """Jacobian deviation from I per scheme at layers 0, 1, 4, 16, L−1 (``jacobian_comparison``)."""
    from ..experiments.jacobian import jacobian_comparison, jacobian_layers

    table = jacobian_comparison(config, layers=jacobian_layers(config.depth), seeds=tuple(seeds), probes=probes)
    return {"jacobian": table.assign(depth=config.depth, width=config.width, seq_len=config.seq_len)}


PAPER_PRESET = "llama-374m"
"""The paper's smaller model shape (``numerics.model.PRESETS``): the primary evidence of C3, C4 and C5."""
PAPER_SCHEMES = ("bhyt", "rmsnorm")
PAPER_SEEDS = (0, 1, 2)
"""Weight seeds of the paper-shape Monte Carlo (batch 1): three give a Student-t interval with 2 degrees
of freedom. One llama-374m forward at T 1024 takes about 10 s on one core (BHyT; 7 s RMSNorm) and the
softmax-attention mean field about 30 s per scheme, so the study costs about 2 min on an idle core."""


def block_parameters(config: StackConfig) -> int:
    """Weights of ``config``'s blocks (attention and SwiGLU matrices; embeddings and norm gains left out)."""
    kv_width = config.kv_heads * (config.width // config.heads)
    attention = 2 * config.width * config.width + 2 * config.width * kv_width
    return config.depth * (attention + 3 * config.width * config.mlp_width)


def paper_init_tables(config: StackConfig, seeds: Sequence[int], log: Log = _quiet) -> dict[str, pd.DataFrame]:
    """BHyT and RMSNorm at ``config`` (one sample per seed, inputs N(0, 0.02²)), beside the
    softmax-attention mean field: growth-law fits, per-layer statistics, and BHyT's M₂/m(h′)
    at every layer × position.

    The mean field with ``attention="softmax"`` is the model that stays within the Monte Carlo
    error at the paper's widths (``theory.meanfield``); both are tabled so each checks the other.
    """
    from ..experiments.growth import fit_growth
    from ..theory.meanfield import predict_per_position

    base = {k: v for k, v in config.as_dict().items() if k != "scheme"}
    shape = dict(preset=PAPER_PRESET if config == StackConfig.from_preset(PAPER_PRESET, scheme=config.scheme)
                 else "", depth=config.depth, width=config.width, seq_len=config.seq_len,
                 parameters=block_parameters(config))
    fits, layers, estimate = [], [], None
    for scheme in PAPER_SCHEMES:
        started = time.perf_counter()
        table = sweep({"scheme": [scheme]}, list(seeds), InputSpec(batch=1, std=0.02), base=base, cache_dir=None,
                      progress=False)
        log(f"  {scheme} Monte Carlo: {len(list(seeds))} seeds in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        field_config = config.replace(scheme=scheme)
        per_position = predict_per_position(field_config, 0.02**2, attention="softmax")
        averaged = position_average(per_position.drop(columns="position"), ["layer", "sublayer"])  # as ``predict``
        log(f"  {scheme} mean field (softmax attention) in {time.perf_counter() - started:.0f} s")
        run_columns = table[list(base) + ["scheme", "batch", "length", "input_std"]].iloc[0].to_dict()
        curve = averaged[["layer", "sublayer", "mean_square", "rms"]].assign(**run_columns, seed=0, position=0)
        fits += [fit_growth(table).assign(source="monte carlo"), fit_growth(curve).assign(source="mean field")]
        statistics = ("rms", "arg_rms", "saturated_fraction_1") if scheme == "bhyt" else ("rms",)
        summary = summarise(table, statistics=statistics)
        field = averaged.melt(id_vars=["layer", "sublayer"], value_vars=list(statistics), var_name="statistic",
                              value_name="meanfield")
        layers.append(summary[["scheme", "layer", "sublayer", "statistic", "mean", "std", "n_seeds", "ci_low",
                               "ci_high"]].merge(field, on=["layer", "sublayer", "statistic"], how="left"))
        if scheme == "bhyt":
            attn = table[table["sublayer"] == "attn"]
            grouped = attn.groupby(["layer", "position"])["estimate_ratio"]
            estimate = grouped.agg(ratio="mean", ratio_sd="std", n_seeds="count").reset_index().merge(
                per_position[per_position["sublayer"] == "attn"][["layer", "position", "estimate_ratio"]]
                .rename(columns={"estimate_ratio": "meanfield_ratio"}), on=["layer", "position"], how="left")
    return {"paper_growth_fits": pd.concat(fits, ignore_index=True).assign(**shape),
            "paper_layers": pd.concat(layers, ignore_index=True).assign(**shape),
            "paper_estimate": estimate.assign(**shape)}


def _paper_config(quick: bool) -> StackConfig:
    """The llama-374m preset at T 1024; quick: its depth and proportions at width 64, T 64."""
    if quick:
        return StackConfig.from_preset(PAPER_PRESET, scheme="bhyt", width=64, heads=4, kv_heads=1, mlp_width=256,
                                       seq_len=64)
    return StackConfig.from_preset(PAPER_PRESET, scheme="bhyt")


def _paper_init(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return paper_init_tables(_paper_config(quick), PAPER_SEEDS[:2] if quick else PAPER_SEEDS, log=log)


def _sized(quick: bool, small: dict, full: dict) -> StackConfig:
    return StackConfig(heads=4, **(small if quick else full))


def _depth_trace(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    config = _sized(quick, dict(depth=8, width=64, seq_len=32), dict(depth=32, width=256, seq_len=128))
    return depth_trace_tables(config, range(2 if quick else 4), log=log)


def _growth(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    from ..experiments.growth import DEFAULT_GROWTH

    full = {k: v for k, v in DEFAULT_GROWTH.items() if k != "heads"}
    config = _sized(quick, dict(full, depth=32, width=64, seq_len=16), full)
    return growth_tables(config, [0, 1] if quick else [0, 1, 2], log=log)


def _meanfield(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    config = _sized(quick, dict(depth=8, width=64, seq_len=16), dict(depth=64, width=256, seq_len=64))
    return meanfield_tables(config, range(2 if quick else 8), log=log)


def _variance_config(quick: bool) -> tuple[StackConfig, tuple[int, ...], tuple[int, ...]]:
    config = _sized(quick, dict(scheme="bhyt", depth=17, width=64, seq_len=32),
                    dict(scheme="bhyt", depth=65, width=256, seq_len=128))
    layers = (0, 1, 4, 16) if quick else (0, 1, 4, 16, 64)
    return config, layers, (0,) if quick else (0, 1, 2)


def _variance(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return variance_tables(*_variance_config(quick))


def _variance_decomposition(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return variance_decomposition_tables(*_variance_config(quick))


def _jacobian(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    config = _sized(quick, dict(depth=8, width=64, seq_len=32), dict(depth=32, width=256, seq_len=128))
    return jacobian_tables(config, (0,) if quick else (0, 1), probes=4 if quick else 16)


def _bounds(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    from ..experiments.bounds import search, tightest_ratios, tightness_table

    if quick:  # the search only: the default-initialisation ratios need depth-32, width-256 stacks
        table = tightest_ratios(search(seed=0, random_trials=1, hill_climb_steps=3))
        return {"bounds_tightness": table.assign(setting="search")}
    return {"bounds_tightness": tightness_table(seed=0, random_trials=6, hill_climb_steps=40)}


def _checks(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    from ..theory.checks import PROOFS_DIR, run_checks
    from ..theory.checks.registry import proof_sections

    table = run_checks()
    statements = []
    for path in sorted(PROOFS_DIR.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
        for tex, plain in TEX_SYMBOLS.items():
            title = title.replace(tex, plain)
        statements.append({"proof": path.name, "title": title, "sections": ", ".join(proof_sections(text))})
    return {"checks": table, "proofs": pd.DataFrame(statements)}


def _efficiency(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    from ..experiments.efficiency import (
        DEFAULT_EFFICIENCY,
        QUICK_EFFICIENCY,
        efficiency_study,
    )

    config = QUICK_EFFICIENCY if quick else DEFAULT_EFFICIENCY
    costs, timings = efficiency_study(config, rounds=4 if quick else 12)
    timings = timings.assign(width=config.width, heads=config.heads, seq_len=config.seq_len)
    return {"efficiency_costs": costs, "efficiency_timings": timings}


def _decode(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    (decode_exactness,) = optional("bhyt_theory.experiments.decode", "decode_exactness")
    return {"decode_exactness": decode_exactness(seeds=(0,) if quick else (0, 1, 2))}


TRAINING_STEPS = 150
"""Steps per run of the full-size training comparison (the ``default`` preset runs 300; half keeps
``reproduce`` within its budget on two cores)."""


def _training(quick: bool, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    preset_config, comparison_configs, run_comparison = optional(
        "bhyt_theory.experiments.training.study", "preset_config", "comparison_configs", "run_comparison")
    import tempfile

    base = preset_config("quick") if quick else preset_config("default", steps=TRAINING_STEPS)
    workers = 1 if quick else min(2, torch.get_num_threads())  # one process per core, one thread each
    with tempfile.TemporaryDirectory(prefix="bhyt-training-") as folder:
        tables = run_comparison(comparison_configs(base, seeds=(0, 1) if quick else (0, 1, 2)), folder,
                                workers=workers, figures=False, progress=False, log=lambda message: log("  " + message))
    keep = ("runs", "log", "summary")
    return {f"training_{name}": table for name, table in tables.items() if name in keep}


STUDIES: dict[str, Study] = {study.name: study for study in (
    Study("depth_trace", "Depth trace of every scheme at initialisation", ("C1", "C3", "C4"), _depth_trace,
          lambda q: "depth 8, width 64, T 32, 2 seeds" if q else "depth 32, width 256, T 128, 4 seeds",
          subcommand="bhyt-theory sweep --scheme rmsnorm periln lns dyt derf bhyt bhytline bhytstar --depth 32 "
          "--width 256 --heads 4 --seq-len 128 --seeds 0 1 2 3 --batch 4 --statistics rms arg_rms",
          modules=("montecarlo",)),
    Study("paper_init", "Initialisation at the paper's shape (llama-374m, T 1024): Monte Carlo and mean field",
          ("C3", "C4", "C5"), _paper_init,
          lambda q: "llama-374m proportions at width 64, T 64, 2 seeds × batch 1" if q
          else "llama-374m (depth 16, width 1024, T 1024), 3 seeds × batch 1, softmax-attention mean field",
          subcommand="bhyt-theory predict --preset llama-374m --scheme bhyt --attention softmax --per-position "
          "--statistics estimate_ratio --compare-seeds 3 --batch 1", modules=("montecarlo", "growth")),
    Study("growth", "Growth laws with depth, Monte Carlo and mean field", ("C1", "C4"), _growth,
          lambda q: "depth 32, width 64, T 16, 2 seeds" if q else "depth 256, width 256, T 64, 3 seeds",
          subcommand="bhyt-theory growth --meanfield", modules=("montecarlo", "growth")),
    Study("meanfield", "Mean field vs Monte Carlo", ("C1", "C4"), _meanfield,
          lambda q: "depth 8, width 64, T 16, 2 seeds" if q else "depth 64, width 256, T 64, 8 seeds × batch 2",
          subcommand="bhyt-theory predict --scheme rmsnorm --depth 64 --width 256 --seq-len 64 --compare-seeds 8"),
    Study("variance", "Variance approximation: M₂ / m(h′) per estimator", ("C5",), _variance,
          lambda q: "depth 17, width 64, T 32, 1 seed" if q else "depth 65, width 256, T 128, 3 seeds",
          subcommand="bhyt-theory variance --width 256 --seq-len 128", modules=("variance",)),
    Study("variance_decomposition", "Variance approximation: the error terms", ("C5",), _variance_decomposition,
          lambda q: "depth 17, width 64, T 32, 1 seed" if q else "depth 65, width 256, T 128, 3 seeds",
          subcommand="bhyt-theory variance --decomposition --width 256 --seq-len 128", modules=("variance",)),
    Study("jacobian", "Identity-likeness of deep blocks (Jacobian deviation)", ("C4",), _jacobian,
          lambda q: "depth 8, width 64, T 32, 1 seed, 4 probes" if q else "depth 32, width 256, T 128, 2 seeds, 16 probes",
          subcommand="bhyt-theory jacobian --width 256 --seq-len 128", modules=("jacobian",)),
    Study("bounds", "Bounds and their tightness", ("C3", "C4"), _bounds,
          lambda q: "search only: 1 random trial, 3 hill-climb steps" if q
          else "6 random trials, 40 hill-climb steps, and the default initialisation",
          subcommand="bhyt-theory bounds", modules=("bounds",)),
    Study("checks", "Proof checks", ("statements",), _checks, lambda q: "every registered check",
          subcommand="bhyt-theory checks", extra_sources=lambda: sorted((PACKAGE.parent / "proofs").glob("*.md")),
          forward_only=False),
    Study("efficiency", "Efficiency: counted cost and measured time vs RMSNorm", ("C2", "C6"), _efficiency,
          lambda q: "width 128, T 32, 4 rounds" if q else "width 512, 8 heads, T 128, batch 4, 12 rounds",
          subcommand="bhyt-theory efficiency", modules=("efficiency", "montecarlo"), forward_only=False),
    Study("training", "The trained regime: pretraining every scheme on CPU", ("C2", "C7", "C8"), _training,
          lambda q: "preset quick, 2 seeds" if q else f"preset default with {TRAINING_STEPS} steps, 3 seeds",
          requires=(("bhyt_theory.experiments.training.study", ("preset_config", "comparison_configs",
                                                                 "run_comparison")),
                    ("bhyt_theory.experiments.training.analysis", ("training_summary", "training_figures"))),
          subcommand="bhyt-theory train", modules=("training/trainer", "training/study", "training/analysis", "training/corpus"),
          forward_only=False),
    Study("decode", "Decode-time precomputation: bit-exactness", ("C9",), _decode,
          lambda q: "1 seed" if q else "3 seeds",
          requires=(("bhyt_theory.experiments.decode", ("decode_exactness",)),), modules=("decode",),
          forward_only=False),
)}


@dataclass
class StudyResult:
    """A study's tables and where they came from (``meta``: provenance, sizes, wall time)."""

    study: Study
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    unavailable: str | None = None

    @property
    def quick(self) -> bool:
        return bool(self.meta.get("quick"))


class ResultsStore:
    """CSV tables and provenance of studies in ``folder``.

    ``get(name, quick)`` returns the stored result when it is current (same
    package sources; full-size results also serve a quick request), else runs the
    study and stores it. ``stored(name)`` reads without computing.
    """

    def __init__(self, folder: str | Path, device: str = "cpu", log: Callable[[str], None] = lambda message: None):
        self.folder = Path(folder)
        self.device, self.log = device, log

    def _meta_path(self, name: str) -> Path:
        return self.folder / f"{name}.meta.json"

    def stored(self, name: str) -> StudyResult | None:
        """The stored, current result of study ``name`` (None if absent or stale)."""
        path = self._meta_path(name)
        if not path.exists():
            return None
        meta = json.loads(path.read_text())
        meta["reused"] = True
        study = STUDIES[name]
        if meta.get("sources") != study.sources() or meta.get("sizes") != study.sizes(bool(meta.get("quick"))):
            return None
        files = {table: self.folder / file for table, file in meta["files"].items()}
        if not all(f.exists() for f in files.values()):
            return None
        return StudyResult(STUDIES[name], {table: pd.read_csv(f) for table, f in files.items()}, meta)

    def get(self, name: str, quick: bool) -> StudyResult:
        study = STUDIES[name]
        reason = study.missing()
        if reason:
            return StudyResult(study, unavailable=reason)
        current = self.stored(name)
        if current is not None and (quick or not current.quick):
            return current
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log(f"running {name} ({study.sizes(quick)})")
        started = time.perf_counter()
        # forward-only studies run without autograd's bookkeeping; the others (timed backward passes,
        # training, gradient checks) need it
        with torch.no_grad() if study.forward_only else contextlib.nullcontext():
            tables = study.produce(quick, self.log)
        seconds = time.perf_counter() - started
        files = {}
        for table_name, table in tables.items():
            files[table_name] = f"{table_name}.csv"
            write_atomically(self.folder / files[table_name], partial(table.to_csv, index=False))
        meta = {"study": name, "quick": quick, "sizes": study.sizes(quick), "sources": study.sources(),
                "wall_seconds": round(seconds, 1), "files": files, "command": study.command(quick),
                **provenance(self.device)}
        write_atomically(self._meta_path(name), lambda temporary: temporary.write_text(json.dumps(meta, indent=1)))
        self.log(f"finished {name} in {seconds:.0f} s")
        return StudyResult(study, tables, meta)

    def collect(self, names: Sequence[str], quick: bool, compute_missing: bool = True) -> dict[str, StudyResult]:
        """Every study of ``names``: stored if current, else computed (``compute_missing``) or left empty."""
        results = {}
        for name in names:
            study = STUDIES[name]
            if study.missing():
                results[name] = StudyResult(study, unavailable=study.missing())
            elif compute_missing:
                results[name] = self.get(name, quick)
            else:
                results[name] = self.stored(name) or StudyResult(
                    study, unavailable=f"no current result in {self.folder} (run `{study.command(False)}`)")
        return results
