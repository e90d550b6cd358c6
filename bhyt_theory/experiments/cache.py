"""The Monte Carlo run cache: one Parquet file per run, named by its keys and verified on read.

``run_key`` hashes everything that determines a run's table (its configuration, seed, inputs and
``CODE_TAG``, the fingerprint of the code that computes it); ``prefix_key`` the same without the
depth, so that a deeper run's file serves a shallower request. ``write_cached`` stores a table
with its key, row count and a SHA-256 of its values; ``read_cached`` checks all three and raises
``CorruptCacheFile`` naming what failed (``experiments.montecarlo`` sets such a file aside and
recomputes it). ``write_state`` stores beside it (``state_path``) the residual stream after the
run's last block, with the run key and a SHA-256 of its bytes, so that a later deeper request of
the same prefix key continues from it; ``read_state`` returns it only when every check passes,
else ``None`` (the caller then recomputes from layer 0).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .. import __version__
from ..numerics import estimators, model, norms, probes, schemes
from ..numerics.model import StackConfig
from ..numerics.probes import TRACE_COLUMNS
from ..theory import meanfield
from .atomic import write_atomically


def source_fingerprint(*files: str | Path) -> str:
    """SHA-256 (12 hex digits) of the given source files: any edit to the code that
    computes a cached number changes the key, so stale cache files are never read."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


# What computes a cached run: the numerics, the Monte Carlo streaming (``montecarlo``, beside this
# module), this module (the state files' format) and the mean field, which sets the "correlation" estimator's factors.
CODE_TAG = (f"bhyt_theory {__version__}, sources "
            f"{source_fingerprint(norms.__file__, model.__file__, probes.__file__, schemes.__file__, estimators.__file__, meanfield.__file__, Path(__file__).with_name('montecarlo.py'), __file__)}")


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


def prefix_key(config: StackConfig, seed: int, batch: int, length: int, input_std: float, tag: str = CODE_TAG) -> str:
    """SHA-256 (16 hex digits) of everything that determines a run's table except
    its depth: runs with equal prefix keys differ only in depth, and the shallower
    one's table is the first rows of the deeper one's (``stream_traces``)."""
    return run_key(config.replace(depth=1), seed, batch, length, input_std, tag)[:16]


def cache_path(cache_dir: Path | str, config: StackConfig, key: str, prefix: str) -> Path:
    """The cache file of the run with key ``key`` (``run_key``) and prefix key
    ``prefix`` (``prefix_key``): ``<scheme>-<prefix>-depth<depth>-<key>.parquet``, so
    the stored runs of one prefix key are found by name."""
    return Path(cache_dir) / f"{config.scheme}-{prefix}-depth{config.depth}-{key}{CACHE_SUFFIX}"


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


def set_aside(path: Path, reason: str) -> None:
    """Move a failed cache file to ``<name>.corrupt-<UTC time>`` and log it by name."""
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process set it aside first
        return
    log.warning("cache file %s failed verification (%s); moved to %s, recomputing", path, reason, aside.name)


STATE_SUFFIX = ".state"


def state_path(path: Path) -> Path:
    """The state file of the run whose table is at ``path`` (``cache_path``): its name plus ``.state``."""
    return path.with_name(path.name + STATE_SUFFIX)


def _tensor_digest(state: torch.Tensor) -> str:
    return hashlib.sha256(state.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def write_state(state: torch.Tensor, path: Path, key: str) -> None:
    """Store ``state`` (the residual stream after a run's last block, in its own dtype so that
    continuing from it is bit for bit the uninterrupted run) at ``path`` with the run ``key`` and
    a SHA-256 of its bytes, atomically."""
    state = state.detach().cpu().contiguous()
    record = {"run_key": key, "sha256": _tensor_digest(state), "state": state}
    write_atomically(path, lambda temporary: torch.save(record, temporary))


def read_state(path: Path, key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """The state stored by ``write_state`` for run ``key``, on the CPU, or ``None`` when the file is
    missing, unreadable, of another run, of another shape or dtype, or its bytes fail their SHA-256
    (a failing file is logged; the caller recomputes, so a bad file never changes a result)."""
    if not path.exists():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        state = record["state"]
        valid = (record["run_key"] == key and isinstance(state, torch.Tensor) and tuple(state.shape) == tuple(shape)
                 and state.dtype == dtype and _tensor_digest(state) == record["sha256"])
    except Exception as error:  # any unreadable file: pickle, zip, key and type errors alike
        log.warning("state file %s unreadable (%s: %s); recomputing from layer 0", path, type(error).__name__, error)
        return None
    if not valid:
        log.warning("state file %s failed verification; recomputing from layer 0", path)
        return None
    return state
