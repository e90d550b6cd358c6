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

import ast
import contextlib
import dataclasses
import datetime
import functools
import importlib
import inspect
import json
import platform
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch

from .. import __version__
from ..experiments.atomic import write_atomically
from ..experiments.cache import source_fingerprint
from ..numerics.model import SCHEMES, StackConfig
from .tables import (
    BHYTC_ESTIMATORS,
    BHYTC_PRESETS,
    PAPER_PRESET,
    PAPER_SEEDS,
    Log,
    _quiet,
    bhytc_measurement,
    bhytc_prediction,
    growth_tables,
    jacobian_tables,
    meanfield_tables,
    paper_init_tables,
    trace_tables,
    variance_decomposition_tables,
    variance_tables,
)

NOT_AVAILABLE = "experiment not available in this build"
PACKAGE = Path(__file__).resolve().parent.parent
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(StackConfig))


TEX_SYMBOLS = {"$": "", "\\lambda": "λ", "\\kappa": "κ", "\\varepsilon": "ε", "\\sqrt": "√", "\\le": "≤",
               "\\gamma": "γ", "\\,": " "}
"""TeX in proof titles, shown as plain text in tables."""


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


def _top_level_imports(module: str) -> frozenset[str]:
    """The modules that pipeline module ``module`` imports at its top level (every function of it may use them)."""
    source = Path(sys.modules[module].__file__).read_text(encoding="utf-8")
    statements = [node for node in ast.parse(source).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return frozenset().union(*(imported_modules(ast.unparse(node), __package__) for node in statements))


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


SIZE_TEXT: dict[str, Callable[[object], str]] = {
    "depth": "depth {}".format, "width": "width {}".format, "heads": "{} heads".format, "seq_len": "T {}".format,
    "init_std": "init std {}".format, "layers": lambda layers: "layers " + ", ".join(map(str, layers)),
    "seeds": lambda n: f"{n} seed" + ("s" if n != 1 else ""), "batch": "batch {}".format,
    "probes": "{} probes".format, "rounds": "{} rounds".format, "preset": "preset {}".format,
    "steps": "{} steps".format, "checks": "{} check".format, "kv_heads": "{} kv heads".format,
    "mlp_width": "MLP width {}".format,
    "random_trials": lambda n: f"{n} random trial" + ("s" if n != 1 else ""),
    "hill_climb_steps": "{} hill-climb steps".format,
    "default_initialisation": lambda on: "and the default initialisation" if on else "search only",
    "presets": lambda presets: ("also at " + " and ".join(presets)) if presets else "no preset",
    "preset_seeds": lambda n: f"{n} seed" + ("s" if n != 1 else "") + " (batch 1) at each preset",
}
"""How each size of a study reads in its description (``describe``)."""


def describe(sizes: Mapping[str, object]) -> str:
    """The text of a study's sizes, derived from them: ``{"depth": 8, "seeds": 2}`` → ``"depth 8, 2 seeds"``."""
    return ", ".join(SIZE_TEXT[name](value) for name, value in sizes.items())


def _resolve(name: str, level: int, module: str | None, package: str) -> str:
    """The absolute module of an import statement found in ``package``."""
    if not level:
        return module or ""
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{module}" if module else base


def module_file(module: str, root: Path = PACKAGE) -> Path | None:
    """The source file of ``bhyt_theory`` module ``module`` under ``root`` (the package folder), or None."""
    parts = module.split(".")
    if parts[0] != root.name:
        return None
    path = root.joinpath(*parts[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def imported_modules(source: str, package: str) -> frozenset[str]:
    """Every module an ``import`` in ``source`` (at any depth, functions included) names, resolved from
    ``package``; ``from A import b`` names both ``A`` and ``A.b`` (one of them a module, perhaps both).
    A call ``optional("A", …)`` names ``A`` too."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, node.module, package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "optional"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return frozenset(names)


def module_closure(modules: Iterable[str], root: Path = PACKAGE) -> list[Path]:
    """The source files of ``modules`` and of every ``bhyt_theory`` module they import, transitively
    (with the ``__init__.py`` of every package on the way), sorted. ``root``: the package folder."""
    seen: set[Path] = set()
    pending = list(modules)
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for end in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
            path = module_file(".".join(parts[:end]), root)
            if path is None or path in seen:
                continue
            seen.add(path)
            package = ".".join(parts[:end]) if path.name == "__init__.py" else ".".join(parts[:end - 1])
            pending.extend(imported_modules(path.read_text(encoding="utf-8"), package))
    return sorted(seen)


def _pipeline_imports(function: Callable, seen: set | None = None) -> set[str]:
    """The modules ``function`` (defined in this package, the pipeline) imports, and those of the
    pipeline functions it calls, transitively; with the top-level imports of each pipeline module
    passed through."""
    seen = set() if seen is None else seen
    if function in seen:
        return set()
    seen.add(function)
    source = textwrap.dedent(inspect.getsource(function))
    names = set(imported_modules(source, __package__))
    if function.__module__.startswith(__package__ + "."):
        names |= _top_level_imports(function.__module__)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            called = function.__globals__.get(node.id)
            if inspect.isfunction(called) and called.__module__.startswith(__package__ + "."):
                names |= _pipeline_imports(called, seen)
    return names


@dataclass(frozen=True)
class Study:
    """One experiment: ``produce(sizes, log)`` returns its tables by name (``log``: progress lines).

    ``quick`` and ``full``: the sizes (name → value) of its two runs, the only place they
    are written; ``sizes(quick)`` is their text. ``seconds``: rough wall time of the
    quick and the full run on two idle cores (what ``claims --compute`` announces).
    ``requires``: modules (with attributes) the experiment needs; absent ones make
    the study unavailable. ``claims``: the claim ids it serves.
    """

    name: str
    title: str
    claims: tuple[str, ...]
    produce: Callable[..., dict[str, pd.DataFrame]]
    quick: Mapping[str, object]
    full: Mapping[str, object]
    seconds: tuple[float, float]
    requires: tuple[tuple[str, tuple[str, ...]], ...] = ()
    subcommand: str = ""
    """The ``bhyt-theory`` command that computes the same numbers, a template of the full sizes."""
    extra_sources: Callable[[], list[Path]] = list
    forward_only: bool = True

    def size(self, quick: bool) -> dict:
        """The sizes of the quick or the full run, by name."""
        return dict(self.quick if quick else self.full)

    def sizes(self, quick: bool) -> str:
        """The text of ``size(quick)`` (part of a stored result's key)."""
        return describe(self.size(quick))

    def modules(self) -> set[str]:
        """The ``bhyt_theory`` modules ``produce`` imports (directly or through this module's helpers)."""
        layers = {f"{PACKAGE.name}.{layer}" for layer in ("numerics", "theory", "experiments")}
        return {name for name in _pipeline_imports(self.produce) | _top_level_imports(__name__)
                if any(name == layer or name.startswith(layer + ".") for layer in layers)
                and module_file(name) is not None} | {PACKAGE.name}

    def source_files(self, root: Path = PACKAGE) -> list[Path]:
        """Every source file this study's numbers depend on: the modules ``produce`` imports, and every
        ``bhyt_theory`` module they import, transitively, under the package folder ``root``."""
        return module_closure(sorted(self.modules()), root)

    def sources(self, root: Path = PACKAGE) -> str:
        """Fingerprint of what computes this study's tables (``source_files`` and ``extra_sources``).
        The wiring, rendering and judging (this module, ``claims``, ``figures``, ``report``, ``cli``)
        can change without recomputing; a stored result is current when this fingerprint and its
        sizes match."""
        return source_fingerprint(*self.source_files(root), *self.extra_sources())

    def subcommand_line(self) -> str:
        """The ``subcommand`` (the equivalent ``bhyt-theory`` command line) at the full sizes."""
        sizes = self.size(quick=False)
        values = {name: " ".join(map(str, value)) if isinstance(value, tuple) else value for name, value in sizes.items()}
        if "seeds" in sizes:
            values.update(seeds=" ".join(map(str, range(sizes["seeds"]))), seed_count=sizes["seeds"])
        return self.subcommand.format(**values)

    def missing(self) -> str | None:
        """None if the experiment is in this build, else the reason it is not."""
        for module, names in self.requires:
            if optional(module, *names) is None:
                return f"{NOT_AVAILABLE} ({module}{'.' + ', '.join(names) if names else ''})"
        return None

    def command(self, quick: bool) -> str:
        return f"bhyt-theory reproduce --only {self.name}" + (" --quick" if quick else "")


# ---------------------------------------------------------------- the experiments, sized


def _config(sizes: Mapping[str, object], **fields) -> StackConfig:
    """The ``StackConfig`` of a study's ``sizes`` (its ``StackConfig`` fields; others are the study's own)."""
    return StackConfig(**{name: value for name, value in sizes.items() if name in CONFIG_FIELDS}, **fields)


def _trace(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return trace_tables(_config(sizes), range(sizes["seeds"]), batch=sizes["batch"], log=log)


def _growth(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return growth_tables(_config(sizes), range(sizes["seeds"]), batch=sizes["batch"], log=log)


def _meanfield(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return meanfield_tables(_config(sizes), range(sizes["seeds"]), batch=sizes["batch"], log=log)


def _variance(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return variance_tables(_config(sizes, scheme="bhyt"), sizes["layers"], range(sizes["seeds"]), sizes["batch"])


def _variance_decomposition(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return variance_decomposition_tables(_config(sizes, scheme="bhyt"), sizes["layers"], range(sizes["seeds"]),
                                         sizes["batch"])


def _jacobian(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    return jacobian_tables(_config(sizes), range(sizes["seeds"]), probes=sizes["probes"])


def _bounds(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    from ..experiments.bounds import search, tightest_ratios, tightness_table

    trials, steps = sizes["random_trials"], sizes["hill_climb_steps"]
    if not sizes["default_initialisation"]:  # the search only: the default-initialisation ratios need deep, wide stacks
        table = tightest_ratios(search(seed=0, random_trials=trials, hill_climb_steps=steps))
        return {"bounds_tightness": table.assign(setting="search")}
    return {"bounds_tightness": tightness_table(seed=0, random_trials=trials, hill_climb_steps=steps)}


def _checks(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
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


def _efficiency(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    from ..experiments.efficiency import efficiency_study

    config = _config(sizes, depth=1)
    costs, timings = efficiency_study(config, batch=sizes["batch"], rounds=sizes["rounds"])
    timings = timings.assign(width=config.width, heads=config.heads, seq_len=config.seq_len)
    return {"efficiency_costs": costs, "efficiency_timings": timings}


def _decode(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    (decode_exactness,) = optional("bhyt_theory.experiments.decode", "decode_exactness")
    return {"decode_exactness": decode_exactness(seeds=tuple(range(sizes["seeds"])))}


def _training(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    preset_config, comparison_configs, run_comparison = optional(
        "bhyt_theory.experiments.training.study", "preset_config", "comparison_configs", "run_comparison")
    import tempfile

    base = preset_config(sizes["preset"], **({"steps": sizes["steps"]} if "steps" in sizes else {}))
    # the full run: one process per core, one thread each; the quick one's runs are too short to spread
    workers = 1 if sizes["preset"] == "quick" else min(2, torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="bhyt-training-") as folder:
        tables = run_comparison(comparison_configs(base, seeds=tuple(range(sizes["seeds"]))), folder,
                                workers=workers, figures=False, progress=False, log=lambda message: log("  " + message))
    keep = ("runs", "log", "summary")
    return {f"training_{name}": table for name, table in tables.items() if name in keep}


def _paper_init(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    overrides = {name: value for name, value in sizes.items() if name in CONFIG_FIELDS}
    config = StackConfig.from_preset(sizes["preset"], scheme="bhyt", **overrides)
    return paper_init_tables(config, range(sizes["seeds"]), batch=sizes["batch"], log=log)


def _bhytc(sizes: dict, log: Log = _quiet) -> dict[str, pd.DataFrame]:
    config = _config(sizes, scheme="bhyt")
    prediction = bhytc_prediction(config, sizes["presets"])  # made first, from the mean field alone
    log("bhytc: mean-field prediction made; running the Monte Carlo")
    measurement = bhytc_measurement(config, range(sizes["seeds"]), sizes["batch"], sizes["layers"], sizes["presets"],
                                    range(sizes.get("preset_seeds", 0)), log=log)
    return {"bhytc_prediction": prediction, "bhytc_measurement": measurement}


def _growth_sizes() -> dict:
    from ..experiments.growth import DEFAULT_GROWTH

    return {**DEFAULT_GROWTH, "seeds": 3, "batch": 4}


def _efficiency_sizes(config: StackConfig, rounds: int) -> dict:
    return {"width": config.width, "heads": config.heads, "seq_len": config.seq_len, "batch": 4, "rounds": rounds}


_VARIANCE = ({"depth": 17, "width": 64, "heads": 4, "seq_len": 32, "layers": (0, 1, 4, 16), "seeds": 1, "batch": 4},
             {"depth": 65, "width": 256, "heads": 4, "seq_len": 128, "layers": (0, 1, 4, 16, 64), "seeds": 3,
              "batch": 4})
_SHAPE = "--depth {depth} --width {width} --heads {heads} --seq-len {seq_len}"
TRAINING_STEPS = 150
"""Steps per run of the full-size training comparison (the ``default`` preset runs 300; half keeps
``reproduce`` within its budget on two cores)."""


def _studies() -> tuple[Study, ...]:
    from ..experiments.efficiency import DEFAULT_EFFICIENCY, QUICK_EFFICIENCY

    growth = _growth_sizes()
    return (
        Study("trace", "Depth trace of every scheme at initialisation", ("C1", "C3", "C4"), _trace,
              quick={"depth": 8, "width": 64, "heads": 4, "seq_len": 32, "seeds": 2, "batch": 4},
              full={"depth": 32, "width": 256, "heads": 4, "seq_len": 128, "seeds": 4, "batch": 4}, seconds=(2, 20),
              subcommand="bhyt-theory sweep --scheme " + " ".join(SCHEMES) + " " + _SHAPE
              + " --seeds {seeds} --batch {batch} --statistics rms arg_rms"),
        Study("paper_init", "Initialisation at the paper's shape (llama-374m, T 1024): Monte Carlo and mean field",
              ("C3", "C4", "C5"), _paper_init,
              quick={"preset": PAPER_PRESET, "width": 64, "heads": 4, "kv_heads": 1, "mlp_width": 256, "seq_len": 64,
                     "seeds": 2, "batch": 1},
              full={"preset": PAPER_PRESET, "seq_len": 1024, "seeds": len(PAPER_SEEDS), "batch": 1}, seconds=(3, 130),
              subcommand="bhyt-theory meanfield --preset llama-374m --scheme bhyt --attention softmax --per-position "
              "--seq-len {seq_len} --statistics estimate_ratio --compare-seeds {seed_count} --batch {batch}"),
        Study("growth", "Growth laws with depth, Monte Carlo and mean field", ("C1", "C4"), _growth,
              quick={**growth, "depth": 32, "width": 64, "seq_len": 16, "seeds": 2}, full=growth, seconds=(5, 100),
              subcommand="bhyt-theory growth --meanfield " + _SHAPE + " --seeds {seeds} --batch {batch}"),
        Study("meanfield", "Mean field vs Monte Carlo", ("C1", "C4"), _meanfield,
              quick={"depth": 8, "width": 64, "heads": 4, "seq_len": 16, "seeds": 2, "batch": 2},
              full={"depth": 64, "width": 256, "heads": 4, "seq_len": 64, "seeds": 8, "batch": 2}, seconds=(2, 40),
              subcommand="bhyt-theory meanfield --scheme rmsnorm " + _SHAPE + " --compare-seeds {seed_count} --batch {batch}"),
        Study("variance", "Variance approximation: M₂ / m(h′) per estimator", ("C5",), _variance,
              quick=_VARIANCE[0], full=_VARIANCE[1], seconds=(2, 25),
              subcommand="bhyt-theory variance " + _SHAPE + " --layers {layers} --seeds {seeds} --batch {batch}"),
        Study("variance_decomposition", "Variance approximation: the error terms", ("C5",), _variance_decomposition,
              quick=_VARIANCE[0], full=_VARIANCE[1], seconds=(1, 2),
              subcommand="bhyt-theory variance --decomposition " + _SHAPE + " --layers {layers} --seeds {seeds} "
              "--batch {batch}"),
        Study("jacobian", "Identity-likeness of deep blocks (Jacobian deviation)", ("C4",), _jacobian,
              quick={"depth": 8, "width": 64, "heads": 4, "seq_len": 32, "seeds": 1, "probes": 4},
              full={"depth": 32, "width": 256, "heads": 4, "seq_len": 128, "seeds": 2, "probes": 16}, seconds=(2, 25),
              subcommand="bhyt-theory jacobian " + _SHAPE + " --seeds {seeds} --probes {probes}"),
        Study("bounds", "Bounds and their tightness", ("C3", "C4"), _bounds,
              quick={"random_trials": 1, "hill_climb_steps": 3, "default_initialisation": False},
              full={"random_trials": 6, "hill_climb_steps": 40, "default_initialisation": True}, seconds=(2, 20),
              subcommand="bhyt-theory bounds --random-trials {random_trials} --hill-climb-steps {hill_climb_steps}"),
        Study("checks", "Proof checks", ("statements",), _checks, quick={"checks": "every registered"},
              full={"checks": "every registered"}, seconds=(10, 10), subcommand="bhyt-theory checks",
              extra_sources=lambda: sorted((PACKAGE.parent / "proofs").glob("*.md")), forward_only=False),
        Study("efficiency", "Efficiency: counted cost and measured time vs RMSNorm", ("C2", "C6"), _efficiency,
              quick=_efficiency_sizes(QUICK_EFFICIENCY, 4), full=_efficiency_sizes(DEFAULT_EFFICIENCY, 12),
              seconds=(1, 15),
              subcommand="bhyt-theory efficiency --width {width} --heads {heads} --seq-len {seq_len} --batch {batch} "
              "--rounds {rounds}", forward_only=False),
        Study("training", "The trained regime: pretraining every scheme on CPU", ("C2", "C7", "C8"), _training,
              quick={"preset": "quick", "seeds": 2},
              full={"preset": "default", "steps": TRAINING_STEPS, "seeds": 3}, seconds=(10, 120),
              requires=(("bhyt_theory.experiments.training.study", ("preset_config", "comparison_configs",
                                                                     "run_comparison")),
                        ("bhyt_theory.experiments.training.analysis", ("training_summary", "training_figures"))),
              subcommand="bhyt-theory train --steps {steps} --seeds {seeds}", forward_only=False),
        Study("decode", "Decode-time precomputation: bit-exactness", ("C9",), _decode,
              quick={"seeds": 1}, full={"seeds": 3}, seconds=(1, 3),
              requires=(("bhyt_theory.experiments.decode", ("decode_exactness",)),), forward_only=False),
        Study(
            "bhytc", "The bhytc variant: mean-field prediction vs Monte Carlo", ("V1",), _bhytc,
            quick={"depth": 8, "width": 64, "heads": 4, "seq_len": 32, "seeds": 2, "batch": 2, "presets": (),
                   "layers": tuple(range(8))},
            full={"depth": 16, "width": 256, "heads": 4, "seq_len": 128, "seeds": 3, "batch": 2, "presets": BHYTC_PRESETS,
                  "preset_seeds": 3, "layers": tuple(range(16))},
            seconds=(5, 300),
            # the Monte Carlo half's ratios (the growth half is `bhyt-theory growth --scheme bhyt bhytc` at the same sizes)
            subcommand="bhyt-theory variance --estimators " + " ".join(BHYTC_ESTIMATORS) + " " + _SHAPE
            + " --layers {layers} --seeds {seeds} --batch {batch}"),
    )


STUDIES: dict[str, Study] = {study.name: study for study in _studies()}


class ResultMissing(ValueError):
    """A study's stored result lacks a table or a column that a claim or a figure reads."""


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

    def table(self, name: str, *columns: str) -> pd.DataFrame:
        """Table ``name``, checked to hold ``columns``; ``ResultMissing`` naming the study, the table
        and the column otherwise (a result written by other code, or a renamed column)."""
        if name not in self.tables:
            raise ResultMissing(f"study {self.study.name!r} has no table {name!r} (it has {sorted(self.tables)}); "
                                f"recompute it with `{self.study.command(self.quick)}`")
        table = self.tables[name]
        absent = [column for column in columns if column not in table.columns]
        if absent:
            raise ResultMissing(f"study {self.study.name!r}, table {name!r} has no column {absent[0]!r}; recompute "
                                f"it with `{self.study.command(self.quick)}`")
        return table


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
        started, threads = time.perf_counter(), torch.get_num_threads()
        # forward-only studies run without autograd's bookkeeping; the others (timed backward passes,
        # training, gradient checks) need it
        try:
            with torch.no_grad() if study.forward_only else contextlib.nullcontext():
                tables = study.produce(study.size(quick), self.log)
            threads_after = torch.get_num_threads()
        finally:  # a study may change torch's threads (the training study does); the next one starts as this one did
            torch.set_num_threads(threads)
        seconds = time.perf_counter() - started
        files = {}
        for table_name, table in tables.items():
            files[table_name] = f"{table_name}.csv"
            write_atomically(self.folder / files[table_name], partial(table.to_csv, index=False))
        meta = {"study": name, "quick": quick, "sizes": study.sizes(quick), "sources": study.sources(),
                "wall_seconds": round(seconds, 1), "files": files, "command": study.command(quick),
                **provenance(self.device), "threads": threads}
        if threads_after != threads:
            meta["threads_at_end"] = threads_after
        write_atomically(self._meta_path(name), lambda temporary: temporary.write_text(json.dumps(meta, indent=1)))
        self.log(f"finished {name} in {seconds:.0f} s")
        return StudyResult(study, tables, meta)

    def collect(self, names: Sequence[str], quick: bool, compute_missing: bool = True) -> dict[str, StudyResult]:
        """Every study of ``names``: stored if current, else computed (``compute_missing``) or left
        unavailable with the command that computes it."""
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

    def pending(self, names: Sequence[str]) -> list[str]:
        """The studies of ``names`` with no current result here (those ``collect`` would compute)."""
        return [name for name in names if not STUDIES[name].missing() and self.stored(name) is None]
