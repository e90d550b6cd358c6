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

Each run's table is written to its own Parquet file in a cache folder, named
by a hash of everything that determines it (the full ``StackConfig``, seed,
batch, length, input scale and a code-version tag). Files are written to a
temporary name and renamed, so an interrupted sweep leaves only complete runs
behind and the next call recomputes only what is missing. Each file carries
what is needed to verify it on read (``read_cached``): its run key, the row
count its configuration implies (``depth · 2 · length``), its columns, and a
SHA-256 of its values. A file that fails any check — truncated, emptied,
overwritten, a row short — is never used: it is logged by name (logger
``bhyt_theory.cache``), moved aside to ``<name>.corrupt-<UTC time>`` and the
run is recomputed. Files are created with the process umask, like any other
output.

Serves claims C1, C2, C4 (depth-wise growth) and C5 (the variance estimate) of
docs/claims.md with measurements; ``summarise`` gives per-layer means across seeds
with Student-t confidence intervals.

References: Byun et al., arXiv 2601.09719 (BHyT); Sun et al., arXiv 2502.05795
(curse of depth).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from scipy import stats
from tqdm.auto import tqdm

from .. import __version__
from ..numerics import model, norms, probes, schemes
from ..numerics.inputs import InputSpec
from ..numerics.model import StackConfig, build_block
from ..numerics.probes import TRACE_COLUMNS, TraceProbe, position_average
from . import executor
from .atomic import write_atomically



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


CACHE_SUFFIX = ".parquet"
RUN_TABLE_COLUMNS = ("scheme", "seed") + TRACE_COLUMNS
log = logging.getLogger("bhyt_theory.cache")


class CorruptCacheFile(ValueError):
    """A cache file that fails verification; the message says which check failed."""


def cache_path(cache_dir: Path | str, config: StackConfig, key: str) -> Path:
    """The cache file of the run with key ``key`` (``run_key``)."""
    return Path(cache_dir) / f"{config.scheme}-{key}{CACHE_SUFFIX}"


def expected_rows(config: StackConfig, length: int) -> int:
    """Rows of a run's table: one per layer × sublayer (attn, mlp) × position."""
    return config.depth * 2 * length


def table_checksum(table: pd.DataFrame) -> str:
    """SHA-256 (hex) of a table's column names and values, independent of the file format.

    Numbers are hashed as little-endian float64/int64 bytes (NaN included, so a
    statistic a scheme does not measure is covered), text as UTF-8.
    """
    digest = hashlib.sha256()
    for name in table.columns:
        column = table[name]
        digest.update(name.encode() + b"\0")
        if pd.api.types.is_float_dtype(column):
            digest.update(column.to_numpy("<f8").tobytes())
        elif pd.api.types.is_integer_dtype(column):
            digest.update(column.to_numpy("<i8").tobytes())
        else:
            digest.update("\0".join(column.astype(str)).encode())
    return digest.hexdigest()


def _metadata(key: str, rows: int, checksum: str) -> dict[bytes, bytes]:
    record = {"run_key": key, "rows": rows, "columns": list(RUN_TABLE_COLUMNS), "sha256": checksum}
    return {b"bhyt_theory.cache": json.dumps(record).encode()}


def write_cached(table: pd.DataFrame, path: Path, key: str, rows: int) -> None:
    """Write a run's table as Parquet with its verification record, atomically.

    The file is written under a unique temporary name in the same folder and then
    renamed over ``path``, so a reader (or a resumed sweep) sees no file or the
    whole file. Compression: zstd, dictionary-encoded text, byte-stream-split
    floats (each float64 round-trips exactly). The file mode follows the umask.
    """
    if list(table.columns) != list(RUN_TABLE_COLUMNS) or len(table) != rows:
        raise ValueError(f"not a run table of {rows} rows with columns {RUN_TABLE_COLUMNS}")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**arrow.schema.metadata, **_metadata(key, rows, table_checksum(table))})
    floats = [name for name in table.columns if pd.api.types.is_float_dtype(table[name])]
    write_atomically(path, lambda temporary: pq.write_table(
        arrow, temporary, compression="zstd", use_dictionary=["scheme", "sublayer"], use_byte_stream_split=floats))


def read_cached(path: Path, key: str, rows: int) -> pd.DataFrame:
    """A cached run's table, verified against its run ``key`` and expected ``rows``.

    Raises
    ------
    CorruptCacheFile
        The file is not readable Parquet, has no verification record, belongs to
        another run, has the wrong columns or number of rows, or its values do not
        match their SHA-256.
    """
    try:
        arrow = pq.read_table(path)
        record = json.loads((arrow.schema.metadata or {})[b"bhyt_theory.cache"])
    except (pa.ArrowException, OSError, KeyError, ValueError) as error:
        raise CorruptCacheFile(f"not a readable cache file: {type(error).__name__}: {error}") from None
    table = arrow.to_pandas()
    problems = [
        f"{name} {found!r}, expected {wanted!r}"
        for name, found, wanted in [
            ("run key", record.get("run_key"), key),
            ("rows in the record", record.get("rows"), rows),
            ("rows in the file", len(table), rows),
            ("columns", list(table.columns), list(RUN_TABLE_COLUMNS)),
        ]
        if found != wanted
    ]
    if not problems and table_checksum(table) != record.get("sha256"):
        problems.append("values do not match their SHA-256")
    if problems:
        raise CorruptCacheFile("; ".join(problems))
    return table


def _set_aside(path: Path, reason: str) -> None:
    """Move a failed cache file to ``<name>.corrupt-<UTC time>`` and log it by name."""
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process set it aside first
        return
    log.warning("cache file %s failed verification (%s); moved to %s, recomputing", path, reason, aside.name)


def run(
    config: StackConfig,
    seed: int,
    inputs: InputSpec = InputSpec(),
    *,
    cache_dir: Path | str | None,
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
    cache_dir : path or None, required
        Folder of cached runs; ``None`` computes without reading or writing. A
        cached file is verified before use (``read_cached``); one that fails is
        logged, set aside and recomputed.
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
    rows = expected_rows(config, length)
    if cache_dir is not None:
        key = run_key(config, seed, inputs.batch, length, inputs.std, tag)
        path = cache_path(cache_dir, config, key)
        if path.exists():
            try:
                return read_cached(path, key, rows)
            except CorruptCacheFile as error:
                _set_aside(path, str(error))
    x = inputs.hidden_states(config, seed)
    table = stream_trace(config, seed, x, progress=progress)
    if path is not None:
        write_cached(table, path, key, rows)
    return table


def _run_task(spec: tuple[StackConfig, int, dict], cache_dir: Path | str | None, progress: bool, tag: str) -> pd.DataFrame:
    """One run of a sweep from its ``(config, seed, run options)``: the task ``sweep`` maps."""
    config, seed, options = spec
    inputs = InputSpec(options["batch"], options["length"], options["input_std"])
    return run(config, seed, inputs, cache_dir=cache_dir, progress=progress, tag=tag)


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
    *,
    cache_dir: Path | str | None,
    progress: bool = True,
    on_run: Callable[[StackConfig, int, dict], None] | None = None,
    tag: str = CODE_TAG,
) -> pd.DataFrame:
    """Run every grid point × seed (cached runs are read, not recomputed).

    Each run is one task of ``executor.map_runs``: computed in this process by
    default, on a Dask cluster inside ``with executor.backend(workers=N)`` (or
    ``scheduler=ADDRESS``); the table is the same, bit for bit.

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
    cache_dir : path or None, required
        One verified Parquet file per finished run; ``None`` disables the cache.
        Required, with no default: a relative default would follow the working
        directory (the command line's ``--cache-dir`` defaults to ``results/cache``).
    progress : bool
        Progress bar over runs (and over layers of runs ≥ ``LAYER_BAR_MIN_DEPTH`` deep).
    on_run : callable, optional
        Called as ``on_run(config, seed, options)`` in this process after each
        run is finished and stored (a hook for logging, or for interrupting a
        sweep); on a Dask backend in the order runs finish.
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
    runs = []
    for (config, options), seed in itertools.product(points, seeds):
        options = {**defaults, **options}
        options["length"] = config.seq_len if options["length"] is None else options["length"]
        runs.append((config, seed, options))
    if not runs:
        raise ValueError("empty sweep: the grid or the seeds are empty")
    # An absolute cache path: a worker on another machine has another working directory.
    cache_dir = None if cache_dir is None else Path(cache_dir).absolute()
    # Per-layer bars only in this process: a cluster's workers have no terminal.
    task = functools.partial(_run_task, cache_dir=cache_dir, progress=progress and executor.current().in_process, tag=tag)
    finished = None if on_run is None else (lambda index, table: on_run(*runs[index]))
    results = executor.map_runs(task, runs, desc="Monte Carlo runs", progress=progress, on_result=finished)
    tables = [
        table.drop(columns=["scheme", "seed"]).assign(**config.as_dict(), **options, seed=seed)
        for (config, seed, options), table in zip(runs, results)
    ]
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
