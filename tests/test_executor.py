"""Sweeps on a real local Dask cluster (two worker processes, one thread each):
the tables equal the serial ones byte for byte, a worker killed mid-run costs
only its run, which is computed once elsewhere, and an unreachable scheduler is
a one-line error naming its address (exit 2)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from distributed import LocalCluster, WorkerPlugin

from bhyt_theory import cli
from bhyt_theory.experiments import cache, executor, montecarlo

SMALL = {"depth": 3, "width": 16, "heads": 2, "seq_len": 6}
SCHEMES = ["bhyt", "rmsnorm", "periln"]
# Three seeds: three tasks (one per seed), so that after the first some worker
# process is sure to start a second one.
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def test_parallel_sweep_csv_is_byte_identical_to_serial(tmp_path):
    arguments = ["sweep", "--scheme", *SCHEMES, "--seeds", *map(str, SEEDS), "--no-progress",
                 *itertools.chain.from_iterable((f"--{name.replace('_', '-')}", str(value)) for name, value in SMALL.items())]
    assert cli.main([*arguments, "--no-cache", "--csv", str(tmp_path / "serial.csv")]) == 0
    assert cli.main([*arguments, "--workers", "2", "--cache-dir", str(tmp_path / "cache"),
                     "--csv", str(tmp_path / "parallel.csv")]) == 0
    serial = (tmp_path / "serial.csv").read_bytes()
    assert serial == (tmp_path / "parallel.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "serial.csv")) == len(SCHEMES) * len(SEEDS) * SMALL["depth"] * 2 * SMALL["seq_len"]
    assert len(list((tmp_path / "cache").glob(f"*{cache.CACHE_SUFFIX}"))) == len(SCHEMES) * len(SEEDS)


def first_time(marker: Path) -> bool:
    """True for the one caller, in any process, that creates ``marker``."""
    try:
        marker.open("x").close()
    except FileExistsError:
        return False
    return True


class KillTwiceAndCount(WorkerPlugin):
    """In every worker process: leave a file per run stored, and kill the process
    twice in the whole cluster — once just after a run is stored (the rest of its
    task's runs not yet finished, its result not returned), once when a process
    starts computing its second task."""

    def __init__(self, markers: Path) -> None:
        self.markers = markers

    def setup(self, worker) -> None:
        self.original = montecarlo.stream_traces, montecarlo.write_cached
        stream_traces, write_cached = self.original
        markers, started = self.markers, itertools.count()

        def counted_stream_traces(streams, *args, **kwargs):
            if next(started) == 1 and first_time(markers / "killed-mid-run"):
                os.kill(os.getpid(), signal.SIGKILL)
            return stream_traces(streams, *args, **kwargs)

        def write_then_die(table, path, key, rows):
            write_cached(table, path, key, rows)
            (markers / f"computed-{table['scheme'][0]}-{table['seed'][0]}-{uuid.uuid4().hex}").touch()
            if first_time(markers / "killed-after-write"):
                os.kill(os.getpid(), signal.SIGKILL)

        montecarlo.stream_traces, montecarlo.write_cached = counted_stream_traces, write_then_die

    def teardown(self, worker) -> None:
        montecarlo.stream_traces, montecarlo.write_cached = self.original


def test_killed_workers_lose_only_their_runs_and_nothing_finished_is_computed_again(cluster, tmp_path):
    markers, cache = tmp_path / "markers", tmp_path / "cache"
    markers.mkdir()
    with executor.backend(scheduler=cluster.scheduler_address) as backend:
        backend.client.register_plugin(KillTwiceAndCount(markers), name="kill-twice")
        try:
            # A first sweep over the first seed, then the whole sweep, as after an interruption.
            montecarlo.sweep({"scheme": SCHEMES}, SEEDS[:1], base=SMALL, cache_dir=cache, progress=False)
            table = montecarlo.sweep({"scheme": SCHEMES}, SEEDS, base=SMALL, cache_dir=cache, progress=False)
        finally:
            backend.client.unregister_worker_plugin("kill-twice")
    for kill in ("killed-mid-run", "killed-after-write"):
        assert (markers / kill).exists(), f"{kill} did not happen: the test did not test recovery"
    computed = Counter(tuple(path.name.split("-")[1:3]) for path in markers.glob("computed-*"))
    assert computed == Counter({(scheme, str(seed)): 1 for scheme in SCHEMES for seed in SEEDS})
    serial = montecarlo.sweep({"scheme": SCHEMES}, SEEDS, base=SMALL, cache_dir=None, progress=False)
    pd.testing.assert_frame_equal(table, serial, check_exact=True)


def report_threads(_: object) -> int:
    return torch.get_num_threads()


def test_tasks_run_with_the_callers_torch_thread_count(cluster):
    # Workers start with OMP_NUM_THREADS=1 (Dask's pre-spawn environment); a run's
    # float32 reductions depend on the thread count, so the caller's must travel.
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with executor.backend(scheduler=cluster.scheduler_address):
            assert executor.map_runs(report_threads, range(4), progress=False) == [2] * 4
    finally:
        torch.set_num_threads(previous)


def slow_first(number: int) -> int:
    if number == 0:
        time.sleep(1.0)
    return number


def test_results_come_back_in_the_order_of_the_specifications(cluster):
    # Run 0 takes a second, the others none: on two workers they finish first,
    # so results listed in order of completion would not start with 0.
    finished = []
    with executor.backend(scheduler=cluster.scheduler_address):
        results = executor.map_runs(slow_first, range(6), progress=False,
                                    on_result=lambda index, result: finished.append(index))
    assert results == list(range(6))
    assert sorted(finished) == list(range(6))


def fail_on_odd(number: int) -> int:
    if number % 2:
        raise ValueError(f"odd run {number}")
    return number


def test_a_failing_run_stops_the_sweep_with_its_error(cluster):
    with executor.backend(scheduler=cluster.scheduler_address):
        assert executor.map_runs(fail_on_odd, [0, 2, 4], progress=False) == [0, 2, 4]
        with pytest.raises(ValueError, match="odd run"):
            executor.map_runs(fail_on_odd, [0, 1, 2], progress=False)


def test_unreachable_scheduler_is_a_one_line_error_naming_it(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port was free a moment ago and nothing listens on it now: connections are refused.
    address = f"tcp://127.0.0.1:{port}"
    code = cli.main(["sweep", "--depth", "1", "--width", "16", "--heads", "2", "--seq-len", "4", "--seeds", "0",
                     "--no-cache", "--no-progress", "--scheduler", address])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert address in error and "\n" not in error


def test_backend_rejects_workers_and_scheduler_together():
    with pytest.raises(ValueError, match="not both"), executor.backend(workers=2, scheduler="tcp://127.0.0.1:8786"):
        pass
    with pytest.raises(ValueError, match="workers"), executor.backend(workers=0):
        pass


def test_training_runs_on_the_cluster_equal_the_serial_runs(cluster, tmp_path):
    """`train --scheduler` / `reproduce --workers`: each training run is one Dask task and
    its logged table is the serial run's, value for value (same seeds, one thread each)."""
    argv = ["train", "--schemes", "rmsnorm", "bhyt", "--seeds", "0", "--depth", "2", "--width", "16", "--heads",
            "2", "--seq-len", "16", "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--stats-every", "2",
            "--eval-batches", "1", "--warmup-steps", "1", "--no-progress"]
    assert cli.main([*argv, "--workers", "1", "--out", str(tmp_path / "serial")]) == 0
    assert cli.main([*argv, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask")]) == 0
    serial, parallel = (pd.read_csv(tmp_path / name / "log.csv") for name in ("serial", "dask"))
    pd.testing.assert_frame_equal(serial, parallel)
    assert sorted(p.name for p in (tmp_path / "dask" / "runs").iterdir()) == sorted(
        p.name for p in (tmp_path / "serial" / "runs").iterdir())
