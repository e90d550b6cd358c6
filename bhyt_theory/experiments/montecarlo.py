"""Monte Carlo depth sweeps at initialisation: streamed, cached on disk, resumable.

A *run* is one stack (a ``StackConfig`` and a weight seed) applied to one batch
of Gaussian hidden states ``x ~ N(0, input_std²)``; its result is the tidy
per layer × sublayer × position table of ``Stack.trace``. A *sweep* is the
Cartesian product of a grid of ``StackConfig`` values and seeds; its result is
the runs' tables stacked, with the configuration as columns.

Runs are *streamed*: block ``l`` is built alone from its own weight seed
(``model.build_block``), applied, measured by a ``TraceProbe`` and dropped
before block ``l + 1`` is built. Memory is therefore that of one block plus the
``O(depth · T)`` statistics, whatever the depth, and the table is identical to
``Stack(config, seed).trace(x)``.

Each run's table is written to its own file in a cache folder, named by a hash
of everything that determines it (the full ``StackConfig``, seed, batch,
length, input scale and a code-version tag). Files are written to a temporary
name and renamed, so an interrupted sweep leaves only complete runs behind and
the next call recomputes only what is missing.

Serves claims C1, C2, C4 (depth-wise growth) and C5 (the variance estimate) of
docs/claims.md with measurements; ``summarise`` gives per-layer means across seeds
with Student-t confidence intervals.

References: Byun et al., arXiv 2601.09719 (BHyT); Sun et al., arXiv 2502.05795
(curse of depth).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from .. import __version__
from ..numerics import model, norms, probes, schemes
from ..numerics.inputs import InputSpec
from ..numerics.model import StackConfig, build_block
from ..numerics.probes import STATISTICS, TRACE_COLUMNS, TraceProbe, position_average

DEFAULT_CACHE_DIR = Path("results/cache")


def source_fingerprint(*files: str | Path) -> str:
    """SHA-256 (12 hex digits) of the given source files: any edit to the code that
    computes a cached number changes the key, so stale cache files are never read."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


CODE_TAG = f"bhyt_theory {__version__}, sources {source_fingerprint(norms.__file__, model.__file__, probes.__file__, schemes.__file__, __file__)}"
# Runs at least this deep get a per-layer progress bar of their own.
LAYER_BAR_MIN_DEPTH = 64

CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(StackConfig))
RUN_FIELDS = ("batch", "length", "input_std")
# Columns that identify one run of a sweep table (besides "seed").
RUN_COLUMNS = CONFIG_FIELDS + RUN_FIELDS


@torch.no_grad()
def stream_trace(config: StackConfig, seed: int, x: torch.Tensor, progress: bool = False) -> pd.DataFrame:
    """``Stack(config, seed).trace(x)``, computed one block at a time.

    Parameters
    ----------
    config : StackConfig
    seed : int
        Weight seed; block ``l`` is ``model.build_block(config, l, seed)``.
    x : Tensor, shape ``(batch, T, width)``
        Input hidden states (moved to ``config.device`` / ``config.dtype``).
    progress : bool
        Show a per-layer progress bar when ``config.depth ≥ LAYER_BAR_MIN_DEPTH``.

    Returns
    -------
    DataFrame
        The table of ``Stack.trace``: one row per layer × sublayer × position.

    Notes
    -----
    The final norm does not touch the residual stream and is not traced, so it is
    not built. Peak memory is one block's weights, one batch of activations and
    the ``2 · depth · T`` rows of statistics (``make bench`` measures it).
    """
    h = model.hidden_states(x, config)
    layers = tqdm(
        range(config.depth), desc=f"{config.scheme} layers", leave=False, unit="layer",
        # None: tqdm shows the bar on a terminal only, so logs are not flooded
        disable=None if progress and config.depth >= LAYER_BAR_MIN_DEPTH else True,
    )
    statistics = list(TRACE_COLUMNS[3:])
    values = None
    # Each layer's statistics go into one array, allocated once, through a
    # probe that lives for one layer only. A probe kept across layers would pin
    # small arrays between the large, freed activation buffers of every layer,
    # and the C heap could then never shrink: resident memory grew ~1 MB per
    # layer at width 256 that way.
    for layer in layers:
        probe = TraceProbe()
        h = build_block(config, layer, seed)(h, probe)
        frame = probe.frame()
        if values is None:
            rows = frame[["sublayer", "position"]]
            values = np.empty((config.depth, len(frame), len(statistics)))
        values[layer] = frame[statistics].to_numpy()
    table = pd.DataFrame({
        "layer": np.repeat(np.arange(config.depth), len(rows)),
        "sublayer": np.tile(rows["sublayer"].to_numpy(), config.depth),
        "position": np.tile(rows["position"].to_numpy(), config.depth),
    } | {name: values[:, :, i].ravel() for i, name in enumerate(statistics)})
    table.insert(0, "seed", seed)
    table.insert(0, "scheme", config.scheme)
    return table


def run_key(config: StackConfig, seed: int, batch: int, length: int, input_std: float, tag: str = CODE_TAG) -> str:
    """SHA-256 (hex) of everything that determines a run's table.

    The hashed record is canonical JSON of ``config.as_dict()``, ``seed``,
    ``batch``, ``length``, ``input_std`` and ``tag``; any change to any of them
    gives another key, hence another cache file.
    """
    record = {"config": config.as_dict(), "seed": int(seed), "batch": int(batch), "length": int(length),
              "input_std": float(input_std), "tag": tag}
    # numpy scalars (from a numpy grid) hash as the Python numbers they equal.
    text = json.dumps(record, sort_keys=True, default=lambda value: value.item())
    return hashlib.sha256(text.encode()).hexdigest()


def _cache_path(cache_dir: Path, config: StackConfig, key: str) -> Path:
    return cache_dir / f"{config.scheme}-{key}.csv"


def _write_atomically(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as CSV under a temporary name, then rename: a reader (or a
    resumed sweep) sees either no file or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            # 17 significant digits round-trip every float64 exactly.
            table.to_csv(stream, index=False, float_format="%.17g")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_cached(path: Path) -> pd.DataFrame:
    # Explicit dtypes: a statistic that is 0 at every row would otherwise read back as int.
    return pd.read_csv(path, dtype={"scheme": str, "sublayer": str, **{s: "float64" for s in STATISTICS}})


def run(
    config: StackConfig,
    seed: int,
    inputs: InputSpec = InputSpec(),
    cache_dir: Path | str | None = DEFAULT_CACHE_DIR,
    progress: bool = False,
    tag: str = CODE_TAG,
) -> pd.DataFrame:
    """One streamed Monte Carlo run, read from the cache when it is there.

    Parameters
    ----------
    config : StackConfig
    seed : int
        Weight seed; the inputs are ``inputs.hidden_states(config, seed)`` (the
        seeding rule of ``numerics.inputs``).
    inputs : InputSpec
        Batch, length (``None``: ``config.seq_len``) and scale of the input hidden states.
    cache_dir : path or None
        Folder of cached runs; ``None`` computes without reading or writing.
    progress : bool
        Per-layer progress bar for deep runs.
    tag : str
        Code-version tag, part of the cache key.

    Returns
    -------
    DataFrame
        The ``Stack.trace`` table of this run (columns ``scheme``, ``seed``,
        ``layer``, ``sublayer``, ``position`` and the statistics of
        ``probes.TRACE_COLUMNS``).
    """
    length = inputs.length_for(config.seq_len)
    path = None
    if cache_dir is not None:
        path = _cache_path(Path(cache_dir), config, run_key(config, seed, inputs.batch, length, inputs.std, tag))
        if path.exists():
            return _read_cached(path)
    x = inputs.hidden_states(config, seed)
    table = stream_trace(config, seed, x, progress=progress)
    if path is not None:
        _write_atomically(table, path)
    return table


def grid_configs(grid: Mapping[str, Sequence], base: Mapping[str, object] | None = None) -> list[tuple[StackConfig, dict]]:
    """Every point of ``grid`` as ``(StackConfig, run options)``.

    ``grid`` maps ``StackConfig`` fields and the run options ``batch``,
    ``length``, ``input_std`` (the fields of an ``InputSpec``) to sequences of
    values; fields it omits come from ``base`` (a mapping of ``StackConfig``
    fields), then from ``StackConfig``'s defaults, options it omits from
    ``sweep``'s ``inputs``. Derived fields
    (``kv_heads``, ``mlp_width``) left unset are derived per point, so a grid
    over ``width`` or ``heads`` gets matching defaults. Every configuration is
    validated here, before anything runs.
    """
    base = dict(base or {})
    unknown = (set(grid) - set(RUN_COLUMNS)) | (set(base) - set(CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"unknown sweep fields {sorted(unknown)}; allowed: {RUN_COLUMNS}")
    names = list(grid)
    points = []
    for values in itertools.product(*(list(grid[name]) for name in names)):
        point = {**base, **dict(zip(names, values))}
        options = {name: point.pop(name) for name in RUN_FIELDS if name in point}
        points.append((StackConfig(**point), options))
    return points


def sweep(
    grid: Mapping[str, Sequence],
    seeds: Iterable[int],
    inputs: InputSpec = InputSpec(),
    base: Mapping[str, object] | None = None,
    cache_dir: Path | str | None = DEFAULT_CACHE_DIR,
    progress: bool = True,
    on_run: Callable[[StackConfig, int, dict], None] | None = None,
    tag: str = CODE_TAG,
) -> pd.DataFrame:
    """Run every grid point × seed (cached runs are read, not recomputed).

    Parameters
    ----------
    grid : mapping
        ``StackConfig`` field (or ``batch``/``length``/``input_std``) → values;
        see ``grid_configs``.
    seeds : iterable of int
        Weight seeds (inputs by the seeding rule of ``numerics.inputs``).
    inputs : InputSpec
        The inputs of grid points that do not set ``batch``/``length``/``input_std``
        (see ``run``).
    base : mapping, optional
        ``StackConfig`` field → value for the fields the grid does not vary.
    cache_dir : path or None
        One CSV file per finished run; ``None`` disables the cache.
    progress : bool
        Progress bar over runs (and over layers of runs ≥ ``LAYER_BAR_MIN_DEPTH`` deep).
    on_run : callable, optional
        Called as ``on_run(config, seed, options)`` after each run is finished
        and stored (a hook for logging, or for interrupting a sweep).
    tag : str
        Code-version tag of the cache key.

    Returns
    -------
    DataFrame
        One row per run × layer × sublayer × position: every ``StackConfig``
        field, ``batch``, ``length``, ``input_std``, ``seed``, then the
        ``Stack.trace`` columns.
    """
    seeds = list(seeds)
    points = grid_configs(grid, base)
    defaults = {"batch": inputs.batch, "length": inputs.length, "input_std": inputs.std}
    tables = []
    runs = tqdm(
        list(itertools.product(points, seeds)), desc="Monte Carlo runs", unit="run", disable=None if progress else True
    )
    for (config, options), seed in runs:
        options = {**defaults, **options}
        options["length"] = config.seq_len if options["length"] is None else options["length"]
        spec = InputSpec(options["batch"], options["length"], options["input_std"])
        table = run(config, seed, spec, cache_dir=cache_dir, progress=progress, tag=tag)
        if on_run is not None:
            on_run(config, seed, options)
        described = {**config.as_dict(), **options}
        tables.append(table.drop(columns=["scheme", "seed"]).assign(**described, seed=seed))
    if not tables:
        raise ValueError("empty sweep: the grid or the seeds are empty")
    result = pd.concat(tables, ignore_index=True)
    leading = list(RUN_COLUMNS) + ["seed"]
    return result[leading + [c for c in result.columns if c not in leading]]


def confidence_interval(
    mean: np.ndarray, std: np.ndarray, n: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Student-t confidence interval for a mean, from sample summaries.

    Parameters
    ----------
    mean, std, n : array_like
        Sample mean, sample standard deviation (``ddof = 1``) and sample size.
    level : float
        Confidence level.

    Returns
    -------
    (low, high) : arrays
        ``mean ∓ t_{(1+level)/2, n−1} · std / √n``; NaN where ``n < 2``.

    Notes
    -----
    Exact coverage for independent normal samples, approximate otherwise.
    """
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    dof = np.where(n > 1, n - 1, np.nan)
    half = stats.t.ppf(0.5 + level / 2, dof) * std / np.sqrt(n)
    return mean - half, mean + half


def summarise(
    table: pd.DataFrame,
    statistics: Sequence[str] = ("mean_square", "rms"),
    per_position: bool = False,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per-layer mean across seeds with Student-t confidence intervals.

    Parameters
    ----------
    table : DataFrame
        A ``sweep`` table (or ``run``/``trace`` tables concatenated, with a
        ``seed`` column).
    statistics : sequence of str
        Statistic columns to summarise.
    per_position : bool
        ``False``: each seed's statistic is first averaged over positions
        (root-mean-square statistics re-formed from averaged squares,
        ``arg_max_abs`` maximised), then summarised across seeds.
        ``True``: one row per position.
    level : float
        Confidence level of the interval (default 0.95).

    Returns
    -------
    DataFrame
        Tidy: the configuration columns present, ``layer``, ``sublayer``
        (``position``), ``statistic``, ``mean``, ``std``, ``n_seeds``,
        ``ci_low``, ``ci_high``, ``level``. Seeds are the independent replicates:
        each seed draws new weights *and* new inputs.
    """
    config_columns = [c for c in (*RUN_COLUMNS, "scheme") if c in table.columns]
    config_columns = list(dict.fromkeys(config_columns))
    keys = config_columns + ["layer", "sublayer"] + (["position"] if per_position else [])
    data = table if per_position else position_average(table, keys + ["seed"])
    long = data.melt(id_vars=keys + ["seed"], value_vars=list(statistics), var_name="statistic")
    summary = (
        long.groupby(keys + ["statistic"], sort=False, dropna=False)["value"]
        .agg(mean="mean", std="std", n_seeds="count")
        .reset_index()
    )
    summary["ci_low"], summary["ci_high"] = confidence_interval(
        summary["mean"], summary["std"], summary["n_seeds"], level
    )
    # A statistic a scheme does not measure (e.g. estimate_ratio off BHyT) has no rows.
    summary = summary[summary["n_seeds"] > 0].reset_index(drop=True)
    summary["level"] = level
    return summary
