"""Cache integrity: a damaged cache file is detected, named, set aside and recomputed,
and the result equals an undamaged run (experiments/montecarlo.py, ``read_cached``)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from strategies import truncations

from bhyt_theory.experiments import cache, montecarlo
from bhyt_theory.numerics.model import StackConfig

CONFIG = StackConfig(scheme="bhyt", depth=2, width=16, heads=2, seq_len=6)
SEED = 3
GRID = {"scheme": ["rmsnorm", "bhyt"], "depth": [2], "width": [16], "heads": [2], "seq_len": [6]}


def uncached_run() -> pd.DataFrame:
    return montecarlo.run(CONFIG, SEED, cache_dir=None)


def run_path(cache_dir: Path) -> Path:
    arguments = CONFIG, SEED, 4, CONFIG.seq_len, 0.02
    return cache.cache_path(cache_dir, CONFIG, cache.run_key(*arguments), cache.prefix_key(*arguments))


def valid_file_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        montecarlo.run(CONFIG, SEED, cache_dir=folder)
        return run_path(Path(folder)).read_bytes()


REFERENCE = uncached_run()
VALID = valid_file_bytes()


@contextlib.contextmanager
def cache_log():
    """Collect the records of the ``bhyt_theory.cache`` logger."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("bhyt_theory.cache")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def assert_detected_named_and_recomputed(folder: Path, damaged: bytes) -> None:
    """Write ``damaged`` as the run's cache file, run, and check every promise."""
    path = run_path(folder)
    path.write_bytes(damaged)
    with cache_log() as records, mock.patch.object(montecarlo, "stream_traces", wraps=montecarlo.stream_traces) as traced:
        table = montecarlo.run(CONFIG, SEED, cache_dir=folder)
    assert traced.call_count == 1, "a damaged file must be recomputed, not read"
    pd.testing.assert_frame_equal(table, REFERENCE, check_exact=True)
    aside = list(folder.glob(path.name + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged, "the damaged file is kept aside, unchanged"
    assert [r.levelno for r in records] == [logging.WARNING]
    assert str(path) in records[0].getMessage() and aside[0].name in records[0].getMessage()
    # The recomputed file is whole again: read back without recomputing.
    pd.testing.assert_frame_equal(cache.read_cached(path, *key_and_rows()), REFERENCE, check_exact=True)


def key_and_rows() -> tuple[str, int]:
    return cache.run_key(CONFIG, SEED, 4, CONFIG.seq_len, 0.02), cache.expected_rows(CONFIG, CONFIG.seq_len)


def test_the_valid_file_is_read_without_recomputing(tmp_path):
    run_path(tmp_path).write_bytes(VALID)
    with cache_log() as records, mock.patch.object(montecarlo, "stream_traces") as traced:
        table = montecarlo.run(CONFIG, SEED, cache_dir=tmp_path)
    assert traced.call_count == 0 and records == []
    pd.testing.assert_frame_equal(table, REFERENCE, check_exact=True)


@given(truncations(VALID))
def test_cache_file_truncated_at_any_byte_is_detected_named_and_recomputed(damaged):
    with tempfile.TemporaryDirectory() as folder:
        assert_detected_named_and_recomputed(Path(folder), damaged)


def rewritten(change) -> bytes:
    """The valid file re-encoded after ``change(arrow_table)``, keeping its verification record."""
    arrow = pq.read_table(pa.BufferReader(VALID))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.parquet"
        pq.write_table(change(arrow).replace_schema_metadata(arrow.schema.metadata), path)
        return path.read_bytes()


def one_value_changed(arrow):
    table = arrow.to_pandas()
    table.loc[5, "mean_square"] = np.nextafter(table.loc[5, "mean_square"], np.inf)
    return pa.Table.from_pandas(table, preserve_index=False)


def other_run() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        montecarlo.run(CONFIG, SEED + 1, cache_dir=folder)
        (path,) = Path(folder).glob("*.parquet")
        return path.read_bytes()


DAMAGE = {
    "zero bytes": lambda: b"",
    "random bytes": lambda: np.random.default_rng(0).bytes(len(VALID)),
    "header magic only": lambda: VALID[:4],
    "header only (schema, no rows)": lambda: rewritten(lambda arrow: arrow.slice(0, 0)),
    "last row removed": lambda: rewritten(lambda arrow: arrow.slice(0, arrow.num_rows - 1)),
    "last byte removed": lambda: VALID[:-1],
    "one value off by one ulp": lambda: rewritten(one_value_changed),
    "another run's file": other_run,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_cache_file_is_detected_named_and_recomputed(tmp_path, damage):
    assert_detected_named_and_recomputed(tmp_path, DAMAGE[damage]())


@pytest.mark.parametrize("damage", ["last row removed", "random bytes"])
def test_sweep_over_a_damaged_cache_equals_the_undamaged_sweep(tmp_path, damage):
    undamaged = montecarlo.sweep(GRID, [SEED], cache_dir=None, progress=False)
    montecarlo.sweep(GRID, [SEED], cache_dir=tmp_path, progress=False)
    run_path(tmp_path).write_bytes(DAMAGE[damage]())
    with cache_log() as records:
        resumed = montecarlo.sweep(GRID, [SEED], cache_dir=tmp_path, progress=False)
    assert len(records) == 1
    pd.testing.assert_frame_equal(resumed, undamaged, check_exact=True)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_cache_file_mode_follows_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        montecarlo.run(CONFIG, SEED, cache_dir=tmp_path)
    finally:
        os.umask(previous)
    assert run_path(tmp_path).stat().st_mode & 0o777 == 0o666 & ~umask
