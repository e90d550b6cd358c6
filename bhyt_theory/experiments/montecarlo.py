"""Monte Carlo depth sweeps at initialisation: streamed, shared, cached on disk, resumable.

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

A sweep pays for its deepest runs only, and draws each weight once:

- runs that differ only in depth (equal ``prefix_key``) share their first
  layers: block ``l`` depends on ``layer_seed(seed, l)`` and its layer index
  alone, never on the total depth, so the depth-8 run is the first 8 layers of
  the depth-64 one; the sweep streams the deepest and stores each shallower run
  from it, and a run stored earlier serves any shallower request;
- a run stored earlier also *extends* to a deeper request: each cache file has
  beside it a state file (``<name>.parquet.state``, for the deepest run of each
  computation only: the residual stream after the run's last block, in the run's dtype, with its run key and a SHA-256 of
  its bytes), and a deeper run of the same prefix key starts from the deepest
  shallower stored run that has a verified state — only the new blocks are
  computed, the earlier rows are the stored table's. The weights need no state
  (they come from ``layer_seed``). A missing or failing state file means a
  recomputation from layer 0, never a different result;
- runs that share a seed and weight shapes (every scheme of a sweep) advance
  block by block together (``stream_traces``), each with its own residual
  stream, on one weight draw per layer; they form one task of the executor.

Each table is bit for bit the one of the run alone.

Each run's table is written to its own Parquet file in a cache folder, named
by a hash of everything that determines it (the full ``StackConfig``, seed,
batch, length, input scale and a code-version tag) and by its prefix key and
depth (``cache_path``). Files are written to a
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
import itertools
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from ..numerics import model
from ..numerics.inputs import InputSpec
from ..numerics.model import StackConfig, build_block
from ..numerics.probes import TRACE_COLUMNS, TraceProbe, position_average
from ..theory.meanfield import calibrate_correlation
from . import executor
from .cache import (
    CACHE_SUFFIX,
    CODE_TAG,
    CorruptCacheFile,
    cache_path,
    expected_rows,
    prefix_key,
    read_cached,
    read_state,
    run_key,
    set_aside,
    state_path,
    write_cached,
    write_state,
)
from .heap import keep_freed_heap


# Runs at least this deep get a per-layer progress bar of their own.
LAYER_BAR_MIN_DEPTH = 64

CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(StackConfig))
RUN_FIELDS = ("batch", "length", "input_std")
DEFAULT_SEEDS = (0, 1, 2)
"""The weight seeds of a sweep when none are chosen (the ``sweep`` and ``growth`` commands)."""
# Columns that identify one run of a sweep table (besides "seed").
RUN_COLUMNS = CONFIG_FIELDS + RUN_FIELDS


@dataclasses.dataclass(frozen=True)
class Stream:
    """One residual stream of ``stream_traces``: ``config`` (streamed to
    ``config.depth``), its weight seed, its inputs ``x`` of shape
    ``(batch, T, width)``, and the ``depths`` (each ≤ ``config.depth``) at which a
    table is handed out; empty means ``config.depth`` alone."""

    config: StackConfig
    seed: int
    x: torch.Tensor
    depths: tuple[int, ...] = ()
    input_variance: float | None = None
    """Variance of the inputs' coordinates, for the mean-field factors of the "correlation"
    estimator (``meanfield.calibrate_correlation``); ``None``: the mean square of ``x``."""
    resume: tuple[torch.Tensor, pd.DataFrame] | None = None
    """Continue a stored shallower run: the residual stream after its last block and its table
    (``d`` layers); blocks ``0 … d-1`` are not run, their rows are the table's. Every depth in
    ``depths`` must exceed ``d``."""

    def emitted_depths(self) -> tuple[int, ...]:
        depths = tuple(sorted(set(self.depths))) or (self.config.depth,)
        if depths[0] < 1 or depths[-1] > self.config.depth:
            raise ValueError(f"depths {depths} outside 1 … {self.config.depth}")
        return depths


def draw_key(config: StackConfig, seed: int) -> tuple:
    """What a layer's weight draw depends on besides the layer: the seed, the
    linear shapes and ``init_std``. Streams with equal keys share each layer's draw."""
    return (int(seed), model.linear_shapes(config), float(config.init_std))


def _trace_table(scheme: str, seed: int, rows: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """The ``Stack.trace`` table of the ``values`` (layers × rows × statistics) of one stream."""
    depth = len(values)
    table = pd.DataFrame({
        "layer": np.repeat(np.arange(depth), len(rows)),
        "sublayer": np.tile(rows["sublayer"].to_numpy(), depth),
        "position": np.tile(rows["position"].to_numpy(), depth),
    } | {name: values[:, :, i].ravel() for i, name in enumerate(TRACE_COLUMNS[3:])})
    table.insert(0, "seed", seed)
    table.insert(0, "scheme", scheme)
    return table


@torch.no_grad()
def stream_traces(
    streams: Sequence[Stream],
    on_table: Callable[[int, int, pd.DataFrame], None] | None = None,
    progress: bool = False,
) -> list[list[pd.DataFrame]]:
    """Several streamed runs, advanced block by block together.

    At layer ``l`` every stream still short of its depth builds its block ``l``
    (``model.build_block``), applies it to its own residual stream, records its
    statistics through a ``TraceProbe`` and drops it. Streams with the same
    ``draw_key`` (every scheme of a sweep, for one seed) build their blocks on one
    weight draw, and those that also share dtype, device and ``seq_len`` on one
    ``c_attn``. A stream's table at depth ``d`` is its first ``d`` layers' rows:
    block ``l``'s weights come from ``layer_seed(seed, l)`` alone and a block reads
    its own layer index only, never the total depth (the final norm, the one part
    of a ``Stack`` that does, is not traced), so that table equals
    ``Stack(config.replace(depth=d), seed).trace(x)``, bit for bit.

    Parameters
    ----------
    streams : sequence of Stream
    on_table : callable, optional
        ``on_table(stream_index, depth, table, state)`` as soon as a stream passes one of
        its depths, with the residual stream after that block (a hook for storing each
        table, and the state a later deeper run continues from, before the deeper layers run).
    progress : bool
        Per-layer progress bar when the deepest stream has ≥ ``LAYER_BAR_MIN_DEPTH`` layers.

    Returns
    -------
    list of lists of DataFrame
        Per stream, its table at each of its depths, shallowest first.

    Notes
    -----
    Peak memory is one layer's weights (one draw per ``draw_key``), one residual
    stream per stream and the ``2 · depth · T`` rows of statistics per stream,
    whatever the depth. Freed activation buffers are kept for the next block
    (``heap.keep_freed_heap``), not page-faulted in afresh.
    """
    keep_freed_heap()
    depths = [stream.emitted_depths() for stream in streams]
    states = [model.hidden_states(stream.x, stream.config) for stream in streams]
    deepest = max(stream.config.depth for stream in streams)
    values: list[np.ndarray | None] = [None] * len(streams)
    rows: list[pd.DataFrame | None] = [None] * len(streams)
    starts = [0] * len(streams)
    for index, stream in enumerate(streams):
        if stream.resume is not None:
            state, table = stream.resume
            starts[index] = int(table["layer"].max()) + 1
            if depths[index][0] <= starts[index] or len(table) % starts[index]:
                raise ValueError(f"cannot resume at depth {starts[index]} for depths {depths[index]}")
            per_layer = len(table) // starts[index]
            rows[index] = table[["sublayer", "position"]].iloc[:per_layer].reset_index(drop=True)
            values[index] = np.empty((stream.config.depth, per_layer, len(TRACE_COLUMNS) - 3))
            values[index][: starts[index]] = table[list(TRACE_COLUMNS[3:])].to_numpy(np.float64).reshape(
                starts[index], per_layer, -1)
            states[index] = model.hidden_states(state, stream.config).clone()
    tables: list[list[pd.DataFrame]] = [[] for _ in streams]
    layers = tqdm(
        range(deepest), desc="layers", leave=False, unit="layer",
        # None: tqdm shows the bar on a terminal only, so logs are not flooded
        disable=None if progress and deepest >= LAYER_BAR_MIN_DEPTH else True,
    )
    for layer in layers:
        draws: dict[tuple, list[torch.Tensor]] = {}
        constants: dict[tuple, torch.Tensor] = {}
        for index, stream in enumerate(streams):
            config = stream.config
            if not starts[index] <= layer < config.depth:
                continue
            key = draw_key(config, stream.seed)
            if key not in draws:
                draws[key] = model.draw_weights(key[1], config.init_std, model.layer_seed(stream.seed, layer))
            # c_attn is a function of W_V, W_O (as cast), T and the head counts only.
            constant_key = (key, config.dtype, config.device, config.seq_len)
            block = build_block(config, layer, stream.seed, draws[key], constants.get(constant_key))
            constants.setdefault(constant_key, block.c_attn)
            variance = stream.input_variance
            calibrate_correlation(block, float(stream.x.double().square().mean()) if variance is None else variance)
            # A probe that lives for one layer only: one kept across layers would pin
            # small arrays between the large, freed activation buffers of every layer,
            # and the C heap could then never shrink (resident memory grew ~1 MB per
            # layer at width 256 that way).
            probe = TraceProbe()
            states[index] = block(states[index], probe)
            pairs, n_positions, layer_values = probe.values()
            if values[index] is None:
                rows[index] = pd.DataFrame({"sublayer": np.repeat([sublayer for _, sublayer in pairs], n_positions),
                                            "position": np.tile(np.arange(n_positions), len(pairs))})
                values[index] = np.empty((config.depth, *layer_values.shape))
            values[index][layer] = layer_values
            if layer + 1 in depths[index]:
                table = _trace_table(config.scheme, stream.seed, rows[index], values[index][: layer + 1])
                tables[index].append(table)
                if on_table is not None:
                    on_table(index, layer + 1, table, states[index])
    return tables


def stream_trace(config: StackConfig, seed: int, x: torch.Tensor, progress: bool = False) -> pd.DataFrame:
    """``Stack(config, seed).trace(x)``, computed one block at a time (``stream_traces``
    of one stream).

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
    return stream_traces([Stream(config, seed, x)], progress=progress)[0][0]


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
        logged, set aside and recomputed. A stored deeper run of the same
        ``prefix_key`` serves this one (its first rows).
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
    options = {"batch": inputs.batch, "length": inputs.length_for(config.seq_len), "input_std": inputs.std}
    return _run_group([(config, seed, options)], cache_dir, progress, tag)[0]


RunSpec = tuple[StackConfig, int, dict]


@dataclasses.dataclass
class _Run:
    """One run of a group: its specification, cache names and (once known) table."""

    config: StackConfig
    seed: int
    options: dict
    tag: str
    table: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        self.rows = expected_rows(self.config, self.options["length"])
        arguments = self.seed, self.options["batch"], self.options["length"], self.options["input_std"], self.tag
        self.key = run_key(self.config, *arguments)
        self.prefix = prefix_key(self.config, *arguments)

    def at_depth(self, depth: int) -> _Run:
        return _Run(self.config.replace(depth=depth), self.seed, self.options, self.tag)

    def read(self, cache_dir: Path) -> pd.DataFrame | None:
        """This run's verified cached table, or None (a failing file is set aside)."""
        path = cache_path(cache_dir, self.config, self.key, self.prefix)
        if not path.exists():
            return None
        try:
            return read_cached(path, self.key, self.rows)
        except CorruptCacheFile as error:
            set_aside(path, str(error))
            return None

    def store(self, table: pd.DataFrame, cache_dir: Path | None, state: torch.Tensor | None = None) -> None:
        """Keep ``table``; with a cache, write it, then ``state`` (the residual stream after the
        last block) beside it: a state file exists only beside its table, and a table whose
        state write was interrupted is extended from layer 0."""
        self.table = table
        if cache_dir is not None:
            path = cache_path(cache_dir, self.config, self.key, self.prefix)
            write_cached(table, path, self.key, self.rows)
            if state is not None:
                write_state(state, state_path(path), self.key)

    def read_state(self, cache_dir: Path) -> torch.Tensor | None:
        """The verified residual stream after this run's last block, or None (``read_state``)."""
        shape = (self.options["batch"], self.options["length"], self.config.width)
        return read_state(state_path(cache_path(cache_dir, self.config, self.key, self.prefix)), self.key, shape,
                          self.config.torch_dtype)

    def stored_depths(self, cache_dir: Path) -> list[int]:
        """Depths of the stored runs with this run's prefix key, by file name."""
        names = Path(cache_dir).glob(f"{self.config.scheme}-{self.prefix}-depth*-*{CACHE_SUFFIX}")
        found = (re.fullmatch(rf"{re.escape(self.config.scheme)}-{self.prefix}-depth(\d+)-[0-9a-f]{{64}}{re.escape(CACHE_SUFFIX)}",
                              path.name) for path in names)
        return sorted({int(match[1]) for match in found if match})


def _run_group(specs: Sequence[RunSpec], cache_dir: Path | str | None, progress: bool, tag: str) -> list[pd.DataFrame]:
    """The tables of runs that share a ``draw_key`` (a task of ``sweep``), computed together.

    A run in the cache is read. A missing run whose prefix key (``prefix_key``)
    a deeper run of the group or of the cache shares is that run's first rows,
    stored as its own file. The rest are computed in one ``stream_traces`` pass:
    one stream per prefix key, as deep as its deepest missing run, every scheme on
    the same weight draws; each run is stored, with its final state, as soon as its
    stream passes its depth. A stream whose prefix key has a shallower stored run
    with a verified state file continues from it (``Stream.resume``) instead of
    starting at layer 0.
    """
    cache_dir = None if cache_dir is None else Path(cache_dir)
    runs = [_Run(config, seed, options, tag) for config, seed, options in specs]
    if cache_dir is not None:
        for run_ in runs:
            run_.table = run_.read(cache_dir)
    # The deepest table known for each prefix key: shallower runs are its first rows.
    deepest: dict[str, tuple[int, pd.DataFrame]] = {}
    for run_ in runs:
        if run_.table is not None and run_.config.depth > deepest.get(run_.prefix, (0, None))[0]:
            deepest[run_.prefix] = run_.config.depth, run_.table
    stored = dict(deepest)  # the deepest shallower run seen, a candidate to continue from
    missing: dict[str, list[_Run]] = {}
    for run_ in sorted((r for r in runs if r.table is None), key=lambda r: -r.config.depth):
        if run_.prefix not in deepest and cache_dir is not None:
            # a deeper run stored by an earlier request
            for depth in reversed(run_.stored_depths(cache_dir)):
                if depth < run_.config.depth:
                    break
                table = run_.at_depth(depth).read(cache_dir)
                if table is not None:
                    deepest[run_.prefix] = depth, table
                    break
        if cache_dir is not None and run_.prefix not in deepest and run_.prefix not in stored:
            for depth in reversed(run_.stored_depths(cache_dir)):  # all shallower here
                table = run_.at_depth(depth).read(cache_dir)
                if table is not None:
                    stored[run_.prefix] = depth, table
                    break
        depth, table = deepest.get(run_.prefix, (0, None))
        if depth >= run_.config.depth:
            run_.store(table.iloc[: run_.rows].reset_index(drop=True), cache_dir)
        else:
            missing.setdefault(run_.prefix, []).append(run_)
    streams, members = [], []
    for group in missing.values():
        config, seed, options = group[0].config, group[0].seed, group[0].options  # the deepest
        inputs = InputSpec(options["batch"], options["length"], options["input_std"])
        resume = None
        if group[0].prefix in stored and cache_dir is not None:
            depth, table = stored[group[0].prefix]
            state = group[0].at_depth(depth).read_state(cache_dir)
            resume = None if state is None else (state, table)
        streams.append(Stream(config, seed, inputs.hidden_states(config, seed), tuple(r.config.depth for r in group),
                              inputs.std**2, resume))
        members.append(group)

    def finished(stream: int, depth: int, table: pd.DataFrame, state: torch.Tensor) -> None:
        # only the deepest run of a stream keeps its state: a later deeper request of the
        # prefix key continues from the deepest stored run, so a shallower one's is never read
        for run_ in members[stream]:
            if run_.config.depth == depth:
                run_.store(table, cache_dir, state if depth == streams[stream].config.depth else None)

    if streams:
        stream_traces(streams, finished, progress=progress)
    return [run_.table for run_ in runs]


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

    The runs that share a seed and weight shapes (``draw_key``) are one task of
    ``executor.map_runs`` (``_run_group``: one pass over the blocks, the deepest
    run of each prefix key only): computed in this process by default, on a Dask
    cluster inside ``with executor.backend(workers=N)`` (or ``scheduler=ADDRESS``);
    the table is the same, bit for bit.

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
        Progress bar over tasks (the runs of one weight draw each; and over layers when the
        deepest run is ≥ ``LAYER_BAR_MIN_DEPTH`` deep).
    on_run : callable, optional
        Called as ``on_run(config, seed, options)`` in this process for each run
        once its task is finished and stored (a hook for logging, or for
        interrupting a sweep); on a Dask backend in the order tasks finish.
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
    # One task per weight draw: every run of one seed and weight shapes.
    groups: dict[tuple, list[int]] = {}
    for index, (config, seed, _) in enumerate(runs):
        groups.setdefault(draw_key(config, seed), []).append(index)
    members = list(groups.values())
    # Per-layer bars only in this process: a cluster's workers have no terminal.
    task = functools.partial(_run_group, cache_dir=cache_dir, progress=progress and executor.current().in_process, tag=tag)

    def finished(group: int, tables: list[pd.DataFrame]) -> None:
        for index in members[group]:
            on_run(*runs[index])

    grouped = executor.map_runs(task, [[runs[i] for i in indices] for indices in members], desc="Monte Carlo run groups",
                                progress=progress, on_result=None if on_run is None else finished)
    results: list[pd.DataFrame] = [None] * len(runs)  # type: ignore[list-item]
    for indices, tables in zip(members, grouped):
        for index, table in zip(indices, tables):
            results[index] = table
    # One row per run, repeated over its table's rows (a column-wise assign per run
    # cost more than the runs' own statistics at width 256).
    per_run = pd.DataFrame([{**config.as_dict(), **options, "seed": seed} for config, seed, options in runs])
    leading = per_run.loc[per_run.index.repeat([len(table) for table in results]), list(RUN_COLUMNS) + ["seed"]]
    body = pd.concat([table.drop(columns=["scheme", "seed"]) for table in results], ignore_index=True)
    return pd.concat([leading.reset_index(drop=True), body], axis=1)


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
